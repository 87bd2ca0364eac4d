package e2e

import (
	"bufio"
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
	"github.com/pushmon/pushmon/internal/testutil"
	"github.com/pushmon/pushmon/internal/token"
)

func newNamespace(t *testing.T, prefix string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-"}}
	if err := k8sClient.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

// createMonitor creates a monitor and waits until its token is issued; it
// returns the token (for asserting that it appears nowhere it must not).
func createMonitor(t *testing.T, ns, name string, timeout time.Duration) (*monitoringv1alpha1.PushMonitor, string) {
	t.Helper()
	g := NewWithT(t)
	m := &monitoringv1alpha1.PushMonitor{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       monitoringv1alpha1.PushMonitorSpec{Timeout: &metav1.Duration{Duration: timeout}},
	}
	g.Expect(k8sClient.Create(context.Background(), m)).To(Succeed())
	var s corev1.Secret
	g.Eventually(func(g Gomega) {
		got := getMonitor(g, m)
		g.Expect(meta.IsStatusConditionTrue(got.Status.Conditions, monitoringv1alpha1.ReadyCondition)).To(BeTrue())
		g.Expect(k8sClient.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: got.Status.SecretName}, &s)).To(Succeed())
	}).Should(Succeed())
	return m, string(s.Data[token.SecretKeyToken])
}

func getMonitor(g Gomega, m *monitoringv1alpha1.PushMonitor) *monitoringv1alpha1.PushMonitor {
	var got monitoringv1alpha1.PushMonitor
	g.Expect(k8sClient.Get(context.Background(), client.ObjectKeyFromObject(m), &got)).To(Succeed())
	return &got
}

// expectState waits until the monitor shows state with the Healthy reason.
func expectState(t *testing.T, m *monitoringv1alpha1.PushMonitor, state monitoringv1alpha1.MonitorState, reason string) *monitoringv1alpha1.PushMonitor {
	t.Helper()
	var got *monitoringv1alpha1.PushMonitor
	NewWithT(t).Eventually(func(g Gomega) {
		got = getMonitor(g, m)
		g.Expect(got.Status.State).To(Equal(state))
		c := meta.FindStatusCondition(got.Status.Conditions, monitoringv1alpha1.HealthyCondition)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Reason).To(Equal(reason))
	}).Should(Succeed())
	return got
}

// script is the seed's cron example in a pod's command: the work (a shell
// command standing in for ./run-backup.sh), then an up or down push to the
// injected $PUSH_URL.
func script(work string) []string {
	return []string{"/bin/sh", "-c", `if ` + work + `; then
  curl -fsS -X POST "$PUSH_URL?status=up&msg=backup-completed"
else
  curl -fsS -X POST "$PUSH_URL?status=down&msg=backup-failed"
  exit 1
fi`}
}

// runPod plays the node for pod (no kubelet runs here; see
// testutil.RunPod).
func runPod(t *testing.T, pod *corev1.Pod) {
	t.Helper()
	out, err := testutil.RunPod(context.Background(), k8sClient, pod)
	t.Logf("pod %s ran: %s", pod.Name, out)
	if err != nil {
		t.Fatalf("running pod %s: %v", pod.Name, err)
	}
}

// podOf waits for the pod the Job controller creates for a Job.
func podOf(t *testing.T, ns, job string, within time.Duration) *corev1.Pod {
	t.Helper()
	var pod corev1.Pod
	NewWithT(t).Eventually(func(g Gomega) {
		var pods corev1.PodList
		g.Expect(k8sClient.List(context.Background(), &pods, client.InNamespace(ns),
			client.MatchingLabels{"batch.kubernetes.io/job-name": job})).To(Succeed())
		g.Expect(pods.Items).To(HaveLen(1))
		pod = pods.Items[0]
	}).WithTimeout(within).WithPolling(200 * time.Millisecond).Should(Succeed())
	return &pod
}

// envOf returns a container's env by name.
func envOf(c corev1.Container) map[string]corev1.EnvVar {
	out := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		out[e.Name] = e
	}
	return out
}

// warnings lists the Warning events about an object with reason.
func warnings(g Gomega, ns, kind, name, reason string) []eventsv1.Event {
	var list eventsv1.EventList
	g.Expect(k8sClient.List(context.Background(), &list, client.InNamespace(ns))).To(Succeed())
	var out []eventsv1.Event
	for _, e := range list.Items {
		if e.Regarding.Kind == kind && e.Regarding.Name == name && e.Reason == reason && e.Type == corev1.EventTypeWarning {
			out = append(out, e)
		}
	}
	return out
}

// webhookCalls is how many admission requests pushmon's Pod webhook has
// answered, from controller-runtime's metrics on the manager.
func webhookCalls(t *testing.T) int {
	t.Helper()
	resp, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	n := 0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "controller_runtime_webhook_requests_total{") && strings.Contains(line, `webhook="/mutate-v1-pod"`) {
			f := strings.Fields(line)
			v, err := strconv.ParseFloat(f[len(f)-1], 64)
			if err != nil {
				t.Fatal(err)
			}
			n += int(v)
		}
	}
	return n
}
