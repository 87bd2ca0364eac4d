package ha

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	coordinationv1 "k8s.io/api/coordination/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
)

func mustPush(t *testing.T, r *replica, tok, query string) {
	t.Helper()
	code, err := push(r.pushAddr, tok, query)
	if err != nil || code != 200 {
		t.Fatalf("push %q to %s: %d %v", query, r.name, code, err)
	}
}

// firstPush sends a monitor's first push to r until it is answered 200: the
// monitor is Ready in the API a moment before r's cache knows its token, and
// a 404 records nothing.
func firstPush(t *testing.T, r *replica, tok, query string) {
	t.Helper()
	NewWithT(t).Eventually(func() (int, error) { return push(r.pushAddr, tok, query) }).
		WithPolling(20*time.Millisecond).Should(Equal(200), "first push to %s", r.name)
}

func eventCount(g Gomega, m *monitoringv1alpha1.PushMonitor, reason string) int {
	var list eventsv1.EventList
	g.Expect(k8sClient.List(context.Background(), &list, client.InNamespace(m.Namespace))).To(Succeed())
	n := 0
	for _, e := range list.Items {
		if e.Regarding.Name == m.Name && e.Reason == reason {
			n++
			if e.Series != nil {
				n += int(e.Series.Count) - 1
			}
		}
	}
	return n
}

func healthReason(m *monitoringv1alpha1.PushMonitor) string {
	if c := meta.FindStatusCondition(m.Status.Conditions, monitoringv1alpha1.HealthyCondition); c != nil {
		return c.Reason
	}
	return ""
}

// TestReportOrderAcrossReplicas: a heartbeat one replica holds inside its
// window is never written over a newer report another replica stored. Two
// real manager processes; both orders (a held up push must not undo a down
// report, a held down push must not undo the recovery).
func TestReportOrderAcrossReplicas(t *testing.T) {
	// Without the relay: a push right after the first can reach a replica
	// whose cache still shows the monitor Pending, which hands it to the
	// leader (written at once) instead of holding it; this test is about
	// what a replica holds (the relay's order: relay_test.go).
	noRelay := "--disable-heartbeat-relay"
	replicas := []*replica{startReplica(t, "order-a", "", noRelay), startReplica(t, "order-b", "", noRelay)}
	waitForLeader(t, replicas)
	a, b := replicas[0], replicas[1]
	ns := newNamespace(t, "order")
	// grace 6m: window 5s (the default), so A holds a second push.
	const window = 5 * time.Second

	t.Run("held up push, then down through the other replica", func(t *testing.T) {
		g := NewWithT(t)
		m, tok := createMonitor(t, ns, "up-then-down", time.Hour, 6*time.Minute)
		firstPush(t, a, tok, "msg=first")
		g.Eventually(func(g Gomega) {
			got := get(g, m)
			g.Expect(got.Status.State).To(Equal(monitoringv1alpha1.StateUp))
			g.Expect(got.Status.LastMessage).To(Equal("first"))
		}).Should(Succeed())
		mustPush(t, a, tok, "msg=still-fine") // held by A for the rest of its window
		g.Expect(get(g, m).Status.LastMessage).To(Equal("first"), "A holds the second push")
		mustPush(t, b, tok, "status=down&msg=disk-full")
		g.Eventually(func(g Gomega) {
			got := get(g, m)
			g.Expect(got.Status.State).To(Equal(monitoringv1alpha1.StateDown))
			g.Expect(healthReason(got)).To(Equal(monitoringv1alpha1.DownReportedReason))
		}).Should(Succeed())
		// Past A's window: its flush must not bring back the older up push.
		g.Consistently(func(g Gomega) {
			got := get(g, m)
			g.Expect(got.Status.State).To(Equal(monitoringv1alpha1.StateDown))
			g.Expect(got.Status.LastMessage).To(Equal("disk-full"))
			g.Expect(eventCount(g, m, monitoringv1alpha1.RecoveredReason)).To(BeZero())
		}).WithTimeout(window + 3*time.Second).WithPolling(100 * time.Millisecond).Should(Succeed())
	})

	t.Run("held down push, then up through the other replica", func(t *testing.T) {
		g := NewWithT(t)
		m, tok := createMonitor(t, ns, "down-then-up", time.Hour, 6*time.Minute)
		firstPush(t, a, tok, "status=down&msg=broken-1")
		g.Eventually(func(g Gomega) {
			got := get(g, m)
			g.Expect(got.Status.State).To(Equal(monitoringv1alpha1.StateDown))
			g.Expect(healthReason(got)).To(Equal(monitoringv1alpha1.DownReportedReason))
		}).Should(Succeed())
		mustPush(t, a, tok, "status=down&msg=broken-2") // same status: held by A
		g.Expect(get(g, m).Status.LastMessage).To(Equal("broken-1"), "A holds the second push")
		mustPush(t, b, tok, "msg=fixed")
		g.Eventually(func(g Gomega) {
			got := get(g, m)
			g.Expect(got.Status.State).To(Equal(monitoringv1alpha1.StateUp))
			g.Expect(healthReason(got)).To(Equal(monitoringv1alpha1.RecoveredReason))
		}).Should(Succeed())
		g.Consistently(func(g Gomega) {
			got := get(g, m)
			g.Expect(got.Status.State).To(Equal(monitoringv1alpha1.StateUp))
			g.Expect(got.Status.LastMessage).To(Equal("fixed"))
			g.Expect(eventCount(g, m, monitoringv1alpha1.DownReportedReason)).To(Equal(1))
		}).WithTimeout(window + 3*time.Second).WithPolling(100 * time.Millisecond).Should(Succeed())
	})
}

