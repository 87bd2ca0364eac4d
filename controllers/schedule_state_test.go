package controllers

import (
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
)

// Schedule mode: a run is expected after each scheduled time, by that time
// + grace; a report counts for the first scheduled time after it.
func TestEvaluateSchedule(t *testing.T) {
	berlin := "Europe/Berlin"
	at := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	nightly := func(mods ...func(*monitoringv1alpha1.PushMonitor)) *monitoringv1alpha1.PushMonitor {
		m := &monitoringv1alpha1.PushMonitor{Spec: monitoringv1alpha1.PushMonitorSpec{
			Schedule: "30 2 * * *", TimeZone: &berlin, GracePeriod: &metav1.Duration{Duration: 15 * time.Minute}}}
		for _, f := range mods {
			f(m)
		}
		return m
	}
	heard := func(s string) func(*monitoringv1alpha1.PushMonitor) {
		return func(m *monitoringv1alpha1.PushMonitor) {
			t := metav1.NewMicroTime(at(s))
			m.Status.LastHeartbeatTime, m.Status.LastReportedStatus, m.Status.State = &t, monitoringv1alpha1.ReportedUp, monitoringv1alpha1.StateUp
		}
	}
	// 2026-06-10 02:30 in Berlin (CEST) is 00:30 UTC.
	ws := at("2026-06-09T12:00:00Z")
	for _, c := range []struct {
		name           string
		m              *monitoringv1alpha1.PushMonitor
		now            string
		state          monitoringv1alpha1.MonitorState
		reason         string
		next, deadline string
		message        string
	}{
		{name: "created in the afternoon: the next night's run is expected", m: nightly(), now: "2026-06-09T13:00:00Z",
			state: monitoringv1alpha1.StatePending, reason: monitoringv1alpha1.AwaitingFirstHeartbeatReason,
			next: "2026-06-10T00:30:00Z", deadline: "2026-06-10T00:45:00Z"},
		{name: "no run by the scheduled time + grace: ScheduleMissed", m: nightly(), now: "2026-06-10T00:45:00Z",
			state: monitoringv1alpha1.StateDown, reason: monitoringv1alpha1.ScheduleMissedReason,
			next: "2026-06-11T00:30:00Z", deadline: "2026-06-10T00:45:00Z",
			message: `no run reported for 2026-06-10 02:30 CEST (schedule "30 2 * * *" in Europe/Berlin, grace 15m)`},
		{name: "the run reported on time: the next night is expected", m: nightly(heard("2026-06-10T00:31:00Z")), now: "2026-06-10T01:00:00Z",
			state: monitoringv1alpha1.StateUp, reason: monitoringv1alpha1.HeartbeatReceivedReason,
			next: "2026-06-11T00:30:00Z", deadline: "2026-06-11T00:45:00Z"},
		{name: "a late run inside grace counts for its night", m: nightly(heard("2026-06-10T00:44:59Z")), now: "2026-06-10T00:50:00Z",
			state: monitoringv1alpha1.StateUp, reason: monitoringv1alpha1.HeartbeatReceivedReason,
			next: "2026-06-11T00:30:00Z", deadline: "2026-06-11T00:45:00Z"},
		{name: "a report before the scheduled time does not count for it", m: nightly(heard("2026-06-10T00:29:00Z")), now: "2026-06-10T00:45:00Z",
			state: monitoringv1alpha1.StateDown, reason: monitoringv1alpha1.ScheduleMissedReason,
			next: "2026-06-11T00:30:00Z", deadline: "2026-06-10T00:45:00Z"},
	} {
		t.Run(c.name, func(t *testing.T) {
			g := NewWithT(t)
			h := evaluate(c.m, at(c.now), ws)
			g.Expect(h.State).To(Equal(c.state))
			g.Expect(h.Reason).To(Equal(c.reason))
			g.Expect(h.NextRun).NotTo(BeNil())
			g.Expect(*h.NextRun).To(Equal(at(c.next)))
			g.Expect(h.Deadline).NotTo(BeNil())
			g.Expect(*h.Deadline).To(Equal(at(c.deadline)))
			if c.message != "" {
				g.Expect(h.Message).To(Equal(c.message))
			}
		})
	}
}

