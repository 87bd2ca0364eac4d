package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
	"github.com/pushmon/pushmon/internal/inject"
)

func container(name string, env ...corev1.EnvVar) corev1.Container {
	return corev1.Container{Name: name, Image: "busybox", Command: []string{"true"}, Env: env}
}

func secretRef(secret, key string) *corev1.EnvVarSource {
	return &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
		LocalObjectReference: corev1.LocalObjectReference{Name: secret}, Key: key}}
}

// A pod that opts in gets PUSH_URL and PUSH_INTERVAL as secretKeyRefs in
// every container and init container, a container's own value wins, and
// the token itself is nowhere in the pod. A pod that does not opt in is
// untouched and never reaches pushmon (the webhook's matchCondition).
func TestInjectionOptIn(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t, "inject")
	m, tok := createMonitor(t, ns, "worker", time.Minute)

	own := corev1.EnvVar{Name: inject.EnvPushURL, Value: "http://elsewhere.example/api/push/x"}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "opted-in",
			Annotations: map[string]string{monitoringv1alpha1.MonitorKey: m.Name}},
		Spec: corev1.PodSpec{
			InitContainers: []corev1.Container{container("init")},
			Containers:     []corev1.Container{container("main", corev1.EnvVar{Name: "OTHER", Value: "kept"}), container("own-url", own)},
		},
	}
	g.Expect(k8sClient.Create(ctx, pod)).To(Succeed())

	var got corev1.Pod
	g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(pod), &got)).To(Succeed())
	url := corev1.EnvVar{Name: inject.EnvPushURL, ValueFrom: secretRef("worker-push", "url")}
	interval := corev1.EnvVar{Name: inject.EnvPushInterval, ValueFrom: secretRef("worker-push", "interval")}
	g.Expect(got.Spec.InitContainers[0].Env).To(Equal([]corev1.EnvVar{url, interval}))
	g.Expect(got.Spec.Containers[0].Env).To(Equal([]corev1.EnvVar{{Name: "OTHER", Value: "kept"}, url, interval}))
	g.Expect(got.Spec.Containers[1].Env).To(Equal([]corev1.EnvVar{own, interval}))
	raw, err := json.Marshal(got)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(string(raw)).NotTo(ContainSubstring(tok))

	before := webhookCalls(t)
	g.Expect(before).To(BeNumerically(">=", 1))
	plain := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "plain", Annotations: map[string]string{"other": "x"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{container("main")}},
	}
	g.Expect(k8sClient.Create(ctx, plain)).To(Succeed())
	g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(plain), &got)).To(Succeed())
	g.Expect(got.Spec.Containers[0].Env).To(BeEmpty())
	// Admission is synchronous: had the pod reached the webhook, the
	// counter would already show it.
	g.Expect(webhookCalls(t)).To(Equal(before))
}

// A pod naming a monitor that does not exist is admitted unchanged; kubectl
// shows why, and so does a Warning event on the pod (or, for a pod a
// controller creates, which has no name yet during admission, on its Job).
func TestInjectionMissingMonitor(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t, "inject-missing")

	manifest := filepath.Join(t.TempDir(), "pod.yaml")
	g.Expect(os.WriteFile(manifest, []byte(`apiVersion: v1
kind: Pod
metadata:
  name: lonely
  namespace: `+ns+`
  annotations:
    monitoring.pushmon.dev/monitor: nope
spec:
  containers:
  - name: main
    image: busybox
    command: ["true"]
`), 0o600)).To(Succeed())
	out, err := runKubectl(ctx, "apply", "-f", manifest)
	g.Expect(err).NotTo(HaveOccurred(), out)
	g.Expect(out).To(ContainSubstring(`Warning: pushmon: PushMonitor "nope" not found in namespace ` + ns))
	g.Expect(out).To(ContainSubstring("pod/lonely created"))

	var got corev1.Pod
	g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "lonely"}, &got)).To(Succeed())
	g.Expect(got.Spec.Containers[0].Env).To(BeEmpty())
	g.Eventually(func(g Gomega) {
		evs := warnings(g, ns, "Pod", "lonely", monitoringv1alpha1.MonitorNotFoundReason)
		g.Expect(evs).To(HaveLen(1))
		g.Expect(evs[0].Note).To(ContainSubstring(`PushMonitor "nope" not found`))
		g.Expect(evs[0].ReportingController).To(Equal("pushmon"))
	}).WithTimeout(10 * time.Second).Should(Succeed())

	// A server-side dry run has no side effects: no second event.
	out, err = runKubectl(ctx, "apply", "--dry-run=server", "-f", manifest)
	g.Expect(err).NotTo(HaveOccurred(), out)

	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "orphan-job"},
		Spec: batchv1.JobSpec{
			BackoffLimit: ptr.To[int32](0),
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{monitoringv1alpha1.MonitorKey: "nope"}},
				Spec:       corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever, Containers: []corev1.Container{container("main")}},
			},
		},
	}
	g.Expect(k8sClient.Create(ctx, job)).To(Succeed())
	pod := podOf(t, ns, job.Name, 30*time.Second)
	g.Expect(pod.Spec.Containers[0].Env).To(BeEmpty())
	g.Eventually(func(g Gomega) {
		g.Expect(warnings(g, ns, "Job", job.Name, monitoringv1alpha1.MonitorNotFoundReason)).To(HaveLen(1))
	}).WithTimeout(10 * time.Second).Should(Succeed())
	g.Consistently(func(g Gomega) {
		evs := warnings(g, ns, "Pod", "lonely", monitoringv1alpha1.MonitorNotFoundReason)
		g.Expect(evs).To(HaveLen(1))
		g.Expect(evs[0].Series).To(BeNil(), "the dry run recorded an event")
	}).WithTimeout(2 * time.Second).Should(Succeed())
}

// failurePolicy Ignore: with pushmon down, an opted-in pod is still
// admitted (without PUSH_URL) instead of blocking the workload.
func TestInjectionPushmonDown(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t, "inject-down")
	m, _ := createMonitor(t, ns, "worker", time.Minute)

	manager.Stop()
	defer func() {
		var err error
		manager, err = startManager()
		if err != nil {
			t.Fatalf("restarting the manager: %v", err)
		}
	}()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "while-down",
			Annotations: map[string]string{monitoringv1alpha1.MonitorKey: m.Name}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{container("main")}},
	}
	start := time.Now()
	g.Expect(k8sClient.Create(ctx, pod)).To(Succeed())
	t.Logf("admitted in %v with pushmon down", time.Since(start))
	var got corev1.Pod
	g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(pod), &got)).To(Succeed())
	g.Expect(got.Spec.Containers[0].Env).To(BeEmpty())
}
