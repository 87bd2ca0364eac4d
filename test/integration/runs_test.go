package integration

import (
	"context"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
	"github.com/pushmon/pushmon/internal/heartbeat"
)

// pingURL is the Healthchecks-style URL of a token.
func pingURL(tok string) string { return "http://" + pushAddr + "/ping/" + tok }

// sh runs a shell script as users write it, with URL set, and returns its
// output. The script's exit status is part of what is tested: a script that
// fails (curl -f on an answer other than 2xx, say) fails the test.
func sh(t *testing.T, url, script string) string {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-c", script)
	cmd.Env = append(cmd.Environ(), "URL="+url)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("script failed (%v):\n%s\noutput:\n%s", err, script, out)
	}
	return string(out)
}

// Healthchecks' documented one-liners and a start → command → exit status
// wrapper, with curl against the real manager.
func TestHealthchecksPings(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	m := monitor(ns, "backup", monitoringv1alpha1.PushMonitorSpec{Timeout: dur(time.Hour)})
	url := pingURL(createMonitor(t, m))

	// The plain success ping.
	sh(t, url, `curl -fsS -m 10 --retry 5 -o /dev/null "$URL"`)
	expectState(t, m, monitoringv1alpha1.StateUp, monitoringv1alpha1.HeartbeatReceivedReason, 10*time.Second)

	// The wrapper: start, the command, its exit status with the output as body.
	wrapper := `curl -fsS -m 10 --retry 5 -o /dev/null "$URL/start"
out=$(sh -c 'sleep 1; echo disk full; exit 3' 2>&1)
curl -fsS -m 10 --retry 5 -o /dev/null --data-raw "$out" "$URL/$?"`
	sh(t, url, wrapper)
	got := expectState(t, m, monitoringv1alpha1.StateDown, monitoringv1alpha1.RunFailedReason, 10*time.Second)
	g.Expect(*got.Status.LastExitCode).To(Equal(int32(3)))
	g.Expect(got.Status.LastRunDuration.Duration).To(BeNumerically(">=", time.Second))
	g.Expect(got.Status.OpenRuns).To(BeEmpty())
	g.Expect(meta.FindStatusCondition(got.Status.Conditions, monitoringv1alpha1.HealthyCondition).Message).
		To(Equal("the run failed with exit status 3: disk full"))
	out, err := runKubectl(t, "-n", ns, "get", "pm", "backup", "-o", "wide")
	g.Expect(err).NotTo(HaveOccurred(), out)
	g.Expect(out).To(MatchRegexp(`backup\s+Down\s+.*disk full\s+RunFailed\s+.*\s+1\.\d+s\s+3\n`))
	t.Logf("kubectl get pm -o wide after a failing run:\n%s", out)

	// A succeeding run recovers, with its duration; exit status 0 is a success.
	sh(t, url, strings.Replace(wrapper, "exit 3", "exit 0", 1))
	got = expectState(t, m, monitoringv1alpha1.StateUp, monitoringv1alpha1.RecoveredReason, 10*time.Second)
	g.Expect(*got.Status.LastExitCode).To(BeZero())

	// /log records a message and changes nothing else; /fail with a body.
	sh(t, url, `curl -fsS -m 10 --retry 5 -o /dev/null --data-raw "halfway" "$URL/log"`)
	g.Eventually(func(g Gomega) { g.Expect(getMonitor(g, m).Status.LastMessage).To(Equal("halfway")) }).Should(Succeed())
	g.Expect(getMonitor(g, m).Status.State).To(Equal(monitoringv1alpha1.StateUp))
	sh(t, url, `curl -fsS -m 10 -o /dev/null --data-raw "no space left" "$URL/fail"`)
	got = expectState(t, m, monitoringv1alpha1.StateDown, monitoringv1alpha1.RunFailedReason, 10*time.Second)
	g.Expect(got.Status.LastMessage).To(Equal("no space left"))

	// HEAD and GET work as in Healthchecks; answers are plain text.
	g.Expect(sh(t, url, `curl -sS -I "$URL" | head -1`)).To(ContainSubstring("200"))
	g.Expect(sh(t, url, `curl -sS "$URL/0"`)).To(Equal("OK"))
	g.Expect(sh(t, url, `curl -sS -w " %{http_code}" "$URL/256"`)).To(ContainSubstring("400"))
	g.Expect(sh(t, url, `curl -sS -w " %{http_code}" "$URL/now"`)).To(ContainSubstring("400"))
	g.Expect(sh(t, pingURL(strings.Repeat("x", 43)), `curl -sS -w " %{http_code}" "$URL"`)).To(Equal("not found 404"))

	// Healthchecks forms pushmon does not have: auto-provisioning is ignored
	// (a known token pings, an unknown one is 404), slug URLs are refused.
	g.Expect(sh(t, url, `curl -sS -w " %{http_code}" "$URL?create=1"`)).To(Equal("OK 200"))
	g.Expect(sh(t, pingURL(strings.Repeat("x", 43)), `curl -sS -w " %{http_code}" "$URL?create=1"`)).To(Equal("not found 404"))
	g.Expect(sh(t, url, `curl -sS -w " %{http_code}" "$URL/nightly-backup"`)).To(HavePrefix("unknown ping"))
}

