package heartbeat

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
)

// DefaultWindow is the default resolution window: how often at most a
// monitor's heartbeat is written while its state does not change.
const DefaultWindow = 5 * time.Second

// FinalFlushTimeout bounds the final flush on shutdown or lost leadership:
// inside the manager Pod's terminationGracePeriodSeconds (15s in
// config/manager), with room for the push endpoint's own shutdown.
const FinalFlushTimeout = 10 * time.Second

// finalFlushWorkers is how many held heartbeats the final flush writes at
// once. The API client's rate limiter (--kube-api-qps, --kube-api-burst)
// still applies.
const finalFlushWorkers = 64

// flushMargin is how long before the deadline of the last written heartbeat
// a held heartbeat is written at the latest, so the leader knows of it
// before it could decide Down. It must exceed a status write's latency.
const flushMargin = 500 * time.Millisecond

// idleAfter is how long an entry with nothing held is kept.
const idleAfter = 2 * time.Minute

// Coalescer bounds API writes per monitor. The first heartbeat of a window
// is written before it is answered; later ones in the same window are held
// (the newest wins) and written at the window's end, or earlier when the
// deadline of the last written heartbeat nears. A heartbeat that changes
// what the leader decides (a down push, an up push after down, the first
// heartbeat of a Pending or Down monitor) is written at once.
//
// The effective window of a monitor is H = min(Window, gracePeriod/2). A
// replica that crashes loses what it holds: heartbeats received less than
// 2H after the one stored (a flush opens the next window while the
// heartbeat it writes may be almost one window old, and the next window's
// pushes are held until its end). 2H <= gracePeriod, so the grace covers
// the loss and a crash causes no false Down (docs/reliability.md).
//
// Coalescer implements manager.Runnable: on shutdown it writes what it
// holds, in parallel, within FinalFlushTimeout (Drain does the same when the
// manager stopped without waiting for its runnables, as on lost leadership).
type Coalescer struct {
	// Writer does the writes (a *Writer in production).
	Writer Sink
	Window time.Duration
	Log    logr.Logger
	// Clock runs the windows, the flush timers and the sweep of idle
	// entries; the real clock when nil (tests pass a fake one).
	Clock clock.WithTickerAndDelayedExecution

	mu      sync.Mutex
	entries map[types.UID]*entry
	closed  bool
	// flushed is closed when the final flush is done.
	flushed chan struct{}
}

// Sink is where heartbeats are written.
type Sink interface {
	Record(ctx context.Context, m *monitoringv1alpha1.PushMonitor, hb Heartbeat) error
}

// entry is one monitor's coalescing state. mu guards the fields and is
// never held across an API call, so pushes are answered from memory while a
// write is in flight; writing (a one-slot semaphore, so that a push can stop
// waiting when its context ends) orders the writes of one monitor.
type entry struct {
	mu      sync.Mutex
	writing chan struct{}
	// closed: the final flush has taken this entry; nothing is held any
	// more, every push is written before it is answered.
	closed bool
	// writtenAt is when the last write started; zero after a failed write,
	// so the next push writes (and answers 503 if the API is still down).
	writtenAt time.Time
	// written is the last heartbeat written.
	written Heartbeat
	// held is the newest heartbeat answered but not yet written.
	held *Heartbeat
	// monitor is the monitor the held one is for, as of its last push.
	monitor *monitoringv1alpha1.PushMonitor
	// window is the monitor's, as of its last push.
	window time.Duration
	// writtenDeadline is the deadline that follows from the written
	// heartbeat (DeadlineFrom: timeout + grace, or the schedule's).
	writtenDeadline time.Time
	timer           clock.Timer
	flushing        bool
	// nudged is the health episode an up push was last written at once for.
	nudged string
}

