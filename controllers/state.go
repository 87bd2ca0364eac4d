package controllers

import (
	"fmt"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
)

// health is the monitor's evaluated state: what status should say now, and
// when to look again.
type health struct {
	State   monitoringv1alpha1.MonitorState
	Status  metav1.ConditionStatus // of the Healthy condition
	Reason  string
	Message string
	// Deadline is when the monitor goes Down absent a heartbeat; while Down
	// for a missed heartbeat, the deadline that was missed. Nil otherwise.
	Deadline *time.Time
	// RecheckAfter is when to evaluate again if nothing changes; 0 = never.
	RecheckAfter time.Duration
	// NextRun is when the next run is expected, with a schedule.
	NextRun *time.Time
	// Due is, for ScheduleMissed, the scheduled time no run reported for.
	Due *time.Time
}

// evaluate is the state machine (DESIGN.md "Timing rules"). It is pure: now
// and watchStart (when this leader began watching the monitor, or when it
// was last resumed) come from the caller.
//
//	Suspended                  while spec.suspend
//	Down (RunTooLong)          while a run is open past maxRunDuration
//	Down (DownReported,        while the last report was status=down, or a
//	      RunFailed)           run's failure, failureThreshold times in a
//	                           row; and after that until recoveryThreshold
//	                           successes in a row
//	Down (HeartbeatMissed,     once now >= the deadline after anchor, where
//	      ScheduleMissed)      anchor = max(last heartbeat or start,
//	                           watchStart): + timeout + grace, or with a
//	                           schedule the next scheduled time + grace; and
//	                           after that until a newer heartbeat arrives
//	Pending                    before the first heartbeat
//	Up                         otherwise
func evaluate(m *monitoringv1alpha1.PushMonitor, now, watchStart time.Time) health {
	return evaluateFollowing(m, followed{}, now, watchStart)
}

