package heartbeat

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	clocktesting "k8s.io/utils/clock/testing"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
)

// sinkCall is one call of fakeSink.Record.
type sinkCall struct {
	at  time.Time
	uid types.UID
	hb  Heartbeat
	err error
	// inRecord: made by Record with the push's context, not by a flush.
	inRecord bool
}

// fakeSink records every Record call; it fails with err while err is set.
type fakeSink struct {
	mu sync.Mutex
	// clock stamps the calls (at); the real clock when nil.
	clock clock.PassiveClock
	err   error
	calls []sinkCall
}

// useClock makes s stamp its calls on clk.
func (s *fakeSink) useClock(clk clock.PassiveClock) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clock = clk
}

func (s *fakeSink) Record(ctx context.Context, m *monitoringv1alpha1.PushMonitor, hb Heartbeat) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	at := time.Now()
	if s.clock != nil {
		at = s.clock.Now()
	}
	s.calls = append(s.calls, sinkCall{
		at: at, uid: m.UID, hb: hb, err: s.err,
		inRecord: ctx.Value(pushKey{}) != nil,
	})
	return s.err
}

// pushKey marks the context a push passes to Record, so that the sink tells
// a write made before the push is answered from a flush (which has its own
// context).
type pushKey struct{}

func pushContext() context.Context {
	return context.WithValue(context.Background(), pushKey{}, true)
}

// inRecord is, for every successful call, whether Record made it.
func (s *fakeSink) inRecord() []bool {
	out := []bool{}
	for _, c := range s.written() {
		out = append(out, c.inRecord)
	}
	return out
}

// failWith makes later calls fail with err (nil: succeed).
func (s *fakeSink) failWith(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.err = err
}

// all is every call, failed or not.
func (s *fakeSink) all() []sinkCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]sinkCall(nil), s.calls...)
}

func (s *fakeSink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.calls)
}

// written is every successful call.
func (s *fakeSink) written() []sinkCall {
	var out []sinkCall
	for _, c := range s.all() {
		if c.err == nil {
			out = append(out, c)
		}
	}
	return out
}

// messages is the message of every successful call, in order.
func (s *fakeSink) messages() []string {
	out := []string{}
	for _, c := range s.written() {
		out = append(out, c.hb.Message)
	}
	return out
}

// attempts counts the calls (failed or not) that carried message msg.
func (s *fakeSink) attempts(msg string, failed bool) int {
	n := 0
	for _, c := range s.all() {
		if c.hb.Message == msg && (c.err != nil) == failed {
			n++
		}
	}
	return n
}

// defaultGrace leaves spec.gracePeriod unset (max(1s, timeout/10)).
const defaultGrace = time.Duration(-1)

// epoch is the Healthy condition's last transition in the default cache view.
var epoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// newMonitor is a monitor as the cache shows it while Up: its last heartbeat
// reported up and the Healthy condition is True since epoch.
func newMonitor(uid types.UID, timeout, grace time.Duration) *monitoringv1alpha1.PushMonitor {
	m := &monitoringv1alpha1.PushMonitor{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "mon-" + string(uid), UID: uid},
		Spec:       monitoringv1alpha1.PushMonitorSpec{Timeout: &metav1.Duration{Duration: timeout}},
	}
	if grace >= 0 {
		m.Spec.GracePeriod = &metav1.Duration{Duration: grace}
	}
	return withStatus(m, monitoringv1alpha1.StateUp, monitoringv1alpha1.ReportedUp,
		metav1.ConditionTrue, monitoringv1alpha1.HeartbeatReceivedReason, epoch)
}

// withStatus is a copy of m whose cached status is state, the last reported
// status reported and a Healthy condition (status, reason) since since.
func withStatus(m *monitoringv1alpha1.PushMonitor, state monitoringv1alpha1.MonitorState,
	reported monitoringv1alpha1.ReportedStatus, healthy metav1.ConditionStatus, reason string,
	since time.Time) *monitoringv1alpha1.PushMonitor {
	m = m.DeepCopy()
	m.Status.State = state
	m.Status.LastReportedStatus = reported
	m.Status.Conditions = []metav1.Condition{{
		Type:               monitoringv1alpha1.HealthyCondition,
		Status:             healthy,
		Reason:             reason,
		LastTransitionTime: metav1.NewTime(since),
	}}
	return m
}

// start is where each test's fake clock begins.
var start = time.Date(2026, 3, 4, 12, 0, 0, 0, time.UTC)

// newClock is a fake clock at start: time moves only when a test steps it,
// and flush timers fire in Step (their flushes then run in goroutines).
func newClock() *clocktesting.FakeClock { return clocktesting.NewFakeClock(start) }

// stamp is a receive time on clk, as the push endpoint stamps heartbeats.
func stamp(clk clock.PassiveClock) time.Time { return clk.Now().Truncate(time.Microsecond) }

func up(clk clock.PassiveClock, msg string) Heartbeat {
	return Heartbeat{Time: stamp(clk), Status: monitoringv1alpha1.ReportedUp, Message: msg}
}

func down(clk clock.PassiveClock, msg string) Heartbeat {
	return Heartbeat{Time: stamp(clk), Status: monitoringv1alpha1.ReportedDown, Message: msg}
}

// newCoalescer is a coalescer writing to s on clk; a fakeSink (or a sink
// embedding one) stamps its calls on clk too.
func newCoalescer(s Sink, window time.Duration, clk *clocktesting.FakeClock) *Coalescer {
	if cs, ok := s.(interface{ useClock(clock.PassiveClock) }); ok {
		cs.useClock(clk)
	}
	return &Coalescer{Writer: s, Window: window, Log: logr.Discard(), Clock: clk}
}

// waitScheduled waits until clk has a timer: what a flush arms once its
// write is done, or the retry of a failed one.
func waitScheduled(g *WithT, clk *clocktesting.FakeClock, what string) {
	g.Eventually(clk.HasWaiters).WithOffset(1).WithTimeout(2*time.Second).WithPolling(poll).Should(BeTrue(), what)
}

// waitSettled waits until no flush of uid is scheduled or running, and
// checks that clk has no timer left: stepping it writes nothing more.
func waitSettled(g *WithT, c *Coalescer, clk *clocktesting.FakeClock, uid types.UID) {
	g.Eventually(func() bool { return settled(c, uid) }).WithOffset(1).WithTimeout(2 * time.Second).WithPolling(poll).Should(BeTrue())
	g.ExpectWithOffset(1, clk.HasWaiters()).To(BeFalse(), "no timer is left")
}