// Runs: failures and successes in a row against the thresholds, and a run
// open past maxRunDuration.
func TestEvaluateRuns(t *testing.T) {
	t0 := time.Date(2026, 6, 10, 2, 30, 0, 0, time.UTC)
	ws := t0.Add(-time.Hour)
	mt := func(d time.Duration) *metav1.MicroTime { v := metav1.NewMicroTime(t0.Add(d)); return &v }
	code := func(c int32) *int32 { return &c }
	job := func(f func(*monitoringv1alpha1.PushMonitor)) *monitoringv1alpha1.PushMonitor {
		m := &monitoringv1alpha1.PushMonitor{Spec: monitoringv1alpha1.PushMonitorSpec{
			Timeout: &metav1.Duration{Duration: time.Hour}, FailureThreshold: 2, RecoveryThreshold: 2,
			MaxRunDuration: &metav1.Duration{Duration: 10 * time.Minute}}}
		m.Status.State = monitoringv1alpha1.StateUp
		f(m)
		return m
	}
	downWith := func(reason string) func(*monitoringv1alpha1.PushMonitor) {
		return func(m *monitoringv1alpha1.PushMonitor) {
			m.Status.State = monitoringv1alpha1.StateDown
			m.Status.Conditions = []metav1.Condition{{Type: monitoringv1alpha1.HealthyCondition, Status: metav1.ConditionFalse,
				Reason: reason, Message: "the run failed with exit status 3 (2 failures in a row): disk full"}}
			m.Status.LastFailure = &monitoringv1alpha1.FailureReport{Time: *mt(-time.Minute),
				Status: monitoringv1alpha1.ReportedFailed, ExitCode: code(3), Message: "disk full"}
		}
	}
	for _, c := range []struct {
		name    string
		m       *monitoringv1alpha1.PushMonitor
		state   monitoringv1alpha1.MonitorState
		reason  string
		message string
	}{
		{"one failure of two needed: still Up", job(func(m *monitoringv1alpha1.PushMonitor) {
			m.Status.LastHeartbeatTime, m.Status.LastReportedStatus, m.Status.ConsecutiveFailures = mt(0), monitoringv1alpha1.ReportedFailed, 1
		}), monitoringv1alpha1.StateUp, monitoringv1alpha1.HeartbeatReceivedReason,
			"the last run failed (1 of 2 failures in a row before Down)"},
		{"the second failure: RunFailed with the exit status", job(func(m *monitoringv1alpha1.PushMonitor) {
			m.Status.LastHeartbeatTime, m.Status.LastReportedStatus, m.Status.ConsecutiveFailures = mt(0), monitoringv1alpha1.ReportedFailed, 2
			m.Status.LastExitCode, m.Status.LastMessage = code(3), "disk full"
		}), monitoringv1alpha1.StateDown, monitoringv1alpha1.RunFailedReason,
			"the run failed with exit status 3 (2 failures in a row): disk full"},
		{"status=down twice: DownReported", job(func(m *monitoringv1alpha1.PushMonitor) {
			m.Status.LastHeartbeatTime, m.Status.LastReportedStatus, m.Status.ConsecutiveFailures = mt(0), monitoringv1alpha1.ReportedDown, 2
		}), monitoringv1alpha1.StateDown, monitoringv1alpha1.DownReportedReason,
			"the client reported status=down (2 failures in a row)"},
		{"one success of two needed: still Down", job(func(m *monitoringv1alpha1.PushMonitor) {
			downWith(monitoringv1alpha1.RunFailedReason)(m)
			m.Status.LastHeartbeatTime, m.Status.LastReportedStatus, m.Status.ConsecutiveSuccesses = mt(time.Minute), monitoringv1alpha1.ReportedUp, 1
		}), monitoringv1alpha1.StateDown, monitoringv1alpha1.RunFailedReason,
			"the run failed with exit status 3: disk full (1 of 2 successes in a row to recover)"},
		{"recovering from a failure whose message has parentheses: the message whole", job(func(m *monitoringv1alpha1.PushMonitor) {
			downWith(monitoringv1alpha1.RunFailedReason)(m)
			m.Spec.FailureThreshold = 1
			m.Status.LastFailure.Message = "disk full (sda1)"
			m.Status.Conditions[0].Message = "the run failed with exit status 3: disk full (sda1)"
			m.Status.LastHeartbeatTime, m.Status.LastReportedStatus, m.Status.ConsecutiveSuccesses = mt(time.Minute), monitoringv1alpha1.ReportedUp, 1
		}), monitoringv1alpha1.StateDown, monitoringv1alpha1.RunFailedReason,
			"the run failed with exit status 3: disk full (sda1) (1 of 2 successes in a row to recover)"},
		{"the second success: Recovered", job(func(m *monitoringv1alpha1.PushMonitor) {
			downWith(monitoringv1alpha1.RunFailedReason)(m)
			m.Status.LastHeartbeatTime, m.Status.LastReportedStatus, m.Status.ConsecutiveSuccesses = mt(2*time.Minute), monitoringv1alpha1.ReportedUp, 2
		}), monitoringv1alpha1.StateUp, monitoringv1alpha1.RecoveredReason, "heartbeats arrive again"},
		{"a run open past maxRunDuration: RunTooLong", job(func(m *monitoringv1alpha1.PushMonitor) {
			m.Status.LastStartTime = mt(-11 * time.Minute)
			m.Status.OpenRuns = []monitoringv1alpha1.OpenRun{{RunID: "r1", StartTime: *mt(-11 * time.Minute)}}
		}), monitoringv1alpha1.StateDown, monitoringv1alpha1.RunTooLongReason,
			`run "r1" started 11m ago is still open (maxRunDuration 10m)`},
		{"a run open within maxRunDuration: Up", job(func(m *monitoringv1alpha1.PushMonitor) {
			m.Status.LastStartTime = mt(-9 * time.Minute)
			m.Status.OpenRuns = []monitoringv1alpha1.OpenRun{{StartTime: *mt(-9 * time.Minute)}}
		}), monitoringv1alpha1.StateUp, monitoringv1alpha1.HeartbeatReceivedReason, "heartbeats arrive within the timeout"},
	} {
		t.Run(c.name, func(t *testing.T) {
			g := NewWithT(t)
			h := evaluate(c.m, t0, ws)
			g.Expect(h.State).To(Equal(c.state))
			g.Expect(h.Reason).To(Equal(c.reason))
			g.Expect(h.Message).To(Equal(c.message))
		})
	}
	// Within maxRunDuration the recheck is at the run's limit, not the timeout.
	h := evaluate(job(func(m *monitoringv1alpha1.PushMonitor) {
		m.Status.LastStartTime = mt(-9 * time.Minute)
		m.Status.OpenRuns = []monitoringv1alpha1.OpenRun{{StartTime: *mt(-9 * time.Minute)}}
	}), t0, ws)
	NewWithT(t).Expect(h.RecheckAfter).To(Equal(time.Minute))
}

