package controllers_test

// Reconciler tests against the real API server: the timer-driven Down of a
// monitor nobody pushes to, suspend and resume, and the optimistic locking
// that keeps one event per transition when the reconciler reads a stale copy
// (moved here from the heartbeat and truth tests, which now live in
// test/integration).

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	kevents "k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
	"github.com/pushmon/pushmon/controllers"
	"github.com/pushmon/pushmon/internal/heartbeat"
	"github.com/pushmon/pushmon/internal/testutil"
)

// TestNeverPingedGoesDown: a monitor that never hears a heartbeat goes Down
// one timeout + grace after it is first watched, and not before.
func TestNeverPingedGoesDown(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	const timeout, grace = time.Second, 2 * time.Second
	m := monitor(ns, "silent", monitoringv1alpha1.PushMonitorSpec{Timeout: dur(timeout), GracePeriod: dur(grace)})
	// The reconciler starts watching the monitor between its creation and
	// the first status it writes (Ready, Pending and the deadline at once).
	// The create's answer is the lower bound, less a margin for the watch
	// event that may overtake it; its start is not, since a create may wait
	// seconds in the API server before it is stored.
	g.Expect(k8sClient.Create(context.Background(), m)).To(Succeed())
	created := time.Now().Add(-100 * time.Millisecond)
	g.Eventually(func(g Gomega) {
		g.Expect(meta.IsStatusConditionTrue(getMonitor(g, m).Status.Conditions, monitoringv1alpha1.ReadyCondition)).To(BeTrue())
	}).Should(Succeed())
	ready := time.Now()
	pending := getMonitor(g, m)
	g.Expect(pending.Status.Deadline).NotTo(BeNil(), "the deadline is in status while Pending")
	deadline := pending.Status.Deadline.Time
	t.Logf("watch start known within %v; deadline %v after its lower bound", ready.Sub(created).Round(time.Millisecond), deadline.Sub(created).Round(time.Millisecond))
	// The window must be narrower than the grace, or a deadline without
	// the grace could fall inside it.
	g.Expect(ready.Sub(created)).To(BeNumerically("<", grace), "the first reconcile came too late to tell the deadline's terms apart")
	g.Expect(deadline).To(BeTemporally(">=", created.Add(timeout+grace)), "deadline = watch start + timeout + grace")
	g.Expect(deadline).To(BeTemporally("<=", ready.Add(timeout+grace)), "deadline = watch start + timeout + grace")

	// Not Down before the deadline (the margin covers a read in flight
	// across it) ...
	g.Consistently(func(g Gomega) {
		got := getMonitor(g, m)
		g.Expect(got.Status.State).To(Equal(monitoringv1alpha1.StatePending))
		g.Expect(got.Status.Deadline.Time).To(Equal(deadline))
	}).WithTimeout(time.Until(deadline.Add(-100 * time.Millisecond))).WithPolling(20 * time.Millisecond).Should(Succeed())
	// ... and Down at it, for that deadline.
	got := expectState(t, m, monitoringv1alpha1.StateDown, monitoringv1alpha1.HeartbeatMissedReason, 10*time.Second)
	g.Expect(got.Status.Deadline.Time).To(Equal(deadline))
	c := meta.FindStatusCondition(got.Status.Conditions, monitoringv1alpha1.HealthyCondition)
	g.Expect(c.Message).To(ContainSubstring("no heartbeat received"))
	// lastTransitionTime has a precision of a second; the event's time is
	// the reconciler's own clock, to the microsecond.
	g.Expect(c.LastTransitionTime.Time).To(BeTemporally(">=", deadline.Truncate(time.Second)), "not Down before the deadline")
	ev := expectEvents(t, m, monitoringv1alpha1.HeartbeatMissedReason, 1)
	g.Expect(ev[0].EventTime.Time).To(BeTemporally(">=", deadline), "the Down was decided at or after the deadline")
}

