package e2e

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
)

// setPodStatus plays the kubelet reporting a pod's containers.
func setPodStatus(t *testing.T, pod *corev1.Pod, phase corev1.PodPhase, state corev1.ContainerState) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var cur corev1.Pod
		if err := k8sClient.Get(context.Background(), client.ObjectKeyFromObject(pod), &cur); err != nil {
			return err
		}
		cur.Status.Phase = phase
		cur.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: cur.Spec.Containers[0].Name, Image: cur.Spec.Containers[0].Image, State: state}}
		return k8sClient.Status().Update(context.Background(), &cur)
	})
	if err != nil {
		t.Fatalf("setting pod status: %v", err)
	}
}

func healthyMessage(g Gomega, m *monitoringv1alpha1.PushMonitor) string {
	c := meta.FindStatusCondition(getMonitor(g, m).Status.Conditions, monitoringv1alpha1.HealthyCondition)
	g.Expect(c).NotTo(BeNil())
	return c.Message
}

// A monitor following a CronJob (spec.cronJobRef) with no change to the
// CronJob's code: it waits for the CronJob, follows its suspend and time
// zone, counts a completed Job as an Up run with its duration, and says
// why a failed one failed (OOMKilled) or why a running one is stuck
// (ImagePullBackOff).
func TestCronJobRef(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t, "cronjobref")
	m := &monitoringv1alpha1.PushMonitor{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "backup"},
		Spec: monitoringv1alpha1.PushMonitorSpec{CronJobRef: &monitoringv1alpha1.CronJobReference{Name: "backup"},
			MaxRunDuration: &metav1.Duration{Duration: 3 * time.Second}},
	}
	g.Expect(k8sClient.Create(ctx, m)).To(Succeed())
	g.Eventually(func(g Gomega) {
		c := meta.FindStatusCondition(getMonitor(g, m).Status.Conditions, monitoringv1alpha1.ReadyCondition)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Reason).To(Equal(monitoringv1alpha1.CronJobNotFoundReason))
	}).Should(Succeed())

	berlin := "Europe/Berlin"
	cj := cronJob(ns, "backup", "", "true", true)
	cj.Spec.Schedule, cj.Spec.TimeZone = "30 2 * * *", &berlin
	// Nothing in the job knows pushmon: no annotation, no push.
	cj.Spec.JobTemplate.Spec.Template.Annotations = nil
	cj.Spec.JobTemplate.Spec.Template.Spec.Containers[0].Command = []string{"/bin/sh", "-c", "echo backup done"}
	g.Expect(k8sClient.Create(ctx, cj)).To(Succeed())
	expectState(t, m, monitoringv1alpha1.StateSuspended, monitoringv1alpha1.CronJobSuspendedReason)

	g.Expect(k8sClient.Patch(ctx, cj, client.RawPatch("application/merge-patch+json", []byte(`{"spec":{"suspend":false}}`)))).To(Succeed())
	got := expectState(t, m, monitoringv1alpha1.StatePending, monitoringv1alpha1.AwaitingFirstHeartbeatReason)
	g.Expect(got.Status.NextRunTime).NotTo(BeNil())
	loc, _ := time.LoadLocation(berlin)
	g.Expect(got.Status.NextRunTime.In(loc).Format("15:04")).To(Equal("02:30"))

	// A run that completes: Up, with the Job's duration.
	out, err := runKubectl(ctx, "-n", ns, "create", "job", "run-1", "--from=cronjob/backup")
	g.Expect(err).NotTo(HaveOccurred(), out)
	runPod(t, podOf(t, ns, "run-1", 30*time.Second))
	g.Eventually(func(g Gomega) {
		got := getMonitor(g, m)
		g.Expect(got.Status.LastRunJob).To(Equal("run-1"))
		g.Expect(got.Status.State).To(Equal(monitoringv1alpha1.StateUp))
		g.Expect(got.Status.LastRunDuration).NotTo(BeNil())
		g.Expect(got.Status.OpenRuns).To(BeEmpty())
	}).Should(Succeed())

	// A run whose container is OOMKilled: Down, and the message says so.
	out, err = runKubectl(ctx, "-n", ns, "create", "job", "run-2", "--from=cronjob/backup")
	g.Expect(err).NotTo(HaveOccurred(), out)
	setPodStatus(t, podOf(t, ns, "run-2", 30*time.Second), corev1.PodFailed, corev1.ContainerState{
		Terminated: &corev1.ContainerStateTerminated{ExitCode: 137, Reason: "OOMKilled", FinishedAt: metav1.Now()}})
	expectState(t, m, monitoringv1alpha1.StateDown, monitoringv1alpha1.RunFailedReason)
	g.Eventually(func(g Gomega) {
		g.Expect(healthyMessage(g, m)).To(Equal("job run-2 failed: container backup OOMKilled (exit 137)"))
	}).Should(Succeed())
	// Both Jobs are in the run history, by name, with their results.
	runs := getMonitor(g, m).Status.RecentRuns
	g.Expect(runs).To(HaveLen(2))
	g.Expect(runs[0].JobName).To(Equal("run-1"))
	g.Expect(runs[0].Result).To(Equal(monitoringv1alpha1.RunSucceeded))
	g.Expect(runs[0].Duration).NotTo(BeNil())
	g.Expect(runs[1].JobName).To(Equal("run-2"))
	g.Expect(runs[1].Result).To(Equal(monitoringv1alpha1.RunFailed))
	g.Expect(*runs[1].ExitCode).To(Equal(int32(137)))
	g.Expect(runs[1].Message).To(Equal("job run-2 failed: container backup OOMKilled (exit 137)"))
	out, err = runKubectl(ctx, "-n", ns, "get", "pm", "-o", "wide")
	g.Expect(err).NotTo(HaveOccurred(), out)
	g.Expect(out).To(MatchRegexp(`backup\s+Down\s+.*OOMKilled \(exit 137\)\s+RunFailed`))
	t.Logf("kubectl get pm -o wide after an OOMKilled run:\n%s", out)

	// A run stuck pulling its image: Down once maxRunDuration passes, naming
	// the cause.
	out, err = runKubectl(ctx, "-n", ns, "create", "job", "run-3", "--from=cronjob/backup")
	g.Expect(err).NotTo(HaveOccurred(), out)
	setPodStatus(t, podOf(t, ns, "run-3", 30*time.Second), corev1.PodPending, corev1.ContainerState{
		Waiting: &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff", Message: "Back-off pulling image"}})
	expectState(t, m, monitoringv1alpha1.StateDown, monitoringv1alpha1.RunTooLongReason)
	g.Eventually(func(g Gomega) {
		g.Expect(healthyMessage(g, m)).To(MatchRegexp(`^run "run-3" started \d+s ago is still open \(maxRunDuration 3s\): container backup ImagePullBackOff$`))
	}).Should(Succeed())
}

// One annotation on an existing CronJob watches it: pushmon creates a
// PushMonitor that follows it, owned by it, and removes it when the
// annotation goes; an existing monitor of the same name is left alone.
func TestCronJobAnnotationOptIn(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t, "optin")
	cj := cronJob(ns, "reports", "", "true", true)
	g.Expect(k8sClient.Create(ctx, cj)).To(Succeed())
	out, err := runKubectl(ctx, "-n", ns, "annotate", "cronjob", "reports", "monitoring.pushmon.dev/monitor=auto")
	g.Expect(err).NotTo(HaveOccurred(), out)

	m := &monitoringv1alpha1.PushMonitor{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "reports"}}
	g.Eventually(func(g Gomega) {
		got := getMonitor(g, m)
		g.Expect(got.Spec.CronJobRef).NotTo(BeNil())
		g.Expect(got.Spec.CronJobRef.Name).To(Equal("reports"))
		g.Expect(metav1.IsControlledBy(got, cj)).To(BeTrue())
	}).Should(Succeed())
	expectState(t, m, monitoringv1alpha1.StateSuspended, monitoringv1alpha1.CronJobSuspendedReason)

	g.Expect(k8sClient.Patch(ctx, cj, client.RawPatch("application/merge-patch+json",
		[]byte(`{"metadata":{"annotations":{"monitoring.pushmon.dev/monitor":null}}}`)))).To(Succeed())
	g.Eventually(func() bool {
		return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(m), &monitoringv1alpha1.PushMonitor{}))
	}).Should(BeTrue())

	// A monitor of that name that pushmon did not create is left alone.
	own := &monitoringv1alpha1.PushMonitor{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "reports"},
		Spec: monitoringv1alpha1.PushMonitorSpec{Timeout: &metav1.Duration{Duration: time.Hour}}}
	g.Expect(k8sClient.Create(ctx, own)).To(Succeed())
	g.Expect(k8sClient.Patch(ctx, cj, client.RawPatch("application/merge-patch+json",
		[]byte(`{"metadata":{"annotations":{"monitoring.pushmon.dev/monitor":"auto"}}}`)))).To(Succeed())
	g.Eventually(func(g Gomega) {
		var list eventsv1.EventList
		g.Expect(k8sClient.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
		found := false
		for _, e := range list.Items {
			found = found || e.Reason == "PushMonitorNameTaken" && e.Regarding.Name == "reports"
		}
		g.Expect(found).To(BeTrue())
	}).Should(Succeed())
	got := &monitoringv1alpha1.PushMonitor{}
	g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(own), got)).To(Succeed())
	g.Expect(got.Spec.CronJobRef).To(BeNil())
	g.Expect(got.OwnerReferences).To(BeEmpty())
}

