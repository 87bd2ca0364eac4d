package integration

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
	"github.com/pushmon/pushmon/internal/heartbeat"
)

// TestHeartbeatLifecycle walks one monitor through every transition:
// Pending → Up → Down (HeartbeatMissed) → Up (Recovered) → Down
// (DownReported) → Up (Recovered), one event per transition.
func TestHeartbeatLifecycle(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	m := monitor(ns, "lifecycle", monitoringv1alpha1.PushMonitorSpec{Timeout: dur(2 * time.Second), GracePeriod: dur(500 * time.Millisecond)})
	tok := createMonitor(t, m)

	mustPush(t, tok, "msg=first&value=42.5")
	got := expectState(t, m, monitoringv1alpha1.StateUp, monitoringv1alpha1.HeartbeatReceivedReason, 5*time.Second)
	g.Expect(got.Status.LastMessage).To(Equal("first"))
	g.Expect(got.Status.LastValue).To(Equal("42.5"))
	g.Expect(got.Status.LastReportedStatus).To(Equal(monitoringv1alpha1.ReportedUp))
	g.Expect(got.Status.LastHeartbeatTime).NotTo(BeNil())
	g.Expect(got.Status.Deadline).NotTo(BeNil())
	g.Expect(got.Status.Deadline.Time).To(Equal(got.Status.LastHeartbeatTime.Add(2500 * time.Millisecond)))
	healthy := meta.FindStatusCondition(got.Status.Conditions, monitoringv1alpha1.HealthyCondition)
	g.Expect(healthy.Status).To(Equal(metav1.ConditionTrue))

	// Silence: Down at the deadline, promptly.
	deadline := got.Status.Deadline.Time
	got = expectState(t, m, monitoringv1alpha1.StateDown, monitoringv1alpha1.HeartbeatMissedReason, 10*time.Second)
	delay := time.Since(deadline)
	t.Logf("Down observed %v after the deadline (10ms polling of the API)", delay.Round(time.Millisecond))
	g.Expect(delay).To(BeNumerically("<", time.Second), "Down visible within a second of the deadline")
	healthy = meta.FindStatusCondition(got.Status.Conditions, monitoringv1alpha1.HealthyCondition)
	g.Expect(healthy.Status).To(Equal(metav1.ConditionFalse))
	g.Expect(healthy.Message).To(MatchRegexp(`^no heartbeat for \d+s \(timeout 2s, grace 500ms\)$`))
	ev := expectEvents(t, m, monitoringv1alpha1.HeartbeatMissedReason, 1)
	g.Expect(ev[0].Type).To(Equal(corev1.EventTypeWarning))
	g.Expect(ev[0].Note).To(ContainSubstring("no heartbeat for"))
	// One event per transition, not one per tick.
	g.Consistently(func(g Gomega) {
		g.Expect(occurrences(events(g, m, monitoringv1alpha1.HeartbeatMissedReason))).To(Equal(1))
		g.Expect(getMonitor(g, m).Status.State).To(Equal(monitoringv1alpha1.StateDown))
	}).WithTimeout(1500 * time.Millisecond).Should(Succeed())

	mustPush(t, tok, "msg=back")
	expectState(t, m, monitoringv1alpha1.StateUp, monitoringv1alpha1.RecoveredReason, 5*time.Second)
	ev = expectEvents(t, m, monitoringv1alpha1.RecoveredReason, 1)
	g.Expect(ev[0].Type).To(Equal(corev1.EventTypeNormal))

	// A down push flips it at once, with the client's message.
	mustPush(t, tok, "status=down&msg=backup-failed")
	got = expectState(t, m, monitoringv1alpha1.StateDown, monitoringv1alpha1.DownReportedReason, time.Second)
	healthy = meta.FindStatusCondition(got.Status.Conditions, monitoringv1alpha1.HealthyCondition)
	g.Expect(healthy.Message).To(ContainSubstring("backup-failed"))
	ev = expectEvents(t, m, monitoringv1alpha1.DownReportedReason, 1)
	g.Expect(ev[0].Type).To(Equal(corev1.EventTypeWarning))
	g.Expect(ev[0].Note).To(ContainSubstring("backup-failed"))
	out, err := runKubectl(t, "get", "pm", "-n", ns, "-o", "wide")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(out).To(MatchRegexp(`lifecycle\s+Down\s.*backup-failed`))

	// A reported Down does not time out into HeartbeatMissed: it waits for
	// an up push.
	g.Consistently(func(g Gomega) {
		c := meta.FindStatusCondition(getMonitor(g, m).Status.Conditions, monitoringv1alpha1.HealthyCondition)
		g.Expect(c.Reason).To(Equal(monitoringv1alpha1.DownReportedReason))
	}).WithTimeout(3 * time.Second).Should(Succeed())

	mustPush(t, tok, "status=up&msg=fixed")
	expectState(t, m, monitoringv1alpha1.StateUp, monitoringv1alpha1.RecoveredReason, time.Second)
	expectEvents(t, m, monitoringv1alpha1.RecoveredReason, 2)
	expectEvents(t, m, monitoringv1alpha1.HeartbeatMissedReason, 1)
	expectEvents(t, m, monitoringv1alpha1.DownReportedReason, 1)
	assertTokenNowhere(t, tok, getMonitor(g, m))
}