// lockWrites waits for the monitor's write slot, or until ctx ends.
func (e *entry) lockWrites(ctx context.Context) error {
	select {
	case e.writing <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (e *entry) unlockWrites() { <-e.writing }

// testHookEntry, when set (tests), runs after Record found the entry and
// before it locks it: the moment a final flush can begin under a push.
var testHookEntry func()

// healthEpisode identifies the monitor's current state as the cache shows
// it: the state and when its Healthy condition last changed.
func healthEpisode(m *monitoringv1alpha1.PushMonitor) string {
	for _, c := range m.Status.Conditions {
		if c.Type == monitoringv1alpha1.HealthyCondition {
			return string(m.Status.State) + "@" + c.LastTransitionTime.UTC().Format(time.RFC3339)
		}
	}
	return string(m.Status.State)
}

// NeedLeaderElection is false: every replica ingests pushes.
func (c *Coalescer) NeedLeaderElection() bool { return false }

// Record stores hb. It returns nil once hb is written, or held to be
// written within the window; an error when a write that was due failed.
func (c *Coalescer) Record(ctx context.Context, m *monitoringv1alpha1.PushMonitor, hb Heartbeat) error {
	e, closed := c.entry(m.UID)
	if closed {
		return c.Writer.Record(ctx, m, after(m, nil, hb))
	}
	if testHookEntry != nil {
		testHookEntry()
	}
	e.mu.Lock()
	hb = after(m, e, hb)
	if e.closed {
		guard := e.guardLocked(m, hb)
		e.mu.Unlock()
		return c.Writer.Record(ctx, guard, hb)
	}
	now := c.clock().Now()
	e.window = c.windowOf(m)
	// An up push to a Pending or Down monitor ends that state; write it at
	// once, but once per episode, so that pushes keep their bound even
	// while no leader acts on them.
	var episode string
	ends := false
	if hb.Status == monitoringv1alpha1.ReportedUp &&
		(m.Status.State == monitoringv1alpha1.StatePending || m.Status.State == monitoringv1alpha1.StateDown) {
		episode = healthEpisode(m)
		ends = e.nudged != episode
	}
	if !e.dueLocked(now, m, hb, ends) {
		e.holdLocked(c, m, hb)
		e.mu.Unlock()
		return nil
	}
	e.mu.Unlock()

	if err := e.lockWrites(ctx); err != nil {
		return fmt.Errorf("waiting for the write of an earlier heartbeat: %w", err)
	}
	defer e.unlockWrites()
	// A flush may have written while this push waited; if that made it no
	// longer due, hold it, so writes stay one per window.
	e.mu.Lock()
	if now = c.clock().Now(); !e.closed && !e.dueLocked(now, m, hb, ends) {
		e.holdLocked(c, m, hb)
		e.mu.Unlock()
		return nil
	}
	if e.held != nil && !e.held.Time.After(hb.Time) {
		hb = fold(hb, *e.held) // the held one is dropped once hb is written
	}
	guard := e.guardLocked(m, hb)
	e.mu.Unlock()
	err := c.Writer.Record(ctx, guard, hb)
	e.mu.Lock()
	defer e.mu.Unlock()
	if err != nil {
		// A heartbeat held earlier stays held and its flush keeps
		// retrying: it was answered 200.
		e.writtenAt = time.Time{}
		return err
	}
	if e.held != nil && !e.held.Time.After(hb.Time) {
		e.held = nil // older than hb, which is now written
		e.stopTimer()
	}
	e.writtenAt, e.written, e.writtenDeadline = now, hb, m.DeadlineFrom(hb.Time)
	if ends {
		e.nudged = episode
	}
	return nil
}

// after orders hb after every heartbeat this replica knows of for the
// monitor (stored, as the cache shows; written or held, as e shows): a push
// received after those is stamped later than they are even if this
// replica's clock is behind the one that stamped them (a Lamport clock over
// receive times). Clock skew between replicas then only matters for pushes
// whose order no replica saw, which it bounds (docs/reliability.md).
func after(m *monitoringv1alpha1.PushMonitor, e *entry, hb Heartbeat) Heartbeat {
	var known time.Time
	if t := m.Status.LastHeartbeatTime; t != nil {
		known = t.Time
	}
	if e != nil {
		if e.written.Time.After(known) {
			known = e.written.Time
		}
		if e.held != nil && e.held.Time.After(known) {
			known = e.held.Time
		}
	}
	if !known.IsZero() && !hb.Time.After(known) {
		hb.Time = known.Add(time.Microsecond)
	}
	return hb
}

// guardLocked is the monitor to write hb against: m, or, when this replica
// wrote a heartbeat the cache does not show yet, m as it stands after that
// write, so that the write's compare-and-swap does not fail on this
// replica's own write. Run signals are written read-modify-write from m.
func (e *entry) guardLocked(m *monitoringv1alpha1.PushMonitor, hb Heartbeat) *monitoringv1alpha1.PushMonitor {
	if Counted(m, hb) || e.written.Time.IsZero() {
		return m
	}
	if t := m.Status.LastHeartbeatTime; t != nil && !e.written.Time.After(t.Time) {
		return m
	}
	g := *m // shallow: the writer reads it only
	at := metav1.NewMicroTime(e.written.Time)
	g.Status.LastHeartbeatTime = &at
	return &g
}

// dueLocked reports whether hb must be written before it is answered.
func (e *entry) dueLocked(now time.Time, m *monitoringv1alpha1.PushMonitor, hb Heartbeat, ends bool) bool {
	// A change of reported status is due at once, compared both with this
	// replica's last write and with what the API holds (another replica may
	// have written since). Run signals are never coalesced (Counted).
	return e.writtenAt.IsZero() ||
		now.Sub(e.writtenAt) >= e.window ||
		hb.Status != e.written.Status ||
		m.Status.LastReportedStatus != "" && hb.Status != m.Status.LastReportedStatus ||
		ends ||
		Counted(m, hb) ||
		!now.Before(e.flushBy())
}

// holdLocked keeps hb to be written at the window's end, unless a newer
// heartbeat is held already; either way the held one carries the newest
// down report of the two (fold).
func (e *entry) holdLocked(c *Coalescer, m *monitoringv1alpha1.PushMonitor, hb Heartbeat) {
	if e.held != nil {
		if e.held.Time.After(hb.Time) {
			newest := fold(*e.held, hb) // hb is older: only its failure, if any, is kept
			e.held = &newest
			return
		}
		hb = fold(hb, *e.held)
	}
	e.held = &hb
	// What a flush needs of the monitor: identity, timing, state (the
	// writer adds the deadline while Up) and the stored heartbeat its write
	// is guarded by. The spec's pointers are shared
	// with the cache, which never modifies them in place.
	e.monitor = &monitoringv1alpha1.PushMonitor{
		ObjectMeta: metav1.ObjectMeta{Namespace: m.Namespace, Name: m.Name, UID: m.UID},
		Spec:       m.Spec,
		Status: monitoringv1alpha1.PushMonitorStatus{
			State: m.Status.State, LastHeartbeatTime: m.Status.LastHeartbeatTime,
			LastReportedStatus: m.Status.LastReportedStatus,
		},
	}
	e.armLocked(c)
}

// flushBy is when a held heartbeat must be written at the latest: a margin
// before the deadline of the last written one.
func (e *entry) flushBy() time.Time {
	if e.written.Time.IsZero() {
		return time.Time{}
	}
	return e.writtenDeadline.Add(-flushMargin)
}

// armLocked schedules the flush of the held heartbeat, unless one is
// scheduled or running (which re-arms when it is done).
func (e *entry) armLocked(c *Coalescer) {
	if e.timer != nil || e.flushing || e.held == nil {
		return
	}
	at := e.writtenAt.Add(e.window)
	if by := e.flushBy(); by.Before(at) {
		at = by
	}
	e.timer = c.flushAfter(at.Sub(c.clock().Now()), e.monitor.UID, e)
}

// flushAfter runs the flush of e after d on c's clock, in a goroutine of its
// own as time.AfterFunc would: a fake clock calls the function inside Step,
// holding its own lock, which the flush's calls of the clock would wait for.
func (c *Coalescer) flushAfter(d time.Duration, uid types.UID, e *entry) clock.Timer {
	return c.clock().AfterFunc(d, func() { go c.flush(uid, e) })
}

// clock is c.Clock, or the real clock.
func (c *Coalescer) clock() clock.WithTickerAndDelayedExecution {
	if c.Clock != nil {
		return c.Clock
	}
	return clock.RealClock{}
}

func (c *Coalescer) windowOf(m *monitoringv1alpha1.PushMonitor) time.Duration {
	w := c.Window
	if w <= 0 {
		return 0
	}
	return min(w, m.GracePeriodDuration()/2)
}

func (c *Coalescer) entry(uid types.UID) (*entry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, true
	}
	if c.entries == nil {
		c.entries = map[types.UID]*entry{}
	}
	e, ok := c.entries[uid]
	if !ok {
		e = &entry{writing: make(chan struct{}, 1)}
		c.entries[uid] = e
	}
	return e, false
}

// flush writes a monitor's held heartbeat at its window's end, retrying
// while the API fails: it was answered 200 and must not be lost.
func (c *Coalescer) flush(uid types.UID, e *entry) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if e.lockWrites(ctx) != nil {
		e.mu.Lock()
		e.timer = nil
		e.armLocked(c) // still held: try again
		e.mu.Unlock()
		return
	}
	defer e.unlockWrites()
	e.mu.Lock()
	e.timer = nil
	if e.held == nil || e.closed {
		// Written already, or the final flush owns it now.
		e.mu.Unlock()
		return
	}
	if now := c.clock().Now(); !e.writtenAt.IsZero() && now.Sub(e.writtenAt) < e.window && now.Before(e.flushBy()) {
		// A push was written while this timer fired: what is held now
		// waits for the end of that write's window.
		e.armLocked(c)
		e.mu.Unlock()
		return
	}
	hb := *e.held
	m := e.guardLocked(e.monitor, hb)
	e.held, e.flushing = nil, true
	// The flush opens the next window: pushes that arrive while it runs are
	// held for the window's end instead of each writing on its own, so a
	// steady pusher costs one write per window.
	e.writtenAt = c.clock().Now()
	e.mu.Unlock()

	err := c.Writer.Record(ctx, m, hb)

	e.mu.Lock()
	defer e.mu.Unlock()
	e.flushing = false
	switch {
	case err == nil:
		if hb.Time.After(e.written.Time) {
			e.written, e.writtenDeadline = hb, m.DeadlineFrom(hb.Time)
		}
		e.armLocked(c) // for pushes held while this write ran
	case gone(err):
		// The monitor is gone (or was re-created): nothing to keep.
		e.held = nil
		c.forget(uid)
	default:
		c.Log.Error(err, "writing held heartbeat; retrying", "namespace", m.Namespace, "name", m.Name)
		if e.held == nil {
			e.held = &hb
		}
		e.writtenAt = time.Time{}
		e.stopTimer()
		if !e.closed { // else the final flush writes it
			e.timer = c.flushAfter(time.Second, uid, e)
		}
	}
}

