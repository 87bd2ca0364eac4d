package ha

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
	"github.com/pushmon/pushmon/internal/token"
)

const leaseName = "pushmon.monitoring.pushmon.dev"

// One suite-wide default that fits manager processes and a real API server
// under -race on two loaded cores (gomega's own: 1s), instead of a timeout
// on each call; a call that needs another bound says so. (init runs before
// TestMain and every test.)
func init() {
	SetDefaultEventuallyTimeout(10 * time.Second)
	SetDefaultConsistentlyDuration(time.Second)
}

func newNamespace(t *testing.T, name string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: name + "-"}}
	if err := k8sClient.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

func createMonitor(t *testing.T, ns, name string, timeout, grace time.Duration) (*monitoringv1alpha1.PushMonitor, string) {
	t.Helper()
	g := NewWithT(t)
	m := &monitoringv1alpha1.PushMonitor{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: monitoringv1alpha1.PushMonitorSpec{
			Timeout: &metav1.Duration{Duration: timeout}, GracePeriod: &metav1.Duration{Duration: grace},
		},
	}
	g.Expect(k8sClient.Create(context.Background(), m)).To(Succeed())
	var s corev1.Secret
	g.Eventually(func(g Gomega) {
		got := get(g, m)
		g.Expect(meta.IsStatusConditionTrue(got.Status.Conditions, monitoringv1alpha1.ReadyCondition)).To(BeTrue())
		g.Expect(k8sClient.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: got.Status.SecretName}, &s)).To(Succeed())
	}).WithTimeout(20 * time.Second).Should(Succeed())
	return m, string(s.Data[token.SecretKeyToken])
}

func get(g Gomega, m *monitoringv1alpha1.PushMonitor) *monitoringv1alpha1.PushMonitor {
	var got monitoringv1alpha1.PushMonitor
	g.Expect(k8sClient.Get(context.Background(), client.ObjectKeyFromObject(m), &got)).To(Succeed())
	return &got
}

func push(addr, tok, query string) (int, error) {
	resp, err := http.Post("http://"+addr+token.PushPathPrefix+tok+"?"+query, "", nil)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

func missedEvents(g Gomega, m *monitoringv1alpha1.PushMonitor) int {
	var list eventsv1.EventList
	g.Expect(k8sClient.List(context.Background(), &list, client.InNamespace(m.Namespace))).To(Succeed())
	n := 0
	for _, e := range list.Items {
		if e.Regarding.Name == m.Name && e.Reason == monitoringv1alpha1.HeartbeatMissedReason {
			n++
		}
	}
	return n
}

func leaseHolder(g Gomega) string {
	var l coordinationv1.Lease
	g.Expect(k8sClient.Get(context.Background(), client.ObjectKey{Namespace: "default", Name: leaseName}, &l)).To(Succeed())
	if l.Spec.HolderIdentity == nil {
		return ""
	}
	return *l.Spec.HolderIdentity
}

// leaseAcquired is when the current holder took the lease.
func leaseAcquired(g Gomega) time.Time {
	var l coordinationv1.Lease
	g.Expect(k8sClient.Get(context.Background(), client.ObjectKey{Namespace: "default", Name: leaseName}, &l)).To(Succeed())
	g.Expect(l.Spec.AcquireTime).NotTo(BeNil())
	return l.Spec.AcquireTime.Time
}

func waitForLeader(t *testing.T, replicas []*replica) *replica {
	t.Helper()
	var leader *replica
	NewWithT(t).Eventually(func() bool {
		for _, r := range replicas {
			if r.alive() && r.isLeader() {
				leader = r
				return true
			}
		}
		return false
	}).WithTimeout(30*time.Second).Should(BeTrue(), "a leader is elected")
	return leader
}

// pusher pushes every period, round robin over the live replicas, like a
// client behind the pushmon-push Service, and remembers the newest message
// answered 200.
type pusher struct {
	tok      string
	replicas []*replica
	stop     chan struct{}
	done     chan struct{}
	n        atomic.Int64
	mu       sync.Mutex
	lastOK   string
	failures atomic.Int64
}

func startPusher(tok string, replicas []*replica, period time.Duration) *pusher {
	p := &pusher{tok: tok, replicas: replicas, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		tick := time.NewTicker(period)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-p.stop:
				return
			case <-tick.C:
			}
			r := p.replicas[i%len(p.replicas)]
			if !r.alive() {
				continue // a Service would not route here
			}
			msg := fmt.Sprintf("beat-%d", p.n.Add(1))
			code, err := push(r.pushAddr, p.tok, "msg="+msg)
			if err == nil && code == 200 {
				p.mu.Lock()
				p.lastOK = msg
				p.mu.Unlock()
			} else {
				p.failures.Add(1)
			}
		}
	}()
	return p
}

func (p *pusher) halt() string {
	close(p.stop)
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lastOK
}