// TestPushBeforeDeadlineKeepsUp: a client pushing every timeout (interval ==
// timeout) never flaps, thanks to the grace period, and a push just before
// the deadline moves it.
func TestPushBeforeDeadlineKeepsUp(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	m := monitor(ns, "steady", monitoringv1alpha1.PushMonitorSpec{Timeout: dur(time.Second), Interval: dur(time.Second)})
	tok := createMonitor(t, m)
	mustPush(t, tok, "")
	expectState(t, m, monitoringv1alpha1.StateUp, monitoringv1alpha1.HeartbeatReceivedReason, 5*time.Second)

	stop := make(chan struct{})
	pusherDone := make(chan struct{})
	go func() { // a client with interval == timeout
		defer close(pusherDone)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				mustPush(t, tok, "")
			}
		}
	}()
	g.Consistently(func(g Gomega) {
		g.Expect(getMonitor(g, m).Status.State).To(Equal(monitoringv1alpha1.StateUp))
	}).WithTimeout(6 * time.Second).WithPolling(20 * time.Millisecond).Should(Succeed())
	close(stop)
	<-pusherDone

	// A push 300ms before the deadline keeps it Up past the old deadline.
	got := getMonitor(g, m)
	oldDeadline := got.Status.Deadline.Time
	waitUntil(oldDeadline.Add(-300 * time.Millisecond))
	mustPush(t, tok, "msg=just-in-time")
	// Watched continuously across the old deadline, not sampled once after it.
	g.Consistently(func(g Gomega) {
		got := getMonitor(g, m)
		g.Expect(got.Status.State).To(Equal(monitoringv1alpha1.StateUp))
		g.Expect(events(g, m, monitoringv1alpha1.HeartbeatMissedReason)).To(BeEmpty())
	}).WithTimeout(time.Until(oldDeadline.Add(500 * time.Millisecond))).WithPolling(20 * time.Millisecond).Should(Succeed())
	g.Expect(getMonitor(g, m).Status.LastMessage).To(Equal("just-in-time"))
}

// TestRestartSafety: an operator stopped for longer than a timeout comes
// back without a false Down, then declares Down one timeout + grace later;
// a Down it did not see stays Down.
func TestRestartSafety(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	m := monitor(ns, "restart", monitoringv1alpha1.PushMonitorSpec{Timeout: dur(2 * time.Second), GracePeriod: dur(time.Second)})
	tok := createMonitor(t, m)
	mustPush(t, tok, "")
	got := expectState(t, m, monitoringv1alpha1.StateUp, monitoringv1alpha1.HeartbeatReceivedReason, 5*time.Second)

	stopManager()
	waitUntil(got.Status.Deadline.Add(2 * time.Second)) // well past the deadline while no operator runs
	restarted := time.Now()
	g.Expect(startManager()).To(Succeed())

	g.Consistently(func(g Gomega) {
		g.Expect(getMonitor(g, m).Status.State).To(Equal(monitoringv1alpha1.StateUp))
	}).WithTimeout(2 * time.Second).WithPolling(20 * time.Millisecond).Should(Succeed())
	got = expectState(t, m, monitoringv1alpha1.StateDown, monitoringv1alpha1.HeartbeatMissedReason, 5*time.Second)
	g.Expect(got.Status.Deadline.Time).To(BeTemporally(">=", restarted.Add(3*time.Second)), "anchored at the restart")
	expectEvents(t, m, monitoringv1alpha1.HeartbeatMissedReason, 1)

	// Restart again while Down: it stays Down, no false Recovered.
	stopManager()
	g.Expect(startManager()).To(Succeed())
	g.Consistently(func(g Gomega) {
		g.Expect(getMonitor(g, m).Status.State).To(Equal(monitoringv1alpha1.StateDown))
		g.Expect(events(g, m, monitoringv1alpha1.RecoveredReason)).To(BeEmpty())
	}).WithTimeout(4 * time.Second).WithPolling(50 * time.Millisecond).Should(Succeed())
	expectEvents(t, m, monitoringv1alpha1.HeartbeatMissedReason, 1)

	mustPush(t, tok, "")
	expectState(t, m, monitoringv1alpha1.StateUp, monitoringv1alpha1.RecoveredReason, 5*time.Second)
}