// gone: the monitor was deleted or re-created since the heartbeat was taken.
func gone(err error) bool {
	return apierrors.IsNotFound(err) || errors.Is(err, ErrMonitorReplaced)
}

func (c *Coalescer) forget(uid types.UID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.entries, uid)
}

func (e *entry) stopTimer() {
	if e.timer != nil {
		e.timer.Stop()
		e.timer = nil
	}
}

// Start drops idle entries until ctx ends, then writes every held
// heartbeat; pushes that arrive after that are written directly.
func (c *Coalescer) Start(ctx context.Context) error {
	tick := c.clock().NewTicker(idleAfter)
	defer tick.Stop()
	for {
		select {
		case <-tick.C():
			c.sweep()
		case <-ctx.Done():
			c.Drain(FinalFlushTimeout)
			return nil
		}
	}
}

func (c *Coalescer) sweep() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for uid, e := range c.entries {
		if e.mu.TryLock() {
			if e.held == nil && e.timer == nil && c.clock().Since(e.writtenAt) > idleAfter {
				delete(c.entries, uid)
			}
			e.mu.Unlock()
		}
	}
}

// Drain is FlushAll within timeout. cmd/main.go calls it after the manager
// stopped, since a manager that lost its leader election stops without
// waiting for its runnables (so Start's own final flush would be cut off).
func (c *Coalescer) Drain(timeout time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c.FlushAll(ctx)
}