// settled reports whether no flush of uid is scheduled or running (a fired
// timer whose flush has not begun yet still counts as scheduled), so that
// nothing will write for it until the next push.
func settled(c *Coalescer, uid types.UID) bool {
	c.mu.Lock()
	e := c.entries[uid]
	c.mu.Unlock()
	if e == nil {
		return true
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.timer == nil && !e.flushing
}

// hasEntry reports whether c keeps state for uid.
func hasEntry(c *Coalescer, uid types.UID) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.entries[uid]
	return ok
}

// heldMessage is the message of the heartbeat c holds for uid ("" if none).
func heldMessage(c *Coalescer, uid types.UID) string {
	c.mu.Lock()
	e := c.entries[uid]
	c.mu.Unlock()
	if e == nil {
		return ""
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.held == nil {
		return ""
	}
	return e.held.Message
}

const poll = 5 * time.Millisecond

func TestCoalescerHoldsWithinWindowAndFlushesNewest(t *testing.T) {
	g := NewWithT(t)
	const window = 300 * time.Millisecond
	s := &fakeSink{}
	clk := newClock()
	c := newCoalescer(s, window, clk)
	m := newMonitor("u1", time.Minute, defaultGrace) // grace 6s: window 300ms
	ctx := pushContext()

	// The first push of a window is written before Record returns.
	g.Expect(c.Record(ctx, m, up(clk, "a"))).To(Succeed())
	g.Expect(s.messages()).To(Equal([]string{"a"}))
	first := s.written()[0]

	// Later pushes are held, the newest wins.
	clk.Step(10 * time.Millisecond)
	g.Expect(c.Record(ctx, m, up(clk, "b"))).To(Succeed())
	clk.Step(10 * time.Millisecond)
	hbC := up(clk, "c")
	g.Expect(c.Record(ctx, m, hbC)).To(Succeed())
	g.Expect(s.count()).To(Equal(1))
	g.Expect(heldMessage(c, m.UID)).To(Equal("c"))
	// Not before the window's end.
	clk.SetTime(first.at.Add(window - time.Nanosecond))
	g.Expect(clk.HasWaiters()).To(BeTrue(), "the flush timer has not fired")
	g.Expect(s.count()).To(Equal(1))

	// ... and written once, at the window's end, with its receive time.
	clk.Step(time.Nanosecond)
	g.Eventually(s.messages).WithTimeout(2 * time.Second).WithPolling(poll).Should(Equal([]string{"a", "c"}))
	flushed := s.written()[1]
	g.Expect(flushed.hb).To(Equal(hbC))
	g.Expect(flushed.uid).To(Equal(m.UID))
	g.Expect(flushed.at.Sub(first.at)).To(Equal(window))
	g.Expect(s.inRecord()).To(Equal([]bool{true, false}))
	g.Expect(heldMessage(c, m.UID)).To(BeEmpty())

	// The flush starts a new window: the next push is held again.
	g.Expect(c.Record(ctx, m, up(clk, "d"))).To(Succeed())
	g.Expect(s.count()).To(Equal(2))
	waitScheduled(g, clk, "d's flush is scheduled")
	clk.Step(window - time.Nanosecond)
	g.Expect(s.count()).To(Equal(2))
	clk.Step(time.Nanosecond)
	g.Eventually(s.messages).WithTimeout(2 * time.Second).WithPolling(poll).Should(Equal([]string{"a", "c", "d"}))
	g.Expect(s.written()[2].at.Sub(flushed.at)).To(Equal(window))
	g.Expect(s.inRecord()).To(Equal([]bool{true, false, false}))
	// Nothing more is scheduled: no further write, however long.
	waitSettled(g, c, clk, m.UID)
	clk.Step(10 * window)
	g.Expect(s.count()).To(Equal(3))
}

func TestCoalescerEffectiveWindow(t *testing.T) {
	ctx := pushContext()

	t.Run("grace period shorter than the window", func(t *testing.T) {
		g := NewWithT(t)
		s := &fakeSink{}
		clk := newClock()
		c := newCoalescer(s, 10*time.Second, clk)
		m := newMonitor("u1", time.Minute, 400*time.Millisecond)

		g.Expect(c.Record(ctx, m, up(clk, "a"))).To(Succeed())
		g.Expect(c.Record(ctx, m, up(clk, "b"))).To(Succeed())
		g.Expect(s.messages()).To(Equal([]string{"a"}))
		// Flushed after 200ms (half the grace period), not after 10s.
		clk.Step(200*time.Millisecond - time.Nanosecond)
		g.Expect(clk.HasWaiters()).To(BeTrue(), "the flush timer has not fired")
		clk.Step(time.Nanosecond)
		g.Eventually(s.messages).WithTimeout(2 * time.Second).WithPolling(poll).Should(Equal([]string{"a", "b"}))
		w := s.written()
		g.Expect(w[1].at.Sub(w[0].at)).To(Equal(200 * time.Millisecond))
		g.Expect(s.inRecord()).To(Equal([]bool{true, false}))
	})

	t.Run("zero grace period writes every push", func(t *testing.T) {
		g := NewWithT(t)
		s := &fakeSink{}
		clk := newClock()
		c := newCoalescer(s, 10*time.Second, clk)
		m := newMonitor("u1", time.Minute, 0)
		for i := range 5 {
			g.Expect(c.Record(ctx, m, up(clk, fmt.Sprint(i)))).To(Succeed())
			g.Expect(s.count()).To(Equal(i + 1))
		}
		g.Expect(s.messages()).To(Equal([]string{"0", "1", "2", "3", "4"}))
		g.Expect(s.inRecord()).To(HaveEach(BeTrue()))
		g.Expect(heldMessage(c, m.UID)).To(BeEmpty())
	})

	t.Run("zero window writes every push", func(t *testing.T) {
		g := NewWithT(t)
		s := &fakeSink{}
		clk := newClock()
		c := newCoalescer(s, 0, clk)
		m := newMonitor("u1", time.Minute, defaultGrace)
		for i := range 5 {
			g.Expect(c.Record(ctx, m, up(clk, fmt.Sprint(i)))).To(Succeed())
			g.Expect(s.count()).To(Equal(i + 1))
		}
		g.Expect(s.messages()).To(Equal([]string{"0", "1", "2", "3", "4"}))
		g.Expect(s.inRecord()).To(HaveEach(BeTrue()))
		g.Expect(heldMessage(c, m.UID)).To(BeEmpty())
	})
}

func TestCoalescerStatusChangeIsWrittenAtOnce(t *testing.T) {
	ctx := pushContext()
	// Window 10s, grace 6s: nothing is flushed by a timer during these tests.
	const window = 10 * time.Second

	t.Run("down after up, dropping the held up", func(t *testing.T) {
		g := NewWithT(t)
		s := &fakeSink{}
		clk := newClock()
		c := newCoalescer(s, window, clk)
		m := newMonitor("u1", time.Minute, defaultGrace)

		g.Expect(c.Record(ctx, m, up(clk, "a"))).To(Succeed())
		g.Expect(c.Record(ctx, m, up(clk, "b"))).To(Succeed())
		g.Expect(s.messages()).To(Equal([]string{"a"}))
		g.Expect(c.Record(ctx, m, down(clk, "c"))).To(Succeed())
		g.Expect(s.messages()).To(Equal([]string{"a", "c"}))
		g.Expect(s.inRecord()).To(Equal([]bool{true, true}))
		// The held up push is older than the down one just written.
		g.Expect(heldMessage(c, m.UID)).To(BeEmpty())
		c.FlushAll(context.Background())
		g.Expect(s.messages()).To(Equal([]string{"a", "c"}))
	})

	t.Run("differs from the last write only", func(t *testing.T) {
		g := NewWithT(t)
		s := &fakeSink{}
		clk := newClock()
		c := newCoalescer(s, window, clk)
		m := newMonitor("u1", time.Minute, defaultGrace)
		g.Expect(c.Record(ctx, m, up(clk, "a"))).To(Succeed())

		// The cache already shows a down report (another replica) that the
		// leader has not acted on: only this replica's last write differs.
		cached := withStatus(m, monitoringv1alpha1.StateUp, monitoringv1alpha1.ReportedDown,
			metav1.ConditionTrue, monitoringv1alpha1.HeartbeatReceivedReason, epoch)
		g.Expect(c.Record(ctx, cached, down(clk, "b"))).To(Succeed())
		g.Expect(s.messages()).To(Equal([]string{"a", "b"}))

		// And back: a stale cache still says up, this replica wrote down.
		g.Expect(c.Record(ctx, m, up(clk, "c"))).To(Succeed())
		g.Expect(s.messages()).To(Equal([]string{"a", "b", "c"}))
		g.Expect(s.inRecord()).To(Equal([]bool{true, true, true}))
		g.Expect(c.Record(ctx, m, up(clk, "d"))).To(Succeed())
		g.Expect(s.messages()).To(Equal([]string{"a", "b", "c"}))
		c.FlushAll(context.Background())
	})

	t.Run("differs from what another replica wrote", func(t *testing.T) {
		g := NewWithT(t)
		s := &fakeSink{}
		clk := newClock()
		c := newCoalescer(s, window, clk)
		m := newMonitor("u1", time.Minute, defaultGrace)
		g.Expect(c.Record(ctx, m, up(clk, "a"))).To(Succeed())
		g.Expect(c.Record(ctx, m, up(clk, "b"))).To(Succeed())
		g.Expect(s.messages()).To(Equal([]string{"a"}))

		// Another replica wrote a down report since; this replica's last
		// write was up, as is this push.
		cached := withStatus(m, monitoringv1alpha1.StateUp, monitoringv1alpha1.ReportedDown,
			metav1.ConditionTrue, monitoringv1alpha1.HeartbeatReceivedReason, epoch)
		g.Expect(c.Record(ctx, cached, up(clk, "c"))).To(Succeed())
		g.Expect(s.messages()).To(Equal([]string{"a", "c"}))
		g.Expect(s.inRecord()).To(Equal([]bool{true, true}))
		g.Expect(heldMessage(c, m.UID)).To(BeEmpty())
		c.FlushAll(context.Background())
	})

	t.Run("repeated down pushes are coalesced", func(t *testing.T) {
		g := NewWithT(t)
		s := &fakeSink{}
		clk := newClock()
		c := newCoalescer(s, window, clk)
		m := withStatus(newMonitor("u1", time.Minute, defaultGrace), monitoringv1alpha1.StateDown,
			monitoringv1alpha1.ReportedDown, metav1.ConditionFalse, monitoringv1alpha1.DownReportedReason, epoch)

		g.Expect(c.Record(ctx, m, down(clk, "a"))).To(Succeed())
		for _, msg := range []string{"b", "c", "d"} {
			g.Expect(c.Record(ctx, m, down(clk, msg))).To(Succeed())
		}
		g.Expect(s.messages()).To(Equal([]string{"a"}))
		g.Expect(heldMessage(c, m.UID)).To(Equal("d"))
		c.FlushAll(context.Background())
		g.Expect(s.messages()).To(Equal([]string{"a", "d"}))
		g.Expect(s.inRecord()).To(Equal([]bool{true, false}))
	})
}

func TestCoalescerUpPushEndingPendingOrDownOncePerEpisode(t *testing.T) {
	ctx := pushContext()
	const window = 10 * time.Second // grace 6s: no timer flush during the test

	t.Run("down", func(t *testing.T) {
		g := NewWithT(t)
		s := &fakeSink{}
		clk := newClock()
		c := newCoalescer(s, window, clk)
		m := newMonitor("u1", time.Minute, defaultGrace)
		g.Expect(c.Record(ctx, m, up(clk, "a"))).To(Succeed())
		g.Expect(s.messages()).To(Equal([]string{"a"}))

		// The leader decided Down (deadline missed); the last report was up.
		t1 := epoch.Add(time.Hour)
		downed := withStatus(m, monitoringv1alpha1.StateDown, monitoringv1alpha1.ReportedUp,
			metav1.ConditionFalse, monitoringv1alpha1.HeartbeatMissedReason, t1)
		g.Expect(c.Record(ctx, downed, up(clk, "b"))).To(Succeed())
		g.Expect(s.messages()).To(Equal([]string{"a", "b"}))
		// Once per episode: the cache has not changed, the next is held.
		g.Expect(c.Record(ctx, downed, up(clk, "c"))).To(Succeed())
		g.Expect(s.messages()).To(Equal([]string{"a", "b"}))
		g.Expect(heldMessage(c, m.UID)).To(Equal("c"))

		// A new Down episode (Healthy changed again): written at once again.
		t2 := t1.Add(time.Hour)
		downedAgain := withStatus(m, monitoringv1alpha1.StateDown, monitoringv1alpha1.ReportedUp,
			metav1.ConditionFalse, monitoringv1alpha1.HeartbeatMissedReason, t2)
		g.Expect(c.Record(ctx, downedAgain, up(clk, "d"))).To(Succeed())
		g.Expect(s.messages()).To(Equal([]string{"a", "b", "d"}))
		g.Expect(c.Record(ctx, downedAgain, up(clk, "e"))).To(Succeed())
		g.Expect(s.messages()).To(Equal([]string{"a", "b", "d"}))
		c.FlushAll(context.Background())
		g.Expect(s.messages()).To(Equal([]string{"a", "b", "d", "e"}))
		g.Expect(s.inRecord()).To(Equal([]bool{true, true, true, false}))
	})

	t.Run("pending", func(t *testing.T) {
		g := NewWithT(t)
		s := &fakeSink{}
		clk := newClock()
		c := newCoalescer(s, window, clk)
		m := newMonitor("u1", time.Minute, defaultGrace)
		g.Expect(c.Record(ctx, m, up(clk, "a"))).To(Succeed())

		// Same Healthy transition time as before but another state: a new
		// episode.
		pending := withStatus(m, monitoringv1alpha1.StatePending, monitoringv1alpha1.ReportedUp,
			metav1.ConditionUnknown, monitoringv1alpha1.AwaitingFirstHeartbeatReason, epoch)
		g.Expect(c.Record(ctx, pending, up(clk, "b"))).To(Succeed())
		g.Expect(s.messages()).To(Equal([]string{"a", "b"}))
		g.Expect(c.Record(ctx, pending, up(clk, "c"))).To(Succeed())
		g.Expect(s.messages()).To(Equal([]string{"a", "b"}))
		c.FlushAll(context.Background())
		g.Expect(s.messages()).To(Equal([]string{"a", "b", "c"}))
		g.Expect(s.inRecord()).To(Equal([]bool{true, true, false}))
	})

	t.Run("first heartbeat of a pending monitor", func(t *testing.T) {
		g := NewWithT(t)
		s := &fakeSink{}
		clk := newClock()
		c := newCoalescer(s, window, clk)
		fresh := withStatus(newMonitor("u1", time.Minute, defaultGrace), monitoringv1alpha1.StatePending, "",
			metav1.ConditionUnknown, monitoringv1alpha1.AwaitingFirstHeartbeatReason, epoch)
		g.Expect(c.Record(ctx, fresh, up(clk, "a"))).To(Succeed())
		g.Expect(s.messages()).To(Equal([]string{"a"}))
		// The cache shows this write; the leader has not reconciled yet.
		seen := withStatus(fresh, monitoringv1alpha1.StatePending, monitoringv1alpha1.ReportedUp,
			metav1.ConditionUnknown, monitoringv1alpha1.AwaitingFirstHeartbeatReason, epoch)
		g.Expect(c.Record(ctx, seen, up(clk, "b"))).To(Succeed())
		g.Expect(s.messages()).To(Equal([]string{"a"}))
		c.FlushAll(context.Background())
		g.Expect(s.messages()).To(Equal([]string{"a", "b"}))
	})
}

func TestCoalescerDeadlineGuard(t *testing.T) {
	ctx := pushContext()
	// timeout 1s, grace 1s: window min(10s, 1s/2) = 500ms, deadline =
	// written + 2s, flushBy = written + 1.5s.
	const window = 500 * time.Millisecond

	t.Run("held push is flushed by flushBy", func(t *testing.T) {
		g := NewWithT(t)
		s := &fakeSink{}
		clk := newClock()
		c := newCoalescer(s, 10*time.Second, clk)
		m := newMonitor("u1", time.Second, time.Second)

		// The written heartbeat was received 1.2s ago: flushBy is in 0.3s,
		// the window ends in 0.5s.
		old := up(clk, "a")
		old.Time = stamp(clk).Add(-1200 * time.Millisecond)
		g.Expect(c.Record(ctx, m, old)).To(Succeed())
		g.Expect(c.Record(ctx, m, up(clk, "b"))).To(Succeed())
		g.Expect(s.messages()).To(Equal([]string{"a"}))
		writtenAt := s.written()[0].at

		by := old.Time.Add(2*time.Second - flushMargin)
		clk.SetTime(by.Add(-time.Nanosecond))
		g.Expect(clk.HasWaiters()).To(BeTrue(), "the flush timer has not fired")
		clk.SetTime(by)
		g.Eventually(s.messages).WithTimeout(2 * time.Second).WithPolling(poll).Should(Equal([]string{"a", "b"}))
		at := s.written()[1].at
		g.Expect(at).To(Equal(by))
		g.Expect(at).To(BeTemporally("<", writtenAt.Add(window)))
		g.Expect(s.inRecord()).To(Equal([]bool{true, false}))
	})

	t.Run("flushed heartbeat keeps its receive time", func(t *testing.T) {
		g := NewWithT(t)
		s := &fakeSink{}
		clk := newClock()
		c := newCoalescer(s, 10*time.Second, clk)
		// timeout 300ms (shorter than the API allows, so that flushBy comes
		// before the next window's end), grace 1s: window 500ms.
		m := newMonitor("u2", 300*time.Millisecond, time.Second)

		g.Expect(c.Record(ctx, m, up(clk, "a"))).To(Succeed())
		clk.Step(10 * time.Millisecond)
		b := up(clk, "b")
		g.Expect(c.Record(ctx, m, b)).To(Succeed())
		// b is written at the window's end (500ms), carrying its receive time.
		clk.Step(window - 10*time.Millisecond)
		g.Eventually(s.messages).WithTimeout(2 * time.Second).WithPolling(poll).Should(Equal([]string{"a", "b"}))
		g.Expect(s.written()[1].hb).To(Equal(b))
		flushedAt := s.written()[1].at
		g.Expect(flushedAt).To(Equal(start.Add(window)))
		// The next push is held; its window would end 500ms after the flush,
		// but b's deadline is b.Time + 1.3s: it must be flushed by b.Time + 0.8s.
		g.Expect(c.Record(ctx, m, up(clk, "c"))).To(Succeed())
		g.Expect(s.count()).To(Equal(2))
		waitScheduled(g, clk, "c's flush is scheduled")
		by := b.Time.Add(1300*time.Millisecond - flushMargin)
		clk.SetTime(by.Add(-time.Nanosecond))
		g.Expect(s.count()).To(Equal(2))
		clk.SetTime(by)
		g.Eventually(s.messages).WithTimeout(2 * time.Second).WithPolling(poll).Should(Equal([]string{"a", "b", "c"}))
		at := s.written()[2].at
		g.Expect(at).To(Equal(by))
		g.Expect(at).To(BeTemporally("<", flushedAt.Add(window)))
		g.Expect(s.inRecord()).To(Equal([]bool{true, false, false}))
	})

	t.Run("push after flushBy is written at once", func(t *testing.T) {
		g := NewWithT(t)
		s := &fakeSink{}
		clk := newClock()
		c := newCoalescer(s, 10*time.Second, clk)
		late := newMonitor("u3", time.Second, time.Second)
		fresh := newMonitor("u4", time.Second, time.Second)

		// flushBy of late's written heartbeat passed 100ms ago.
		old := up(clk, "late-a")
		old.Time = stamp(clk).Add(-1600 * time.Millisecond)
		g.Expect(c.Record(ctx, late, old)).To(Succeed())
		g.Expect(c.Record(ctx, fresh, up(clk, "fresh-a"))).To(Succeed())

		// Both are in their window; only late's is past flushBy: it is
		// written before Record returns (not by a flush timer).
		g.Expect(c.Record(ctx, late, up(clk, "late-b"))).To(Succeed())
		g.Expect(s.messages()).To(Equal([]string{"late-a", "fresh-a", "late-b"}))
		g.Expect(s.inRecord()).To(Equal([]bool{true, true, true}))
		g.Expect(c.Record(ctx, fresh, up(clk, "fresh-b"))).To(Succeed())
		g.Expect(s.messages()).To(Equal([]string{"late-a", "fresh-a", "late-b"}))
		g.Expect(heldMessage(c, fresh.UID)).To(Equal("fresh-b"))
		c.FlushAll(context.Background())
	})
}

func TestCoalescerWriteFailures(t *testing.T) {
	ctx := pushContext()
	boom := errors.New("api unavailable")

	t.Run("failed due write keeps the held heartbeat, whose flush retries", func(t *testing.T) {
		t.Parallel()
		g := NewWithT(t)
		s := &fakeSink{}
		clk := newClock()
		c := newCoalescer(s, 300*time.Millisecond, clk)
		m := newMonitor("u1", time.Minute, defaultGrace)

		g.Expect(c.Record(ctx, m, up(clk, "a"))).To(Succeed())
		g.Expect(c.Record(ctx, m, up(clk, "b"))).To(Succeed())
		s.failWith(boom)
		g.Expect(c.Record(ctx, m, down(clk, "c"))).To(MatchError(boom))
		g.Expect(s.attempts("c", true)).To(Equal(1))
		g.Expect(heldMessage(c, m.UID)).To(Equal("b"))

		// The flush at the window's end fails, and is retried a second later.
		clk.Step(300 * time.Millisecond)
		g.Eventually(func() int { return s.attempts("b", true) }).
			WithTimeout(2 * time.Second).WithPolling(poll).Should(Equal(1))
		waitScheduled(g, clk, "the retry is scheduled")
		clk.Step(time.Second - time.Nanosecond)
		g.Expect(s.attempts("b", true)).To(Equal(1))
		clk.Step(time.Nanosecond)
		g.Eventually(func() int { return s.attempts("b", true) }).
			WithTimeout(2 * time.Second).WithPolling(poll).Should(Equal(2))
		g.Expect(heldMessage(c, m.UID)).To(Equal("b"))

		s.failWith(nil)
		waitScheduled(g, clk, "the retry is scheduled")
		clk.Step(time.Second)
		g.Eventually(s.messages).WithTimeout(2 * time.Second).WithPolling(poll).Should(Equal([]string{"a", "b"}))
		g.Expect(s.inRecord()).To(Equal([]bool{true, false}))
		g.Expect(heldMessage(c, m.UID)).To(BeEmpty())
		// Written: the retries stop.
		n := s.count()
		waitSettled(g, c, clk, m.UID)
		clk.Step(time.Minute)
		g.Expect(s.count()).To(Equal(n))
	})

	t.Run("after a failed due write the next push is written at once", func(t *testing.T) {
		g := NewWithT(t)
		s := &fakeSink{}
		clk := newClock()
		c := newCoalescer(s, 10*time.Second, clk)
		m := newMonitor("u1", time.Minute, defaultGrace)

		g.Expect(c.Record(ctx, m, up(clk, "a"))).To(Succeed())
		s.failWith(boom)
		g.Expect(c.Record(ctx, m, down(clk, "b"))).To(MatchError(boom))
		// Same status as the last write and the cache, in the window: it
		// would be held, but the API failed since.
		g.Expect(c.Record(ctx, m, up(clk, "c"))).To(MatchError(boom))
		s.failWith(nil)
		g.Expect(c.Record(ctx, m, up(clk, "d"))).To(Succeed())
		g.Expect(s.messages()).To(Equal([]string{"a", "d"}))
		g.Expect(s.inRecord()).To(Equal([]bool{true, true}))
		g.Expect(s.count()).To(Equal(4))
		// A write succeeded: back to holding.
		g.Expect(c.Record(ctx, m, up(clk, "e"))).To(Succeed())
		g.Expect(s.count()).To(Equal(4))
		c.FlushAll(context.Background())
	})

	t.Run("after a failed flush the next push is written at once", func(t *testing.T) {
		t.Parallel()
		g := NewWithT(t)
		s := &fakeSink{}
		clk := newClock()
		c := newCoalescer(s, 10*time.Second, clk)
		short := newMonitor("u1", time.Minute, 200*time.Millisecond) // window 100ms

		g.Expect(c.Record(ctx, short, up(clk, "a"))).To(Succeed())
		g.Expect(c.Record(ctx, short, up(clk, "b"))).To(Succeed())
		s.failWith(boom)
		clk.Step(100 * time.Millisecond)
		g.Eventually(func() int { return s.attempts("b", true) }).
			WithTimeout(2 * time.Second).WithPolling(poll).Should(Equal(1))

		// The grace period was raised meanwhile (window 5s): without the
		// failed flush this push would be held; it is written, and fails
		// (the endpoint answers 503).
		long := newMonitor("u1", time.Minute, 5*time.Second)
		g.Expect(c.Record(ctx, long, up(clk, "c"))).To(MatchError(boom))
		g.Expect(s.attempts("c", true)).To(Equal(1))
		g.Expect(s.all()[len(s.all())-1].inRecord).To(BeTrue())

		// b, answered 200, is still retried and written once the API is back.
		s.failWith(nil)
		waitScheduled(g, clk, "the retry is scheduled")
		clk.Step(time.Second)
		g.Eventually(s.messages).WithTimeout(3 * time.Second).WithPolling(poll).Should(Equal([]string{"a", "b"}))
	})
}

func TestCoalescerFlushDropsGoneMonitor(t *testing.T) {
	ctx := pushContext()
	gr := schema.GroupResource{Group: monitoringv1alpha1.GroupVersion.Group, Resource: "pushmonitors"}
	for name, err := range map[string]error{
		"not found":                 apierrors.NewNotFound(gr, "mon-u1"),
		"not found, wrapped":        fmt.Errorf("writing heartbeat of ns/mon-u1: %w", apierrors.NewNotFound(gr, "mon-u1")),
		"monitor replaced":          ErrMonitorReplaced,
		"monitor replaced, wrapped": fmt.Errorf("flush: %w", ErrMonitorReplaced),
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			s := &fakeSink{}
			clk := newClock()
			c := newCoalescer(s, 200*time.Millisecond, clk)
			m := newMonitor("u1", time.Minute, defaultGrace)

			g.Expect(c.Record(ctx, m, up(clk, "a"))).To(Succeed())
			g.Expect(c.Record(ctx, m, up(clk, "b"))).To(Succeed())
			s.failWith(err)
			clk.Step(200 * time.Millisecond)
			g.Eventually(func() int { return s.attempts("b", true) }).
				WithTimeout(2 * time.Second).WithPolling(poll).Should(Equal(1))
			g.Eventually(func() bool { return hasEntry(c, m.UID) }).
				WithTimeout(2 * time.Second).WithPolling(poll).Should(BeFalse())
			// No retry (a generic failure would retry after 1s).
			g.Expect(clk.HasWaiters()).To(BeFalse())
			clk.Step(2 * time.Second)
			g.Expect(s.count()).To(Equal(2))

			// A later push with that UID starts afresh: written at once.
			s.failWith(nil)
			g.Expect(c.Record(ctx, m, up(clk, "c"))).To(Succeed())
			g.Expect(s.messages()).To(Equal([]string{"a", "c"}))
			g.Expect(s.inRecord()).To(Equal([]bool{true, true}))
			c.FlushAll(context.Background())
		})
	}
}

