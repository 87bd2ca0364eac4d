package testutil

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
	"github.com/pushmon/pushmon/internal/token"
)

var nsCounter atomic.Int64

// NewNamespace creates a namespace of the test's own.
func (s *EnvSuite) NewNamespace(t *testing.T) string {
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
	if err := s.Client.Create(context.Background(), ns); err != nil {
		t.Fatalf("creating namespace: %v", err)
	}
	return name
}

// Monitor is a PushMonitor with spec.
func Monitor(ns, name string, spec monitoringv1alpha1.PushMonitorSpec) *monitoringv1alpha1.PushMonitor {
	return &monitoringv1alpha1.PushMonitor{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: spec}
}

// Dur is d as the API holds durations.
func Dur(d time.Duration) *metav1.Duration { return &metav1.Duration{Duration: d} }

// CreateMonitor creates m and waits until its token is issued; it returns the
// token.
func (s *EnvSuite) CreateMonitor(t *testing.T, m *monitoringv1alpha1.PushMonitor) string {
	t.Helper()
	g := gomega.NewWithT(t)
	g.Expect(s.Client.Create(context.Background(), m)).To(gomega.Succeed())
	g.Eventually(func(g gomega.Gomega) {
		got := s.GetMonitor(g, m)
		g.Expect(meta.IsStatusConditionTrue(got.Status.Conditions, monitoringv1alpha1.ReadyCondition)).To(gomega.BeTrue())
	}).Should(gomega.Succeed())
	tok := s.TokenOf(t, m)
	// Ready is read from the API; the push endpoint answers from the
	// manager's cache, which may lag behind by a moment.
	g.Eventually(func(g gomega.Gomega) {
		found, err := (&token.Index{Reader: s.Cache()}).Lookup(context.Background(), tok)
		g.Expect(err).NotTo(gomega.HaveOccurred())
		g.Expect(found.UID).To(gomega.Equal(s.GetMonitor(g, m).UID))
	}).Should(gomega.Succeed(), "the push endpoint knows the token")
	return tok
}

// GetMonitor reads m from the API server.
func (s *EnvSuite) GetMonitor(g gomega.Gomega, m *monitoringv1alpha1.PushMonitor) *monitoringv1alpha1.PushMonitor {
	var got monitoringv1alpha1.PushMonitor
	g.Expect(s.Client.Get(context.Background(), client.ObjectKeyFromObject(m), &got)).To(gomega.Succeed())
	return &got
}

// TokenOf is m's token, read from its Secret.
func (s *EnvSuite) TokenOf(t *testing.T, m *monitoringv1alpha1.PushMonitor) string {
	t.Helper()
	var sec corev1.Secret
	key := client.ObjectKey{Namespace: m.Namespace, Name: m.DesiredSecretName()}
	gomega.NewWithT(t).Expect(s.Client.Get(context.Background(), key, &sec)).To(gomega.Succeed())
	return string(sec.Data[token.SecretKeyToken])
}

// PushURL is the push endpoint's URL of tok with query.
func (s *EnvSuite) PushURL(tok, query string) string {
	u := "http://" + s.PushAddr + token.PushPathPrefix + tok
	if query != "" {
		u += "?" + query
	}
	return u
}

// Push sends one heartbeat without a body.
func (s *EnvSuite) Push(t *testing.T, method, tok, query string) (int, string) {
	t.Helper()
	return s.DoPush(t, method, tok, query, "")
}

// MustPush sends one heartbeat and fails the test unless it is answered 200.
func (s *EnvSuite) MustPush(t *testing.T, tok, query string) {
	t.Helper()
	code, body := s.Push(t, http.MethodPost, tok, query)
	if code != http.StatusOK {
		t.Fatalf("push answered %d %s", code, body)
	}
}

// ExpectState waits until the monitor shows state and Healthy reason.
func (s *EnvSuite) ExpectState(t *testing.T, m *monitoringv1alpha1.PushMonitor, state monitoringv1alpha1.MonitorState, reason string, timeout time.Duration) *monitoringv1alpha1.PushMonitor {
	t.Helper()
	var got *monitoringv1alpha1.PushMonitor
	gomega.NewWithT(t).Eventually(func(g gomega.Gomega) {
		got = s.GetMonitor(g, m)
		g.Expect(got.Status.State).To(gomega.Equal(state))
		c := meta.FindStatusCondition(got.Status.Conditions, monitoringv1alpha1.HealthyCondition)
		g.Expect(c).NotTo(gomega.BeNil())
		g.Expect(c.Reason).To(gomega.Equal(reason))
	}).WithTimeout(timeout).WithPolling(10 * time.Millisecond).Should(gomega.Succeed())
	return got
}

