package integration

import (
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
	"github.com/pushmon/pushmon/internal/metrics"
	"github.com/pushmon/pushmon/internal/testutil"
)

// TestAliveHeartbeatsCostNoWrites: pushes that repeat what status says (an
// up push with the stored message) are held by the leader in memory: no
// status write for them, yet they keep the monitor Up far past timeout +
// grace of the stored heartbeat; when they stop, the monitor goes Down one
// timeout + grace after the last of them, and that Down stores the last one.
func TestAliveHeartbeatsCostNoWrites(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	// timeout 2s + grace 1s; the client pushes every 200ms for 5s.
	m := monitor(ns, "steady", monitoringv1alpha1.PushMonitorSpec{Timeout: dur(2 * time.Second), GracePeriod: dur(time.Second)})
	tok := createMonitor(t, m)
	mustPush(t, tok, "msg=ok")
	expectState(t, m, monitoringv1alpha1.StateUp, monitoringv1alpha1.HeartbeatReceivedReason, 5*time.Second)
	first := getMonitor(g, m).Status.LastHeartbeatTime.Time
	g.Eventually(func(g Gomega) { // the reconciler's write for the first push is in
		g.Expect(getMonitor(g, m).Status.Deadline.Time).To(Equal(first.Add(3 * time.Second)))
	}).Should(Succeed())

	mfs, _ := scrape(g)
	held := value(mfs, metrics.RelayedName, map[string]string{"result": "held"})
	writes := testutil.CountWrites(t, restCfg, scheme, ns, "")
	var lastPush time.Time
	for start := time.Now(); time.Since(start) < 5*time.Second; time.Sleep(200 * time.Millisecond) {
		mustPush(t, tok, "msg=ok")
		lastPush = time.Now()
		g.Expect(getMonitor(g, m).Status.State).To(Equal(monitoringv1alpha1.StateUp), "Up on the held heartbeats")
	}
	g.Expect(writes.Load()).To(BeZero(), "no status write for heartbeats that only say alive")
	mfs, _ = scrape(g)
	g.Expect(value(mfs, metrics.RelayedName, map[string]string{"result": "held"}) - held).To(BeNumerically(">=", 20))
	// The metrics show the newest heartbeat, though status does not yet.
	g.Eventually(func(g Gomega) {
		mfs, _ := scrape(g)
		last := value(mfs, metrics.MonitorLastHeartbeatName, map[string]string{"namespace": ns, "name": m.Name})
		g.Expect(last).To(BeNumerically(">", float64(first.Add(4*time.Second).UnixMicro())/1e6))
	}).Should(Succeed())

	got := expectState(t, m, monitoringv1alpha1.StateDown, monitoringv1alpha1.HeartbeatMissedReason, 10*time.Second)
	g.Expect(got.Status.LastHeartbeatTime.Time).To(BeTemporally("~", lastPush, 300*time.Millisecond), "the Down stores the newest heartbeat")
	g.Expect(got.Status.Deadline.Time).To(Equal(got.Status.LastHeartbeatTime.Add(3 * time.Second)))
	expectEvents(t, m, monitoringv1alpha1.HeartbeatMissedReason, 1)
}

// TestStateEndingHeartbeatIsWrittenWithItsTransition: the first push to a
// Pending monitor, and the next push to a monitor Down for silence, are held
// by the leader like alive heartbeats and written with the transition they
// bring, at once: one status write each (the transition, carrying the push's
// message and value), not one by the replica that took the push and one by
// the leader.
func TestStateEndingHeartbeatIsWrittenWithItsTransition(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	m := monitor(ns, "ending", monitoringv1alpha1.PushMonitorSpec{Timeout: dur(2 * time.Second), GracePeriod: dur(time.Second)})
	tok := createMonitor(t, m)
	expectState(t, m, monitoringv1alpha1.StatePending, monitoringv1alpha1.AwaitingFirstHeartbeatReason, 5*time.Second)
	settled := func() { // the writes of the token's issue are in
		t.Helper()
		rv := ""
		g.Eventually(func() bool {
			cur := getMonitor(g, m).ResourceVersion
			same := cur == rv
			rv = cur
			return same
		}).WithPolling(300*time.Millisecond).Should(BeTrue(), "no more writes")
	}
	settled()

	writes := testutil.CountWrites(t, restCfg, scheme, ns, m.Name)
	mustPush(t, tok, "msg=first&value=1")
	got := expectState(t, m, monitoringv1alpha1.StateUp, monitoringv1alpha1.HeartbeatReceivedReason, 2*time.Second)
	g.Expect(got.Status.LastMessage).To(Equal("first"))
	g.Expect(got.Status.LastValue).To(Equal("1"))
	g.Expect(got.Status.LastReportedStatus).To(Equal(monitoringv1alpha1.ReportedUp))
	g.Expect(got.Status.Deadline.Time).To(Equal(got.Status.LastHeartbeatTime.Add(3 * time.Second)))
	oneWrite(g, writes)

	expectState(t, m, monitoringv1alpha1.StateDown, monitoringv1alpha1.HeartbeatMissedReason, 10*time.Second)
	settled()
	writes = testutil.CountWrites(t, restCfg, scheme, ns, m.Name)
	mustPush(t, tok, "msg=back")
	got = expectState(t, m, monitoringv1alpha1.StateUp, monitoringv1alpha1.RecoveredReason, 2*time.Second)
	g.Expect(got.Status.LastMessage).To(Equal("back"))
	g.Expect(got.Status.LastValue).To(BeEmpty())
	oneWrite(g, writes)
	ev := expectEvents(t, m, monitoringv1alpha1.RecoveredReason, 1)
	g.Expect(ev[0].Note).To(MatchRegexp(`^heartbeats arrive again after \d+s Down: back$`))
}

// oneWrite waits for the watch to report the transition's write and then
// holds that it was the only one.
func oneWrite(g Gomega, writes *atomic.Int64) {
	g.Eventually(writes.Load).Should(Equal(int64(1)), "the transition's write")
	g.Consistently(writes.Load).WithTimeout(500*time.Millisecond).Should(Equal(int64(1)), "one write: the transition, carrying the heartbeat")
}

// TestHeartbeatThatSaysMoreIsWritten: a push with a new message is written
// as before (coalesced), not held: status shows what the client said.
func TestHeartbeatThatSaysMoreIsWritten(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	m := monitor(ns, "talkative", monitoringv1alpha1.PushMonitorSpec{Timeout: dur(time.Minute)})
	tok := createMonitor(t, m)
	mustPush(t, tok, "msg=ok")
	expectState(t, m, monitoringv1alpha1.StateUp, monitoringv1alpha1.HeartbeatReceivedReason, 5*time.Second)
	mustPush(t, tok, "msg=ok")
	mustPush(t, tok, "msg=backup+42GB+done&value=42")
	g.Eventually(func(g Gomega) {
		got := getMonitor(g, m)
		g.Expect(got.Status.LastMessage).To(Equal("backup 42GB done"))
		g.Expect(got.Status.LastValue).To(Equal("42"))
	}).WithTimeout(10 * time.Second).Should(Succeed())
}