// TestSuspendResume: no Down while suspended, heartbeats still recorded;
// resuming restarts the deadline from the resume.
func TestSuspendResume(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	m := monitor(ns, "paused", monitoringv1alpha1.PushMonitorSpec{Timeout: dur(time.Second), GracePeriod: dur(time.Second), Suspend: true})
	tok := createMonitor(t, m)
	got := expectState(t, m, monitoringv1alpha1.StateSuspended, monitoringv1alpha1.SuspendedReason, 5*time.Second)
	c := meta.FindStatusCondition(got.Status.Conditions, monitoringv1alpha1.HealthyCondition)
	g.Expect(c.Status).To(Equal(metav1.ConditionUnknown))

	mustPush(t, tok, "msg=while-suspended")
	g.Eventually(func(g Gomega) {
		g.Expect(getMonitor(g, m).Status.LastMessage).To(Equal("while-suspended"))
	}).Should(Succeed())
	g.Consistently(func(g Gomega) {
		g.Expect(getMonitor(g, m).Status.State).To(Equal(monitoringv1alpha1.StateSuspended))
	}).WithTimeout(3*time.Second).Should(Succeed(), "well past timeout + grace, still Suspended")
	g.Expect(events(g, m, monitoringv1alpha1.HeartbeatMissedReason)).To(BeEmpty())

	got = getMonitor(g, m)
	got.Spec.Suspend = false
	resumed := time.Now()
	g.Expect(k8sClient.Update(context.Background(), got)).To(Succeed())
	got = expectState(t, m, monitoringv1alpha1.StateUp, monitoringv1alpha1.HeartbeatReceivedReason, 5*time.Second)
	g.Expect(got.Status.Deadline.Time).To(BeTemporally(">=", resumed.Add(2*time.Second)))
	got = expectState(t, m, monitoringv1alpha1.StateDown, monitoringv1alpha1.HeartbeatMissedReason, 5*time.Second)
	expectEvents(t, m, monitoringv1alpha1.HeartbeatMissedReason, 1)

	// Suspending a Down monitor silences it.
	got.Spec.Suspend = true
	g.Expect(k8sClient.Update(context.Background(), got)).To(Succeed())
	expectState(t, m, monitoringv1alpha1.StateSuspended, monitoringv1alpha1.SuspendedReason, 5*time.Second)
}

// staleReads is a client whose reads of one PushMonitor return a copy read
// earlier, like a reconciler's cache that has not seen a newer heartbeat
// yet; every other call, writes included, goes to the API server.
type staleReads struct {
	client.Client
	stale *monitoringv1alpha1.PushMonitor
}

func (c staleReads) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if m, ok := obj.(*monitoringv1alpha1.PushMonitor); ok && key == client.ObjectKeyFromObject(c.stale) {
		c.stale.DeepCopyInto(m)
		return nil
	}
	return c.Client.Get(ctx, key, obj, opts...)
}

