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
	mu    sync.Mutex
	err   error
	calls []sinkCall
}

func (s *fakeSink) Record(ctx context.Context, m *monitoringv1alpha1.PushMonitor, hb Heartbeat) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, sinkCall{
		at: time.Now(), uid: m.UID, hb: hb, err: s.err,
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

func up(msg string) Heartbeat {
	return Heartbeat{Time: Now(), Status: monitoringv1alpha1.ReportedUp, Message: msg}
}

func down(msg string) Heartbeat {
	return Heartbeat{Time: Now(), Status: monitoringv1alpha1.ReportedDown, Message: msg}
}

func newCoalescer(s Sink, window time.Duration) *Coalescer {
	return &Coalescer{Writer: s, Window: window, Log: logr.Discard()}
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
	c := newCoalescer(s, window)
	m := newMonitor("u1", time.Minute, defaultGrace) // grace 6s: window 300ms
	ctx := pushContext()

	// The first push of a window is written before Record returns.
	g.Expect(c.Record(ctx, m, up("a"))).To(Succeed())
	g.Expect(s.messages()).To(Equal([]string{"a"}))
	first := s.written()[0]

	// Later pushes are held, the newest wins.
	g.Expect(c.Record(ctx, m, up("b"))).To(Succeed())
	hbC := up("c")
	g.Expect(c.Record(ctx, m, hbC)).To(Succeed())
	g.Expect(s.count()).To(Equal(1))
	g.Expect(heldMessage(c, m.UID)).To(Equal("c"))
	g.Consistently(s.count).WithTimeout(window / 2).WithPolling(poll).Should(Equal(1))

	// ... and written once, at the window's end, with its receive time.
	g.Eventually(s.messages).WithTimeout(2 * time.Second).WithPolling(poll).Should(Equal([]string{"a", "c"}))
	flushed := s.written()[1]
	g.Expect(flushed.hb).To(Equal(hbC))
	g.Expect(flushed.uid).To(Equal(m.UID))
	g.Expect(flushed.at.Sub(first.at)).To(BeNumerically(">=", window-10*time.Millisecond))
	g.Expect(s.inRecord()).To(Equal([]bool{true, false}))
	g.Expect(heldMessage(c, m.UID)).To(BeEmpty())

	// The flush starts a new window: the next push is held again.
	g.Expect(c.Record(ctx, m, up("d"))).To(Succeed())
	g.Expect(s.count()).To(Equal(2))
	g.Eventually(s.messages).WithTimeout(2 * time.Second).WithPolling(poll).Should(Equal([]string{"a", "c", "d"}))
	g.Expect(s.written()[2].at.Sub(flushed.at)).To(BeNumerically(">=", window-10*time.Millisecond))
	g.Expect(s.inRecord()).To(Equal([]bool{true, false, false}))
	g.Consistently(s.count).WithTimeout(window + 100*time.Millisecond).WithPolling(poll).Should(Equal(3))
}

func TestCoalescerEffectiveWindow(t *testing.T) {
	ctx := pushContext()

	t.Run("grace period shorter than the window", func(t *testing.T) {
		g := NewWithT(t)
		s := &fakeSink{}
		c := newCoalescer(s, 10*time.Second)
		m := newMonitor("u1", time.Minute, 400*time.Millisecond)

		g.Expect(c.Record(ctx, m, up("a"))).To(Succeed())
		g.Expect(c.Record(ctx, m, up("b"))).To(Succeed())
		g.Expect(s.messages()).To(Equal([]string{"a"}))
		// Flushed after ~200ms (half the grace period), not after 10s.
		g.Eventually(s.messages).WithTimeout(time.Second).WithPolling(poll).Should(Equal([]string{"a", "b"}))
		w := s.written()
		g.Expect(w[1].at.Sub(w[0].at)).To(BeNumerically(">=", 190*time.Millisecond))
		g.Expect(s.inRecord()).To(Equal([]bool{true, false}))
	})

	t.Run("zero grace period writes every push", func(t *testing.T) {
		g := NewWithT(t)
		s := &fakeSink{}
		c := newCoalescer(s, 10*time.Second)
		m := newMonitor("u1", time.Minute, 0)
		for i := range 5 {
			g.Expect(c.Record(ctx, m, up(fmt.Sprint(i)))).To(Succeed())
			g.Expect(s.count()).To(Equal(i + 1))
		}
		g.Expect(s.messages()).To(Equal([]string{"0", "1", "2", "3", "4"}))
		g.Expect(s.inRecord()).To(HaveEach(BeTrue()))
		g.Expect(heldMessage(c, m.UID)).To(BeEmpty())
	})

	t.Run("zero window writes every push", func(t *testing.T) {
		g := NewWithT(t)
		s := &fakeSink{}
		c := newCoalescer(s, 0)
		m := newMonitor("u1", time.Minute, defaultGrace)
		for i := range 5 {
			g.Expect(c.Record(ctx, m, up(fmt.Sprint(i)))).To(Succeed())
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
		c := newCoalescer(s, window)
		m := newMonitor("u1", time.Minute, defaultGrace)

		g.Expect(c.Record(ctx, m, up("a"))).To(Succeed())
		g.Expect(c.Record(ctx, m, up("b"))).To(Succeed())
		g.Expect(s.messages()).To(Equal([]string{"a"}))
		g.Expect(c.Record(ctx, m, down("c"))).To(Succeed())
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
		c := newCoalescer(s, window)
		m := newMonitor("u1", time.Minute, defaultGrace)
		g.Expect(c.Record(ctx, m, up("a"))).To(Succeed())

		// The cache already shows a down report (another replica) that the
		// leader has not acted on: only this replica's last write differs.
		cached := withStatus(m, monitoringv1alpha1.StateUp, monitoringv1alpha1.ReportedDown,
			metav1.ConditionTrue, monitoringv1alpha1.HeartbeatReceivedReason, epoch)
		g.Expect(c.Record(ctx, cached, down("b"))).To(Succeed())
		g.Expect(s.messages()).To(Equal([]string{"a", "b"}))

		// And back: a stale cache still says up, this replica wrote down.
		g.Expect(c.Record(ctx, m, up("c"))).To(Succeed())
		g.Expect(s.messages()).To(Equal([]string{"a", "b", "c"}))
		g.Expect(s.inRecord()).To(Equal([]bool{true, true, true}))
		g.Expect(c.Record(ctx, m, up("d"))).To(Succeed())
		g.Expect(s.messages()).To(Equal([]string{"a", "b", "c"}))
		c.FlushAll(context.Background())
	})

	t.Run("differs from what another replica wrote", func(t *testing.T) {
		g := NewWithT(t)
		s := &fakeSink{}
		c := newCoalescer(s, window)
		m := newMonitor("u1", time.Minute, defaultGrace)
		g.Expect(c.Record(ctx, m, up("a"))).To(Succeed())
		g.Expect(c.Record(ctx, m, up("b"))).To(Succeed())
		g.Expect(s.messages()).To(Equal([]string{"a"}))

		// Another replica wrote a down report since; this replica's last
		// write was up, as is this push.
		cached := withStatus(m, monitoringv1alpha1.StateUp, monitoringv1alpha1.ReportedDown,
			metav1.ConditionTrue, monitoringv1alpha1.HeartbeatReceivedReason, epoch)
		g.Expect(c.Record(ctx, cached, up("c"))).To(Succeed())
		g.Expect(s.messages()).To(Equal([]string{"a", "c"}))
		g.Expect(s.inRecord()).To(Equal([]bool{true, true}))
		g.Expect(heldMessage(c, m.UID)).To(BeEmpty())
		c.FlushAll(context.Background())
	})

	t.Run("repeated down pushes are coalesced", func(t *testing.T) {
		g := NewWithT(t)
		s := &fakeSink{}
		c := newCoalescer(s, window)
		m := withStatus(newMonitor("u1", time.Minute, defaultGrace), monitoringv1alpha1.StateDown,
			monitoringv1alpha1.ReportedDown, metav1.ConditionFalse, monitoringv1alpha1.DownReportedReason, epoch)

		g.Expect(c.Record(ctx, m, down("a"))).To(Succeed())
		for _, msg := range []string{"b", "c", "d"} {
			g.Expect(c.Record(ctx, m, down(msg))).To(Succeed())
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
		c := newCoalescer(s, window)
		m := newMonitor("u1", time.Minute, defaultGrace)
		g.Expect(c.Record(ctx, m, up("a"))).To(Succeed())
		g.Expect(s.messages()).To(Equal([]string{"a"}))

		// The leader decided Down (deadline missed); the last report was up.
		t1 := epoch.Add(time.Hour)
		downed := withStatus(m, monitoringv1alpha1.StateDown, monitoringv1alpha1.ReportedUp,
			metav1.ConditionFalse, monitoringv1alpha1.HeartbeatMissedReason, t1)
		g.Expect(c.Record(ctx, downed, up("b"))).To(Succeed())
		g.Expect(s.messages()).To(Equal([]string{"a", "b"}))
		// Once per episode: the cache has not changed, the next is held.
		g.Expect(c.Record(ctx, downed, up("c"))).To(Succeed())
		g.Expect(s.messages()).To(Equal([]string{"a", "b"}))
		g.Expect(heldMessage(c, m.UID)).To(Equal("c"))

		// A new Down episode (Healthy changed again): written at once again.
		t2 := t1.Add(time.Hour)
		downedAgain := withStatus(m, monitoringv1alpha1.StateDown, monitoringv1alpha1.ReportedUp,
			metav1.ConditionFalse, monitoringv1alpha1.HeartbeatMissedReason, t2)
		g.Expect(c.Record(ctx, downedAgain, up("d"))).To(Succeed())
		g.Expect(s.messages()).To(Equal([]string{"a", "b", "d"}))
		g.Expect(c.Record(ctx, downedAgain, up("e"))).To(Succeed())
		g.Expect(s.messages()).To(Equal([]string{"a", "b", "d"}))
		c.FlushAll(context.Background())
		g.Expect(s.messages()).To(Equal([]string{"a", "b", "d", "e"}))
		g.Expect(s.inRecord()).To(Equal([]bool{true, true, true, false}))
	})

	t.Run("pending", func(t *testing.T) {
		g := NewWithT(t)
		s := &fakeSink{}
		c := newCoalescer(s, window)
		m := newMonitor("u1", time.Minute, defaultGrace)
		g.Expect(c.Record(ctx, m, up("a"))).To(Succeed())

		// Same Healthy transition time as before but another state: a new
		// episode.
		pending := withStatus(m, monitoringv1alpha1.StatePending, monitoringv1alpha1.ReportedUp,
			metav1.ConditionUnknown, monitoringv1alpha1.AwaitingFirstHeartbeatReason, epoch)
		g.Expect(c.Record(ctx, pending, up("b"))).To(Succeed())
		g.Expect(s.messages()).To(Equal([]string{"a", "b"}))
		g.Expect(c.Record(ctx, pending, up("c"))).To(Succeed())
		g.Expect(s.messages()).To(Equal([]string{"a", "b"}))
		c.FlushAll(context.Background())
		g.Expect(s.messages()).To(Equal([]string{"a", "b", "c"}))
		g.Expect(s.inRecord()).To(Equal([]bool{true, true, false}))
	})

	t.Run("first heartbeat of a pending monitor", func(t *testing.T) {
		g := NewWithT(t)
		s := &fakeSink{}
		c := newCoalescer(s, window)
		fresh := withStatus(newMonitor("u1", time.Minute, defaultGrace), monitoringv1alpha1.StatePending, "",
			metav1.ConditionUnknown, monitoringv1alpha1.AwaitingFirstHeartbeatReason, epoch)
		g.Expect(c.Record(ctx, fresh, up("a"))).To(Succeed())
		g.Expect(s.messages()).To(Equal([]string{"a"}))
		// The cache shows this write; the leader has not reconciled yet.
		seen := withStatus(fresh, monitoringv1alpha1.StatePending, monitoringv1alpha1.ReportedUp,
			metav1.ConditionUnknown, monitoringv1alpha1.AwaitingFirstHeartbeatReason, epoch)
		g.Expect(c.Record(ctx, seen, up("b"))).To(Succeed())
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
	const slack = 250 * time.Millisecond

	t.Run("held push is flushed by flushBy", func(t *testing.T) {
		t.Parallel()
		g := NewWithT(t)
		s := &fakeSink{}
		c := newCoalescer(s, 10*time.Second)
		m := newMonitor("u1", time.Second, time.Second)

		// The written heartbeat was received 1.2s ago: flushBy is in 0.3s,
		// the window ends in 1s.
		old := up("a")
		old.Time = Now().Add(-1200 * time.Millisecond)
		g.Expect(c.Record(ctx, m, old)).To(Succeed())
		g.Expect(c.Record(ctx, m, up("b"))).To(Succeed())
		g.Expect(s.messages()).To(Equal([]string{"a"}))
		writtenAt := s.written()[0].at

		g.Eventually(s.messages).WithTimeout(3 * time.Second).WithPolling(poll).Should(Equal([]string{"a", "b"}))
		by := old.Time.Add(2*time.Second - flushMargin)
		at := s.written()[1].at
		g.Expect(at).To(BeTemporally(">=", by.Add(-5*time.Millisecond)))
		g.Expect(at).To(BeTemporally("<=", by.Add(slack)))
		g.Expect(at).To(BeTemporally("<", writtenAt.Add(window)))
		g.Expect(s.inRecord()).To(Equal([]bool{true, false}))
	})

	t.Run("flushed heartbeat keeps its receive time", func(t *testing.T) {
		t.Parallel()
		g := NewWithT(t)
		s := &fakeSink{}
		c := newCoalescer(s, 10*time.Second)
		// timeout 300ms (shorter than the API allows, so that flushBy comes
		// before the next window's end), grace 1s: window 500ms.
		m := newMonitor("u2", 300*time.Millisecond, time.Second)

		g.Expect(c.Record(ctx, m, up("a"))).To(Succeed())
		b := up("b")
		g.Expect(c.Record(ctx, m, b)).To(Succeed())
		// b is written at the window's end (~500ms), carrying its receive time.
		g.Eventually(s.messages).WithTimeout(3 * time.Second).WithPolling(poll).Should(Equal([]string{"a", "b"}))
		flushedAt := s.written()[1].at
		// The next push is held; its window would end 500ms after the flush,
		// but b's deadline is b.Time + 1.3s: it must be flushed by b.Time + 0.8s.
		g.Expect(c.Record(ctx, m, up("c"))).To(Succeed())
		g.Expect(s.count()).To(Equal(2))
		g.Eventually(s.messages).WithTimeout(3 * time.Second).WithPolling(poll).Should(Equal([]string{"a", "b", "c"}))
		b = s.written()[1].hb // as stamped: ordered after a (see after)
		by := b.Time.Add(1300*time.Millisecond - flushMargin)
		at := s.written()[2].at
		g.Expect(at).To(BeTemporally(">=", by.Add(-5*time.Millisecond)))
		g.Expect(at).To(BeTemporally("<=", by.Add(slack)))
		g.Expect(at).To(BeTemporally("<", flushedAt.Add(window)))
		g.Expect(s.inRecord()).To(Equal([]bool{true, false, false}))
	})

	t.Run("push after flushBy is written at once", func(t *testing.T) {
		g := NewWithT(t)
		s := &fakeSink{}
		c := newCoalescer(s, 10*time.Second)
		late := newMonitor("u3", time.Second, time.Second)
		fresh := newMonitor("u4", time.Second, time.Second)

		// flushBy of late's written heartbeat passed 100ms ago.
		old := up("late-a")
		old.Time = Now().Add(-1600 * time.Millisecond)
		g.Expect(c.Record(ctx, late, old)).To(Succeed())
		g.Expect(c.Record(ctx, fresh, up("fresh-a"))).To(Succeed())

		// Both are in their window; only late's is past flushBy: it is
		// written before Record returns (not by a flush timer).
		g.Expect(c.Record(ctx, late, up("late-b"))).To(Succeed())
		g.Expect(s.messages()).To(Equal([]string{"late-a", "fresh-a", "late-b"}))
		g.Expect(s.inRecord()).To(Equal([]bool{true, true, true}))
		g.Expect(c.Record(ctx, fresh, up("fresh-b"))).To(Succeed())
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
		c := newCoalescer(s, 300*time.Millisecond)
		m := newMonitor("u1", time.Minute, defaultGrace)

		g.Expect(c.Record(ctx, m, up("a"))).To(Succeed())
		g.Expect(c.Record(ctx, m, up("b"))).To(Succeed())
		s.failWith(boom)
		g.Expect(c.Record(ctx, m, down("c"))).To(MatchError(boom))
		g.Expect(s.attempts("c", true)).To(Equal(1))
		g.Expect(heldMessage(c, m.UID)).To(Equal("b"))

		// The flush at the window's end fails, and is retried.
		g.Eventually(func() int { return s.attempts("b", true) }).
			WithTimeout(4 * time.Second).WithPolling(poll).Should(BeNumerically(">=", 2))
		g.Expect(heldMessage(c, m.UID)).To(Equal("b"))

		s.failWith(nil)
		g.Eventually(s.messages).WithTimeout(3 * time.Second).WithPolling(poll).Should(Equal([]string{"a", "b"}))
		g.Expect(s.inRecord()).To(Equal([]bool{true, false}))
		g.Expect(heldMessage(c, m.UID)).To(BeEmpty())
		// Written: the retries stop.
		n := s.count()
		g.Consistently(s.count).WithTimeout(1300 * time.Millisecond).WithPolling(20 * time.Millisecond).Should(Equal(n))
	})

	t.Run("after a failed due write the next push is written at once", func(t *testing.T) {
		g := NewWithT(t)
		s := &fakeSink{}
		c := newCoalescer(s, 10*time.Second)
		m := newMonitor("u1", time.Minute, defaultGrace)

		g.Expect(c.Record(ctx, m, up("a"))).To(Succeed())
		s.failWith(boom)
		g.Expect(c.Record(ctx, m, down("b"))).To(MatchError(boom))
		// Same status as the last write and the cache, in the window: it
		// would be held, but the API failed since.
		g.Expect(c.Record(ctx, m, up("c"))).To(MatchError(boom))
		s.failWith(nil)
		g.Expect(c.Record(ctx, m, up("d"))).To(Succeed())
		g.Expect(s.messages()).To(Equal([]string{"a", "d"}))
		g.Expect(s.inRecord()).To(Equal([]bool{true, true}))
		g.Expect(s.count()).To(Equal(4))
		// A write succeeded: back to holding.
		g.Expect(c.Record(ctx, m, up("e"))).To(Succeed())
		g.Expect(s.count()).To(Equal(4))
		c.FlushAll(context.Background())
	})

	t.Run("after a failed flush the next push is written at once", func(t *testing.T) {
		t.Parallel()
		g := NewWithT(t)
		s := &fakeSink{}
		c := newCoalescer(s, 10*time.Second)
		short := newMonitor("u1", time.Minute, 200*time.Millisecond) // window 200ms

		g.Expect(c.Record(ctx, short, up("a"))).To(Succeed())
		g.Expect(c.Record(ctx, short, up("b"))).To(Succeed())
		s.failWith(boom)
		g.Eventually(func() int { return s.attempts("b", true) }).
			WithTimeout(2 * time.Second).WithPolling(poll).Should(Equal(1))

		// The grace period was raised meanwhile (window 5s): without the
		// failed flush this push would be held; it is written, and fails
		// (the endpoint answers 503).
		long := newMonitor("u1", time.Minute, 5*time.Second)
		g.Expect(c.Record(ctx, long, up("c"))).To(MatchError(boom))
		g.Expect(s.attempts("c", true)).To(Equal(1))
		g.Expect(s.all()[len(s.all())-1].inRecord).To(BeTrue())

		// b, answered 200, is still retried and written once the API is back.
		s.failWith(nil)
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
			c := newCoalescer(s, 200*time.Millisecond)
			m := newMonitor("u1", time.Minute, defaultGrace)

			g.Expect(c.Record(ctx, m, up("a"))).To(Succeed())
			g.Expect(c.Record(ctx, m, up("b"))).To(Succeed())
			s.failWith(err)
			g.Eventually(func() int { return s.attempts("b", true) }).
				WithTimeout(2 * time.Second).WithPolling(poll).Should(Equal(1))
			g.Eventually(func() bool { return hasEntry(c, m.UID) }).
				WithTimeout(time.Second).WithPolling(poll).Should(BeFalse())
			// No retry (a generic failure would retry after 1s).
			g.Consistently(s.count).WithTimeout(1500 * time.Millisecond).WithPolling(20 * time.Millisecond).Should(Equal(2))

			// A later push with that UID starts afresh: written at once.
			s.failWith(nil)
			g.Expect(c.Record(ctx, m, up("c"))).To(Succeed())
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
	c := newCoalescer(s, 10*time.Second)
	m1 := newMonitor("u1", time.Minute, defaultGrace)
	m2 := newMonitor("u2", time.Minute, defaultGrace)
	m3 := newMonitor("u3", time.Minute, defaultGrace)

	for _, m := range []*monitoringv1alpha1.PushMonitor{m1, m2, m3} {
		g.Expect(c.Record(ctx, m, up(string(m.UID)+"-a"))).To(Succeed())
	}
	g.Expect(c.Record(ctx, m1, up("u1-b"))).To(Succeed())
	g.Expect(c.Record(ctx, m2, up("u2-b"))).To(Succeed())
	g.Expect(c.Record(ctx, m2, up("u2-c"))).To(Succeed())
	g.Expect(s.count()).To(Equal(3))

	c.FlushAll(context.Background())
	g.Expect(s.messages()[3:]).To(ConsistOf("u1-b", "u2-c"))
	g.Expect(s.inRecord()).To(Equal([]bool{true, true, true, false, false}))
	g.Expect(s.count()).To(Equal(5))
	g.Consistently(s.count).WithTimeout(200 * time.Millisecond).WithPolling(poll).Should(Equal(5))

	// After FlushAll, every push goes straight to the sink.
	for i, m := range []*monitoringv1alpha1.PushMonitor{m1, m1, m2, m3} {
		g.Expect(c.Record(ctx, m, up(fmt.Sprint("after-", i)))).To(Succeed())
		g.Expect(s.count()).To(Equal(6 + i))
		g.Expect(s.all()[5+i].inRecord).To(BeTrue())
	}
	s.failWith(errors.New("boom"))
	g.Expect(c.Record(ctx, m1, up("after-fail"))).To(HaveOccurred())
}

func TestCoalescerStartFlushesOnShutdown(t *testing.T) {
	g := NewWithT(t)
	s := &fakeSink{}
	c := newCoalescer(s, 10*time.Second)
	g.Expect(c.NeedLeaderElection()).To(BeFalse())
	m := newMonitor("u1", time.Minute, defaultGrace)

	runCtx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- c.Start(runCtx) }()

	ctx := pushContext()
	g.Expect(c.Record(ctx, m, up("a"))).To(Succeed())
	g.Expect(c.Record(ctx, m, up("b"))).To(Succeed())
	g.Consistently(done).WithTimeout(100 * time.Millisecond).WithPolling(poll).ShouldNot(Receive())
	g.Expect(s.messages()).To(Equal([]string{"a"}))

	cancel()
	g.Eventually(done).WithTimeout(2 * time.Second).WithPolling(poll).Should(Receive(BeNil()))
	// Flushed before Start returned.
	g.Expect(s.messages()).To(Equal([]string{"a", "b"}))

	g.Expect(c.Record(ctx, m, up("c"))).To(Succeed())
	g.Expect(s.messages()).To(Equal([]string{"a", "b", "c"}))
	g.Expect(s.inRecord()).To(Equal([]bool{true, false, true}))
}

func TestCoalescerConcurrentPushesStayBounded(t *testing.T) {
	g := NewWithT(t)
	const (
		window     = 100 * time.Millisecond
		goroutines = 50
		pushes     = 100
	)
	s := &fakeSink{}
	c := newCoalescer(s, window)
	m := newMonitor("u1", time.Minute, defaultGrace)
	ctx := pushContext()

	errs := make(chan error, goroutines*pushes)
	var wg sync.WaitGroup
	start := time.Now()
	for gr := range goroutines {
		wg.Go(func() {
			for i := range pushes {
				if err := c.Record(ctx, m, up(fmt.Sprintf("%d-%d", gr, i))); err != nil {
					errs <- err
				}
				if i%20 == 19 {
					time.Sleep(time.Millisecond) // spread the pushes a little
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(errs)
	g.Expect(errs).To(BeEmpty())

	// The last push is written (at once or by the flush at its window's end).
	g.Eventually(func() string { return heldMessage(c, m.UID) }).
		WithTimeout(2 * time.Second).WithPolling(poll).Should(BeEmpty())
	n := s.count()
	g.Consistently(s.count).WithTimeout(window + 50*time.Millisecond).WithPolling(poll).Should(Equal(n))

	writes := s.written()
	t.Logf("%d pushes in %v: %d writes", goroutines*pushes, elapsed, len(writes))
	// One write per window at most, plus the final flush.
	g.Expect(len(writes)).To(BeNumerically("<=", 2+int(elapsed/window)))
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
		c := newCoalescer(s, 50*time.Millisecond)
		ctx := pushContext()
		const n = 500
		for i := range n {
			m := newMonitor(types.UID(fmt.Sprint("u", i)), time.Minute, defaultGrace)
			_ = c.Record(ctx, m, up("a"))
			_ = c.Record(ctx, m, up("b"))
		}
		time.Sleep(50 * time.Millisecond) // timers due now
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
	c := newCoalescer(s, window)
	m := newMonitor("u1", time.Minute, defaultGrace)
	ctx := pushContext()

	g.Expect(c.Record(ctx, m, up("a"))).To(Succeed())
	g.Expect(c.Record(ctx, m, up("b"))).To(Succeed())
	g.Eventually(s.entered).WithTimeout(2 * time.Second).Should(Receive())
	flushStart := time.Now()

	// The flush of "b" is in flight; "c" must neither write nor wait for it.
	g.Expect(c.Record(ctx, m, up("c"))).To(Succeed())
	g.Expect(s.messages()).To(Equal([]string{"a"}))
	g.Expect(heldMessage(c, m.UID)).To(Equal("c"))
	close(s.release)

	g.Eventually(s.messages).WithTimeout(2 * time.Second).WithPolling(poll).Should(Equal([]string{"a", "b", "c"}))
	g.Expect(s.written()[2].at.Sub(flushStart)).To(BeNumerically(">=", window-20*time.Millisecond))
	g.Expect(s.inRecord()).To(Equal([]bool{true, false, false}))
}