// TestPushAnswers checks every answer of the push endpoint against the real
// server.
func TestPushAnswers(t *testing.T) {
	ns := newNamespace(t)
	// gracePeriod 0 makes the heartbeat window 0: every push to it once Up
	// is written before its answer, so each case can read it back at once.
	m := monitor(ns, "answers", monitoringv1alpha1.PushMonitorSpec{Timeout: dur(time.Hour), GracePeriod: dur(0)})
	tok := createMonitor(t, m)
	otherNs := newNamespace(t)
	// Also window 0, so that the answer for its token does not depend on how
	// soon the manager's cache sees the deletion: a push looked up in a
	// cache that still holds the monitor is written at once, and the write
	// finds no monitor (404), as a lookup in a cache without it does.
	deleted := monitor(otherNs, "deleted", monitoringv1alpha1.PushMonitorSpec{GracePeriod: dur(0)})
	deletedTok := createMonitor(t, deleted)
	NewWithT(t).Expect(k8sClient.Delete(context.Background(), deleted)).To(Succeed())

	// The first push ends Pending: the leader holds it and writes it with
	// the transition to Up, a moment after the 200. Every case below then
	// pushes to a monitor Up in the manager's cache too (one it still saw
	// Pending would be handed to the leader as well).
	g := NewWithT(t)
	mustPush(t, tok, "msg=first")
	g.Eventually(func(g Gomega) {
		got := getMonitor(g, m)
		g.Expect(got.Status.State).To(Equal(monitoringv1alpha1.StateUp))
		g.Expect(got.Status.LastMessage).To(Equal("first"))
	}).Should(Succeed())
	g.Eventually(func(g Gomega) {
		var cached monitoringv1alpha1.PushMonitor
		g.Expect(suite.Cache().Get(context.Background(), client.ObjectKeyFromObject(m), &cached)).To(Succeed())
		g.Expect(cached.Status.State).To(Equal(monitoringv1alpha1.StateUp))
	}).Should(Succeed())

	long := strings.Repeat("é", 1000) // 2000 bytes
	cases := []struct {
		name, method, tok, query string
		body                     string
		code                     int
		bodyHas                  string
		lastMessage, lastValue   *string
	}{
		{"POST without parameters", "POST", tok, "", "", 200, `{"ok":true}`, strp(""), strp("")},
		{"GET works too", "GET", tok, "msg=get", "", 200, `{"ok":true}`, strp("get"), nil},
		{"status up explicit", "POST", tok, "status=up&msg=ok&value=3", "", 200, `{"ok":true}`, strp("ok"), strp("3")},
		{"ping is value's alias", "POST", tok, "ping=12.5", "", 200, `{"ok":true}`, nil, strp("12.5")},
		{"empty ping as Uptime Kuma sends it", "GET", tok, "status=up&msg=OK&ping=", "", 200, `{"ok":true}`, strp("OK"), strp("")},
		{"value wins over ping", "POST", tok, "value=1&ping=2", "", 200, `{"ok":true}`, nil, strp("1")},
		{"long msg is truncated, not refused", "POST", tok, "msg=" + long, "", 200, `{"ok":true}`, strp(strings.Repeat("é", 512)), nil},
		{"small body is fine", "POST", tok, "", "hello", 200, `{"ok":true}`, nil, nil},
		{"unknown status", "POST", tok, "status=sideways", "", 400, `invalid status \"sideways\": must be up or down`, nil, nil},
		{"non-numeric value", "POST", tok, "value=abc", "", 400, `invalid value \"abc\": must be a finite number`, nil, nil},
		{"non-numeric ping", "POST", tok, "ping=fast", "", 400, `invalid ping \"fast\"`, nil, nil},
		{"NaN value", "POST", tok, "value=NaN", "", 400, "must be a finite number", nil, nil},
		{"malformed query", "POST", tok, "msg=%zz", "", 400, "malformed query string", nil, nil},
		{"unknown token", "POST", strings.Repeat("A", 43), "", "", 404, `{"ok":false,"msg":"unknown push token"}`, nil, nil},
		{"malformed token", "POST", "nope", "", "", 404, `{"ok":false,"msg":"unknown push token"}`, nil, nil},
		{"token of a deleted monitor", "POST", deletedTok, "", "", 404, `{"ok":false,"msg":"unknown push token"}`, nil, nil},
		{"PUT", "PUT", tok, "", "", 405, "method not allowed", nil, nil},
		{"DELETE", "DELETE", tok, "", "", 405, "method not allowed", nil, nil},
		{"body over the cap", "POST", tok, "", strings.Repeat("x", 17<<10), 413, "request body larger than", nil, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			var before metav1.MicroTime
			if s := getMonitor(g, m).Status.LastHeartbeatTime; s != nil {
				before = *s
			}
			// One request, one answer: every case's answer is deterministic.
			code, body := doPush(t, tc.method, tc.tok, tc.query, tc.body)
			g.Expect(code).To(Equal(tc.code), body)
			g.Expect(body).To(ContainSubstring(tc.bodyHas))
			if tc.code != 200 {
				g.Expect(getMonitor(g, m).Status.LastHeartbeatTime).To(Or(BeNil(), Equal(&before)), "a refused push records nothing")
				return
			}
			// 200 means stored: read it back right away.
			got := getMonitor(g, m)
			g.Expect(got.Status.LastHeartbeatTime.After(before.Time)).To(BeTrue())
			if tc.lastMessage != nil {
				g.Expect(got.Status.LastMessage).To(Equal(*tc.lastMessage))
			}
			if tc.lastValue != nil {
				g.Expect(got.Status.LastValue).To(Equal(*tc.lastValue))
			}
		})
	}
	NewWithT(t).Expect(logs.String()).NotTo(ContainSubstring(tok))
}

