package plugin

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
	"github.com/pushmon/pushmon/internal/testutil"
)

// TestKubectlPlugin builds the plugin with make plugin and runs it as users do,
// through the real kubectl with the binary on PATH. Its log (go test -v)
// is the sample output in docs/kubectl-plugin.md.
func TestKubectlPlugin(t *testing.T) {
	g := NewWithT(t)
	dir := t.TempDir()
	build := exec.Command("make", "-s", "plugin", "LOCALBIN="+dir)
	build.Dir = filepath.Join("..", "..")
	built, err := build.CombinedOutput()
	g.Expect(err).NotTo(HaveOccurred(), string(built))

	kubectl := func(args ...string) (string, error) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, suite.Kubectl, args...)
		cmd.Env = append(os.Environ(), "PATH="+dir+string(os.PathListSeparator)+os.Getenv("PATH"), "KUBECONFIG="+suite.Kubecfg)
		b, err := cmd.CombinedOutput()
		t.Logf("$ kubectl %s\n%s", strings.Join(args, " "), b)
		return string(b), err
	}

	// kubectl completes a plugin's arguments through kubectl_complete-<name>
	// (docs/kubectl-plugin.md).
	complete := filepath.Join(dir, "kubectl_complete-pushmon")
	g.Expect(os.WriteFile(complete, []byte("#!/bin/sh\nexec kubectl-pushmon __complete \"$@\"\n"), 0o755)).To(Succeed())

	plugins, err := kubectl("plugin", "list")
	g.Expect(err).NotTo(HaveOccurred(), plugins)
	g.Expect(plugins).To(ContainSubstring(filepath.Join(dir, "kubectl-pushmon")))

	// Fixed namespace names, so that the log reads as the docs' sample.
	for _, ns := range []string{"demo", "batch"} {
		g.Expect(suite.Client.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
	}
	backup, _ := newMonitor(t, "demo", "nightly-backup", monitoringv1alpha1.PushMonitorSpec{Schedule: "30 2 * * *", TimeZone: ptr.To("Europe/Berlin")})
	worker, _ := newMonitor(t, "demo", "queue-worker", monitoringv1alpha1.PushMonitorSpec{Timeout: testutil.Dur(90 * time.Second)})
	etl, _ := newMonitor(t, "batch", "etl", monitoringv1alpha1.PushMonitorSpec{Timeout: testutil.Dur(time.Hour)})
	_, _ = newMonitor(t, "batch", "report", monitoringv1alpha1.PushMonitorSpec{Timeout: testutil.Dur(25 * time.Hour)})

	out, err := kubectl("pushmon", "push", "queue-worker", "-n", "demo", "--msg", "42 jobs done")
	g.Expect(err).NotTo(HaveOccurred(), out)
	g.Expect(out).To(Equal(`push status=up sent to demo/queue-worker: 200 {"ok":true}` + "\n"))
	suite.ExpectState(t, worker, monitoringv1alpha1.StateUp, monitoringv1alpha1.HeartbeatReceivedReason, 10*time.Second)

	out, err = kubectl("pushmon", "ping", "nightly-backup", "start", "-n", "demo", "--rid", "run-1")
	g.Expect(err).NotTo(HaveOccurred(), out)
	g.Eventually(func(g Gomega) { g.Expect(get(g, backup).Status.OpenRuns).To(HaveLen(1)) }).Should(Succeed())
	out, err = kubectl("pushmon", "ping", "nightly-backup", "0", "-n", "demo", "--rid", "run-1")
	g.Expect(err).NotTo(HaveOccurred(), out)
	g.Eventually(func(g Gomega) {
		st := get(g, backup).Status
		g.Expect(st.State).To(Equal(monitoringv1alpha1.StateUp))
		g.Expect(st.LastRunDuration).NotTo(BeNil())
	}).Should(Succeed())

	out, err = kubectl("pushmon", "ping", "etl", "start", "-n", "batch")
	g.Expect(err).NotTo(HaveOccurred(), out)
	g.Eventually(func(g Gomega) { g.Expect(get(g, etl).Status.OpenRuns).To(HaveLen(1)) }).Should(Succeed())
	out, err = kubectl("pushmon", "ping", "etl", "2", "-n", "batch", "--msg", "upstream API timed out")
	g.Expect(err).NotTo(HaveOccurred(), out)
	suite.ExpectState(t, etl, monitoringv1alpha1.StateDown, monitoringv1alpha1.RunFailedReason, 10*time.Second)

	out, err = kubectl("__complete", "pushmon", "push", "-n", "demo", "q")
	g.Expect(err).NotTo(HaveOccurred(), out)
	// (kubectl's debug lines are on stderr, which out includes.)
	g.Expect(out).To(ContainSubstring("\nqueue-worker\tUp\n:4\n"))

	out, err = kubectl("pushmon", "status", "-n", "demo")
	g.Expect(err).NotTo(HaveOccurred(), out)
	g.Expect(row(out, "nightly-backup", "Up", "HeartbeatReceived")).To(ContainSubstring("succeeded in"))
	g.Expect(row(out, "queue-worker", "Up", "HeartbeatReceived")).NotTo(BeEmpty(), out)

	out, err = kubectl("pushmon", "status", "-A")
	g.Expect(err).NotTo(HaveOccurred(), out)
	g.Expect(row(out, "batch", "etl", "Down", "RunFailed")).To(ContainSubstring("failed (exit 2) in"))
	g.Expect(row(out, "batch", "report", "Pending")).NotTo(BeEmpty(), out)
	g.Expect(row(out, "demo", "queue-worker", "Up")).NotTo(BeEmpty(), out)

	out, err = kubectl("pushmon", "status", "-A", "-o", "wide")
	g.Expect(err).NotTo(HaveOccurred(), out)
	g.Expect(row(out, "batch", "etl")).To(ContainSubstring("upstream API timed out"))

	out, err = kubectl("pushmon", "history", "etl", "-n", "batch")
	g.Expect(err).NotTo(HaveOccurred(), out)
	g.Expect(out).To(ContainSubstring("RunFailed"))

	// A failure exits non-zero through kubectl too, with the one line.
	out, err = kubectl("pushmon", "status", "nope", "-n", "demo")
	var exit *exec.ExitError
	g.Expect(err).To(BeAssignableToTypeOf(exit))
	g.Expect(out).To(Equal(`error: pushmonitor "nope" not found in namespace "demo"` + "\n"))
}