// Overlapping runs are paired by rid; a start without an end turns the
// monitor Down once maxRunDuration has passed.
func TestRunsPairedAndTooLong(t *testing.T) {
	g := NewWithT(t)
	m := monitor(newNamespace(t), "reports", monitoringv1alpha1.PushMonitorSpec{Timeout: dur(time.Hour), MaxRunDuration: dur(3 * time.Second)})
	url := pingURL(createMonitor(t, m))
	sh(t, url, `curl -fsS -o /dev/null "$URL/start?rid=a" && curl -fsS -o /dev/null "$URL/start?rid=b"`)
	g.Eventually(func(g Gomega) { g.Expect(getMonitor(g, m).Status.OpenRuns).To(HaveLen(2)) }).Should(Succeed())
	sh(t, url, `sleep 1; curl -fsS -o /dev/null "$URL?rid=a"`)
	g.Eventually(func(g Gomega) {
		got := getMonitor(g, m)
		g.Expect(got.Status.OpenRuns).To(HaveLen(1))
		g.Expect(got.Status.OpenRuns[0].RunID).To(Equal("b"))
		g.Expect(got.Status.LastRunDuration.Duration).To(BeNumerically(">=", time.Second))
	}).Should(Succeed())
	got := expectState(t, m, monitoringv1alpha1.StateDown, monitoringv1alpha1.RunTooLongReason, 10*time.Second)
	g.Expect(meta.FindStatusCondition(got.Status.Conditions, monitoringv1alpha1.HealthyCondition).Message).
		To(MatchRegexp(`^run "b" started \d+s ago is still open \(maxRunDuration 3s\)$`))
	sh(t, url, `curl -fsS -o /dev/null "$URL/0?rid=b"`)
	expectState(t, m, monitoringv1alpha1.StateUp, monitoringv1alpha1.RecoveredReason, 10*time.Second)
}

// failureThreshold 2: the first failure leaves the monitor Up, the second
// turns it Down; recoveryThreshold 2: one success is not enough.
func TestFailureAndRecoveryThresholds(t *testing.T) {
	g := NewWithT(t)
	m := monitor(newNamespace(t), "flaky", monitoringv1alpha1.PushMonitorSpec{Timeout: dur(time.Hour), FailureThreshold: 2, RecoveryThreshold: 2})
	url := pingURL(createMonitor(t, m))
	sh(t, url, `curl -fsS -o /dev/null "$URL"`)
	expectState(t, m, monitoringv1alpha1.StateUp, monitoringv1alpha1.HeartbeatReceivedReason, 10*time.Second)

	sh(t, url, `curl -fsS -o /dev/null "$URL/1"`)
	g.Eventually(func(g Gomega) {
		got := getMonitor(g, m)
		g.Expect(got.Status.ConsecutiveFailures).To(Equal(int32(1)))
		g.Expect(meta.FindStatusCondition(got.Status.Conditions, monitoringv1alpha1.HealthyCondition).Message).
			To(Equal("the last run failed (1 of 2 failures in a row before Down)"))
	}).Should(Succeed())
	g.Expect(getMonitor(g, m).Status.State).To(Equal(monitoringv1alpha1.StateUp))

	sh(t, url, `curl -fsS -o /dev/null "$URL/255"`)
	expectState(t, m, monitoringv1alpha1.StateDown, monitoringv1alpha1.RunFailedReason, 10*time.Second)
	expectEvents(t, m, monitoringv1alpha1.RunFailedReason, 1)

	sh(t, url, `curl -fsS -o /dev/null "$URL"`)
	g.Eventually(func(g Gomega) {
		got := getMonitor(g, m)
		g.Expect(got.Status.ConsecutiveSuccesses).To(Equal(int32(1)))
		g.Expect(meta.FindStatusCondition(got.Status.Conditions, monitoringv1alpha1.HealthyCondition).Message).
			To(Equal("the run failed with exit status 255 (1 of 2 successes in a row to recover)"))
	}).Should(Succeed())
	g.Expect(getMonitor(g, m).Status.State).To(Equal(monitoringv1alpha1.StateDown))
	sh(t, url, `curl -fsS -o /dev/null "$URL"`)
	expectState(t, m, monitoringv1alpha1.StateUp, monitoringv1alpha1.RecoveredReason, 10*time.Second)
}

