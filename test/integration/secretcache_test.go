package integration

import (
	"context"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
	"github.com/pushmon/pushmon/internal/operator"
	"github.com/pushmon/pushmon/internal/token"
)

// TestForeignSecretsNotCached: a Secret that carries pushmon's labels but
// belongs to no PushMonitor is held in the cache without its data and
// annotations, and is not indexed, so a tenant who may create Secrets can
// neither grow every replica's memory with them nor, by copying a token into
// one, make the real monitor's pushes unknown. The monitor's own Secret
// keeps what pushmon reads. The cache is built with operator.CacheOptions,
// as the manager's is; the push goes to the suite's running manager.
func TestForeignSecretsNotCached(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	m := monitor(ns, "job", monitoringv1alpha1.PushMonitorSpec{Timeout: dur(time.Hour)})
	tok := createMonitor(t, m)
	own := client.ObjectKey{Namespace: ns, Name: m.DesiredSecretName()}

	big := strings.Repeat("x", 900<<10) // Secrets hold at most 1 MiB
	foreign := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "foreign",
			Labels:      map[string]string{token.LabelManagedBy: token.LabelManagedByValue, monitoringv1alpha1.MonitorKey: m.Name},
			Annotations: map[string]string{"bulk": strings.Repeat("a", 64<<10), token.AnnotationTokenIssued: "2026-01-01T00:00:00Z"},
		},
		// A copy of the monitor's token beside the bulk.
		Data: map[string][]byte{token.SecretKeyToken: []byte(tok), "blob": []byte(big)},
	}
	g.Expect(k8sClient.Create(ctx, foreign)).To(Succeed())
	// Bulk in the monitor's own Secret too: a key pushmon does not write.
	var s corev1.Secret
	g.Expect(k8sClient.Get(ctx, own, &s)).To(Succeed())
	patched := s.DeepCopy()
	patched.Data["extra"] = []byte(big[:100<<10])
	g.Expect(k8sClient.Patch(ctx, patched, client.MergeFrom(&s))).To(Succeed())

	opts := operator.CacheOptions(ns)
	opts.Scheme = scheme
	c, err := cache.New(restCfg, opts)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(token.SetupIndex(ctx, c)).To(Succeed())
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { _ = c.Start(cctx) }()
	g.Expect(c.WaitForCacheSync(cctx)).To(BeTrue())

	g.Eventually(func(g Gomega) {
		var got corev1.Secret
		g.Expect(c.Get(ctx, client.ObjectKeyFromObject(foreign), &got)).To(Succeed())
		g.Expect(got.Labels).To(HaveKeyWithValue(token.LabelManagedBy, token.LabelManagedByValue))
		// Keys, not values, in failure messages: the values are 900 KiB.
		g.Expect(slices.Sorted(maps.Keys(got.Data))).To(BeEmpty(), "a foreign Secret's data is not cached")
		g.Expect(slices.Sorted(maps.Keys(got.Annotations))).To(BeEmpty(), "nor its annotations")
	}).Should(Succeed())

	// The index finds the token in the monitor's Secret only.
	var listed corev1.SecretList
	g.Expect(c.List(ctx, &listed, client.InNamespace(ns), client.MatchingFields{token.DigestField: token.Digest(tok)})).To(Succeed())
	var names []string
	for _, s := range listed.Items {
		names = append(names, s.Name)
	}
	g.Expect(names).To(ConsistOf(own.Name))

	// The monitor's own Secret keeps token, url, interval and pushmon's
	// annotations; a key pushmon does not write is held without its value,
	// and the reconciler still removes it from the Secret.
	g.Eventually(func(g Gomega) {
		var live, cached corev1.Secret
		g.Expect(k8sClient.Get(ctx, own, &live)).To(Succeed())
		g.Expect(c.Get(ctx, own, &cached)).To(Succeed())
		g.Expect(slices.Sorted(maps.Keys(live.Data))).To(Equal([]string{token.SecretKeyInterval, token.SecretKeyToken, token.SecretKeyURL}),
			"the reconciler removes keys it does not write, as before")
		g.Expect(cached.Data).To(Equal(live.Data))
		g.Expect(cached.Annotations).To(HaveKey(token.AnnotationTokenIssued))
		g.Expect(metav1.IsControlledBy(&cached, getMonitor(g, m))).To(BeTrue())
	}).Should(Succeed())
	g.Expect(c.Get(ctx, own, &s)).To(Succeed())
	g.Expect(s.ManagedFields).To(BeEmpty())

	// The running manager's cache has seen the copy by now too (or soon):
	// the monitor's pushes keep working throughout.
	g.Consistently(func() int {
		code, _ := push(t, http.MethodPost, tok, "")
		return code
	}, 2*time.Second, 100*time.Millisecond).Should(Equal(http.StatusOK))
}
