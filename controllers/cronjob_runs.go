package controllers

import (
	"context"
	"sort"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
	"github.com/pushmon/pushmon/internal/heartbeat"
	"github.com/pushmon/pushmon/internal/history"
)

// finish is how a Job ended.
type finish struct {
	job    *batchv1.Job
	at     time.Time
	failed bool
}

// countJobs records the Jobs that finished since the last one counted
// (status.lastRunJob) as runs, oldest first, and the running ones as open
// runs. It reports whether status changed.
func (r *PushMonitorReconciler) countJobs(ctx context.Context, m *monitoringv1alpha1.PushMonitor, jobs []batchv1.Job) (bool, error) {
	st := &m.Status
	before := st.DeepCopy()
	var done []finish
	var open []monitoringv1alpha1.OpenRun
	for i := range jobs {
		j := &jobs[i]
		if f, ok := jobFinish(j); ok {
			done = append(done, f)
		} else if j.Status.StartTime != nil {
			open = append(open, monitoringv1alpha1.OpenRun{RunID: j.Name, StartTime: metav1.NewMicroTime(j.Status.StartTime.Time)})
		}
	}
	sort.Slice(done, func(a, b int) bool {
		if !done[a].at.Equal(done[b].at) {
			return done[a].at.Before(done[b].at)
		}
		return done[a].job.Name < done[b].job.Name
	})
	sort.Slice(open, func(a, b int) bool { return open[a].StartTime.Before(&open[b].StartTime) })
	if len(open) > monitoringv1alpha1.MaxOpenRuns {
		open = open[len(open)-monitoringv1alpha1.MaxOpenRuns:]
	}
	st.OpenRuns = open
	if len(open) > 0 {
		latest := open[len(open)-1].StartTime
		if st.LastStartTime == nil || latest.After(st.LastStartTime.Time) {
			st.LastStartTime = &latest
		}
	}
	// Jobs after the last one counted, in the order they finished.
	start := 0
	for i, f := range done {
		if f.job.Name == st.LastRunJob {
			start = i + 1
		}
	}
	if st.LastRunJob != "" && start == 0 && len(done) > 0 {
		// The counted Job was deleted (history limits): count only Jobs
		// that finished after the last recorded end.
		for start < len(done) && st.LastHeartbeatTime != nil && !done[start].at.After(st.LastHeartbeatTime.Time) {
			start++
		}
	}
	for _, f := range done[start:] {
		if err := r.countRun(ctx, m, f); err != nil {
			return false, err
		}
	}
	return !equalStatus(before, st), nil
}

// jobFinish reports whether and how a Job ended.
func jobFinish(j *batchv1.Job) (finish, bool) {
	for _, c := range j.Status.Conditions {
		if c.Status != corev1.ConditionTrue {
			continue
		}
		switch c.Type {
		case batchv1.JobComplete:
			at := c.LastTransitionTime.Time
			if j.Status.CompletionTime != nil {
				at = j.Status.CompletionTime.Time
			}
			return finish{job: j, at: at}, true
		case batchv1.JobFailed:
			return finish{job: j, at: c.LastTransitionTime.Time, failed: true}, true
		}
	}
	return finish{}, false
}

// countRun records one finished Job as a run.
func (r *PushMonitorReconciler) countRun(ctx context.Context, m *monitoringv1alpha1.PushMonitor, f finish) error {
	st := &m.Status
	at := metav1.NewMicroTime(f.at)
	if st.LastHeartbeatTime == nil || at.After(st.LastHeartbeatTime.Time) {
		st.LastHeartbeatTime = &at
	}
	st.LastRunJob = f.job.Name
	run := monitoringv1alpha1.RunRecord{EndTime: at, JobName: f.job.Name, Result: monitoringv1alpha1.RunSucceeded}
	if s := f.job.Status.StartTime; s != nil {
		st.LastRunDuration = &metav1.Duration{Duration: max(f.at.Sub(s.Time), 0).Round(time.Millisecond)}
		started := metav1.NewMicroTime(s.Time)
		run.StartTime, run.Duration = &started, st.LastRunDuration.DeepCopy()
	}
	if !f.failed {
		st.LastReportedStatus = monitoringv1alpha1.ReportedUp
		heartbeat.CountResult(st, true)
		history.AddRun(st, run, m.HistoryLen())
		return nil
	}
	msg, code, err := r.diagnose(ctx, f.job)
	if err != nil {
		return err
	}
	st.LastReportedStatus, st.LastMessage, st.LastExitCode = monitoringv1alpha1.ReportedFailed, msg, code
	st.LastFailure = &monitoringv1alpha1.FailureReport{Time: at, Status: monitoringv1alpha1.ReportedFailed, Message: msg, ExitCode: code}
	heartbeat.CountResult(st, false)
	run.Result, run.ExitCode, run.Message = monitoringv1alpha1.RunFailed, code, msg
	history.AddRun(st, run, m.HistoryLen())
	return nil
}
