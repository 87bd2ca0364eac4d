package controllers

import (
	"context"
	"fmt"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
)

// followCronJob reads the CronJob m follows and records its finished Jobs
// as runs in m's status. It returns the monitor to evaluate (the CronJob's
// schedule, time zone and suspend in its spec) with what else the CronJob
// says, the Ready problem if the CronJob is missing, and whether run fields
// changed.
func (r *PushMonitorReconciler) followCronJob(ctx context.Context, m *monitoringv1alpha1.PushMonitor) (*monitoringv1alpha1.PushMonitor, followed, string, bool, error) {
	var cj batchv1.CronJob
	err := r.Get(ctx, types.NamespacedName{Namespace: m.Namespace, Name: m.Spec.CronJobRef.Name}, &cj)
	if apierrors.IsNotFound(err) {
		return nil, followed{}, fmt.Sprintf("CronJob %q not found in namespace %s; the monitor follows it once it exists", m.Spec.CronJobRef.Name, m.Namespace), false, nil
	}
	if err != nil {
		return nil, followed{}, "", false, err
	}
	var jobs batchv1.JobList
	if err := r.List(ctx, &jobs, client.InNamespace(m.Namespace), client.MatchingFields{jobOwnerIndex: cj.Name}); err != nil {
		return nil, followed{}, "", false, err
	}
	changed, err := r.countJobs(ctx, m, jobs.Items)
	if err != nil {
		return nil, followed{}, "", false, err
	}
	eff, f := m.DeepCopy(), followed{forbidsConcurrent: cj.Spec.ConcurrencyPolicy == batchv1.ForbidConcurrent}
	eff.Spec.Schedule, eff.Spec.TimeZone = cj.Spec.Schedule, cj.Spec.TimeZone
	if cj.Spec.Suspend != nil && *cj.Spec.Suspend && !m.Spec.Suspend {
		eff.Spec.Suspend, f.suspended = true, true
	}
	return eff, f, "", changed, nil
}

// followed is what a followed CronJob adds to a monitor's evaluation,
// beyond the schedule, time zone and suspend it lends the monitor's spec.
type followed struct {
	// suspended: the monitor is suspended because the CronJob is.
	suspended bool
	// forbidsConcurrent: concurrencyPolicy Forbid. A stuck Job there blocks
	// the next run, which ScheduleMissed reports, naming the Job.
	forbidsConcurrent bool
}

// explainCronJob words h for a monitor that follows a CronJob: suspension
// is the CronJob's, a run too long says what its Pod is stuck on, and a
// missed schedule its likely cause. transition is whether h is a change
// from what status shows: the cause of a missed run is read once, when the
// Down is declared, and kept with it.
func (r *PushMonitorReconciler) explainCronJob(ctx context.Context, eff *monitoringv1alpha1.PushMonitor, f followed, h health, transition bool) health {
	switch {
	case h.Reason == monitoringv1alpha1.SuspendedReason && f.suspended:
		h.Reason = monitoringv1alpha1.CronJobSuspendedReason
		h.Message = "CronJob " + eff.Spec.CronJobRef.Name + " is suspended: no runs are expected, no Down transitions"
	case h.Reason == monitoringv1alpha1.RunTooLongReason && len(eff.Status.OpenRuns) > 0:
		if what, _, err := r.jobPodProblem(ctx, eff.Namespace, eff.Status.OpenRuns[0].RunID); err == nil && what != "" {
			h.Message += ": " + what
		}
	case h.Reason == monitoringv1alpha1.ScheduleMissedReason && transition && h.Due != nil:
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
