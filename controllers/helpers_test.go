package controllers_test

import (
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
	"github.com/pushmon/pushmon/internal/token"
)

var nsCounter atomic.Int64

// newNamespace creates a namespace of the test's own.
func newNamespace(t *testing.T) string {
	t.Helper()
	name := fmt.Sprintf("t%d-%s", nsCounter.Add(1), strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-")))
	if len(name) > 63 {
		name = strings.TrimRight(name[:63], "-")
	}
	name = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' {
			return r
		}
		return '-'
	}, name)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := k8sClient.Create(context.Background(), ns); err != nil {
		t.Fatalf("creating namespace: %v", err)
	}
	return name
}

func monitor(ns, name string, spec monitoringv1alpha1.PushMonitorSpec) *monitoringv1alpha1.PushMonitor {
	return &monitoringv1alpha1.PushMonitor{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: spec}
}

func dur(d time.Duration) *metav1.Duration { return &metav1.Duration{Duration: d} }

// createMonitor creates m and waits until its token is issued; it returns the
// token.
func createMonitor(t *testing.T, m *monitoringv1alpha1.PushMonitor) string {
	t.Helper()
	g := NewWithT(t)
	g.Expect(k8sClient.Create(context.Background(), m)).To(Succeed())
	g.Eventually(func(g Gomega) {
		got := getMonitor(g, m)
		g.Expect(meta.IsStatusConditionTrue(got.Status.Conditions, monitoringv1alpha1.ReadyCondition)).To(BeTrue())
	}).Should(Succeed())
	tok := tokenOf(t, m)
	// Ready is read from the API; the push endpoint answers from the
	// manager's cache, which may lag behind by a moment.
	g.Eventually(func(g Gomega) {
		mgrMu.Lock()
		cache := mgrCache
		mgrMu.Unlock()
		found, err := (&token.Index{Reader: cache}).Lookup(context.Background(), tok)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(found.UID).To(Equal(getMonitor(g, m).UID))
	}).Should(Succeed(), "the push endpoint knows the token")
	return tok
}

func getMonitor(g Gomega, m *monitoringv1alpha1.PushMonitor) *monitoringv1alpha1.PushMonitor {
	var got monitoringv1alpha1.PushMonitor
	g.Expect(k8sClient.Get(context.Background(), client.ObjectKeyFromObject(m), &got)).To(Succeed())
	return &got
}

func tokenOf(t *testing.T, m *monitoringv1alpha1.PushMonitor) string {
	t.Helper()
	var s corev1.Secret
	key := client.ObjectKey{Namespace: m.Namespace, Name: m.DesiredSecretName()}
	NewWithT(t).Expect(k8sClient.Get(context.Background(), key, &s)).To(Succeed())
	return string(s.Data[token.SecretKeyToken])
}

func pushURL(tok, query string) string {
	u := "http://" + pushAddr + token.PushPathPrefix + tok
	if query != "" {
		u += "?" + query
	}
	return u
}

// push sends one heartbeat without a body.
func push(t *testing.T, method, tok, query string) (int, string) {
	t.Helper()
	return doPush(t, method, tok, query, "")
}

func mustPush(t *testing.T, tok, query string) {
	t.Helper()
	code, body := push(t, http.MethodPost, tok, query)
	if code != http.StatusOK {
		t.Fatalf("push answered %d %s", code, body)
	}
}

// expectState waits until the monitor shows state and Healthy reason.
func expectState(t *testing.T, m *monitoringv1alpha1.PushMonitor, state monitoringv1alpha1.MonitorState, reason string, timeout time.Duration) *monitoringv1alpha1.PushMonitor {
	t.Helper()
	var got *monitoringv1alpha1.PushMonitor
	NewWithT(t).Eventually(func(g Gomega) {
		got = getMonitor(g, m)
		g.Expect(got.Status.State).To(Equal(state))
		c := meta.FindStatusCondition(got.Status.Conditions, monitoringv1alpha1.HealthyCondition)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Reason).To(Equal(reason))
	}).WithTimeout(timeout).WithPolling(10 * time.Millisecond).Should(Succeed())
	return got
}

// events lists the events.k8s.io Events about m with reason.
func events(g Gomega, m *monitoringv1alpha1.PushMonitor, reason string) []eventsv1.Event {
	var list eventsv1.EventList
	g.Expect(k8sClient.List(context.Background(), &list, client.InNamespace(m.Namespace))).To(Succeed())
	var out []eventsv1.Event
	for _, e := range list.Items {
		if e.Regarding.Kind == "PushMonitor" && e.Regarding.Name == m.Name && e.Reason == reason {
			out = append(out, e)
		}
	}
	return out
}

// occurrences counts events, including repeats the recorder folded into an
// event's series.
func occurrences(evs []eventsv1.Event) int {
	n := 0
	for _, e := range evs {
		if e.Series != nil {
			n += int(e.Series.Count)
		} else {
			n++
		}
	}
	return n
}

// eventsHold is how long expectEvents watches a count that reached n: the
// recorder writes events asynchronously, and a second occurrence of an
// event (a duplicate) is written at once as a series of 2, so a short hold
// catches one. Short, so that the suite stays fast.
const eventsHold = time.Second

// expectEvents waits until n occurrences of reason exist about m, then
// checks that the count stays exactly n for eventsHold (reaching n is not
// "exactly n": a duplicate may be on its way).
func expectEvents(t *testing.T, m *monitoringv1alpha1.PushMonitor, reason string, n int) []eventsv1.Event {
	t.Helper()
	var got []eventsv1.Event
	g := NewWithT(t)
	g.Eventually(func(g Gomega) {
		got = events(g, m, reason)
		g.Expect(occurrences(got)).To(Equal(n))
	}).Should(Succeed(), "%d %s event(s)", n, reason)
	g.Consistently(func(g Gomega) {
		got = events(g, m, reason)
		g.Expect(occurrences(got)).To(Equal(n))
	}).WithTimeout(eventsHold).WithPolling(50*time.Millisecond).Should(Succeed(), "exactly %d %s event(s), no more", n, reason)
	return got
}

// runKubectl runs kubectl from bin/k8s against the test API server.
func runKubectl(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(kubectl, append([]string{"--kubeconfig", kubecfg}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// waitUntil lets the clock pass a point in time (for tests of what happens
// when nothing happens). It is not an assertion.
func waitUntil(at time.Time) {
	time.Sleep(time.Until(at))
}
