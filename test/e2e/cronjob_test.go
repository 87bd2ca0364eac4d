package e2e

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
	"github.com/pushmon/pushmon/internal/inject"
)

// cronJob is a CronJob whose pods opt in to injection for monitor and run
// the seed's script around work.
func cronJob(ns, name, monitor, work string, suspend bool) *batchv1.CronJob {
	return &batchv1.CronJob{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: batchv1.CronJobSpec{
			Schedule: "* * * * *",
			Suspend:  ptr.To(suspend),
			JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{
				BackoffLimit: ptr.To[int32](0),
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{monitoringv1alpha1.MonitorKey: monitor}},
					Spec: corev1.PodSpec{
						RestartPolicy: corev1.RestartPolicyNever,
						Containers:    []corev1.Container{{Name: "backup", Image: "curlimages/curl", Command: script(work)}},
					},
				},
			}},
		},
	}
}

// The whole path through real controllers: the CronJob controller creates
// a Job at the next minute, the Job controller its Pod, pushmon's webhook
// injects PUSH_URL; the test (playing the node) runs the pod's command,
// which posts to $PUSH_URL, and the monitor turns Up from that heartbeat.
func TestCronJobHeartbeatTurnsMonitorUp(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t, "cron-up")
	m, tok := createMonitor(t, ns, "nightly-backup", 10*time.Minute)
	g.Expect(getMonitor(g, m).Status.State).To(Equal(monitoringv1alpha1.StatePending))

	cj := cronJob(ns, "nightly-backup", m.Name, "true", false)
	g.Expect(k8sClient.Create(ctx, cj)).To(Succeed())

	// The CronJob controller starts a Job at the next minute boundary.
	var job batchv1.Job
	g.Eventually(func(g Gomega) {
		var jobs batchv1.JobList
		g.Expect(k8sClient.List(ctx, &jobs, client.InNamespace(ns))).To(Succeed())
		g.Expect(jobs.Items).NotTo(BeEmpty())
		job = jobs.Items[0]
		g.Expect(metav1.IsControlledBy(&job, cj)).To(BeTrue())
	}).WithTimeout(90 * time.Second).WithPolling(500 * time.Millisecond).Should(Succeed())
	// Stop further runs: one is what this test follows.
	g.Expect(k8sClient.Patch(ctx, cj, client.RawPatch("application/merge-patch+json", []byte(`{"spec":{"suspend":true}}`)))).To(Succeed())

	pod := podOf(t, ns, job.Name, 30*time.Second)
	env := envOf(pod.Spec.Containers[0])
	g.Expect(env[inject.EnvPushURL].ValueFrom).To(Equal(secretRef("nightly-backup-push", "url")))
	g.Expect(env[inject.EnvPushInterval].ValueFrom).To(Equal(secretRef("nightly-backup-push", "interval")))
	raw, _ := json.Marshal(pod)
	g.Expect(string(raw)).NotTo(ContainSubstring(tok))

	runPod(t, pod)
	got := expectState(t, m, monitoringv1alpha1.StateUp, monitoringv1alpha1.HeartbeatReceivedReason)
	g.Expect(got.Status.LastMessage).To(Equal("backup-completed"))
	g.Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(&job), &job)).To(Succeed())
		g.Expect(job.Status.Succeeded).To(Equal(int32(1)))
	}).WithTimeout(30 * time.Second).Should(Succeed())
}

// A failing run posts status=down, as the seed's cron example does: the
// monitor goes Down with DownReported and the Job fails. The Job is made
// from the CronJob with kubectl, as an operator would to run it now.
func TestFailingCronJobReportsDown(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t, "cron-down")
	m, _ := createMonitor(t, ns, "nightly-backup", 10*time.Minute)
	g.Expect(k8sClient.Create(ctx, cronJob(ns, "nightly-backup", m.Name, "false", true))).To(Succeed())

	out, err := runKubectl(ctx, "-n", ns, "create", "job", "run-now", "--from=cronjob/nightly-backup")
	g.Expect(err).NotTo(HaveOccurred(), out)
	pod := podOf(t, ns, "run-now", 30*time.Second)
	g.Expect(envOf(pod.Spec.Containers[0])).To(HaveKey(inject.EnvPushURL))

	runPod(t, pod)
	got := expectState(t, m, monitoringv1alpha1.StateDown, monitoringv1alpha1.DownReportedReason)
	g.Expect(got.Status.LastMessage).To(Equal("backup-failed"))
	g.Eventually(func(g Gomega) {
		var job batchv1.Job
		g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "run-now"}, &job)).To(Succeed())
		g.Expect(job.Status.Failed).To(Equal(int32(1)))
	}).WithTimeout(30 * time.Second).Should(Succeed())
}

// Without the webhook (a cluster that runs none), the plain Kubernetes way
// works the same: the pod reads PUSH_URL from the monitor's Secret itself.
func TestPlainSecretKeyRef(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t, "plain")
	m, _ := createMonitor(t, ns, "reports", 10*time.Minute)
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "reports"},
		Spec: batchv1.JobSpec{
			BackoffLimit: ptr.To[int32](0),
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
				RestartPolicy: corev1.RestartPolicyNever,
				Containers: []corev1.Container{{Name: "report", Image: "curlimages/curl", Command: script("true"),
					Env: []corev1.EnvVar{{Name: "PUSH_URL", ValueFrom: secretRef("reports-push", "url")}}}},
			}},
		},
	}
	g.Expect(k8sClient.Create(ctx, job)).To(Succeed())
	pod := podOf(t, ns, job.Name, 30*time.Second)
	g.Expect(pod.Spec.Containers[0].Env).To(HaveLen(1), "no injection without the annotation")
	runPod(t, pod)
	expectState(t, m, monitoringv1alpha1.StateUp, monitoringv1alpha1.HeartbeatReceivedReason)
}
