package operator

import (
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
	"github.com/pushmon/pushmon/internal/token"
)

func bulkySecret(refs ...metav1.OwnerReference) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: "ns", Name: "s", UID: "secret-uid", ResourceVersion: "7",
			Labels:          map[string]string{token.LabelManagedBy: token.LabelManagedByValue, monitoringv1alpha1.MonitorKey: "job", "team": "a"},
			Annotations:     map[string]string{token.AnnotationTokenIssued: "2026-01-01T00:00:00Z", "bulk": "aaaa"},
			OwnerReferences: refs,
			Finalizers:      []string{"example.com/keep"},
			ManagedFields:   []metav1.ManagedFieldsEntry{{Manager: "kubectl"}},
		},
		Type: corev1.SecretTypeOpaque,
		Data: map[string][]byte{token.SecretKeyToken: []byte("tok"), token.SecretKeyURL: []byte("u"),
			token.SecretKeyInterval: []byte("60"), "blob": []byte("xxxxxxxx")},
	}
}

func monitorRef(kind string) metav1.OwnerReference {
	return metav1.OwnerReference{APIVersion: monitoringv1alpha1.GroupVersion.String(), Kind: kind,
		Name: "job", UID: "monitor-uid", Controller: ptr.To(true)}
}

func TestTrimSecret(t *testing.T) {
	g := NewWithT(t)
	other := metav1.OwnerReference{APIVersion: "v1", Kind: "ConfigMap", Name: "c", UID: "cm-uid"}

	got, err := trimSecret(bulkySecret(other, monitorRef("PushMonitor")))
	g.Expect(err).NotTo(HaveOccurred())
	own := got.(*corev1.Secret)
	g.Expect(own.Data).To(Equal(map[string][]byte{token.SecretKeyToken: []byte("tok"), token.SecretKeyURL: []byte("u"),
		token.SecretKeyInterval: []byte("60"), "blob": {}}), "a key pushmon does not write is kept without its value")
	g.Expect(own.Annotations).To(Equal(map[string]string{token.AnnotationTokenIssued: "2026-01-01T00:00:00Z"}))
	g.Expect(own.Labels).To(Equal(map[string]string{token.LabelManagedBy: token.LabelManagedByValue, monitoringv1alpha1.MonitorKey: "job"}))
	g.Expect(own.OwnerReferences).To(Equal([]metav1.OwnerReference{monitorRef("PushMonitor")}))
	g.Expect(own.ManagedFields).To(BeNil())
	g.Expect(own.Finalizers).To(BeNil())
	g.Expect(own.UID).To(BeEquivalentTo("secret-uid"))
	g.Expect(own.ResourceVersion).To(Equal("7"))
	again, _ := trimSecret(own.DeepCopy())
	g.Expect(again).To(Equal(own), "idempotent")

	for name, refs := range map[string][]metav1.OwnerReference{
		"no owner": nil,
		// Carries the monitor's UID: had its owner reference been kept,
		// the reconciler (metav1.IsControlledBy compares UIDs) would take
		// it for the monitor's own Secret, find no token and issue one,
		// again and again.
		"controller of another kind": {monitorRef("ConfigMap")},
		"owner not the controller":   {func() metav1.OwnerReference { r := monitorRef("PushMonitor"); r.Controller = nil; return r }()},
	} {
		got, err := trimSecret(bulkySecret(refs...))
		g.Expect(err).NotTo(HaveOccurred())
		f := got.(*corev1.Secret)
		g.Expect(f.Data).To(BeNil(), name)
		g.Expect(f.Annotations).To(BeNil(), name)
		g.Expect(f.OwnerReferences).To(BeNil(), name)
		g.Expect(f.Labels).To(HaveLen(2), name)
		g.Expect(f.Name).To(Equal("s"), name)
	}

	// The owner reference is anyone's to write: a Secret claiming a monitor
	// cannot bring bulk in through the keys pushmon reads either.
	forged := bulkySecret(monitorRef("PushMonitor"))
	forged.Data[token.SecretKeyURL] = make([]byte, 1<<20)
	got, err = trimSecret(forged)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(got.(*corev1.Secret).Data[token.SecretKeyURL]).To(BeEmpty(), "an oversized value is held empty")
	g.Expect(got.(*corev1.Secret).Data[token.SecretKeyToken]).To(Equal([]byte("tok")))

	cm := &corev1.ConfigMap{}
	got, err = trimSecret(cm)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(got).To(BeIdenticalTo(cm))
}