func TestCoalescerFlushAll(t *testing.T) {
	g := NewWithT(t)
	ctx := pushContext()
	s := &fakeSink{}
	clk := newClock()
	c := newCoalescer(s, 10*time.Second, clk)
	m1 := newMonitor("u1", time.Minute, defaultGrace)
	m2 := newMonitor("u2", time.Minute, defaultGrace)
	m3 := newMonitor("u3", time.Minute, defaultGrace)

	for _, m := range []*monitoringv1alpha1.PushMonitor{m1, m2, m3} {
		g.Expect(c.Record(ctx, m, up(clk, string(m.UID)+"-a"))).To(Succeed())
	}
	g.Expect(c.Record(ctx, m1, up(clk, "u1-b"))).To(Succeed())
	g.Expect(c.Record(ctx, m2, up(clk, "u2-b"))).To(Succeed())
	g.Expect(c.Record(ctx, m2, up(clk, "u2-c"))).To(Succeed())
	g.Expect(s.count()).To(Equal(3))

	c.FlushAll(context.Background())
	g.Expect(s.messages()[3:]).To(ConsistOf("u1-b", "u2-c"))
	g.Expect(s.inRecord()).To(Equal([]bool{true, true, true, false, false}))
	g.Expect(s.count()).To(Equal(5))
	// Its timers are stopped: nothing more is written, however long.
	g.Expect(clk.HasWaiters()).To(BeFalse())
	clk.Step(time.Minute)
	g.Expect(s.count()).To(Equal(5))

	// After FlushAll, every push goes straight to the sink.
	for i, m := range []*monitoringv1alpha1.PushMonitor{m1, m1, m2, m3} {
		g.Expect(c.Record(ctx, m, up(clk, fmt.Sprint("after-", i)))).To(Succeed())
		g.Expect(s.count()).To(Equal(6 + i))
		g.Expect(s.all()[5+i].inRecord).To(BeTrue())
	}
	s.failWith(errors.New("boom"))
	g.Expect(c.Record(ctx, m1, up(clk, "after-fail"))).To(HaveOccurred())
}