// FlushAll stops holding heartbeats and writes those held, several at once,
// until ctx ends. It runs once; a second call waits for the first to finish
// (or for its own ctx). Pushes from then on are written before they are
// answered, including one that found its entry just before FlushAll began.
func (c *Coalescer) FlushAll(ctx context.Context) {
	c.mu.Lock()
	if c.closed {
		done := c.flushed
		c.mu.Unlock()
		select {
		case <-done:
		case <-ctx.Done():
		}
		return
	}
	c.closed = true
	c.flushed = make(chan struct{})
	entries := c.entries
	c.entries = nil
	c.mu.Unlock()
	defer close(c.flushed)

	work := make(chan *entry)
	var wg sync.WaitGroup
	var lost atomic.Int64
	for range min(finalFlushWorkers, max(len(entries), 1)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for e := range work {
				if !c.flushFinal(ctx, e) {
					lost.Add(1)
				}
			}
		}()
	}
	for _, e := range entries {
		e.mu.Lock()
		e.closed = true
		e.stopTimer()
		e.mu.Unlock()
		work <- e
	}
	close(work)
	wg.Wait()
	if n := lost.Load(); n > 0 {
		c.Log.Error(ctx.Err(), "final flush ended with held heartbeats unwritten", "monitors", n)
	}
}

// flushFinal writes e's held heartbeat, retrying until ctx ends. It waits
// for a write in flight (whose failure leaves its heartbeat held). It
// reports whether nothing held is left unwritten.
func (c *Coalescer) flushFinal(ctx context.Context, e *entry) bool {
	if e.lockWrites(ctx) != nil {
		return false
	}
	defer e.unlockWrites()
	for {
		e.mu.Lock()
		if e.held == nil {
			e.mu.Unlock()
			return true
		}
		hb := *e.held
		m := e.guardLocked(e.monitor, hb)
		e.mu.Unlock()
		err := c.Writer.Record(ctx, m, hb)
		if err == nil || gone(err) {
			e.mu.Lock()
			if e.held != nil && !e.held.Time.After(hb.Time) {
				e.held = nil
			}
			e.mu.Unlock()
			continue
		}
		select {
		case <-ctx.Done():
			return false
		case <-c.clock().After(200 * time.Millisecond):
		}
	}
}