// A CronJob whose run is stuck under concurrencyPolicy Forbid makes no run
// at the next scheduled time: ScheduleMissed, naming the Job it waits for.
// (The Job made by hand counts as a run for pushmon but not as active for
// the CronJob controller, which starts its own at the next minute; that one
// gets stuck too and blocks the minute after: up to two minutes.)
func TestCronJobForbidStuckIsScheduleMissed(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t, "forbid")
	cj := cronJob(ns, "sync", "", "true", true)
	cj.Spec.ConcurrencyPolicy = "Forbid"
	cj.Spec.JobTemplate.Spec.Template.Annotations = nil
	g.Expect(k8sClient.Create(ctx, cj)).To(Succeed())
	m := &monitoringv1alpha1.PushMonitor{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "sync"},
		Spec: monitoringv1alpha1.PushMonitorSpec{CronJobRef: &monitoringv1alpha1.CronJobReference{Name: "sync"},
			GracePeriod: &metav1.Duration{Duration: 5 * time.Second}},
	}
	g.Expect(k8sClient.Create(ctx, m)).To(Succeed())
	// A run that never ends (its pod never runs), then the schedule resumes.
	out, err := runKubectl(ctx, "-n", ns, "create", "job", "stuck", "--from=cronjob/sync")
	g.Expect(err).NotTo(HaveOccurred(), out)
	podOf(t, ns, "stuck", 30*time.Second)
	g.Expect(k8sClient.Patch(ctx, cj, client.RawPatch("application/merge-patch+json", []byte(`{"spec":{"suspend":false}}`)))).To(Succeed())

	g.Eventually(func(g Gomega) {
		got := getMonitor(g, m)
		g.Expect(got.Status.State).To(Equal(monitoringv1alpha1.StateDown))
		c := meta.FindStatusCondition(got.Status.Conditions, monitoringv1alpha1.HealthyCondition)
		g.Expect(c.Reason).To(Equal(monitoringv1alpha1.ScheduleMissedReason))
		g.Expect(c.Message).To(MatchRegexp(`; concurrencyPolicy Forbid: Job sync-\d+ has been running since \S+Z$`))
	}).WithTimeout(150 * time.Second).WithPolling(time.Second).Should(Succeed())
}