// A monitor following a CronJob without maxRunDuration: a Job still open
// when the next run is due (+ grace) is too long, so a Job stuck for good
// does not hide behind later starts.
func TestEvaluateCronJobRunOpenPastNextRun(t *testing.T) {
	g := NewWithT(t)
	start := time.Date(2026, 6, 10, 1, 5, 0, 0, time.UTC)
	m := &monitoringv1alpha1.PushMonitor{Spec: monitoringv1alpha1.PushMonitorSpec{
		CronJobRef: &monitoringv1alpha1.CronJobReference{Name: "sync"}, Schedule: "0 * * * *"}}
	m.Status.State = monitoringv1alpha1.StateUp
	st := metav1.NewMicroTime(start)
	m.Status.LastStartTime = &st
	m.Status.OpenRuns = []monitoringv1alpha1.OpenRun{{RunID: "sync-1", StartTime: st}}

	h := evaluate(m, start.Add(time.Hour), start.Add(-time.Hour))
	g.Expect(h.State).To(Equal(monitoringv1alpha1.StateUp))
	g.Expect(h.RecheckAfter).To(Equal(5 * time.Minute)) // 02:00 + 10m grace

	h = evaluate(m, start.Add(65*time.Minute), start.Add(-time.Hour))
	g.Expect(h.State).To(Equal(monitoringv1alpha1.StateDown))
	g.Expect(h.Reason).To(Equal(monitoringv1alpha1.RunTooLongReason))
	g.Expect(h.Message).To(Equal(`run "sync-1" started 1h5m ago is still open (past the next scheduled run + grace 10m; set maxRunDuration for longer runs)`))
}

// TestJobFailureIsCapped: a failed Job's diagnosis goes into
// status.lastMessage (at most 32768 bytes in the CRD) and the condition; a
// Job condition's message has no bound of its own, so the diagnosis is cut
// as a push message is (before, a long one would have failed the status
// write).
func TestJobFailureIsCapped(t *testing.T) {
	g := NewWithT(t)
	j := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "backup-1"}}
	j.Status.Conditions = []batchv1.JobCondition{{Type: batchv1.JobFailed, Status: corev1.ConditionTrue,
		Reason: "BackoffLimitExceeded", Message: strings.Repeat("x", 40000)}}
	msg := jobFailure(j, "")
	g.Expect(len(msg)).To(BeNumerically("<=", maxRunMessage))
	g.Expect(msg).To(HavePrefix("job backup-1 failed: BackoffLimitExceeded (xxx"))
	g.Expect(msg).To(HaveSuffix(truncatedMarker))
	j.Status.Conditions[0].Message = "Job has reached the specified backoff limit"
	g.Expect(jobFailure(j, "")).To(Equal("job backup-1 failed: BackoffLimitExceeded (Job has reached the specified backoff limit)"))
}
