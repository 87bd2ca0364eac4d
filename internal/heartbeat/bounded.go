package heartbeat

import (
	"context"
	"fmt"
	"time"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
)

// DefaultMaxWrites is how many heartbeat writes a replica makes at once by
// default: about what saturates an API server (client-go patching ConfigMaps
// on 2 cores is as fast with 8 concurrent clients as with 32), so that more
// would only queue in it.
const DefaultMaxWrites = 8

// writeTimeout bounds a write that its push stopped waiting for.
const writeTimeout = 30 * time.Second

// Bounded passes at most a fixed number of writes at a time to Sink, counted
// until the API server has answered each: a push that stops waiting (its
// context ends; it is answered 503) leaves its write running, in its slot,
// until the API server answers it or writeTimeout passes. A write that finds
// every slot taken waits for one until its push's context ends.
//
// Without the bound, a flood of pushes whose heartbeats must be written
// (every monitor's first push after a mass creation, or every push while no
// leader holds them) put thousands of writes in flight at the API server.
// Counting a write only until its push gave up would not do either: the API
// server goes on with a request whose client timed out, so each timeout
// would add one more write to its load, and its latency, already past the
// push's deadline, would only grow (a 20,000-monitor bench step counted
// more writes answered 504 than 200), until the leader could not renew its
// Lease and every push needed a write.
type Bounded struct {
	Sink  Sink
	slots chan struct{}
}

// NewBounded bounds s to n writes at a time; n <= 0 leaves s unbounded.
func NewBounded(s Sink, n int) Sink {
	if n <= 0 {
		return s
	}
	return &Bounded{Sink: s, slots: make(chan struct{}, n)}
}

// Record writes hb through Sink once a slot is free, and returns its result,
// or ctx's error once ctx ends (the write then goes on in its slot).
func (b *Bounded) Record(ctx context.Context, m *monitoringv1alpha1.PushMonitor, hb Heartbeat) error {
	select {
	case b.slots <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("waiting for one of %d heartbeat write slots: %w", cap(b.slots), ctx.Err())
	}
	done := make(chan error, 1)
	go func() {
		defer func() { <-b.slots }()
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), writeTimeout)
		defer cancel()
		done <- b.Sink.Record(wctx, m, hb)
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("waiting for the API server to store the heartbeat: %w", ctx.Err())
	}
}