func TestCoalescerStartFlushesOnShutdown(t *testing.T) {
	g := NewWithT(t)
	s := &fakeSink{}
	clk := newClock()
	c := newCoalescer(s, 10*time.Second, clk)
	g.Expect(c.NeedLeaderElection()).To(BeFalse())
	m := newMonitor("u1", time.Minute, defaultGrace)

	runCtx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- c.Start(runCtx) }()

	ctx := pushContext()
	g.Expect(c.Record(ctx, m, up(clk, "a"))).To(Succeed())
	g.Expect(c.Record(ctx, m, up(clk, "b"))).To(Succeed())
	g.Consistently(done).WithTimeout(100 * time.Millisecond).WithPolling(poll).ShouldNot(Receive())
	g.Expect(s.messages()).To(Equal([]string{"a"}))

	cancel()
	g.Eventually(done).WithTimeout(2 * time.Second).WithPolling(poll).Should(Receive(BeNil()))
	// Flushed before Start returned.
	g.Expect(s.messages()).To(Equal([]string{"a", "b"}))

	g.Expect(c.Record(ctx, m, up(clk, "c"))).To(Succeed())
	g.Expect(s.messages()).To(Equal([]string{"a", "b", "c"}))
	g.Expect(s.inRecord()).To(Equal([]bool{true, false, true}))
}

