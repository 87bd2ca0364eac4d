package heartbeat

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/types"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
)

// slowSink writes after a delay, as an API server under load does, and
// blocks while gate is closed.
type slowSink struct {
	fakeSink
	delay time.Duration
	gate  chan struct{} // nil: open
}

func (s *slowSink) Record(ctx context.Context, m *monitoringv1alpha1.PushMonitor, hb Heartbeat) error {
	if s.gate != nil {
		select {
		case <-s.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	select {
	case <-time.After(s.delay):
	case <-ctx.Done():
		return ctx.Err()
	}
	return s.fakeSink.Record(ctx, m, hb)
}

// The final flush (SIGTERM, lost leadership) writes thousands of held
// heartbeats within one deadline, in parallel: one after the other at 20ms
// a write, 2,000 would take 40s, far past the Pod's grace period.
func TestFinalFlushWritesThousandsWithinTheDeadline(t *testing.T) {
	g := NewWithT(t)
	const monitors = 2000
	s := &slowSink{delay: 20 * time.Millisecond}
	// A window far longer than the test, so that no flush timer writes
	// what the final flush must.
	clk := newClock()
	c := newCoalescer(&s.fakeSink, time.Hour, clk)
	ctx := pushContext()
	ms := make([]*monitoringv1alpha1.PushMonitor, monitors)
	for i := range ms {
		ms[i] = newMonitor(types.UID(fmt.Sprint("u", i)), 10*time.Hour, defaultGrace)
		g.Expect(c.Record(ctx, ms[i], up(clk, "first"))).To(Succeed())
	}
	c.Writer = s // the first pushes were written at once; the flush is slow
	for _, m := range ms {
		g.Expect(c.Record(ctx, m, up(clk, "held"))).To(Succeed())
	}
	g.Expect(s.attempts("held", false)).To(BeZero(), "every second push is held")

	start := time.Now()
	c.Drain(FinalFlushTimeout)
	took := time.Since(start)
	g.Expect(s.attempts("held", false)).To(Equal(monitors), "every held heartbeat is written (took %s)", took)
	g.Expect(took).To(BeNumerically("<", FinalFlushTimeout))
}

// A push that found its entry just before the final flush began is written
// before it is answered (or fails), never held where nothing will flush it.
func TestPushRacingFinalFlushIsWritten(t *testing.T) {
	g := NewWithT(t)
	s := &fakeSink{}
	clk := newClock()
	c := newCoalescer(s, 10*time.Second, clk)
	m := newMonitor("u1", time.Minute, defaultGrace)
	ctx := pushContext()
	g.Expect(c.Record(ctx, m, up(clk, "a"))).To(Succeed()) // written; the next push would be held

	var once sync.Once
	testHookEntry = func() { once.Do(func() { c.FlushAll(context.Background()) }) }
	defer func() { testHookEntry = nil }()
	g.Expect(c.Record(ctx, m, up(clk, "b"))).To(Succeed())
	g.Expect(s.messages()).To(Equal([]string{"a", "b"}), "b was answered, so it is written")
	g.Expect(s.inRecord()).To(Equal([]bool{true, true}), "written before the answer")
}

// Drain, called by main after the manager stopped, waits for a final flush
// that Start began, instead of returning while it still writes.
func TestDrainWaitsForTheFinalFlushInProgress(t *testing.T) {
	g := NewWithT(t)
	gate := make(chan struct{})
	s := &slowSink{gate: gate}
	clk := newClock()
	c := newCoalescer(&s.fakeSink, 10*time.Second, clk)
	m := newMonitor("u1", time.Minute, defaultGrace)
	ctx := pushContext()
	g.Expect(c.Record(ctx, m, up(clk, "a"))).To(Succeed())
	c.Writer = s
	g.Expect(c.Record(ctx, m, up(clk, "b"))).To(Succeed()) // held

	first := make(chan struct{})
	go func() { c.Drain(5 * time.Second); close(first) }()
	g.Eventually(func() bool { c.mu.Lock(); defer c.mu.Unlock(); return c.closed }).Should(BeTrue())

	second := make(chan struct{})
	go func() { c.Drain(5 * time.Second); close(second) }()
	g.Consistently(second).WithTimeout(200*time.Millisecond).ShouldNot(BeClosed(), "the second Drain waits for the first")
	close(gate)
	g.Eventually(second).Should(BeClosed())
	g.Eventually(first).Should(BeClosed())
	g.Expect(s.attempts("b", false)).To(Equal(1))
}

// A push that is due waits for an earlier write of its monitor only as long
// as its own context allows (the push endpoint's record bound), not for as
// long as the earlier write takes.
func TestDuePushWaitsBehindAFlushOnlyForItsContext(t *testing.T) {
	g := NewWithT(t)
	gate := make(chan struct{})
	defer close(gate)
	s := &slowSink{gate: gate}
	clk := newClock()
	c := newCoalescer(&s.fakeSink, 200*time.Millisecond, clk)
	m := newMonitor("u1", time.Minute, defaultGrace)
	g.Expect(c.Record(pushContext(), m, up(clk, "a"))).To(Succeed())
	c.Writer = s
	g.Expect(c.Record(pushContext(), m, up(clk, "b"))).To(Succeed()) // held; its flush blocks at the gate
	clk.Step(200 * time.Millisecond)
	g.Eventually(func() bool {
		c.mu.Lock()
		e := c.entries[m.UID]
		c.mu.Unlock()
		e.mu.Lock()
		defer e.mu.Unlock()
		return e.flushing
	}).WithTimeout(2*time.Second).WithPolling(poll).Should(BeTrue(), "b's flush is in flight")

	ctx, cancel := context.WithTimeout(pushContext(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := c.Record(ctx, m, down(clk, "due")) // a status change is due at once
	g.Expect(err).To(MatchError(context.DeadlineExceeded))
	g.Expect(time.Since(start)).To(BeNumerically("<", 2*time.Second))
}