// evaluateFollowing is evaluate for a monitor that follows a CronJob, with
// what the CronJob says beyond the spec it lends.
func evaluateFollowing(m *monitoringv1alpha1.PushMonitor, f followed, now, watchStart time.Time) health {
	if m.Spec.Suspend {
		return health{
			State: monitoringv1alpha1.StateSuspended, Status: metav1.ConditionUnknown,
			Reason: monitoringv1alpha1.SuspendedReason, Message: "spec.suspend is true: heartbeats are recorded, no Down transitions",
		}
	}
	st := &m.Status
	// last is the latest sign of life: a heartbeat or a run's start.
	var last *time.Time
	for _, t := range []*metav1.MicroTime{st.LastHeartbeatTime, st.LastStartTime} {
		if t != nil && (last == nil || t.After(*last)) {
			v := t.Time
			last = &v
		}
	}
	anchor := watchStart
	if last != nil && last.After(anchor) {
		anchor = *last
	}

	// A run stuck now says more than how the last one ended.
	var runDeadline *time.Time
	if d, limit, ok := runLimit(m, f); ok {
		// Runs are kept oldest first: the oldest is the first too long.
		run := st.OpenRuns[0]
		d := d(run.StartTime.Time)
		if !now.Before(d) {
			what := "a run"
			if run.RunID != "" {
				what = fmt.Sprintf("run %q", run.RunID)
			}
			msg := fmt.Sprintf("%s started %s ago is still open (%s)", what,
				shortDuration(now.Sub(run.StartTime.Time).Round(time.Second)), limit)
			return health{State: monitoringv1alpha1.StateDown, Status: metav1.ConditionFalse,
				Reason: monitoringv1alpha1.RunTooLongReason, Message: msg, Deadline: &d, NextRun: nextRun(m, anchor)}
		}
		runDeadline = &d
	}

	if st.LastHeartbeatTime != nil && st.LastReportedStatus != monitoringv1alpha1.ReportedUp &&
		st.LastReportedStatus != "" && reached(st.ConsecutiveFailures, m.Spec.FailureThreshold) {
		return health{State: monitoringv1alpha1.StateDown, Status: metav1.ConditionFalse,
			Reason: failureReason(st.LastReportedStatus), Message: failureMessage(m), NextRun: nextRun(m, anchor),
			RecheckAfter: untilRunTooLong(runDeadline, now)}
	}
	if f := unshownFailure(m); f != nil {
		// Reported and superseded by a success before any leader evaluated
		// it (a leader change, or both written between two reconciles): the
		// client said it failed, so the monitor goes Down for it now, and
		// the success brings it back at the next evaluation.
		return health{State: monitoringv1alpha1.StateDown, Status: metav1.ConditionFalse,
			Reason: failureReason(f.Status), NextRun: nextRun(m, anchor),
			Message: recoveringFrom(m) + fmt.Sprintf(" (reported at %s, a success since)", f.Time.UTC().Format(time.RFC3339))}
	}
	prevDown := meta.FindStatusCondition(st.Conditions, monitoringv1alpha1.HealthyCondition)
	if st.State == monitoringv1alpha1.StateDown && prevDown != nil && isReported(prevDown.Reason) &&
		!reached(st.ConsecutiveSuccesses, m.Spec.RecoveryThreshold) {
		// Down until enough successes in a row.
		return health{State: monitoringv1alpha1.StateDown, Status: metav1.ConditionFalse,
			Reason: prevDown.Reason, Message: fmt.Sprintf("%s (%d of %d successes in a row to recover)",
				recoveringFrom(m), st.ConsecutiveSuccesses, m.Spec.RecoveryThreshold),
			NextRun: nextRun(m, anchor), RecheckAfter: untilRunTooLong(runDeadline, now)}
	}
	prev := meta.FindStatusCondition(st.Conditions, monitoringv1alpha1.HealthyCondition)
	if st.State == monitoringv1alpha1.StateDown && prev != nil && isMissed(prev.Reason) && st.Deadline != nil {
		// A missed heartbeat stays missed until a newer one arrives. Status
		// carries this, so a restarted or new leader does not clear a Down
		// it did not see.
		missed := st.Deadline.Time
		if !newerHeartbeat(m, last, prev, missed) {
			if last != nil && m.DeadlineFrom(*last).After(missed) {
				// The timeout grew since: keep DeadlineFrom(last) <= deadline,
				// so that the next evaluation still sees no newer heartbeat.
				missed = m.DeadlineFrom(*last)
			}
			return health{State: monitoringv1alpha1.StateDown, Status: metav1.ConditionFalse,
				Reason: prev.Reason, Message: prev.Message, Deadline: &missed, NextRun: nextRun(m, now)}
		}
	}

	deadline, due := m.DeadlineFrom(anchor), time.Time{}
	if d, ok := scheduledDeadline(m, last, watchStart); ok && d.deadline.Before(deadline) {
		deadline, due = d.deadline, d.due
	} else if ok {
		due = deadline.Add(-m.GracePeriodDuration())
	}
	if !now.Before(deadline) {
		h := health{State: monitoringv1alpha1.StateDown, Status: metav1.ConditionFalse,
			Reason: missedReason(m), Message: missedMessage(m, last, watchStart, now, due),
			Deadline: &deadline, NextRun: nextRun(m, now)}
		if !due.IsZero() {
			h.Due = &due
		}
		return h
	}
	if last == nil {
		return health{State: monitoringv1alpha1.StatePending, Status: metav1.ConditionUnknown,
			Reason: monitoringv1alpha1.AwaitingFirstHeartbeatReason, Message: "no heartbeat received yet",
			Deadline: &deadline, RecheckAfter: deadline.Sub(now), NextRun: nextRun(m, anchor)}
	}
	h := health{State: monitoringv1alpha1.StateUp, Status: metav1.ConditionTrue,
		Reason: monitoringv1alpha1.HeartbeatReceivedReason, Message: "heartbeats arrive within the timeout",
		Deadline: &deadline, RecheckAfter: deadline.Sub(now), NextRun: nextRun(m, anchor)}
	if m.Spec.Schedule != "" {
		h.Message = "runs report on schedule"
	}
	if runDeadline != nil && runDeadline.Before(deadline) {
		h.Deadline, h.RecheckAfter = runDeadline, runDeadline.Sub(now)
	}
	if st.State == monitoringv1alpha1.StateDown {
		h.Reason, h.Message = monitoringv1alpha1.RecoveredReason, "heartbeats arrive again"
	} else if st.State == monitoringv1alpha1.StateUp && prev != nil && prev.Status == metav1.ConditionTrue {
		// Keep the reason (e.g. Recovered) while Up, so a heartbeat does not
		// rewrite the condition.
		h.Reason = prev.Reason
		if prev.Reason == monitoringv1alpha1.RecoveredReason {
			h.Message = "heartbeats arrive again"
		}
	}
	if st.LastReportedStatus == monitoringv1alpha1.ReportedDown || st.LastReportedStatus == monitoringv1alpha1.ReportedFailed {
		// A failure below failureThreshold: Up, and the condition says so.
		h.Message = fmt.Sprintf("the last run failed (%d of %d failures in a row before Down)", st.ConsecutiveFailures, m.Spec.FailureThreshold)
	}
	return h
}

