package heartbeat

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
)

// blockingSink counts the writes in flight and holds each until release.
type blockingSink struct {
	inFlight, most atomic.Int32
	release        chan struct{}
	done           atomic.Int32
}

func (s *blockingSink) Record(ctx context.Context, _ *monitoringv1alpha1.PushMonitor, _ Heartbeat) error {
	n := s.inFlight.Add(1)
	for {
		m := s.most.Load()
		if n <= m || s.most.CompareAndSwap(m, n) {
			break
		}
	}
	defer s.inFlight.Add(-1)
	select {
	case <-s.release:
		s.done.Add(1)
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// At most n writes reach the sink at once; the others wait for a slot, and
// one whose context ends while waiting fails without reaching the sink. A
// push that stops waiting for its write leaves the write in its slot until
// the sink answers it.
func TestBoundedWrites(t *testing.T) {
	g := NewWithT(t)
	s := &blockingSink{release: make(chan struct{})}
	b := NewBounded(s, 3)
	m := newMonitor("u1", time.Minute, defaultGrace)

	var wg sync.WaitGroup
	errs := make(chan error, 10)
	for range 9 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- b.Record(context.Background(), m, Heartbeat{Time: Now()})
		}()
	}
	g.Eventually(s.inFlight.Load).Should(Equal(int32(3)))
	g.Consistently(s.inFlight.Load).WithTimeout(100 * time.Millisecond).Should(Equal(int32(3)))

	// A write whose push gives up while every slot is taken.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := b.Record(ctx, m, Heartbeat{Time: Now()})
	g.Expect(errors.Is(err, context.DeadlineExceeded)).To(BeTrue(), "%v", err)
	g.Expect(err.Error()).To(ContainSubstring("waiting for one of 3 heartbeat write slots"))

	close(s.release)
	wg.Wait()
	close(errs)
	for err := range errs {
		g.Expect(err).NotTo(HaveOccurred())
	}
	g.Expect(s.done.Load()).To(Equal(int32(9)), "every waiting write was made")
	g.Expect(s.most.Load()).To(Equal(int32(3)), "never more than 3 at once")
	g.Expect(NewBounded(s, 0)).To(BeIdenticalTo(Sink(s)), "0: unbounded")
}

// A push that stops waiting for its write is answered with an error at
// once, but its write goes on, and holds its slot until the API answers:
// the bound counts what the API server still works on.
func TestBoundedWriteOutlivesItsPush(t *testing.T) {
	g := NewWithT(t)
	s := &blockingSink{release: make(chan struct{})}
	b := NewBounded(s, 1)
	m := newMonitor("u1", time.Minute, defaultGrace)

	ctx, cancel := context.WithCancel(context.Background())
	answered := make(chan error, 1)
	go func() { answered <- b.Record(ctx, m, Heartbeat{Time: Now()}) }()
	g.Eventually(s.inFlight.Load).Should(Equal(int32(1)))
	cancel()
	var err error
	g.Eventually(answered).Should(Receive(&err))
	g.Expect(errors.Is(err, context.Canceled)).To(BeTrue(), "%v", err)
	g.Expect(err.Error()).To(ContainSubstring("waiting for the API server to store the heartbeat"))
	g.Consistently(s.inFlight.Load).WithTimeout(100*time.Millisecond).Should(Equal(int32(1)), "the write goes on")

	// Its slot is still taken: the next write waits for it.
	next := make(chan error, 1)
	go func() { next <- b.Record(context.Background(), m, Heartbeat{Time: Now()}) }()
	g.Consistently(next).WithTimeout(100 * time.Millisecond).ShouldNot(Receive())
	close(s.release)
	g.Eventually(next).Should(Receive(BeNil()))
	g.Expect(s.done.Load()).To(Equal(int32(2)), "both writes made")
	g.Expect(s.most.Load()).To(Equal(int32(1)))
}