// TestMissedDownLosesToRacingHeartbeat: a heartbeat stored between the
// reconciler's read and its HeartbeatMissed patch wins. The patch is
// optimistically locked: it conflicts, nothing is written, no event is
// emitted, and the next reconcile (reading the newer heartbeat) keeps the
// monitor Up.
func TestMissedDownLosesToRacingHeartbeat(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	// gracePeriod 0: window 0, each push is stored before its answer.
	m := monitor(ns, "racing", monitoringv1alpha1.PushMonitorSpec{Timeout: dur(time.Hour), GracePeriod: dur(0)})
	tok := createMonitor(t, m)
	mustPush(t, tok, "msg=old")
	var stale *monitoringv1alpha1.PushMonitor
	g.Eventually(func(g Gomega) {
		stale = getMonitor(g, m)
		g.Expect(stale.Status.State).To(Equal(monitoringv1alpha1.StateUp))
		g.Expect(stale.Status.LastMessage).To(Equal("old"))
		g.Expect(stale.Status.Deadline.Time).To(Equal(stale.Status.LastHeartbeatTime.Add(time.Hour)))
	}).Should(Succeed())
	oldDeadline := stale.Status.Deadline.Time

	// The racing heartbeat, stored after the read above (by the replica
	// before its answer, or, if its cache still showed the monitor Pending,
	// by the leader that held it a moment later).
	mustPush(t, tok, "msg=new")
	var fresh *monitoringv1alpha1.PushMonitor
	g.Eventually(func(g Gomega) {
		fresh = getMonitor(g, m)
		g.Expect(fresh.Status.LastMessage).To(Equal("new"))
	}).Should(Succeed())
	g.Expect(fresh.ResourceVersion).NotTo(Equal(stale.ResourceVersion))
	g.Expect(fresh.Status.LastHeartbeatTime.After(stale.Status.LastHeartbeatTime.Time)).To(BeTrue())

	// A reconciler of its own (the suite's keeps running), reading the
	// stale copy, on a clock it sets: first before the heartbeats (so that
	// it has been watching since then), then at the old heartbeat's
	// deadline, where the stale copy is Down and the fresh one is not.
	var clock atomic.Pointer[time.Time]
	setAt := func(at time.Time) { clock.Store(&at) }
	setAt(stale.CreationTimestamp.Time)
	rec := kevents.NewFakeRecorder(10)
	r := &controllers.PushMonitorReconciler{
		Client: staleReads{Client: k8sClient, stale: stale}, APIReader: k8sClient, Recorder: rec,
		PushBaseURL: "http://" + pushAddr, Clock: testutil.ClockFunc(func() time.Time { return *clock.Load() }),
	}
	req := ctrl.Request{NamespacedName: client.ObjectKeyFromObject(m)}
	_, err := r.Reconcile(ctx, req)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(getMonitor(g, m).Status.State).To(Equal(monitoringv1alpha1.StateUp))

	setAt(oldDeadline)
	res, err := r.Reconcile(ctx, req)
	got := getMonitor(g, m)
	g.Expect(got.Status.State).To(Equal(monitoringv1alpha1.StateUp), "the heartbeat stored after the read wins over the Down")
	g.Expect(got.Status.LastMessage).To(Equal("new"))
	g.Expect(meta.FindStatusCondition(got.Status.Conditions, monitoringv1alpha1.HealthyCondition).Reason).
		To(Equal(monitoringv1alpha1.HeartbeatReceivedReason))
	g.Expect(rec.Events).NotTo(Receive(), "no event for a Down that was not stored")
	g.Expect(err).NotTo(HaveOccurred(), "a conflict is no error (no backoff before a Down that is due)")
	g.Expect(res.RequeueAfter).To(BeNumerically(">", 0), "it looks again soon")

	// The next pass reads the newer heartbeat: still Up, at the same clock.
	r.Client = k8sClient
	_, err = r.Reconcile(ctx, req)
	g.Expect(err).NotTo(HaveOccurred())
	got = getMonitor(g, m)
	g.Expect(got.Status.State).To(Equal(monitoringv1alpha1.StateUp))
	g.Expect(got.Status.Deadline.Time).To(Equal(fresh.Status.LastHeartbeatTime.Add(time.Hour)))
	g.Expect(rec.Events).NotTo(Receive())
	g.Consistently(func(g Gomega) {
		g.Expect(getMonitor(g, m).Status.State).To(Equal(monitoringv1alpha1.StateUp))
		g.Expect(events(g, m, monitoringv1alpha1.HeartbeatMissedReason)).To(BeEmpty())
		g.Expect(events(g, m, monitoringv1alpha1.RecoveredReason)).To(BeEmpty())
	}).WithPolling(50 * time.Millisecond).Should(Succeed())
}