// unshownFailure is the failure a client reported that no transition has
// covered yet, if the monitor is not Down: a report no leader has shown (a
// success superseded it before any leader evaluated it, or it was stored
// after the success). Only for monitors that go Down on one failure (with
// failureThreshold above 1 the counts in a row decide).
func unshownFailure(m *monitoringv1alpha1.PushMonitor) *monitoringv1alpha1.FailureReport {
	f := m.Status.LastFailure
	if f == nil || f.Shown || m.Status.State == monitoringv1alpha1.StateDown || m.Spec.FailureThreshold > 1 ||
		m.Status.State == monitoringv1alpha1.StateSuspended { // reported while suspended: no alert
		return nil
	}
	return f
}

// scheduled is when a scheduled run is due and when missing it turns the
// monitor Down.
type scheduled struct{ due, deadline time.Time }

// scheduledDeadline is, with a schedule, the first scheduled time after the
// last sign of life (or, before any, after the monitor was created), and
// the deadline for it: that time + grace, but at least one grace after
// watchStart. So a run that fell due while no leader watched (the operator
// stopped, a leader change) is still checked, one grace after this leader
// began watching at the latest, instead of the anchor jumping past it
// (DESIGN.md "Schedules and runs"). ok is false without a valid schedule.
func scheduledDeadline(m *monitoringv1alpha1.PushMonitor, last *time.Time, watchStart time.Time) (scheduled, bool) {
	from := watchStart
	switch {
	case last != nil:
		from = *last
	case !m.CreationTimestamp.IsZero() && m.CreationTimestamp.Time.Before(watchStart):
		from = m.CreationTimestamp.Time
	}
	due, ok := m.NextRunAfter(from)
	if !ok {
		return scheduled{}, false
	}
	grace := m.GracePeriodDuration()
	deadline := due.Add(grace)
	if earliest := watchStart.Add(grace); deadline.Before(earliest) {
		deadline = earliest
	}
	return scheduled{due: due, deadline: deadline}, true
}