// TestLeaderFailover: three replicas ingest pushes; the leader is killed
// while pushes continue; another replica takes over with no false Down and
// no lost heartbeat, and still catches the real outage afterwards.
func TestLeaderFailover(t *testing.T) {
	g := NewWithT(t)
	replicas := []*replica{startReplica(t, "a", ""), startReplica(t, "b", ""), startReplica(t, "c", "")}
	leader := waitForLeader(t, replicas)
	holderBefore := leaseHolder(g)

	ns := newNamespace(t, "failover")
	// timeout 3s + grace 1s; the client pushes every 500ms (window = grace = 1s).
	m, tok := createMonitor(t, ns, "svc", 3*time.Second, time.Second)
	for _, r := range replicas { // every replica's cache knows the token
		firstPush(t, r, tok, "msg=ready")
	}
	p := startPusher(tok, replicas, 500*time.Millisecond)
	g.Eventually(func(g Gomega) {
		g.Expect(get(g, m).Status.State).To(Equal(monitoringv1alpha1.StateUp))
	}).Should(Succeed())

	leader.kill()
	t.Logf("killed leader %s", leader.name)
	// Through the takeover and well beyond timeout + grace: never Down.
	g.Consistently(func(g Gomega) {
		g.Expect(get(g, m).Status.State).To(Equal(monitoringv1alpha1.StateUp))
	}).WithTimeout(10 * time.Second).WithPolling(50 * time.Millisecond).Should(Succeed())
	var others []*replica
	for _, r := range replicas {
		if r != leader {
			others = append(others, r)
		}
	}
	newLeader := waitForLeader(t, others)
	g.Expect(leaseHolder(g)).NotTo(Equal(holderBefore))
	t.Logf("new leader %s", newLeader.name)
	// What the PushmonAbsent alert reads: controller-runtime's leader
	// gauge, 1 on the leader only.
	g.Eventually(func(g Gomega) {
		for _, r := range others {
			want := 0.0
			if r == newLeader {
				want = 1
			}
			g.Expect(leaderGauge(g, r)).To(Equal(want), "leader_election_master_status of %s", r.name)
		}
	}).Should(Succeed())

	last := p.halt()
	g.Expect(p.failures.Load()).To(BeZero(), "every push to a live replica was answered 200")
	g.Eventually(func(g Gomega) {
		g.Expect(get(g, m).Status.LastMessage).To(Equal(last), "the newest heartbeat answered 200 is stored")
	}).WithTimeout(5 * time.Second).Should(Succeed())
	g.Expect(missedEvents(g, m)).To(BeZero())

	// The real outage: the new leader declares Down one timeout + grace on.
	g.Eventually(func(g Gomega) {
		got := get(g, m)
		g.Expect(got.Status.State).To(Equal(monitoringv1alpha1.StateDown))
	}).Should(Succeed())
	g.Eventually(func(g Gomega) { g.Expect(missedEvents(g, m)).To(Equal(1)) }).Should(Succeed())
}

// TestAllReplicasStopped: every replica is down for longer than the
// timeout; replicas that come back declare no false Down, and catch the
// real outage one timeout + grace after they start.
func TestAllReplicasStopped(t *testing.T) {
	g := NewWithT(t)
	replicas := []*replica{startReplica(t, "d", ""), startReplica(t, "e", "")}
	waitForLeader(t, replicas)
	ns := newNamespace(t, "outage")
	const timeout, grace = 2 * time.Second, time.Second
	m, tok := createMonitor(t, ns, "job", timeout, grace)
	firstPush(t, replicas[0], tok, "msg=before")
	var deadline time.Time
	g.Eventually(func(g Gomega) {
		got := get(g, m)
		g.Expect(got.Status.State).To(Equal(monitoringv1alpha1.StateUp))
		deadline = got.Status.Deadline.Time
	}).Should(Succeed())

	for _, r := range replicas {
		r.kill()
	}
	time.Sleep(time.Until(deadline.Add(3 * time.Second))) // nobody watches past the deadline
	started := time.Now()
	replicas = []*replica{startReplica(t, "f", ""), startReplica(t, "g", "")}
	// No false Down on restart: held from the restart through timeout +
	// grace after it (a new leader anchors at when it began watching, which
	// is later still), not sampled once when the lease is taken, before the
	// new leader may have evaluated the monitor at all.
	waitForLeader(t, replicas)
	// The new leader begins watching once it holds the lease, so no Down is
	// due before its acquireTime + timeout + grace.
	acquired := leaseAcquired(g)
	g.Expect(acquired).To(BeTemporally(">=", started.Truncate(time.Microsecond)), "the lease is the new leader's")
	t.Logf("lease acquired %v after the restart", acquired.Sub(started).Round(time.Millisecond))
	g.Consistently(func(g Gomega) {
		g.Expect(get(g, m).Status.State).To(Equal(monitoringv1alpha1.StateUp), "no false Down on restart")
		g.Expect(missedEvents(g, m)).To(BeZero())
	}).WithTimeout(time.Until(acquired.Add(timeout + grace))).WithPolling(50 * time.Millisecond).Should(Succeed())
	// The real outage is still caught, one timeout + grace after the new
	// leader began watching.
	g.Eventually(func(g Gomega) {
		got := get(g, m)
		g.Expect(got.Status.State).To(Equal(monitoringv1alpha1.StateDown))
		g.Expect(got.Status.Deadline.Time).To(BeTemporally(">=", acquired.Add(timeout+grace)))
	}).WithTimeout(15 * time.Second).Should(Succeed())
	g.Eventually(func(g Gomega) { g.Expect(missedEvents(g, m)).To(Equal(1)) }).Should(Succeed())
	g.Consistently(func(g Gomega) { g.Expect(missedEvents(g, m)).To(Equal(1)) }).Should(Succeed(), "one event for the Down")
}