// Start drops the entries of monitors that have nothing held and wrote
// nothing for idleAfter, and keeps those that hold a heartbeat or wrote since.
func TestCoalescerStartSweepsIdleEntries(t *testing.T) {
	g := NewWithT(t)
	s := &fakeSink{}
	clk := newClock()
	// timeout 10h, grace 1h: window 30min, longer than idleAfter.
	c := newCoalescer(s, time.Hour, clk)
	idle := newMonitor("u1", 10*time.Hour, defaultGrace)
	holding := newMonitor("u2", 10*time.Hour, defaultGrace)
	recent := newMonitor("u3", 10*time.Hour, defaultGrace)
	ctx := pushContext()
	g.Expect(c.Record(ctx, idle, up(clk, "idle-a"))).To(Succeed())
	g.Expect(c.Record(ctx, holding, up(clk, "holding-a"))).To(Succeed())
	g.Expect(c.Record(ctx, holding, up(clk, "holding-b"))).To(Succeed())
	g.Expect(clk.Waiters()).To(Equal(1), "holding-b's flush")
	clk.Step(time.Second)

	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Start(runCtx) }()
	g.Eventually(clk.Waiters).WithTimeout(2*time.Second).WithPolling(poll).Should(Equal(2), "Start's ticker")
	clk.Step(time.Minute)
	g.Expect(c.Record(ctx, recent, up(clk, "recent-a"))).To(Succeed())

	// The tick comes idleAfter after Start: idle's entry is older than that.
	clk.Step(idleAfter - time.Minute)
	g.Eventually(func() bool { return hasEntry(c, idle.UID) }).
		WithTimeout(2 * time.Second).WithPolling(poll).Should(BeFalse())
	g.Expect(hasEntry(c, holding.UID)).To(BeTrue(), "a held heartbeat is kept")
	g.Expect(hasEntry(c, recent.UID)).To(BeTrue(), "written a minute ago")

	cancel()
	g.Eventually(done).WithTimeout(2 * time.Second).WithPolling(poll).Should(Receive(BeNil()))
	g.Expect(s.messages()).To(Equal([]string{"idle-a", "holding-a", "recent-a", "holding-b"}), "holding-b written by the final flush")
}

