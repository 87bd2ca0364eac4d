package main

import (
	"context"
	"fmt"
	"maps"
	"os"
	"sync/atomic"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
)

// The CronJob memory run: CronJobs in a few namespaces, each followed by a
// monitor, Jobs owned by them as the CronJob controller makes them, and a
// Pod for some Jobs. No controllers or kubelet run: the bench writes the
// Jobs' status itself, and the Pods stay Pending.
const (
	cronNamespaces = 10
	cronLabel      = "pushmon-bench/phase"
)

func cronJobPhase(ctx context.Context, c client.WithWatch, cfg *rest.Config, mgrs []*replica) error {
	nCron, nJobs := *cronJobs, *jobs
	fmt.Fprintf(os.Stderr, "CronJob run: %d CronJobs, %d Jobs, %d namespaces\n", nCron, nJobs, cronNamespaces)
	memBefore := memory(mgrs)
	before := apiRequests(ctx, cfg)
	start := time.Now()
	nss := make([]string, min(cronNamespaces, nCron))
	for i := range nss {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "cron-"}}
		if err := c.Create(ctx, ns); err != nil {
			return err
		}
		nss[i] = ns.Name
	}
	// CronJob i is in namespace i % len(nss); its Jobs are i, i+nCron, ...
	// (run k of CronJob i is Job i + k*nCron), an hour apart, the newest an
	// hour ago at most.
	cjs := make([]*batchv1.CronJob, nCron)
	if err := parallel(nCron, 32, func(i int) error {
		cj := benchCronJob(nss[i%len(nss)], i)
		if err := c.Create(ctx, cj); err != nil {
			return fmt.Errorf("creating CronJob %d: %w", i, err)
		}
		cjs[i] = cj
		return nil
	}); err != nil {
		return err
	}
	runs := func(i int) int { // Jobs of CronJob i
		n := nJobs / nCron
		if i < nJobs%nCron {
			n++
		}
		return n
	}
	hour := time.Now().Truncate(time.Hour)
	var active, pods atomic.Int64
	if err := parallel(nJobs, 32, func(j int) error {
		i, k := j%nCron, j/nCron
		cj := cjs[i]
		scheduled := hour.Add(-time.Duration(runs(i)-k) * time.Hour).Add(time.Duration(i%60) * time.Minute)
		// Every fifth CronJob's newest run is still running, with a Pending
		// Pod; the other runs completed.
		running := k == runs(i)-1 && i%5 == 0
		job := benchJob(cj, scheduled)
		if err := c.Create(ctx, job); err != nil {
			return fmt.Errorf("creating Job %s/%s: %w", job.Namespace, job.Name, err)
		}
		started := metav1.NewTime(scheduled.Add(time.Duration(1+j%5) * time.Second))
		job.Status = batchv1.JobStatus{StartTime: &started, Ready: ptr.To[int32](0), Terminating: ptr.To[int32](0)}
		if running {
			job.Status.Active = 1
			active.Add(1)
		} else {
			done := metav1.NewTime(started.Add(time.Duration(20+j%100) * time.Second))
			job.Status.Succeeded = 1
			job.Status.CompletionTime = &done
			job.Status.Conditions = []batchv1.JobCondition{
				{Type: batchv1.JobSuccessCriteriaMet, Status: corev1.ConditionTrue, Reason: batchv1.JobReasonCompletionsReached,
					Message: "Reached expected number of succeeded pods", LastProbeTime: done, LastTransitionTime: done},
				{Type: batchv1.JobComplete, Status: corev1.ConditionTrue, Reason: batchv1.JobReasonCompletionsReached,
					Message: "Reached expected number of succeeded pods", LastProbeTime: done, LastTransitionTime: done},
			}
		}
		if err := c.Status().Update(ctx, job); err != nil {
			return fmt.Errorf("writing the status of Job %s/%s: %w", job.Namespace, job.Name, err)
		}
		// A Pod for every running Job and for every tenth Job.
		if running || j%10 == 0 {
			if err := c.Create(ctx, benchPod(job)); err != nil {
				return fmt.Errorf("creating a Pod of Job %s/%s: %w", job.Namespace, job.Name, err)
			}
			pods.Add(1)
		}
		return nil
	}); err != nil {
		return err
	}
	created := time.Since(start)
	fmt.Fprintf(os.Stderr, "  created %d CronJobs, %d Jobs (%d running), %d Pods in %v\n",
		nCron, nJobs, active.Load(), pods.Load(), created.Round(100*time.Millisecond))

	// A monitor follows each CronJob; waited for until every one is Ready
	// and, where its CronJob has a completed Job, has counted it as a run.
	monStart := time.Now()
	if err := parallel(nCron, 32, func(i int) error {
		m := &monitoringv1alpha1.PushMonitor{
			ObjectMeta: metav1.ObjectMeta{Namespace: cjs[i].Namespace, Name: cjs[i].Name, Labels: map[string]string{cronLabel: "cron"}},
			Spec: monitoringv1alpha1.PushMonitorSpec{CronJobRef: &monitoringv1alpha1.CronJobReference{Name: cjs[i].Name},
				GracePeriod: &metav1.Duration{Duration: 15 * time.Minute}},
		}
		return c.Create(ctx, m)
	}); err != nil {
		return err
	}
	wantRun := map[string]bool{} // namespace/name of monitors whose CronJob has a completed Job
	for i, cj := range cjs {
		if runs(i) > 1 || (runs(i) == 1 && i%5 != 0) {
			wantRun[cj.Namespace+"/"+cj.Name] = true
		}
	}
	followed := func(m *monitoringv1alpha1.PushMonitor) bool {
		return meta.IsStatusConditionTrue(m.Status.Conditions, monitoringv1alpha1.ReadyCondition) &&
			(!wantRun[m.Namespace+"/"+m.Name] || m.Status.LastRunJob != "")
	}
	if err := waitMonitors(ctx, c, nCron, 10*time.Minute, followed, client.MatchingLabels{cronLabel: "cron"}); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "  %d monitors following them: created to all Ready with runs counted in %v\n",
		nCron, time.Since(monStart).Round(100*time.Millisecond))
	time.Sleep(5 * time.Second) // settle
	printRequests("the CronJob run", before, apiRequests(ctx, cfg), 100)
	fmt.Fprintf(os.Stderr, "  CronJob run took %v in all (creating, Ready, 5s settling)\n", time.Since(start).Round(100*time.Millisecond))
	report(fmt.Sprintf("manager memory with %d CronJobs + %d Jobs (+ %d Job Pods, %d monitors following the CronJobs, the monitors above) (target RSS <= 300MB)",
		nCron, nJobs, pods.Load(), nCron), "%s (before this step: %s)", memory(mgrs), memBefore)
	return nil
}