// TestReportedDownLandsThoughCacheLags: a down report stored, then an up
// report stored over it before the leader's cache caught up (one push a
// second to a loaded API server: every write the leader attempts from its
// cache finds a newer heartbeat). The leader still shows the failure: its
// conflicting transition is decided again from a read around the cache, so
// one reconcile stores Down (DownReported, "a success since") and emits its
// event instead of waiting for a cache that may lag behind every push.
func TestReportedDownLandsThoughCacheLags(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	m := monitor(ns, "lagging", monitoringv1alpha1.PushMonitorSpec{Timeout: dur(time.Hour), GracePeriod: dur(0)})
	tok := createMonitor(t, m)
	mustPush(t, tok, "msg=fine")
	expectState(t, m, monitoringv1alpha1.StateUp, monitoringv1alpha1.HeartbeatReceivedReason, 10*time.Second)

	// Only this test's reconciler decides from here on.
	suite.StopManager()
	t.Cleanup(func() {
		if err := suite.StartManager(); err != nil {
			t.Errorf("restarting the manager: %v", err)
		}
	})
	w := heartbeat.Writer{Client: k8sClient, Reader: k8sClient}
	record := func(status monitoringv1alpha1.ReportedStatus, msg string) *monitoringv1alpha1.PushMonitor {
		t.Helper()
		cur := getMonitor(g, m)
		g.Expect(w.Record(ctx, cur, heartbeat.Heartbeat{Time: heartbeat.Now(), Status: status, Message: msg})).To(Succeed())
		return getMonitor(g, m)
	}
	stale := record(monitoringv1alpha1.ReportedDown, "broken")
	g.Expect(stale.Status.State).To(Equal(monitoringv1alpha1.StateUp))
	fresh := record(monitoringv1alpha1.ReportedUp, "fixed")
	g.Expect(fresh.Status.LastFailure).NotTo(BeNil())
	g.Expect(fresh.Status.LastFailure.Shown).To(BeFalse())

	rec := kevents.NewFakeRecorder(10)
	r := &controllers.PushMonitorReconciler{
		Client: staleReads{Client: k8sClient, stale: stale}, APIReader: k8sClient, Recorder: rec,
		PushBaseURL: "http://" + pushAddr,
	}
	req := ctrl.Request{NamespacedName: client.ObjectKeyFromObject(m)}
	_, err := r.Reconcile(ctx, req)
	g.Expect(err).NotTo(HaveOccurred())
	got := getMonitor(g, m)
	g.Expect(got.Status.State).To(Equal(monitoringv1alpha1.StateDown), "the reported failure is shown")
	c := meta.FindStatusCondition(got.Status.Conditions, monitoringv1alpha1.HealthyCondition)
	g.Expect(c.Reason).To(Equal(monitoringv1alpha1.DownReportedReason))
	g.Expect(c.Message).To(ContainSubstring("broken"))
	g.Expect(got.Status.LastMessage).To(Equal("fixed"), "the newer heartbeat stays stored")
	g.Expect(got.Status.LastFailure.Shown).To(BeTrue())
	var ev string
	g.Expect(rec.Events).To(Receive(&ev))
	g.Expect(ev).To(HavePrefix("Warning DownReported"))

	// The success brings it back at the next evaluation.
	r.Client = k8sClient
	_, err = r.Reconcile(ctx, req)
	g.Expect(err).NotTo(HaveOccurred())
	got = getMonitor(g, m)
	g.Expect(got.Status.State).To(Equal(monitoringv1alpha1.StateUp))
	g.Expect(meta.FindStatusCondition(got.Status.Conditions, monitoringv1alpha1.HealthyCondition).Reason).
		To(Equal(monitoringv1alpha1.RecoveredReason))
}

