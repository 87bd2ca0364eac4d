package controllers

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
)

// A scheduled run that fell due while no leader watched (the operator
// stopped, a leader change) is still checked: ScheduleMissed one grace after
// the new leader began watching at the latest, instead of the anchor jumping
// to the watch start and past the run. The same for a monitor that follows a
// CronJob (evaluated with the CronJob's schedule).
func TestEvaluateScheduleAcrossRestart(t *testing.T) {
	at := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	everyMinute := func(cronJob bool, heard, created string) *monitoringv1alpha1.PushMonitor {
		m := &monitoringv1alpha1.PushMonitor{Spec: monitoringv1alpha1.PushMonitorSpec{
			Schedule: "* * * * *", GracePeriod: &metav1.Duration{Duration: 30 * time.Second}}}
		if cronJob {
			m.Spec.CronJobRef = &monitoringv1alpha1.CronJobReference{Name: "every-minute"}
		}
		if created != "" {
			m.CreationTimestamp = metav1.NewTime(at(created))
		}
		m.Status.State = monitoringv1alpha1.StatePending
		if heard != "" {
			t := metav1.NewMicroTime(at(heard))
			m.Status.LastHeartbeatTime, m.Status.LastReportedStatus, m.Status.State = &t, monitoringv1alpha1.ReportedUp, monitoringv1alpha1.StateUp
			m.Status.Conditions = []metav1.Condition{{Type: monitoringv1alpha1.HealthyCondition, Status: metav1.ConditionTrue,
				Reason: monitoringv1alpha1.HeartbeatReceivedReason}}
		}
		return m
	}
	// The operator stopped at 06:28:55 and started again at 06:29:05.
	restart := at("2026-06-10T06:29:05Z")
	for _, c := range []struct {
		name     string
		m        *monitoringv1alpha1.PushMonitor
		now      string
		state    monitoringv1alpha1.MonitorState
		reason   string
		deadline string
		message  string
	}{
		{name: "before one grace after the restart: still Up", m: everyMinute(false, "2026-06-10T06:28:02Z", ""),
			now: "2026-06-10T06:29:34Z", state: monitoringv1alpha1.StateUp, reason: monitoringv1alpha1.HeartbeatReceivedReason,
			deadline: "2026-06-10T06:29:35Z"},
		{name: "the 06:29 run fell due during the restart: ScheduleMissed one grace after it", m: everyMinute(false, "2026-06-10T06:28:02Z", ""),
			now: "2026-06-10T06:29:35Z", state: monitoringv1alpha1.StateDown, reason: monitoringv1alpha1.ScheduleMissedReason,
			deadline: "2026-06-10T06:29:35Z",
			message:  `no run reported for 2026-06-10 06:29 UTC (schedule "* * * * *" in UTC, grace 30s)`},
		{name: "following a CronJob: the same", m: everyMinute(true, "2026-06-10T06:28:02Z", ""),
			now: "2026-06-10T06:29:50Z", state: monitoringv1alpha1.StateDown, reason: monitoringv1alpha1.ScheduleMissedReason,
			deadline: "2026-06-10T06:29:35Z"},
		{name: "the 06:29 run reported after the restart: Up until 06:30 + grace", m: everyMinute(false, "2026-06-10T06:29:10Z", ""),
			now: "2026-06-10T06:29:50Z", state: monitoringv1alpha1.StateUp, reason: monitoringv1alpha1.HeartbeatReceivedReason,
			deadline: "2026-06-10T06:30:30Z"},
		{name: "never pinged, created before the restart: its first run is checked", m: everyMinute(false, "", "2026-06-10T06:28:50Z"),
			now: "2026-06-10T06:29:35Z", state: monitoringv1alpha1.StateDown, reason: monitoringv1alpha1.ScheduleMissedReason,
			deadline: "2026-06-10T06:29:35Z"},
	} {
		t.Run(c.name, func(t *testing.T) {
			g := NewWithT(t)
			h := evaluate(c.m, at(c.now), restart)
			g.Expect(h.State).To(Equal(c.state))
			g.Expect(h.Reason).To(Equal(c.reason))
			g.Expect(h.Deadline).NotTo(BeNil())
			g.Expect(h.Deadline.UTC()).To(Equal(at(c.deadline)))
			if c.message != "" {
				g.Expect(h.Message).To(Equal(c.message))
			}
		})
	}

	// A daily run that fell due long before the restart: checked one grace
	// after it, and the message names the run that was missed.
	g := NewWithT(t)
	m := everyMinute(false, "2026-06-09T02:00:10Z", "")
	m.Spec.Schedule, m.Spec.GracePeriod = "0 2 * * *", &metav1.Duration{Duration: 10 * time.Minute}
	h := evaluate(m, at("2026-06-10T03:10:00Z"), at("2026-06-10T03:00:00Z"))
	g.Expect(h.State).To(Equal(monitoringv1alpha1.StateDown))
	g.Expect(h.Message).To(Equal(`no run reported for 2026-06-10 02:00 UTC (schedule "0 2 * * *" in UTC, grace 10m)`))
	g.Expect(h.Due).NotTo(BeNil())
	g.Expect(h.Due.UTC()).To(Equal(at("2026-06-10T02:00:00Z")))
}