// Events lists the events.k8s.io Events about m with reason.
func (s *EnvSuite) Events(g gomega.Gomega, m *monitoringv1alpha1.PushMonitor, reason string) []eventsv1.Event {
	var list eventsv1.EventList
	g.Expect(s.Client.List(context.Background(), &list, client.InNamespace(m.Namespace))).To(gomega.Succeed())
	var out []eventsv1.Event
	for _, e := range list.Items {
		if e.Regarding.Kind == "PushMonitor" && e.Regarding.Name == m.Name && e.Reason == reason {
			out = append(out, e)
		}
	}
	return out
}

// Occurrences counts events, including repeats the recorder folded into an
// event's series.
func Occurrences(evs []eventsv1.Event) int {
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

// EventsHold is how long ExpectEvents watches a count that reached n: the
// recorder writes events asynchronously, and a second occurrence of an
// event (a duplicate) is written at once as a series of 2, so a short hold
// catches one. Short, so that the suite stays fast.
const EventsHold = time.Second

// ExpectEvents waits until n occurrences of reason exist about m, then
// checks that the count stays exactly n for eventsHold (reaching n is not
// "exactly n": a duplicate may be on its way).
func (s *EnvSuite) ExpectEvents(t *testing.T, m *monitoringv1alpha1.PushMonitor, reason string, n int) []eventsv1.Event {
	t.Helper()
	var got []eventsv1.Event
	g := gomega.NewWithT(t)
	g.Eventually(func(g gomega.Gomega) {
		got = s.Events(g, m, reason)
		g.Expect(Occurrences(got)).To(gomega.Equal(n))
	}).Should(gomega.Succeed(), "%d %s event(s)", n, reason)
	g.Consistently(func(g gomega.Gomega) {
		got = s.Events(g, m, reason)
		g.Expect(Occurrences(got)).To(gomega.Equal(n))
	}).WithTimeout(EventsHold).WithPolling(50*time.Millisecond).Should(gomega.Succeed(), "exactly %d %s event(s), no more", n, reason)
	return got
}

// RunKubectl runs kubectl from bin/k8s against the test API server.
func (s *EnvSuite) RunKubectl(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(s.Kubectl, append([]string{"--kubeconfig", s.Kubecfg}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// WaitUntil lets the clock pass a point in time (for tests of what happens
// when nothing happens). It is not an assertion.
func WaitUntil(at time.Time) {
	time.Sleep(time.Until(at))
}

// DoPush sends one heartbeat with body and returns the answer.
func (s *EnvSuite) DoPush(t *testing.T, method, tok, query, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, s.PushURL(tok, query), strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("push: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading push answer: %v", err)
	}
	return resp.StatusCode, string(b)
}

// TokenAlphabet is the shape of an issued token: 256 bits, URL-safe base64.
var TokenAlphabet = regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`)

// JSONString is v as JSON.
func JSONString(v any) (string, error) {
	b, err := json.Marshal(v)
	return string(b), err
}

// AssertTokenNowhere checks that the token is not in the monitor's status,
// nor in any event, nor in the manager's log.
func (s *EnvSuite) AssertTokenNowhere(t *testing.T, tok string, m *monitoringv1alpha1.PushMonitor) {
	t.Helper()
	g := gomega.NewWithT(t)
	g.Expect(tok).NotTo(gomega.BeEmpty())
	st, err := JSONString(m.Status)
	g.Expect(err).NotTo(gomega.HaveOccurred())
	g.Expect(st).NotTo(gomega.ContainSubstring(tok))
	for _, reason := range []string{monitoringv1alpha1.TokenIssuedReason, monitoringv1alpha1.HeartbeatMissedReason, monitoringv1alpha1.DownReportedReason, monitoringv1alpha1.RecoveredReason} {
		for _, e := range s.Events(g, m, reason) {
			g.Expect(e.Note).NotTo(gomega.ContainSubstring(tok))
		}
	}
	g.Expect(s.Logs.String()).NotTo(gomega.ContainSubstring(tok), "token in the manager log")
	g.Expect(s.Logs.String()).NotTo(gomega.ContainSubstring(token.Digest(tok)), "token digest in the manager log")
}
