package heartbeat

import (
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/types"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
)

// Beat is a heartbeat the leader holds in memory instead of in status: an up
// push that says nothing status does not already say but that its monitor is
// alive (same message, no run signal), received at Time.
type Beat struct {
	// UID is the monitor's; a beat never applies to a monitor re-created
	// under the same name.
	UID     types.UID
	Time    time.Time
	Message string
	Value   string
	// Ends is set on a beat that ends the monitor's state as the replica
	// that took it saw it (Pending, or Down for silence): the leader
	// reconciles the monitor at once, and writes the beat with the
	// transition to Up.
	Ends bool
}

// Live holds, on the leader, the newest Beat of each monitor. The reconciler
// reads it with status and writes it into status only when status must
// change anyway (a transition) or has grown older than the refresh interval,
// so that a healthy monitor costs the API server one write per refresh, not
// one per push (docs/design.md "Heartbeats off the API write path").
//
// A Live that does not lead holds nothing: beats are accepted only while
// Leading, and the store is emptied when leading ends, so that a replica that
// leads again never acts on beats from its previous term.
type Live struct {
	leading atomic.Bool
	mu      sync.RWMutex
	beats   map[types.NamespacedName]Beat
	// wake, when set, is called with the key of every beat that Ends a state.
	wake func(types.NamespacedName)
}

// OnEnds sets what Put calls for a beat that Ends its monitor's state (the
// reconciler enqueues the monitor). Set it before beats arrive.
func (l *Live) OnEnds(wake func(types.NamespacedName)) { l.wake = wake }

// NewLive returns an empty Live that does not lead.
func NewLive() *Live {
	return &Live{beats: map[types.NamespacedName]Beat{}}
}

// Lead starts or ends a term; ending one drops every beat.
func (l *Live) Lead(leading bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.leading.Store(leading)
	if !leading {
		clear(l.beats)
	}
}

// Leading reports whether this process leads (beats are accepted).
func (l *Live) Leading() bool { return l.leading.Load() }

// Put keeps b as key's newest beat unless a newer one is held. It returns
// false, keeping nothing, when this process does not lead.
func (l *Live) Put(key types.NamespacedName, b Beat) bool {
	l.mu.Lock()
	if !l.leading.Load() {
		l.mu.Unlock()
		return false
	}
	if cur, ok := l.beats[key]; ok && cur.UID == b.UID && !b.Time.After(cur.Time) {
		l.mu.Unlock()
		return true
	}
	l.beats[key] = b
	l.mu.Unlock()
	if b.Ends && l.wake != nil {
		l.wake(key)
	}
	return true
}

// Newer returns the beat held for m if it is newer than the heartbeat m's
// status stores.
func (l *Live) Newer(m *monitoringv1alpha1.PushMonitor) (Beat, bool) {
	if l == nil {
		return Beat{}, false
	}
	l.mu.RLock()
	b, ok := l.beats[types.NamespacedName{Namespace: m.Namespace, Name: m.Name}]
	l.mu.RUnlock()
	if !ok || b.UID != m.UID {
		return Beat{}, false
	}
	if t := m.Status.LastHeartbeatTime; t != nil && !b.Time.After(t.Time) {
		return Beat{}, false
	}
	return b, true
}

// Forget drops key's beat (the monitor is gone).
func (l *Live) Forget(key types.NamespacedName) {
	if l == nil {
		return
	}
	l.mu.Lock()
	delete(l.beats, key)
	l.mu.Unlock()
}

// Len is how many monitors have a beat held.
func (l *Live) Len() int {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return len(l.beats)
}

// Relayable reports whether hb, a push to m, may be held as a Beat instead of
// written: an up heartbeat with no run signal, to a plain interval monitor
// that counts no runs (Counted), with no failure left to show, and either
// repeating the message status stores while status shows Up after an up
// report, or ending a state that only a heartbeat ends: the first heartbeat
// of a Pending monitor, or the next one of a monitor Down for silence. The
// leader writes those with the transition they bring (one write for both).
// Everything else changes what status says in a way only a write can, and
// is written (coalesced as before).
func Relayable(m *monitoringv1alpha1.PushMonitor, hb Heartbeat) bool {
	st := &m.Status
	if Counted(m, hb) || hb.RunID != "" || hb.Status != monitoringv1alpha1.ReportedUp ||
		m.Spec.Suspend || m.Spec.Schedule != "" || m.Spec.CronJobRef != nil ||
		(st.LastFailure != nil && !st.LastFailure.Shown) {
		return false
	}
	switch st.State {
	case monitoringv1alpha1.StateUp:
		return st.LastHeartbeatTime != nil && st.LastReportedStatus == monitoringv1alpha1.ReportedUp && hb.Message == st.LastMessage
	case monitoringv1alpha1.StatePending, monitoringv1alpha1.StateDown:
		return Ends(m)
	}
	return false
}

// Ends reports whether m is in a state an up heartbeat ends by itself:
// Pending with no heartbeat stored, or Down for silence (HeartbeatMissed)
// after no failure report.
func Ends(m *monitoringv1alpha1.PushMonitor) bool {
	st := &m.Status
	switch st.State {
	case monitoringv1alpha1.StatePending:
		return st.LastHeartbeatTime == nil
	case monitoringv1alpha1.StateDown:
		if st.LastReportedStatus != "" && st.LastReportedStatus != monitoringv1alpha1.ReportedUp {
			return false
		}
		for _, c := range st.Conditions {
			if c.Type == monitoringv1alpha1.HealthyCondition {
				return c.Reason == monitoringv1alpha1.HeartbeatMissedReason
			}
		}
	}
	return false
}
