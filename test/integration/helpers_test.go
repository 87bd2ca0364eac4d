package integration

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	eventsv1 "k8s.io/api/events/v1"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
	"github.com/pushmon/pushmon/internal/testutil"
)

// The helpers the tests call, on the suite's control plane and manager
// (internal/testutil, shared with controllers/).

var (
	monitor       = testutil.Monitor
	dur           = testutil.Dur
	occurrences   = testutil.Occurrences
	waitUntil     = testutil.WaitUntil
	tokenAlphabet = testutil.TokenAlphabet
)

func newNamespace(t *testing.T) string { return suite.NewNamespace(t) }

func createMonitor(t *testing.T, m *monitoringv1alpha1.PushMonitor) string {
	t.Helper()
	return suite.CreateMonitor(t, m)
}

func getMonitor(g Gomega, m *monitoringv1alpha1.PushMonitor) *monitoringv1alpha1.PushMonitor {
	return suite.GetMonitor(g, m)
}

func pushURL(tok, query string) string { return suite.PushURL(tok, query) }

func push(t *testing.T, method, tok, query string) (int, string) {
	t.Helper()
	return suite.Push(t, method, tok, query)
}

func doPush(t *testing.T, method, tok, query, body string) (int, string) {
	t.Helper()
	return suite.DoPush(t, method, tok, query, body)
}

func mustPush(t *testing.T, tok, query string) {
	t.Helper()
	suite.MustPush(t, tok, query)
}

func expectState(t *testing.T, m *monitoringv1alpha1.PushMonitor, state monitoringv1alpha1.MonitorState, reason string, timeout time.Duration) *monitoringv1alpha1.PushMonitor {
	t.Helper()
	return suite.ExpectState(t, m, state, reason, timeout)
}

func events(g Gomega, m *monitoringv1alpha1.PushMonitor, reason string) []eventsv1.Event {
	return suite.Events(g, m, reason)
}

func expectEvents(t *testing.T, m *monitoringv1alpha1.PushMonitor, reason string, n int) []eventsv1.Event {
	t.Helper()
	return suite.ExpectEvents(t, m, reason, n)
}

func runKubectl(t *testing.T, args ...string) (string, error) {
	t.Helper()
	return suite.RunKubectl(t, args...)
}

func assertTokenNowhere(t *testing.T, tok string, m *monitoringv1alpha1.PushMonitor) {
	t.Helper()
	suite.AssertTokenNowhere(t, tok, m)
}
