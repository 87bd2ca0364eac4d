package heartbeat

import (
	"context"
	"fmt"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
)

// DefaultMaxWrites is how many heartbeat writes a replica makes at once by
// default: about what saturates an API server (client-go patching ConfigMaps
// on 2 cores is as fast with 8 concurrent clients as with 32), so that more
// would only queue in it.
const DefaultMaxWrites = 8

// Bounded passes at most a fixed number of writes at a time to Sink; a write
// that finds every slot taken waits for one until its context ends, and then
// fails, so that the push is answered 503 in its time rather than queued in
// the API server. Without the bound, a flood of pushes whose heartbeats must
// be written (every monitor's first push, or every push while no leader holds
// them) would drive the API server past its capacity, and slow the leader's
// Lease renewals there until it lost its Lease: then every push would need a
// write, and the flood would keep any leader from holding the Lease.
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

// Record writes hb through Sink once a slot is free.
func (b *Bounded) Record(ctx context.Context, m *monitoringv1alpha1.PushMonitor, hb Heartbeat) error {
	select {
	case b.slots <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("waiting for one of %d heartbeat write slots: %w", cap(b.slots), ctx.Err())
	}
	defer func() { <-b.slots }()
	return b.Sink.Record(ctx, m, hb)
}
