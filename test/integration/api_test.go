package integration

import (
	"context"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
)

// TestValidationRejectsBadSpecs applies invalid monitors and checks that the
// API server refuses each with a message that says what is wrong, and that
// nothing is stored.
func TestValidationRejectsBadSpecs(t *testing.T) {
	ns := newNamespace(t)
	cases := []struct {
		name    string
		objName string
		spec    map[string]any
		want    string
	}{
		{"timeout below 1s", "", map[string]any{"timeout": "500ms"}, "timeout must be at least 1s"},
		{"timeout zero", "", map[string]any{"timeout": "0s"}, "timeout must be at least 1s"},
		{"timeout too long", "", map[string]any{"timeout": "9000h"}, "timeout must be at most 8760h"},
		{"timeout not a duration", "", map[string]any{"timeout": "5 minutes"}, "timeout must be a duration such as 90s, 5m or 1h30m"},
		{"timeout negative", "", map[string]any{"timeout": "-5m"}, "timeout must be a duration"},
		{"timeout with days", "", map[string]any{"timeout": "1d"}, "timeout must be a duration"},
		{"interval longer than timeout", "", map[string]any{"timeout": "1m", "interval": "2m"}, "interval must not be longer than timeout"},
		{"interval longer than default timeout", "", map[string]any{"interval": "61s"}, "interval must not be longer than timeout"},
		{"interval zero", "", map[string]any{"timeout": "1m", "interval": "0s"}, "interval must be greater than 0s"},
		{"grace negative", "", map[string]any{"gracePeriod": "-1s"}, "gracePeriod must be a duration"},
		{"interval not a duration", "", map[string]any{"interval": "often"}, "interval must be a duration"},
		{"grace too long", "", map[string]any{"gracePeriod": "9000h"}, "gracePeriod must be at most 8760h"},
		{"secretName not a DNS name", "", map[string]any{"secretName": "Bad_Name"}, "spec.secretName"},
		{"secretName too long", "", map[string]any{"secretName": strings.Repeat("a", 254)}, "spec.secretName"},
		{"name longer than a label value", strings.Repeat("m", 64), map[string]any{}, "metadata.name must be at most 63 characters"},
		{"unknown field type", "", map[string]any{"suspend": "yes"}, "spec.suspend"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			name := tc.objName
			if name == "" {
				name = "bad-" + string(rune('a'+i))
			}
			u := &unstructured.Unstructured{Object: map[string]any{
				"apiVersion": monitoringv1alpha1.GroupVersion.String(),
				"kind":       "PushMonitor",
				"metadata":   map[string]any{"name": name, "namespace": ns},
				"spec":       tc.spec,
			}}
			err := k8sClient.Create(context.Background(), u)
			g.Expect(err).To(HaveOccurred())
			g.Expect(err.Error()).To(ContainSubstring(tc.want))
			t.Logf("refused: %v", err)
		})
	}
	var list monitoringv1alpha1.PushMonitorList
	NewWithT(t).Expect(k8sClient.List(context.Background(), &list)).To(Succeed())
	for _, m := range list.Items {
		NewWithT(t).Expect(m.Namespace).NotTo(Equal(ns), "a refused monitor was stored")
	}
}

// TestUpdateToBadSpecKeepsStoredMonitor: a bad update is refused and the
// stored monitor stays as it was.
func TestUpdateToBadSpecKeepsStoredMonitor(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	m := monitor(ns, "keep", monitoringv1alpha1.PushMonitorSpec{Timeout: dur(time.Minute)})
	createMonitor(t, m)
	bad := getMonitor(g, m)
	bad.Spec.Interval = dur(2 * time.Minute)
	err := k8sClient.Update(context.Background(), bad)
	g.Expect(err).To(MatchError(ContainSubstring("interval must not be longer than timeout")))
	got := getMonitor(g, m)
	g.Expect(got.Spec.Interval).To(BeNil())
	g.Expect(got.Spec.Timeout.Duration).To(Equal(time.Minute))
}

// TestDefaults: the API server fills in timeout; Go fills in interval and
// grace from it as DESIGN.md says.
func TestDefaults(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	m := monitor(ns, "defaults", monitoringv1alpha1.PushMonitorSpec{})
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": monitoringv1alpha1.GroupVersion.String(), "kind": "PushMonitor",
		"metadata": map[string]any{"name": m.Name, "namespace": ns}, "spec": map[string]any{},
	}}
	g.Expect(k8sClient.Create(context.Background(), u)).To(Succeed())
	timeout, _, _ := unstructured.NestedString(u.Object, "spec", "timeout")
	g.Expect(timeout).To(Equal("60s"), "defaulted by the API server")

	got := getMonitor(g, m)
	g.Expect(got.TimeoutDuration()).To(Equal(60 * time.Second))
	g.Expect(got.IntervalDuration()).To(Equal(60*time.Second), "interval defaults to timeout")
	g.Expect(got.GracePeriodDuration()).To(Equal(6*time.Second), "grace defaults to timeout/10")

	short := monitor(ns, "short", monitoringv1alpha1.PushMonitorSpec{Timeout: dur(5 * time.Second)})
	g.Expect(short.GracePeriodDuration()).To(Equal(time.Second), "grace is at least 1s")
}

// TestPrinterColumns reads the columns as the API server serves them to
// kubectl.
func TestPrinterColumns(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	m := monitor(ns, "columns", monitoringv1alpha1.PushMonitorSpec{Timeout: dur(5 * time.Minute)})
	tok := createMonitor(t, m)
	mustPush(t, tok, "msg=all-good")
	expectState(t, m, monitoringv1alpha1.StateUp, monitoringv1alpha1.HeartbeatReceivedReason, 10*time.Second)

	out, err := runKubectl(t, "get", "pm", "-n", ns)
	g.Expect(err).NotTo(HaveOccurred(), out)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	g.Expect(lines).To(HaveLen(2))
	g.Expect(strings.Fields(lines[0])).To(Equal([]string{"NAME", "STATE", "LAST", "HEARTBEAT", "TIMEOUT", "AGE"}))
	row := strings.Fields(lines[1])
	g.Expect(row[0]).To(Equal("columns"))
	g.Expect(row[1]).To(Equal("Up"))
	g.Expect(row[3]).To(Equal("5m0s"))

	out, err = runKubectl(t, "get", "pushmonitors", "-n", ns, "-o", "wide")
	g.Expect(err).NotTo(HaveOccurred(), out)
	lines = strings.Split(strings.TrimSpace(out), "\n")
	g.Expect(lines[0]).To(ContainSubstring("MESSAGE"))
	g.Expect(lines[0]).To(ContainSubstring("REASON"))
	g.Expect(lines[1]).To(ContainSubstring("all-good"))
	g.Expect(lines[1]).To(ContainSubstring("HeartbeatReceived"))
}