func TestCoalescerConcurrentPushesStayBounded(t *testing.T) {
	g := NewWithT(t)
	const (
		window     = 100 * time.Millisecond
		goroutines = 50
		pushes     = 100
		// Every 20 pushes a goroutine moves the clock on by step: 250
		// steps of 5ms, 12.5 windows, while the flush timers fire.
		step = 5 * time.Millisecond
	)
	s := &fakeSink{}
	clk := newClock()
	c := newCoalescer(s, window, clk)
	m := newMonitor("u1", time.Minute, defaultGrace)
	ctx := pushContext()

	errs := make(chan error, goroutines*pushes)
	var wg sync.WaitGroup
	for gr := range goroutines {
		wg.Go(func() {
			for i := range pushes {
				if err := c.Record(ctx, m, up(clk, fmt.Sprintf("%d-%d", gr, i))); err != nil {
					errs <- err
				}
				if i%20 == 19 {
					clk.Step(step) // time passes while the pushes go on
				}
			}
		})
	}
	wg.Wait()
	elapsed := clk.Since(start)
	close(errs)
	g.Expect(errs).To(BeEmpty())

	// The last push is written (at once or by the flush at its window's end).
	g.Eventually(func() bool { return heldMessage(c, m.UID) == "" || clk.HasWaiters() }).
		WithTimeout(2*time.Second).WithPolling(poll).Should(BeTrue(), "what is held has a flush scheduled")
	clk.Step(window)
	g.Eventually(func() string { return heldMessage(c, m.UID) }).
		WithTimeout(2 * time.Second).WithPolling(poll).Should(BeEmpty())
	waitSettled(g, c, clk, m.UID)
	elapsed += window

	writes := s.written()
	t.Logf("%d pushes in %v: %d writes", goroutines*pushes, elapsed, len(writes))
	// One write per window at most, plus the first.
	g.Expect(len(writes)).To(BeNumerically("<=", 1+int(elapsed/window)))
	g.Expect(s.count()).To(Equal(len(writes)))
	// Each goroutine's last push is its newest; the last Record overall is
	// one of them, and it is what is written last.
	g.Expect(strings.HasSuffix(writes[len(writes)-1].hb.Message, fmt.Sprintf("-%d", pushes-1))).
		To(BeTrue(), "last write %q", writes[len(writes)-1].hb.Message)
}