// Every transition is written with optimistic locking: a reconcile of a
// stale cached copy (or by a second, deposed leader) that sees a transition
// already stored writes nothing and emits no second event.
func TestStaleCacheEmitsOneEventPerTransition(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	m := monitor(ns, "stale", monitoringv1alpha1.PushMonitorSpec{Timeout: dur(time.Hour)})
	tok := createMonitor(t, m)
	mustPush(t, tok, "msg=fine")
	expectState(t, m, monitoringv1alpha1.StateUp, monitoringv1alpha1.HeartbeatReceivedReason, 10*time.Second)

	// Every version of the monitor, as a watch (and so a cache) sees them.
	versions := watchVersions(t, m)

	mustPush(t, tok, "status=down&msg=broken")
	expectState(t, m, monitoringv1alpha1.StateDown, monitoringv1alpha1.DownReportedReason, 10*time.Second)
	expectEvents(t, m, monitoringv1alpha1.DownReportedReason, 1)
	mustPush(t, tok, "msg=fixed")
	expectState(t, m, monitoringv1alpha1.StateUp, monitoringv1alpha1.RecoveredReason, 10*time.Second)
	expectEvents(t, m, monitoringv1alpha1.RecoveredReason, 1)

	clientset, err := kubernetes.NewForConfig(restCfg)
	g.Expect(err).NotTo(HaveOccurred())
	broadcaster := kevents.NewBroadcaster(&kevents.EventSinkImpl{Interface: clientset.EventsV1()})
	stop := make(chan struct{})
	defer close(stop)
	broadcaster.StartRecordingToSink(stop)
	defer broadcaster.Shutdown()

	for _, c := range []struct {
		reason   string
		reported monitoringv1alpha1.ReportedStatus
		state    monitoringv1alpha1.MonitorState
	}{
		// The version with the down report stored and not yet reconciled.
		{monitoringv1alpha1.DownReportedReason, monitoringv1alpha1.ReportedDown, monitoringv1alpha1.StateUp},
		// The version with the up report stored while still Down.
		{monitoringv1alpha1.RecoveredReason, monitoringv1alpha1.ReportedUp, monitoringv1alpha1.StateDown},
	} {
		var stale *monitoringv1alpha1.PushMonitor
		for _, v := range versions() {
			if v.Status.LastReportedStatus == c.reported && v.Status.State == c.state {
				stale = v
			}
		}
		g.Expect(stale).NotTo(BeNil(), "the watch saw the version before the %s transition", c.reason)
		r := &controllers.PushMonitorReconciler{
			Client:      staleReads{Client: k8sClient, stale: stale},
			APIReader:   k8sClient,
			Recorder:    controllers.LimitNotes(broadcaster.NewRecorder(scheme, "pushmon")),
			PushBaseURL: "http://" + pushAddr,
		}
		_, err := r.Reconcile(context.Background(), ctrl.Request{NamespacedName: client.ObjectKeyFromObject(m)})
		g.Expect(err).NotTo(HaveOccurred())
		g.Consistently(func(g Gomega) {
			g.Expect(occurrences(events(g, m, c.reason))).To(Equal(1), "one %s event", c.reason)
		}).WithTimeout(2 * time.Second).WithPolling(100 * time.Millisecond).Should(Succeed())
	}
	g.Expect(getMonitor(g, m).Status.LastMessage).To(Equal("fixed"))
	g.Expect(getMonitor(g, m).Status.State).To(Equal(monitoringv1alpha1.StateUp))
}

// watchVersions records every version of m from now on; the function it
// returns lists them.
func watchVersions(t *testing.T, m *monitoringv1alpha1.PushMonitor) func() []*monitoringv1alpha1.PushMonitor {
	t.Helper()
	wc, err := client.NewWithWatch(restCfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	w, err := wc.Watch(context.Background(), &monitoringv1alpha1.PushMonitorList{},
		client.InNamespace(m.Namespace), client.MatchingFields{"metadata.name": m.Name})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	var mu sync.Mutex
	var seen []*monitoringv1alpha1.PushMonitor
	go func() {
		for ev := range w.ResultChan() {
			if pm, ok := ev.Object.(*monitoringv1alpha1.PushMonitor); ok {
				mu.Lock()
				seen = append(seen, pm.DeepCopy())
				mu.Unlock()
			}
		}
	}()
	return func() []*monitoringv1alpha1.PushMonitor {
		mu.Lock()
		defer mu.Unlock()
		return append([]*monitoringv1alpha1.PushMonitor(nil), seen...)
	}
}