// TestConcurrentPushes: many clients at once, every push answered 200 and
// recorded, no race.
func TestConcurrentPushes(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	m := monitor(ns, "busy", monitoringv1alpha1.PushMonitorSpec{Timeout: dur(time.Minute)})
	tok := createMonitor(t, m)
	const clients, each = 20, 10
	var wg sync.WaitGroup
	codes := make(chan int, clients*each)
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				code, _ := doPush(t, "POST", tok, fmt.Sprintf("msg=c%d-%d&value=%d", c, i, i), "")
				codes <- code
			}
		}()
	}
	wg.Wait()
	close(codes)
	for code := range codes {
		g.Expect(code).To(Equal(http.StatusOK))
	}
	got := expectState(t, m, monitoringv1alpha1.StateUp, monitoringv1alpha1.HeartbeatReceivedReason, 5*time.Second)
	g.Expect(got.Status.LastMessage).To(MatchRegexp(`^c\d+-\d+$`))
	g.Expect(got.Status.LastValue).To(MatchRegexp(`^\d$`))
}

func strp(s string) *string { return &s }

// TestHeartbeatNotWrittenIntoReplacedMonitor: a heartbeat looked up for a
// monitor that was deleted and re-created under the same name is refused.
func TestHeartbeatNotWrittenIntoReplacedMonitor(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	m := monitor(ns, "phoenix", monitoringv1alpha1.PushMonitorSpec{})
	createMonitor(t, m)
	stale := getMonitor(g, m)
	stale.UID = "00000000-0000-0000-0000-000000000000"
	w := &heartbeat.Writer{Client: k8sClient}
	err := w.Record(context.Background(), stale, heartbeat.Heartbeat{Time: heartbeat.Now(), Status: monitoringv1alpha1.ReportedUp, Message: "stale"})
	g.Expect(err).To(MatchError(heartbeat.ErrMonitorReplaced))
	g.Expect(getMonitor(g, m).Status.LastHeartbeatTime).To(BeNil())

	fresh := getMonitor(g, m)
	g.Expect(w.Record(context.Background(), fresh, heartbeat.Heartbeat{Time: heartbeat.Now(), Status: monitoringv1alpha1.ReportedUp, Message: "fresh"})).To(Succeed())
	g.Expect(getMonitor(g, m).Status.LastMessage).To(Equal("fresh"))
}