// Many held heartbeats whose flush timers fire just as FlushAll runs: does
// FlushAll return only after all of them are written?
func TestCoalescerFlushAllRacesTimers(t *testing.T) {
	lost := 0
	for round := 0; round < 20; round++ {
		s := &fakeSink{}
		clk := newClock()
		c := newCoalescer(s, 50*time.Millisecond, clk)
		ctx := pushContext()
		const n = 500
		for i := range n {
			m := newMonitor(types.UID(fmt.Sprint("u", i)), time.Minute, defaultGrace)
			_ = c.Record(ctx, m, up(clk, "a"))
			_ = c.Record(ctx, m, up(clk, "b"))
		}
		clk.Step(50 * time.Millisecond) // every flush timer fires now
		c.FlushAll(context.Background())
		got := len(s.written()) - n
		if got != n {
			lost += n - got
			t.Logf("round %d: FlushAll returned with %d of %d held heartbeats written", round, got, n)
		}
	}
	if lost > 0 {
		t.Errorf("%d held heartbeats not yet written when FlushAll returned", lost)
	}
}

// gatedSink blocks flush writes (not those made by Record for a push) until
// release is closed, so a test can push while a flush is in flight.
type gatedSink struct {
	fakeSink
	entered chan struct{}
	release chan struct{}
}

func (s *gatedSink) Record(ctx context.Context, m *monitoringv1alpha1.PushMonitor, hb Heartbeat) error {
	if ctx.Value(pushKey{}) == nil {
		s.entered <- struct{}{}
		<-s.release
	}
	return s.fakeSink.Record(ctx, m, hb)
}

