package controllers

import (
	"context"
	"fmt"
	"sort"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
	"github.com/pushmon/pushmon/internal/heartbeat"
)

// Following a CronJob (spec.cronJobRef): the monitor takes the CronJob's
// schedule, time zone and suspend, and counts its Jobs as runs, so a
// CronJob is watched without a change to its code. What a failed run
// reports comes from the Job and its Pods.

// +kubebuilder:rbac:groups=batch,resources=cronjobs;jobs,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=list

const (
	// cronJobRefIndex indexes PushMonitors by spec.cronJobRef.name.
	cronJobRefIndex = ".spec.cronJobRef.name"
	// jobOwnerIndex indexes Jobs by the name of the CronJob that owns them.
	jobOwnerIndex = ".metadata.ownerReferences.cronJob"
	// JobNameLabel is set by the Job controller on the Pods of a Job; only
	// Pods with it are cached.
	JobNameLabel = "batch.kubernetes.io/job-name"
)

// setupCronJobFollowing indexes and watches what following CronJobs needs.
func setupCronJobFollowing(ctx context.Context, mgr ctrl.Manager, b *ctrl.Builder) error {
	idx := mgr.GetFieldIndexer()
	if err := idx.IndexField(ctx, &monitoringv1alpha1.PushMonitor{}, cronJobRefIndex, func(o client.Object) []string {
		if ref := o.(*monitoringv1alpha1.PushMonitor).Spec.CronJobRef; ref != nil {
			return []string{ref.Name}
		}
		return nil
	}); err != nil {
		return err
	}
	if err := idx.IndexField(ctx, &batchv1.Job{}, jobOwnerIndex, func(o client.Object) []string {
		if ref := metav1.GetControllerOf(o); ref != nil && ref.Kind == "CronJob" {
			return []string{ref.Name}
		}
		return nil
	}); err != nil {
		return err
	}
	c := mgr.GetClient()
	monitorsOf := func(ctx context.Context, ns, cronJob string) []reconcile.Request {
		var list monitoringv1alpha1.PushMonitorList
		if err := c.List(ctx, &list, client.InNamespace(ns), client.MatchingFields{cronJobRefIndex: cronJob}); err != nil {
			return nil
		}
		out := make([]reconcile.Request, 0, len(list.Items))
		for i := range list.Items {
			out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
		}
		return out
	}
	jobMonitors := func(ctx context.Context, ns, job string) []reconcile.Request {
		var j batchv1.Job
		if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: job}, &j); err != nil {
			return nil
		}
		if ref := metav1.GetControllerOf(&j); ref != nil && ref.Kind == "CronJob" {
			return monitorsOf(ctx, ns, ref.Name)
		}
		return nil
	}
	b.Watches(&batchv1.CronJob{}, handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
		return monitorsOf(ctx, o.GetNamespace(), o.GetName())
	})).
		Watches(&batchv1.Job{}, handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
			if ref := metav1.GetControllerOf(o); ref != nil && ref.Kind == "CronJob" {
				return monitorsOf(ctx, o.GetNamespace(), ref.Name)
			}
			return nil
		})).
		Watches(&corev1.Pod{}, handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
			if job := o.GetLabels()[JobNameLabel]; job != "" {
				return jobMonitors(ctx, o.GetNamespace(), job)
			}
			return nil
		}))
	return nil
}

// followCronJob reads the CronJob m follows and records its finished Jobs
// as runs in m's status. It returns the monitor to evaluate (the CronJob's
// schedule, time zone and suspend in its spec), the Ready problem if the
// CronJob is missing, and whether run fields changed.
func (r *PushMonitorReconciler) followCronJob(ctx context.Context, m *monitoringv1alpha1.PushMonitor) (*monitoringv1alpha1.PushMonitor, string, bool, error) {
	var cj batchv1.CronJob
	err := r.Get(ctx, types.NamespacedName{Namespace: m.Namespace, Name: m.Spec.CronJobRef.Name}, &cj)
	if apierrors.IsNotFound(err) {
		return nil, fmt.Sprintf("CronJob %q not found in namespace %s; the monitor follows it once it exists", m.Spec.CronJobRef.Name, m.Namespace), false, nil
	}
	if err != nil {
		return nil, "", false, err
	}
	var jobs batchv1.JobList
	if err := r.List(ctx, &jobs, client.InNamespace(m.Namespace), client.MatchingFields{jobOwnerIndex: cj.Name}); err != nil {
		return nil, "", false, err
	}
	changed, err := r.countJobs(ctx, m, jobs.Items)
	if err != nil {
		return nil, "", false, err
	}
	eff := m.DeepCopy()
	eff.Spec.Schedule, eff.Spec.TimeZone = cj.Spec.Schedule, cj.Spec.TimeZone
	eff.Annotations = map[string]string{}
	if cj.Spec.Suspend != nil && *cj.Spec.Suspend && !m.Spec.Suspend {
		eff.Spec.Suspend = true
		eff.Annotations[cronJobSuspendedMark] = "true"
	}
	if cj.Spec.ConcurrencyPolicy == batchv1.ForbidConcurrent {
		eff.Annotations[cronJobForbidMark] = "true"
	}
	return eff, "", changed, nil
}