// A failure no transition has covered yet (a success superseded it before
// it was evaluated, or it was stored after the success) is shown: Down
// first, Recovered next.
func TestEvaluateUnshownFailure(t *testing.T) {
	g := NewWithT(t)
	t0 := time.Date(2026, 6, 10, 6, 0, 0, 0, time.UTC)
	mt := func(d time.Duration) *metav1.MicroTime { v := metav1.NewMicroTime(t0.Add(d)); return &v }
	m := &monitoringv1alpha1.PushMonitor{Spec: monitoringv1alpha1.PushMonitorSpec{Timeout: &metav1.Duration{Duration: time.Hour}}}
	m.Status.State = monitoringv1alpha1.StateUp
	m.Status.Conditions = []metav1.Condition{{Type: monitoringv1alpha1.HealthyCondition, Status: metav1.ConditionTrue, Reason: monitoringv1alpha1.HeartbeatReceivedReason}}
	m.Status.LastFailure = &monitoringv1alpha1.FailureReport{Time: *mt(time.Second), Status: monitoringv1alpha1.ReportedDown, Message: "disk-full"}
	m.Status.LastHeartbeatTime, m.Status.LastReportedStatus, m.Status.LastMessage = mt(2*time.Second), monitoringv1alpha1.ReportedUp, "fixed"

	h := evaluate(m, t0.Add(3*time.Second), t0)
	g.Expect(h.State).To(Equal(monitoringv1alpha1.StateDown))
	g.Expect(h.Reason).To(Equal(monitoringv1alpha1.DownReportedReason))
	g.Expect(h.Message).To(Equal("the client reported status=down: disk-full (reported at 2026-06-10T06:00:01Z, a success since)"))

	// Stored as Down, which marks the failure shown: the success recovers it.
	orig := m.DeepCopy()
	(&PushMonitorReconciler{}).applyHealth(m, h)
	markFailureShown(orig, m, h)
	g.Expect(m.Status.LastFailure.Shown).To(BeTrue())
	m.Status.Conditions[0].Status, m.Status.Conditions[0].Reason = metav1.ConditionFalse, h.Reason
	h = evaluate(m, t0.Add(3*time.Second), t0)
	g.Expect(h.State).To(Equal(monitoringv1alpha1.StateUp))
	g.Expect(h.Reason).To(Equal(monitoringv1alpha1.RecoveredReason))

	// Shown failures, failures while suspended and, with a failure
	// threshold above 1, single failures turn nothing Down.
	m.Status.State = monitoringv1alpha1.StateUp
	g.Expect(evaluate(m, t0.Add(5*time.Second), t0).State).To(Equal(monitoringv1alpha1.StateUp))
	m.Status.LastFailure.Shown = false
	m.Status.State = monitoringv1alpha1.StateSuspended
	g.Expect(evaluate(m, t0.Add(5*time.Second), t0).State).NotTo(Equal(monitoringv1alpha1.StateDown))
	m.Status.State = monitoringv1alpha1.StateUp
	m.Spec.FailureThreshold = 2
	g.Expect(evaluate(m, t0.Add(5*time.Second), t0).State).To(Equal(monitoringv1alpha1.StateUp))
}
