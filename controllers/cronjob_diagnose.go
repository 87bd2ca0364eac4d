package controllers

import (
	"context"
	"fmt"
	"sort"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// diagnose says why a Job failed, from its Failed condition and its Pods'
// container states, e.g. "job backup-29012345 failed: container backup
// OOMKilled (exit 137) after 2 retries", and the exit code if one is known.
func (r *PushMonitorReconciler) diagnose(ctx context.Context, j *batchv1.Job) (string, *int32, error) {
	what, code, err := r.jobPodProblem(ctx, j.Namespace, j.Name)
	if err != nil {
		return "", nil, err
	}
	return jobFailure(j, what), code, nil
}

// maxRunMessage caps a failed Job's diagnosis, as the push endpoint caps a
// client's message: it lands in status.lastMessage, the condition and the
// event.
const maxRunMessage = 1024

// jobFailure words why j failed, what being its Pods' problem if known.
func jobFailure(j *batchv1.Job, what string) string {
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
	return limitText(msg, maxRunMessage)
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
	if err := r.List(ctx, &pods, client.InNamespace(ns), client.MatchingLabels{batchv1.JobNameLabel: job}); err != nil {
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