// TestAPIServerUnreachable: while the API server cannot be reached, a push
// whose heartbeat cannot be written is answered 503, never 200; once it is
// back, pushes are stored again and a held heartbeat is not lost.
func TestAPIServerUnreachable(t *testing.T) {
	g := NewWithT(t)
	apiURL, err := url.Parse(restCfg.Host)
	g.Expect(err).NotTo(HaveOccurred())
	px := newProxy(t, apiURL.Host)
	// The leader exits when it cannot renew its lease (controller-runtime
	// does so, so that two leaders never act at once; its pod restarts).
	// Standby replicas keep serving pushes: push to one of those.
	replicas := []*replica{startReplica(t, "proxied-1", px.addr), startReplica(t, "proxied-2", px.addr)}
	leader := waitForLeader(t, replicas)
	r := replicas[0]
	if r == leader {
		r = replicas[1]
	}
	ns := newNamespace(t, "apidown")
	// grace 0: window 0, every push is written before its answer.
	direct, directTok := createMonitor(t, ns, "direct", time.Hour, 0)
	// grace 6m: window 5s, pushes inside a window are held.
	held, heldTok := createMonitor(t, ns, "held", time.Hour, 6*time.Minute)
	for _, tok := range []string{directTok, heldTok} {
		firstPush(t, r, tok, "msg=before")
	}
	g.Eventually(func(g Gomega) {
		g.Expect(get(g, direct).Status.State).To(Equal(monitoringv1alpha1.StateUp))
		g.Expect(get(g, held).Status.State).To(Equal(monitoringv1alpha1.StateUp))
	}).Should(Succeed())
	// The first heartbeat of a Pending monitor goes to the leader, so r has
	// written none of held's yet: a push with a new message is written by r
	// itself and opens r's window, in which the next push is held.
	firstPush(t, r, heldTok, "msg=opens-window")
	g.Eventually(func(g Gomega) {
		g.Expect(get(g, held).Status.LastMessage).To(Equal("opens-window"))
	}).Should(Succeed())

	px.down()
	// A held push is answered 200 (it is kept and written later) ...
	code, err := push(r.pushAddr, heldTok, "msg=held-during-outage")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(code).To(Equal(200))
	// ... but one that must be written now gets 503, never 200.
	code, err = push(r.pushAddr, directTok, "msg=during-outage")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(code).To(Equal(http.StatusServiceUnavailable))
	// Once the held write has failed, the held monitor's pushes are
	// written directly, and answered 503 too.
	g.Eventually(func() int {
		code, _ := push(r.pushAddr, heldTok, "msg=held-during-outage")
		return code
	}).WithTimeout(15 * time.Second).Should(Equal(http.StatusServiceUnavailable))

	px.up(t)
	g.Eventually(func() int {
		code, _ := push(r.pushAddr, directTok, "msg=after")
		return code
	}).WithTimeout(30 * time.Second).Should(Equal(200))
	g.Eventually(func(g Gomega) {
		g.Expect(get(g, direct).Status.LastMessage).To(Equal("after"))
		g.Expect(get(g, held).Status.LastMessage).To(Equal("held-during-outage"), "the held heartbeat was written after the outage")
	}).WithTimeout(15 * time.Second).Should(Succeed())
	g.Expect(get(g, direct).Status.State).To(Equal(monitoringv1alpha1.StateUp))
}

// scrapeReplica reads r's metrics.
func scrapeReplica(g Gomega, r *replica) map[string]*dto.MetricFamily {
	resp, err := http.Get("http://" + r.metricsAddr + "/metrics")
	g.Expect(err).NotTo(HaveOccurred())
	defer resp.Body.Close()
	g.Expect(resp.StatusCode).To(Equal(http.StatusOK))
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(resp.Body)
	g.Expect(err).NotTo(HaveOccurred())
	return mfs
}

// leaderGauge scrapes r's leader_election_master_status for pushmon's
// Lease.
func leaderGauge(g Gomega, r *replica) float64 {
	for _, m := range scrapeReplica(g, r)["leader_election_master_status"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "name" && l.GetValue() == leaseName {
				return m.GetGauge().GetValue()
			}
		}
	}
	g.Expect(false).To(BeTrue(), "no leader_election_master_status{name=%q} on %s", leaseName, r.name)
	return 0
}
