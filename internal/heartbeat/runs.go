package heartbeat

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
	"github.com/pushmon/pushmon/internal/history"
)

// maxCount caps consecutiveFailures and consecutiveSuccesses.
const maxCount = 1 << 20

// Counted reports whether hb must be written on its own, read-modify-write:
// run signals (start, fail, log, an exit status) and every push to a
// monitor that counts runs (thresholds above 1, a maximum run duration, a
// run open). Their counters and open runs depend on every signal, so these
// are never coalesced; such monitors are jobs that report a few times per
// run, and the push endpoint's rate limits bound them like any other.
func Counted(m *monitoringv1alpha1.PushMonitor, hb Heartbeat) bool {
	return hb.Kind != KindHeartbeat || hb.ExitCode != nil ||
		m.Spec.FailureThreshold > 1 || m.Spec.RecoveryThreshold > 1 ||
		m.Spec.MaxRunDuration != nil || len(m.Status.OpenRuns) > 0
}

// Apply records hb in status: what a push says about the last heartbeat,
// the runs open, the counts of failures and successes in a row, and a run
// it ends in status.recentRuns (keeping the newest historyLimit).
func Apply(st *monitoringv1alpha1.PushMonitorStatus, hb Heartbeat, historyLimit int) {
	at := metav1.NewMicroTime(hb.Time)
	// A signal older than the stored heartbeat (received by another replica
	// and written late) still opens or closes its run, but does not change
	// the last-heartbeat fields: those follow receive time.
	stale := Superseded(st, hb)
	switch hb.Kind {
	case KindLog:
		if !stale {
			st.LastMessage = hb.Message
		}
		return
	case KindStart:
		if st.LastStartTime == nil || at.After(st.LastStartTime.Time) {
			st.LastStartTime = &at
		}
		st.OpenRuns = append(st.OpenRuns, monitoringv1alpha1.OpenRun{RunID: hb.RunID, StartTime: at})
		if n := len(st.OpenRuns) - monitoringv1alpha1.MaxOpenRuns; n > 0 {
			st.OpenRuns = st.OpenRuns[n:] // runs that never ended; the oldest go
		}
		return
	}
	var started *metav1.MicroTime
	if i := endingRun(st.OpenRuns, hb.RunID); i >= 0 {
		started = st.OpenRuns[i].StartTime.DeepCopy()
		st.LastRunDuration = &metav1.Duration{Duration: max(hb.Time.Sub(st.OpenRuns[i].StartTime.Time), 0)}
		st.OpenRuns = append(st.OpenRuns[:i:i], st.OpenRuns[i+1:]...)
	}
	if started != nil || hb.Kind != KindHeartbeat || hb.ExitCode != nil {
		// A run ended: one that was open, or a result reported without a
		// start (a success or failure ping, an exit status). Plain
		// heartbeats are not runs; the transitions show them.
		history.AddRun(st, runOf(hb, started), historyLimit)
	}
	if stale {
		// Received before the stored result, so it belongs before it in
		// the run of results in a row: it extends that run when it agrees
		// with the stored result, and changes nothing when it does not.
		failed := hb.Kind == KindFail || hb.Status == monitoringv1alpha1.ReportedDown
		if kept := keptFailure(st, hb); failed && kept != nil {
			st.LastFailure = kept // shown by the leader, though superseded
		}
		switch {
		case failed && st.LastReportedStatus != monitoringv1alpha1.ReportedUp && st.ConsecutiveFailures > 0:
			st.ConsecutiveFailures = min(st.ConsecutiveFailures+1, maxCount)
		case !failed && st.LastReportedStatus == monitoringv1alpha1.ReportedUp && st.ConsecutiveSuccesses > 0:
			st.ConsecutiveSuccesses = min(st.ConsecutiveSuccesses+1, maxCount)
		}
		return
	}
	st.LastHeartbeatTime = &at
	st.LastMessage, st.LastValue = hb.Message, hb.Value
	if hb.ExitCode != nil || hb.Kind == KindFail {
		st.LastExitCode = hb.ExitCode
	}
	switch {
	case hb.Kind == KindFail:
		st.LastReportedStatus = monitoringv1alpha1.ReportedFailed
		st.LastFailure = failureOf(hb)
	case hb.Status == monitoringv1alpha1.ReportedDown:
		st.LastReportedStatus = monitoringv1alpha1.ReportedDown
		st.LastFailure = failureOf(hb)
	default:
		st.LastReportedStatus = monitoringv1alpha1.ReportedUp
	}
	CountResult(st, st.LastReportedStatus == monitoringv1alpha1.ReportedUp)
}

// CountResult adds a success or a failure to the counts in a row that the
// thresholds read (for pushes here, for a followed CronJob's Jobs in the
// reconciler).
func CountResult(st *monitoringv1alpha1.PushMonitorStatus, success bool) {
	// The counts only need to reach a threshold (at most 100); the cap
	// keeps a monitor reporting for years from overflowing them.
	if success {
		st.ConsecutiveSuccesses = min(st.ConsecutiveSuccesses+1, maxCount)
		st.ConsecutiveFailures = 0
	} else {
		st.ConsecutiveFailures = min(st.ConsecutiveFailures+1, maxCount)
		st.ConsecutiveSuccesses = 0
	}
}

// runOf is the history record of the run hb ends, started at started
// (nil: no start was seen).
func runOf(hb Heartbeat, started *metav1.MicroTime) monitoringv1alpha1.RunRecord {
	run := monitoringv1alpha1.RunRecord{EndTime: metav1.NewMicroTime(hb.Time), StartTime: started,
		ExitCode: hb.ExitCode, Message: hb.Message, RunID: hb.RunID, Result: monitoringv1alpha1.RunSucceeded}
	if started != nil {
		run.Duration = &metav1.Duration{Duration: max(hb.Time.Sub(started.Time), 0)}
	}
	if hb.Kind == KindFail || hb.Status == monitoringv1alpha1.ReportedDown {
		run.Result = monitoringv1alpha1.RunFailed
	}
	return run
}

// endingRun is the open run an end with runID closes: the one started with
// that rid, or without a rid the newest run started without one (as
// Healthchecks pairs them). -1 if none.
func endingRun(runs []monitoringv1alpha1.OpenRun, runID string) int {
	for i := len(runs) - 1; i >= 0; i-- {
		if runs[i].RunID == runID {
			return i
		}
	}
	return -1
}
