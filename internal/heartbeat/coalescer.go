package heartbeat

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
)

// DefaultWindow is the default resolution window: how often at most a
// monitor's heartbeat is written while its state does not change.
const DefaultWindow = 5 * time.Second

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
// The effective window of a monitor is min(Window, gracePeriod): a replica
// that crashes loses at most its held heartbeat, which is at most one window
// newer than the one written, and the grace period covers that age.
//
// Coalescer implements manager.Runnable: on shutdown it writes what it holds.
type Coalescer struct {
	// Writer does the writes (a *Writer in production).
	Writer Sink
	Window time.Duration
	Log    logr.Logger

	mu      sync.Mutex
	entries map[types.UID]*entry
	closed  bool
}

// Sink is where heartbeats are written.
type Sink interface {
	Record(ctx context.Context, m *monitoringv1alpha1.PushMonitor, hb Heartbeat) error
}

// entry is one monitor's coalescing state. mu guards the fields and is
// never held across an API call, so pushes are answered from memory while a
// write is in flight; wmu orders the writes of one monitor.
type entry struct {
	mu  sync.Mutex
	wmu sync.Mutex
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
	timer           *time.Timer
	flushing        bool
	// nudged is the health episode an up push was last written at once for.
	nudged string
}

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
		return c.Writer.Record(ctx, m, hb)
	}
	e.mu.Lock()
	now := time.Now()
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

	e.wmu.Lock()
	defer e.wmu.Unlock()
	// A flush may have written while this push waited for wmu; if that
	// made it no longer due, hold it, so writes stay one per window.
	e.mu.Lock()
	if now = time.Now(); !e.dueLocked(now, m, hb, ends) {
		e.holdLocked(c, m, hb)
		e.mu.Unlock()
		return nil
	}
	e.mu.Unlock()
	err := c.Writer.Record(ctx, m, hb)
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
// heartbeat is held already.
func (e *entry) holdLocked(c *Coalescer, m *monitoringv1alpha1.PushMonitor, hb Heartbeat) {
	if e.held != nil && e.held.Time.After(hb.Time) {
		return
	}
	e.held = &hb
	// What a flush needs of the monitor: identity, timing and state (the
	// writer adds the deadline while Up). The spec's pointers are shared
	// with the cache, which never modifies them in place.
	e.monitor = &monitoringv1alpha1.PushMonitor{
		ObjectMeta: metav1.ObjectMeta{Namespace: m.Namespace, Name: m.Name, UID: m.UID},
		Spec:       m.Spec,
		Status:     monitoringv1alpha1.PushMonitorStatus{State: m.Status.State},
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
	uid := e.monitor.UID
	e.timer = time.AfterFunc(time.Until(at), func() { c.flush(uid, e, false) })
}

func (c *Coalescer) windowOf(m *monitoringv1alpha1.PushMonitor) time.Duration {
	w := c.Window
	if w <= 0 {
		return 0
	}
	return min(w, m.GracePeriodDuration())
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
		e = &entry{}
		c.entries[uid] = e
	}
	return e, false
}

// flush writes a monitor's held heartbeat, retrying while the API fails: it
// was answered 200 and must not be lost. final (shutdown) writes it at once.
func (c *Coalescer) flush(uid types.UID, e *entry, final bool) {
	e.wmu.Lock()
	defer e.wmu.Unlock()
	e.mu.Lock()
	e.timer = nil
	if e.held == nil {
		e.mu.Unlock()
		return
	}
	if now := time.Now(); !final && !e.writtenAt.IsZero() && now.Sub(e.writtenAt) < e.window && now.Before(e.flushBy()) {
		// A push was written while this timer fired: what is held now
		// waits for the end of that write's window.
		e.armLocked(c)
		e.mu.Unlock()
		return
	}
	hb, m := *e.held, e.monitor
	e.held, e.flushing = nil, true
	// The flush opens the next window: pushes that arrive while it runs are
	// held for the window's end instead of each writing on its own, so a
	// steady pusher costs one write per window.
	e.writtenAt = time.Now()
	e.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
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
	case apierrors.IsNotFound(err) || errors.Is(err, ErrMonitorReplaced):
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
		e.timer = time.AfterFunc(time.Second, func() { c.flush(uid, e, false) })
	}
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
	tick := time.NewTicker(idleAfter)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			c.sweep()
		case <-ctx.Done():
			c.FlushAll()
			return nil
		}
	}
}

func (c *Coalescer) sweep() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for uid, e := range c.entries {
		if e.mu.TryLock() {
			if e.held == nil && e.timer == nil && time.Since(e.writtenAt) > idleAfter {
				delete(c.entries, uid)
			}
			e.mu.Unlock()
		}
	}
}

// FlushAll stops holding heartbeats and writes those held. An entry whose
// timer already fired is flushed here too: flush is a no-op once written.
func (c *Coalescer) FlushAll() {
	c.mu.Lock()
	c.closed = true
	entries := c.entries
	c.entries = nil
	c.mu.Unlock()
	for uid, e := range entries {
		e.mu.Lock()
		e.stopTimer()
		e.mu.Unlock()
		c.flush(uid, e, true)
	}
}