// TestLeaderLosingItsLeaseWritesHeldHeartbeats: a leader whose Lease is
// taken over exits at once (controller-runtime gives its runnables no
// grace then), but first writes the heartbeats it held and answered 200.
func TestLeaderLosingItsLeaseWritesHeldHeartbeats(t *testing.T) {
	g := NewWithT(t)
	// A window far longer than the test: only the final flush can write
	// the held heartbeat. Without the relay, which would hand the leader a
	// push that the replica's cache still sees Pending, and the leader
	// would write it at once: this test is about what the replica holds.
	r := startReplica(t, "loser", "", "--heartbeat-window=1m", "--disable-heartbeat-relay")
	waitForLeader(t, []*replica{r})
	ns := newNamespace(t, "leaseloss")
	m, tok := createMonitor(t, ns, "held", time.Hour, 6*time.Minute)
	firstPush(t, r, tok, "msg=first")
	g.Eventually(func(g Gomega) { g.Expect(get(g, m).Status.LastMessage).To(Equal("first")) }).Should(Succeed())
	mustPush(t, r, tok, "msg=held-at-lease-loss") // held for the window
	g.Expect(get(g, m).Status.LastMessage).To(Equal("first"))

	// Another holder takes the Lease, as after a partition.
	g.Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var lease coordinationv1.Lease
		if err := k8sClient.Get(context.Background(), client.ObjectKey{Namespace: "default", Name: leaseName}, &lease); err != nil {
			return err
		}
		now := metav1.NewMicroTime(time.Now())
		lease.Spec.HolderIdentity = ptr.To("someone-else")
		lease.Spec.AcquireTime, lease.Spec.RenewTime = &now, &now
		lease.Spec.LeaseDurationSeconds = ptr.To[int32](60)
		return k8sClient.Update(context.Background(), &lease)
	})).To(Succeed())
	t.Cleanup(func() { // let later tests elect a leader at once
		var l coordinationv1.Lease
		if k8sClient.Get(context.Background(), client.ObjectKey{Namespace: "default", Name: leaseName}, &l) == nil {
			_ = k8sClient.Delete(context.Background(), &l)
		}
	})

	g.Eventually(r.exited).WithTimeout(20*time.Second).Should(BeClosed(), "the deposed leader exits")
	g.Expect(get(g, m).Status.LastMessage).To(Equal("held-at-lease-loss"), "written before the exit")
}