// A Job that uses up its backoffLimit: the message counts the retries; and
// deleting an opted-in CronJob deletes its monitor (garbage collector).
func TestCronJobBackoffLimitAndDeletion(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t, "backoff")
	cj := cronJob(ns, "import", "", "true", true)
	cj.Spec.JobTemplate.Spec.BackoffLimit = ptr.To[int32](1)
	cj.Spec.JobTemplate.Spec.Template.Annotations = nil
	cj.Annotations = map[string]string{"monitoring.pushmon.dev/monitor": "auto"}
	g.Expect(k8sClient.Create(ctx, cj)).To(Succeed())
	m := &monitoringv1alpha1.PushMonitor{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "import"}}
	g.Eventually(func(g Gomega) { getMonitor(g, m) }).Should(Succeed())

	out, err := runKubectl(ctx, "-n", ns, "create", "job", "import-now", "--from=cronjob/import")
	g.Expect(err).NotTo(HaveOccurred(), out)
	failed := corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1, Reason: "Error", FinishedAt: metav1.Now()}}
	first := podOf(t, ns, "import-now", 30*time.Second)
	setPodStatus(t, first, corev1.PodFailed, failed)
	// The Job controller retries (after its back-off) with a second pod.
	var second corev1.Pod
	g.Eventually(func(g Gomega) {
		var pods corev1.PodList
		g.Expect(k8sClient.List(ctx, &pods, client.InNamespace(ns), client.MatchingLabels{"batch.kubernetes.io/job-name": "import-now"})).To(Succeed())
		g.Expect(pods.Items).To(HaveLen(2))
		for _, p := range pods.Items {
			if p.Name != first.Name {
				second = p
			}
		}
	}).WithTimeout(60 * time.Second).WithPolling(500 * time.Millisecond).Should(Succeed())
	setPodStatus(t, &second, corev1.PodFailed, failed)
	g.Eventually(func(g Gomega) {
		got := getMonitor(g, m)
		g.Expect(got.Status.State).To(Equal(monitoringv1alpha1.StateSuspended), "the CronJob is suspended")
		g.Expect(got.Status.LastRunJob).To(Equal("import-now"))
		g.Expect(got.Status.LastMessage).To(Equal("job import-now failed: container backup Error (exit 1) after 1 retry"))
	}).WithTimeout(30 * time.Second).Should(Succeed())

	g.Expect(k8sClient.Delete(ctx, cj, client.PropagationPolicy(metav1.DeletePropagationBackground))).To(Succeed())
	g.Eventually(func() bool {
		return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(m), &monitoringv1alpha1.PushMonitor{}))
	}).WithTimeout(60 * time.Second).Should(BeTrue())
}
