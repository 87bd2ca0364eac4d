package controllers_test

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	eventsv1 "k8s.io/api/events/v1"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
	"github.com/pushmon/pushmon/internal/testutil"
)

// The helpers the tests call, on the suite's control plane and manager
// (internal/testutil, shared with test/integration).

var (
	monitor       = testutil.Monitor
	dur           = testutil.Dur
	occurrences   = testutil.Occurrences
	tokenAlphabet = testutil.TokenAlphabet
)

// newNamespace starts the control plane if no test has yet (envSuite).
func newNamespace(t *testing.T) string { return envSuite(t).NewNamespace(t) }

func createMonitor(t *testing.T, m *monitoringv1alpha1.PushMonitor) string {
	t.Helper()
	return suite.CreateMonitor(t, m)
}

func getMonitor(g Gomega, m *monitoringv1alpha1.PushMonitor) *monitoringv1alpha1.PushMonitor {
	return suite.GetMonitor(g, m)
}

func tokenOf(t *testing.T, m *monitoringv1alpha1.PushMonitor) string {
	t.Helper()
	return suite.TokenOf(t, m)
}

func push(t *testing.T, method, tok, query string) (int, string) {
	t.Helper()
	return suite.Push(t, method, tok, query)
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

func assertTokenNowhere(t *testing.T, tok string, m *monitoringv1alpha1.PushMonitor) {
	t.Helper()
	suite.AssertTokenNowhere(t, tok, m)
}
