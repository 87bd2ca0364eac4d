package ha

import (
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
	"github.com/pushmon/pushmon/internal/metrics"
	"github.com/pushmon/pushmon/internal/testutil"
)

// relayed is what r's pushmon_heartbeats_relayed_total says for result.
func relayed(g Gomega, r *replica, result string) float64 {
	mfs := scrapeReplica(g, r)
	for _, s := range mfs[metrics.RelayedName].GetMetric() {
		for _, l := range s.GetLabel() {
			if l.GetName() == "result" && l.GetValue() == result {
				return s.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// TestRelayAcrossReplicas: a client pushing "alive" to the replica that does
// not lead has its heartbeats held by the leader (relayed over HTTP), so they
// cost no status write but one refresh per --status-refresh; the monitor
// stays Up on them. When the leader is killed, the other replica falls back
// to writing and then leads: no false Down through the takeover, and the
// real outage is caught afterwards.
func TestRelayAcrossReplicas(t *testing.T) {
	g := NewWithT(t)
	refresh := "--status-refresh=3s"
	replicas := []*replica{startReplica(t, "a", "", refresh), startReplica(t, "b", "", refresh)}
	leader := waitForLeader(t, replicas)
	follower := replicas[0]
	if follower == leader {
		follower = replicas[1]
	}

	ns := newNamespace(t, "relay")
	// timeout 2s + grace 1s; the client pushes every 600ms.
	m, tok := createMonitor(t, ns, "steady", 2*time.Second, time.Second)
	firstPush(t, follower, tok, "msg=ok")
	g.Eventually(func(g Gomega) {
		g.Expect(get(g, m).Status.State).To(Equal(monitoringv1alpha1.StateUp))
	}).Should(Succeed())
	// The follower relays once it read the leader's address (polled every
	// second) and the leader's cache shows the monitor Up.
	held := relayed(g, follower, "held")
	g.Eventually(func(g Gomega) {
		mustPush(t, follower, tok, "msg=ok")
		g.Expect(relayed(g, follower, "held")).To(BeNumerically(">", held))
	}).WithPolling(600 * time.Millisecond).Should(Succeed())

	writes := testutil.CountWrites(t, restCfg, scheme, m.Namespace, m.Name)
	before := get(g, m).Status.LastHeartbeatTime.Time
	stop := make(chan struct{})
	pushed := make(chan struct{})
	var failures atomic.Int64
	go func() {
		defer close(pushed)
		for {
			select {
			case <-stop:
				return
			case <-time.After(600 * time.Millisecond): // within the default 2/s per token
			}
			if code, err := push(follower.pushAddr, tok, "msg=ok"); err != nil || code != 200 {
				failures.Add(1)
				t.Logf("push to %s at %s: %d %v", follower.name, time.Now().Format("15:04:05.000"), code, err)
			}
		}
	}()
	// 8s: well past timeout + grace of any one stored heartbeat.
	g.Consistently(func(g Gomega) {
		g.Expect(get(g, m).Status.State).To(Equal(monitoringv1alpha1.StateUp))
	}).WithTimeout(8 * time.Second).WithPolling(100 * time.Millisecond).Should(Succeed())
	n := writes.Load()
	t.Logf("%d writes in 8s of pushes every 600ms (status refresh 3s)", n)
	g.Expect(n).To(BeNumerically(">=", 1), "refreshed")
	g.Expect(n).To(BeNumerically("<=", 4), "about one write per refresh, not one per push or window")
	g.Expect(get(g, m).Status.LastHeartbeatTime.Time).To(BeTemporally(">", before.Add(2*time.Second)), "the refresh stores a newer heartbeat")

	// The leader dies: the follower's relay fails, it writes instead, then
	// leads and holds the beats itself.
	leader.kill()
	t.Logf("killed leader %s", leader.name)
	g.Consistently(func(g Gomega) {
		g.Expect(get(g, m).Status.State).To(Equal(monitoringv1alpha1.StateUp))
	}).WithTimeout(8 * time.Second).WithPolling(50 * time.Millisecond).Should(Succeed())
	g.Expect(waitForLeader(t, []*replica{follower})).To(Equal(follower))
	close(stop)
	<-pushed
	g.Expect(failures.Load()).To(BeZero(), "every push was answered 200")
	g.Expect(missedEvents(g, m)).To(BeZero())

	g.Eventually(func(g Gomega) {
		g.Expect(get(g, m).Status.State).To(Equal(monitoringv1alpha1.StateDown))
	}).WithTimeout(10 * time.Second).Should(Succeed())
	g.Eventually(func(g Gomega) { g.Expect(missedEvents(g, m)).To(Equal(1)) }).Should(Succeed())
}