// A steady pusher costs one write per window: a push that arrives while the
// window's flush is being written is held for the next window, not written
// on its own (which would double the writes when pushes and flushes meet).
func TestCoalescerPushDuringFlushIsHeld(t *testing.T) {
	g := NewWithT(t)
	const window = 200 * time.Millisecond
	s := &gatedSink{entered: make(chan struct{}, 1), release: make(chan struct{})}
	clk := newClock()
	c := newCoalescer(s, window, clk)
	m := newMonitor("u1", time.Minute, defaultGrace)
	ctx := pushContext()

	g.Expect(c.Record(ctx, m, up(clk, "a"))).To(Succeed())
	g.Expect(c.Record(ctx, m, up(clk, "b"))).To(Succeed())
	clk.Step(window)
	g.Eventually(s.entered).WithTimeout(2 * time.Second).Should(Receive())
	flushStart := clk.Now()

	// The flush of "b" is in flight; "c" must neither write nor wait for it.
	g.Expect(c.Record(ctx, m, up(clk, "c"))).To(Succeed())
	g.Expect(s.messages()).To(Equal([]string{"a"}))
	g.Expect(heldMessage(c, m.UID)).To(Equal("c"))
	close(s.release)

	// c waits for the end of the window the flush of b opened.
	g.Eventually(s.messages).WithTimeout(2 * time.Second).WithPolling(poll).Should(Equal([]string{"a", "b"}))
	waitScheduled(g, clk, "c's flush is scheduled")
	clk.Step(window - time.Nanosecond)
	g.Expect(s.messages()).To(Equal([]string{"a", "b"}))
	clk.Step(time.Nanosecond)
	g.Eventually(s.messages).WithTimeout(2 * time.Second).WithPolling(poll).Should(Equal([]string{"a", "b", "c"}))
	g.Expect(s.written()[2].at.Sub(flushStart)).To(Equal(window))
	g.Expect(s.inRecord()).To(Equal([]bool{true, false, false}))
}

// A down report held in its window is not lost when a newer push replaces
// it: the push written next carries it (Folded), newest first, and a down
// report written itself carries nothing (it is the newest failure).
func TestCoalescerFoldsHeldDownReports(t *testing.T) {
	g := NewWithT(t)
	s := &fakeSink{}
	clk := newClock()
	c := newCoalescer(s, time.Minute, clk)
	m := newMonitor("u1", time.Hour, time.Hour)
	ctx := pushContext()

	g.Expect(c.Record(ctx, m, down(clk, "disk-full"))).To(Succeed()) // a change: written
	// The cache then shows the monitor Down.
	m = withStatus(m, monitoringv1alpha1.StateDown, monitoringv1alpha1.ReportedDown,
		metav1.ConditionFalse, monitoringv1alpha1.DownReportedReason, stamp(clk))
	clk.Step(time.Millisecond)
	g.Expect(c.Record(ctx, m, down(clk, "disk full on /var"))).To(Succeed()) // held
	clk.Step(time.Millisecond)
	newest := down(clk, "disk full on /var, still")
	g.Expect(c.Record(ctx, m, newest)).To(Succeed()) // replaces it
	g.Expect(heldMessage(c, m.UID)).To(Equal(newest.Message))
	clk.Step(time.Millisecond)
	g.Expect(c.Record(ctx, m, up(clk, "fixed"))).To(Succeed()) // a change: written
	g.Expect(s.messages()).To(Equal([]string{"disk-full", "fixed"}))
	written := s.written()
	g.Expect(written[0].hb.Folded).To(BeNil())
	g.Expect(written[1].hb.Folded).To(HaveValue(Equal(newest)), "the newest held down report rides on the up push")
	g.Expect(heldMessage(c, m.UID)).To(BeEmpty())
}

func TestFold(t *testing.T) {
	clk := newClock()
	d1 := down(clk, "d1")
	clk.Step(time.Second)
	d2 := down(clk, "d2")
	clk.Step(time.Second)
	u3 := up(clk, "u3")
	clk.Step(time.Second)
	u4 := up(clk, "u4")
	carrying := func(hb, d Heartbeat) Heartbeat { hb.Folded = &d; return hb }
	for _, c := range []struct {
		name         string
		newer, older Heartbeat
		want         *Heartbeat
	}{
		{"up over down", u3, d2, &d2},
		{"up over up", u4, u3, nil},
		{"down over down: the newer is the failure", d2, d1, nil},
		{"up over an up carrying a down", u4, carrying(u3, d2), &d2},
		{"the newest of what both carry", carrying(u4, d1), carrying(u3, d2), &d2},
		{"what newer carries, if newer", carrying(u4, d2), carrying(u3, d1), &d2},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := fold(c.newer, c.older)
			g := NewWithT(t)
			g.Expect(got.Message).To(Equal(c.newer.Message))
			if c.want == nil {
				g.Expect(got.Folded).To(BeNil())
			} else {
				g.Expect(got.Folded).To(HaveValue(Equal(*c.want)))
			}
		})
	}
}

func TestKeptFailure(t *testing.T) {
	clk := newClock()
	older := down(clk, "older")
	clk.Step(time.Second)
	newer := down(clk, "newer")
	stored := func(hb Heartbeat, shown bool) *monitoringv1alpha1.PushMonitorStatus {
		f := failureOf(hb)
		f.Shown = shown
		return &monitoringv1alpha1.PushMonitorStatus{LastFailure: f}
	}
	for _, c := range []struct {
		name      string
		st        *monitoringv1alpha1.PushMonitorStatus
		hb        Heartbeat
		want      string // the message kept; "" for none
		wantShown bool
	}{
		{"none stored", &monitoringv1alpha1.PushMonitorStatus{}, newer, "newer", false},
		{"newer than an unshown one", stored(older, false), newer, "newer", false},
		{"newer than a shown one: the same episode, no second event", stored(older, true), newer, "newer", true},
		{"older than the stored one", stored(newer, false), older, "", false},
		{"the stored one itself", stored(newer, true), newer, "", false},
		{"not a down report", &monitoringv1alpha1.PushMonitorStatus{}, up(clk, "fine"), "", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			g := NewWithT(t)
			got := keptFailure(c.st, c.hb)
			if c.want == "" {
				g.Expect(got).To(BeNil())
				return
			}
			g.Expect(got).NotTo(BeNil())
			g.Expect(got.Message).To(Equal(c.want))
			g.Expect(got.Shown).To(Equal(c.wantShown))
		})
	}
}