// benchPodSpec is a small, realistic pod spec of a batch job.
func benchPodSpec(name string) corev1.PodSpec {
	return corev1.PodSpec{
		RestartPolicy: corev1.RestartPolicyOnFailure,
		Containers: []corev1.Container{{
			Name:    name,
			Image:   "registry.example.com/ops/" + name + ":1.8.3",
			Command: []string{"/bin/sh", "-c"},
			Args:    []string{"/app/run --target=s3://backups/" + name + " --retain=14d && curl -fsS -X POST \"$PUSH_URL?status=up\""},
			Env: []corev1.EnvVar{
				{Name: "LOG_LEVEL", Value: "info"},
				{Name: "TARGET_BUCKET", Value: "backups"},
				{Name: "PUSH_URL", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
					LocalObjectReference: corev1.LocalObjectReference{Name: name + "-push"}, Key: "url"}}},
			},
			Resources: corev1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("128Mi")},
				Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("256Mi")},
			},
			VolumeMounts: []corev1.VolumeMount{{Name: "scratch", MountPath: "/scratch"}},
		}},
		Volumes: []corev1.Volume{{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
	}
}

func benchCronJob(ns string, i int) *batchv1.CronJob {
	name := fmt.Sprintf("job%04d", i)
	return &batchv1.CronJob{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"app": name}},
		Spec: batchv1.CronJobSpec{
			Schedule:          fmt.Sprintf("%d * * * *", i%60),
			Suspend:           ptr.To(true), // nothing runs them; the monitors are Suspended
			ConcurrencyPolicy: batchv1.ForbidConcurrent,
			JobTemplate: batchv1.JobTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}},
				Spec: batchv1.JobSpec{
					BackoffLimit: ptr.To[int32](2),
					Template: corev1.PodTemplateSpec{
						ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}},
						Spec:       benchPodSpec(name),
					},
				},
			},
		},
	}
}

// benchJob is the Job cj's controller would make for the scheduled time.
func benchJob(cj *batchv1.CronJob, scheduled time.Time) *batchv1.Job {
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{
			Namespace:   cj.Namespace,
			Name:        fmt.Sprintf("%s-%d", cj.Name, scheduled.Unix()/60),
			Labels:      cj.Spec.JobTemplate.Labels,
			Annotations: map[string]string{"batch.kubernetes.io/cronjob-scheduled-timestamp": scheduled.UTC().Format(time.RFC3339)},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "batch/v1", Kind: "CronJob", Name: cj.Name, UID: cj.UID,
				Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true)}},
		},
		Spec: *cj.Spec.JobTemplate.Spec.DeepCopy(),
	}
}

// benchPod is a Pod of job as the Job controller makes it (no node, no
// kubelet: it stays Pending).
func benchPod(job *batchv1.Job) *corev1.Pod {
	labels := map[string]string{"batch.kubernetes.io/job-name": job.Name}
	maps.Copy(labels, job.Spec.Template.Labels) // with the job-name and controller-uid labels the API server added
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: job.Namespace,
			Name:      job.Name + "-" + string(job.UID)[:5],
			Labels:    labels,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "batch/v1", Kind: "Job", Name: job.Name, UID: job.UID,
				Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true)}},
		},
		Spec: *job.Spec.Template.Spec.DeepCopy(),
	}
}