// TestRunSignalsUnderConflict: two run signals written at once from the same
// copy of a monitor (as two replicas, or two requests on one, read it from
// their caches): one write conflicts, is re-read and retried, and both are
// counted exactly once — both runs open, then both closed and both
// failures counted.
func TestRunSignalsUnderConflict(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	m := monitor(newNamespace(t), "parallel", monitoringv1alpha1.PushMonitorSpec{Timeout: dur(time.Hour), FailureThreshold: 3})
	createMonitor(t, m)

	// A client that counts the status writes refused with a conflict.
	var conflicts atomic.Int64
	base, err := client.NewWithWatch(restCfg, client.Options{Scheme: scheme})
	g.Expect(err).NotTo(HaveOccurred())
	c := interceptor.NewClient(base, interceptor.Funcs{
		SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
			err := c.SubResource(sub).Patch(ctx, obj, patch, opts...)
			if apierrors.IsConflict(err) {
				conflicts.Add(1)
			}
			return err
		},
	})
	w := &heartbeat.Writer{Client: c, Reader: k8sClient}

	// together writes the signals concurrently, all from one copy, and
	// returns how many writes conflicted.
	together := func(read *monitoringv1alpha1.PushMonitor, hbs ...heartbeat.Heartbeat) int64 {
		t.Helper()
		before := conflicts.Load()
		start := make(chan struct{})
		errs := make(chan error, len(hbs))
		for _, hb := range hbs {
			go func() {
				<-start
				errs <- w.Record(ctx, read, hb)
			}()
		}
		close(start)
		for range hbs {
			g.Expect(<-errs).To(Succeed())
		}
		return conflicts.Load() - before
	}
	rid := func(k heartbeat.Kind, id string) heartbeat.Heartbeat {
		return heartbeat.Heartbeat{Kind: k, RunID: id, Time: heartbeat.Now(), Status: monitoringv1alpha1.ReportedUp}
	}

	raced := together(getMonitor(g, m), rid(heartbeat.KindStart, "a"), rid(heartbeat.KindStart, "b"))
	got := getMonitor(g, m)
	g.Expect(got.Status.OpenRuns).To(HaveLen(2), "each start recorded once")
	g.Expect([]string{got.Status.OpenRuns[0].RunID, got.Status.OpenRuns[1].RunID}).To(ConsistOf("a", "b"), "each start recorded once")
	g.Expect(raced).To(BeNumerically(">", 0), "the writes raced: one was refused and retried")

	fail := func(id string) heartbeat.Heartbeat {
		hb := rid(heartbeat.KindFail, id)
		hb.Status, hb.Message = monitoringv1alpha1.ReportedDown, "failed "+id
		return hb
	}
	raced = together(got, fail("a"), fail("b"))
	got = getMonitor(g, m)
	g.Expect(got.Status.OpenRuns).To(BeEmpty(), "each run closed once")
	g.Expect(got.Status.ConsecutiveFailures).To(Equal(int32(2)), "each failure counted once")
	g.Expect(got.Status.LastReportedStatus).To(Equal(monitoringv1alpha1.ReportedFailed))
	g.Expect(raced).To(BeNumerically(">", 0), "the writes raced: one was refused and retried")
	// Below failureThreshold 3: still Up.
	g.Consistently(func(g Gomega) {
		got := getMonitor(g, m)
		g.Expect(got.Status.ConsecutiveFailures).To(Equal(int32(2)))
		g.Expect(got.Status.State).NotTo(Equal(monitoringv1alpha1.StateDown))
	}).WithPolling(50 * time.Millisecond).Should(Succeed())
}