// cronJobForbidMark marks the evaluated copy of a monitor whose CronJob
// forbids concurrent runs: a stuck Job there blocks the next run, which
// ScheduleMissed reports, naming the Job.
const cronJobForbidMark = "pushmon.internal/cronjob-forbid"

// cronJobSuspendedMark marks the evaluated copy of a monitor whose CronJob
// is suspended (not written anywhere).
const cronJobSuspendedMark = "pushmon.internal/cronjob-suspended"

// explainCronJob words h for a monitor that follows a CronJob: suspension
// is the CronJob's, a run too long says what its Pod is stuck on, and a
// missed schedule its likely cause. transition is whether h is a change
// from what status shows: the cause of a missed run is read once, when the
// Down is declared, and kept with it.
func (r *PushMonitorReconciler) explainCronJob(ctx context.Context, eff *monitoringv1alpha1.PushMonitor, h health, transition bool) health {
	switch {
	case h.Reason == monitoringv1alpha1.ReasonSuspended && eff.Annotations[cronJobSuspendedMark] == "true":
		h.Reason = monitoringv1alpha1.ReasonCronJobSuspended
		h.Message = "CronJob " + eff.Spec.CronJobRef.Name + " is suspended: no runs are expected, no Down transitions"
	case h.Reason == monitoringv1alpha1.ReasonRunTooLong && len(eff.Status.OpenRuns) > 0:
		if what, _, err := r.jobPodProblem(ctx, eff.Namespace, eff.Status.OpenRuns[0].RunID); err == nil && what != "" {
			h.Message += ": " + what
		}
	case h.Reason == monitoringv1alpha1.ReasonScheduleMissed && transition && h.Due != nil:
		if cause := r.scheduleCause(ctx, eff, *h.Due); cause != "" {
			h.Message += "; " + cause
		}
	}
	return h
}

// scheduleCause names the likely reason a CronJob made no run for the
// scheduled time due: a Job still running under concurrencyPolicy Forbid,
// a startingDeadlineSeconds that passed, or the CronJob controller having
// given up after too many missed starts (its FailedNeedsStart events).
func (r *PushMonitorReconciler) scheduleCause(ctx context.Context, m *monitoringv1alpha1.PushMonitor, due time.Time) string {
	var cj batchv1.CronJob
	if err := r.Get(ctx, types.NamespacedName{Namespace: m.Namespace, Name: m.Spec.CronJobRef.Name}, &cj); err != nil {
		return ""
	}
	if cj.Spec.ConcurrencyPolicy == batchv1.ForbidConcurrent && len(cj.Status.Active) > 0 {
		// The CronJob controller's own record of the Job it waits for.
		blocking := cj.Status.Active[0].Name
		for _, run := range m.Status.OpenRuns {
			if run.RunID == blocking {
				return fmt.Sprintf("concurrencyPolicy Forbid: Job %s has been running since %s", blocking, run.StartTime.UTC().Format(time.RFC3339))
			}
		}
		return "concurrencyPolicy Forbid: Job " + blocking + " is still running"
	}
	if r.APIReader != nil {
		var evs eventsv1.EventList
		if err := r.APIReader.List(ctx, &evs, client.InNamespace(m.Namespace),
			client.MatchingFields{"regarding.name": cj.Name, "reason": "FailedNeedsStart"}); err == nil && len(evs.Items) > 0 {
			return "the CronJob controller stopped scheduling it after too many missed start times (FailedNeedsStart events)"
		}
	}
	if d := cj.Spec.StartingDeadlineSeconds; d != nil && (cj.Status.LastScheduleTime == nil || cj.Status.LastScheduleTime.Time.Before(due)) {
		return fmt.Sprintf("startingDeadlineSeconds is %d: the run may have been skipped for starting late", *d)
	}
	if cj.Status.LastScheduleTime == nil || cj.Status.LastScheduleTime.Time.Before(due) {
		return "no Job was created for it (is the CronJob controller running?)"
	}
	return ""
}

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
	if s := f.job.Status.StartTime; s != nil {
		st.LastRunDuration = &metav1.Duration{Duration: max(f.at.Sub(s.Time), 0).Round(time.Millisecond)}
	}
	if !f.failed {
		st.LastReportedStatus = monitoringv1alpha1.ReportedUp
		heartbeat.CountResult(st, true)
		return nil
	}
	msg, code, err := r.diagnose(ctx, f.job)
	if err != nil {
		return err
	}
	st.LastReportedStatus, st.LastMessage, st.LastExitCode = monitoringv1alpha1.ReportedFailed, msg, code
	st.LastFailure = &monitoringv1alpha1.FailureReport{Time: at, Status: monitoringv1alpha1.ReportedFailed, Message: msg, ExitCode: code}
	heartbeat.CountResult(st, false)
	return nil
}