// newerHeartbeat reports whether the last heartbeat is newer than the one a
// HeartbeatMissed Down was declared on. A heartbeat received at or after the
// transition's second is (the one the Down was declared on is at least a
// timeout, so at least 1s, older than the transition). One received just
// before it, but stored after the Down, is told by its deadline: the missed
// deadline was that of the older heartbeat under the spec of the
// condition's generation, so while the spec is unchanged a newer heartbeat
// has a later deadline. The push endpoint may also have written this
// heartbeat's deadline into status (it does while it sees the monitor Up);
// the transition-time test covers that case.
func newerHeartbeat(m *monitoringv1alpha1.PushMonitor, last *time.Time, down *metav1.Condition, missed time.Time) bool {
	if last == nil {
		return false
	}
	// At or after the transition (second precision): newer whatever the spec.
	if !down.LastTransitionTime.IsZero() && !last.Before(down.LastTransitionTime.Time) {
		return true
	}
	return down.ObservedGeneration == m.Generation && m.DeadlineFrom(*last).After(missed)
}

// runLimit is when an open run becomes too long, for a monitor with open
// runs: start + maxRunDuration; or, for a monitor following a CronJob with
// no maxRunDuration, the next scheduled time after the start + grace, so
// that a Job stuck for good (an image that cannot be pulled) is Down one
// period later instead of hiding behind the starts of later Jobs. (Not
// under concurrencyPolicy Forbid: there the stuck Job blocks the next run,
// and ScheduleMissed names it.) limit words the rule for the message.
func runLimit(m *monitoringv1alpha1.PushMonitor, f followed) (deadline func(start time.Time) time.Time, limit string, ok bool) {
	if len(m.Status.OpenRuns) == 0 {
		return nil, "", false
	}
	if most := m.Spec.MaxRunDuration; most != nil {
		return func(start time.Time) time.Time { return start.Add(most.Duration) },
			"maxRunDuration " + shortDuration(most.Duration), true
	}
	if m.Spec.CronJobRef != nil && !f.forbidsConcurrent {
		if s, err := m.ParsedSchedule(); s != nil && err == nil {
			grace := m.GracePeriodDuration()
			return func(start time.Time) time.Time {
				next, _ := m.NextRunAfter(start)
				return next.Add(grace)
			}, "past the next scheduled run + grace " + shortDuration(grace) + "; set maxRunDuration for longer runs", true
		}
	}
	return nil, "", false
}

// untilRunTooLong is when an open run becomes too long, for a Down that
// must be looked at again then (0: no run open).
func untilRunTooLong(runDeadline *time.Time, now time.Time) time.Duration {
	if runDeadline == nil {
		return 0
	}
	return max(runDeadline.Sub(now), time.Millisecond)
}

// reached reports whether count meets threshold (unset or 1: any count,
// so that monitors whose pushes are not counted behave as before).
func reached(count, threshold int32) bool {
	return threshold <= 1 || count >= threshold
}

// isReported: the reason of a Down a client reported, which only enough
// successes end.
func isReported(reason string) bool {
	return reason == monitoringv1alpha1.DownReportedReason || reason == monitoringv1alpha1.RunFailedReason
}

func failureReason(reported monitoringv1alpha1.ReportedStatus) string {
	if reported == monitoringv1alpha1.ReportedFailed {
		return monitoringv1alpha1.RunFailedReason
	}
	return monitoringv1alpha1.DownReportedReason
}

// failureMessage says what the client reported, e.g. "the run failed with
// exit status 3 (2 failures in a row): disk full".
func failureMessage(m *monitoringv1alpha1.PushMonitor) string {
	st := &m.Status
	inARow := ""
	if m.Spec.FailureThreshold > 1 {
		inARow = fmt.Sprintf("%d failures in a row", st.ConsecutiveFailures)
	}
	return describeFailure(m.Spec.CronJobRef != nil, st.LastReportedStatus, st.LastExitCode, st.LastMessage, inARow)
}

// recoveringFrom says which failure a Down monitor is recovering from, from
// status.lastFailure (the newest failure reported), without counts, e.g.
// "the run failed with exit status 3: disk full".
func recoveringFrom(m *monitoringv1alpha1.PushMonitor) string {
	f := m.Status.LastFailure
	if f == nil { // stored by a version that kept no lastFailure
		return "a failure was reported"
	}
	return describeFailure(m.Spec.CronJobRef != nil, f.Status, f.ExitCode, f.Message, "")
}