// diagnose says why a Job failed, from its Failed condition and its Pods'
// container states, e.g. "job backup-29012345 failed: container backup
// OOMKilled (exit 137) after 2 retries", and the exit code if one is known.
func (r *PushMonitorReconciler) diagnose(ctx context.Context, j *batchv1.Job) (string, *int32, error) {
	what, code, err := r.jobPodProblem(ctx, j.Namespace, j.Name)
	if err != nil {
		return "", nil, err
	}
	failed := jobCondition(j, batchv1.JobFailed)
	msg := "job " + j.Name + " failed"
	switch {
	case what != "":
		msg += ": " + what
	case failed != nil && failed.Reason != "":
		msg += ": " + failed.Reason
		if failed.Message != "" {
			msg += " (" + failed.Message + ")"
		}
	}
	switch retries := j.Status.Failed - 1; {
	case retries == 1:
		msg += " after 1 retry"
	case retries > 1:
		msg += fmt.Sprintf(" after %d retries", retries)
	}
	if failed != nil && failed.Reason == batchv1.JobReasonDeadlineExceeded && what != "" {
		msg += " (" + failed.Reason + ")"
	}
	return msg, code, nil
}

// podProblem names what went wrong in the newest Pod that shows a problem:
// a terminated container with its reason and exit code, or a container
// waiting for a reason (ImagePullBackOff, CreateContainerConfigError, ...).
func podProblem(pods []corev1.Pod) (string, *int32) {
	sort.Slice(pods, func(a, b int) bool {
		return pods[b].CreationTimestamp.Before(&pods[a].CreationTimestamp)
	})
	for _, p := range pods {
		for _, cs := range append(append([]corev1.ContainerStatus(nil), p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...) {
			if t := cs.State.Terminated; t != nil && t.ExitCode != 0 {
				code := t.ExitCode
				reason := t.Reason
				if reason == "" {
					reason = "Error"
				}
				return fmt.Sprintf("container %s %s (exit %d)", cs.Name, reason, code), &code
			}
			if w := cs.State.Waiting; w != nil && w.Reason != "" && w.Reason != "ContainerCreating" && w.Reason != "PodInitializing" {
				return fmt.Sprintf("container %s %s", cs.Name, w.Reason), nil
			}
		}
	}
	return "", nil
}

// jobPodProblem is what the Pods of a Job show went wrong (podProblem).
func (r *PushMonitorReconciler) jobPodProblem(ctx context.Context, ns, job string) (string, *int32, error) {
	var pods corev1.PodList
	if err := r.List(ctx, &pods, client.InNamespace(ns), client.MatchingLabels{JobNameLabel: job}); err != nil {
		return "", nil, err
	}
	what, code := podProblem(pods.Items)
	return what, code, nil
}

func jobCondition(j *batchv1.Job, t batchv1.JobConditionType) *batchv1.JobCondition {
	for i := range j.Status.Conditions {
		if c := &j.Status.Conditions[i]; c.Type == t && c.Status == corev1.ConditionTrue {
			return c
		}
	}
	return nil
}

// TrimForCache keeps only what following CronJobs reads of Jobs, Pods and
// CronJobs in the cache (a cache transform): pod templates and specs can be
// large, and pushmon may see many.
func TrimForCache(o any) (any, error) {
	switch v := o.(type) {
	case *batchv1.Job:
		v.Spec.Template = corev1.PodTemplateSpec{}
		v.ManagedFields = nil
	case *batchv1.CronJob:
		v.Spec.JobTemplate = batchv1.JobTemplateSpec{}
		v.ManagedFields = nil
	case *corev1.Pod:
		v.Spec = corev1.PodSpec{}
		v.ManagedFields = nil
		v.Annotations = nil
	}
	return o, nil
}