// describeFailure words a reported failure; inARow, when set, goes in
// parentheses before the client's message.
func describeFailure(cronJob bool, status monitoringv1alpha1.ReportedStatus, exitCode *int32, message, inARow string) string {
	if cronJob && status == monitoringv1alpha1.ReportedFailed && message != "" {
		// The Job's diagnosis says it all ("job x failed: container backup
		// OOMKilled (exit 137)").
		if inARow != "" {
			return fmt.Sprintf("%s (%s)", message, inARow)
		}
		return message
	}
	msg := "the client reported status=down"
	if status == monitoringv1alpha1.ReportedFailed {
		msg = "the run failed"
		if exitCode != nil {
			msg += fmt.Sprintf(" with exit status %d", *exitCode)
		}
	}
	if inARow != "" {
		msg += " (" + inARow + ")"
	}
	if message != "" {
		msg += ": " + message
	}
	return msg
}

// isMissed: the reason of a Down for silence (timeout or schedule), which
// only a newer heartbeat ends.
func isMissed(reason string) bool {
	return reason == monitoringv1alpha1.HeartbeatMissedReason || reason == monitoringv1alpha1.ScheduleMissedReason
}

// downReasons are the reasons m can go Down for: silence, a reported
// failure (status=down, or a failed run from any ping), and with
// maxRunDuration a run open too long.
func downReasons(m *monitoringv1alpha1.PushMonitor) []string {
	reasons := []string{missedReason(m), monitoringv1alpha1.DownReportedReason, monitoringv1alpha1.RunFailedReason}
	if m.Spec.MaxRunDuration != nil {
		reasons = append(reasons, monitoringv1alpha1.RunTooLongReason)
	}
	return reasons
}

// missedReason is the reason for silence past the deadline.
func missedReason(m *monitoringv1alpha1.PushMonitor) string {
	if m.Spec.Schedule != "" {
		return monitoringv1alpha1.ScheduleMissedReason
	}
	return monitoringv1alpha1.HeartbeatMissedReason
}

// nextRun is when the first run after t is expected; nil without a
// (valid) schedule.
func nextRun(m *monitoringv1alpha1.PushMonitor, t time.Time) *time.Time {
	n, ok := m.NextRunAfter(t)
	if !ok {
		return nil
	}
	return &n
}

// missedMessage says how long the monitor has been silent, e.g.
// "no heartbeat for 5m12s (timeout 5m, grace 30s)", or with a schedule which
// run did not report, e.g. "no run reported for 2026-03-30 02:30 CEST
// (schedule "30 2 * * *" in Europe/Berlin, grace 10m)".
func missedMessage(m *monitoringv1alpha1.PushMonitor, last *time.Time, watchStart, now, due time.Time) string {
	if m.Spec.Schedule != "" {
		tz := "UTC"
		if m.Spec.TimeZone != nil {
			tz = *m.Spec.TimeZone
		}
		if loc, err := time.LoadLocation(tz); err == nil {
			due = due.In(loc)
		}
		return fmt.Sprintf("no run reported for %s (schedule %q in %s, grace %s)",
			due.Format("2006-01-02 15:04 MST"), m.Spec.Schedule, tz, shortDuration(m.GracePeriodDuration()))
	}
	limits := fmt.Sprintf("(timeout %s, grace %s)", shortDuration(m.TimeoutDuration()), shortDuration(m.GracePeriodDuration()))
	if last == nil {
		return fmt.Sprintf("no heartbeat received in the %s since pushmon began watching %s",
			shortDuration(now.Sub(watchStart).Round(time.Second)), limits)
	}
	return fmt.Sprintf("no heartbeat for %s %s", shortDuration(now.Sub(*last).Round(time.Second)), limits)
}

// shortDuration writes d as people write it in a spec: 5m rather than
// Go's 5m0s, 1h30m rather than 1h30m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}
