package controllers

import (
	"context"
	"errors"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/source"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
	"github.com/pushmon/pushmon/internal/heartbeat"
)

// DefaultStatusRefresh is how stale a healthy monitor's stored heartbeat may
// grow while the leader holds newer ones in memory (--status-refresh).
const DefaultStatusRefresh = 5 * time.Minute

// The leader holds heartbeats that say nothing but "alive" in memory
// (heartbeat.Live, relayed there by every replica) and writes them into
// status only when status changes anyway or has grown older than the refresh
// interval. Until then they count as stored for the state machine: the
// deadline follows the newest one, and nothing is written for it.

// heldBeat is the beat the leader holds for m, newer than m's status shows.
func (r *PushMonitorReconciler) heldBeat(m *monitoringv1alpha1.PushMonitor) (heartbeat.Beat, bool) {
	if m.Spec.CronJobRef != nil { // never relayed (heartbeat.Relayable)
		return heartbeat.Beat{}, false
	}
	return r.Live.Newer(m)
}

// beatsEndingStates enqueues every monitor whose state a held beat ends
// (heartbeat.Beat.Ends), so that it turns Up at once rather than at its next
// recheck (a monitor Down for silence has none).
func (r *PushMonitorReconciler) beatsEndingStates() source.Source {
	ch := make(chan event.GenericEvent, 1024)
	r.Live.OnEnds(func(key types.NamespacedName) {
		ev := event.GenericEvent{Object: &monitoringv1alpha1.PushMonitor{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}}
		select {
		case ch <- ev:
		default:
			go func() { ch <- ev }() // never dropped: nothing else would reconcile a Down monitor
		}
	})
	return source.Channel(ch, &handler.EnqueueRequestForObject{})
}

// mustStore reports whether b must be written into status now rather than
// held: it says more than status does (a new message, or an up report after
// a failure, or a monitor no longer plainly Up), or the stored heartbeat is
// older than the refresh interval.
func (r *PushMonitorReconciler) mustStore(m *monitoringv1alpha1.PushMonitor, b heartbeat.Beat, now time.Time) bool {
	st := &m.Status
	hb := heartbeat.Heartbeat{Time: b.Time, Status: monitoringv1alpha1.ReportedUp, Message: b.Message, Value: b.Value}
	if !heartbeat.Relayable(m, hb) {
		return true
	}
	if heartbeat.Ends(m) {
		return false // the transition it brings carries it
	}
	return now.Sub(st.LastHeartbeatTime.Time) >= r.statusRefresh()
}

// storeBeat writes b into status the way a replica writes a heartbeat
// (heartbeat.Writer: guarded, never over a newer one); its watch event
// brings the monitor back to the reconciler.
func (r *PushMonitorReconciler) storeBeat(ctx context.Context, m *monitoringv1alpha1.PushMonitor, b heartbeat.Beat) error {
	w := heartbeat.Writer{Client: r.Client, Reader: r.APIReader}
	err := w.Record(ctx, m, heartbeat.Heartbeat{Time: b.Time, Status: monitoringv1alpha1.ReportedUp, Message: b.Message, Value: b.Value})
	if apierrors.IsNotFound(err) || errors.Is(err, heartbeat.ErrMonitorReplaced) {
		return nil // gone: nothing to keep alive
	}
	return err
}

// withBeat is m as the state machine sees it with b stored.
func withBeat(m *monitoringv1alpha1.PushMonitor, b heartbeat.Beat) *monitoringv1alpha1.PushMonitor {
	eff := m.DeepCopy()
	storeBeatFields(&eff.Status, b)
	return eff
}

// storeBeatFields sets the heartbeat fields of st to b's, as a write of b
// would (an up report; for a monitor plainly Up, only time and value
// differ).
func storeBeatFields(st *monitoringv1alpha1.PushMonitorStatus, b heartbeat.Beat) {
	t := metav1.NewMicroTime(b.Time)
	st.LastHeartbeatTime, st.LastValue = &t, b.Value
	st.LastMessage, st.LastReportedStatus = b.Message, monitoringv1alpha1.ReportedUp
}

// keepInMemory makes what the reconciler stores for m follow from the
// heartbeat status holds, not from b, unless it stores a transition anyway,
// which then carries b. It returns how long until b is due for a refresh.
func (r *PushMonitorReconciler) keepInMemory(orig, m *monitoringv1alpha1.PushMonitor, b heartbeat.Beat, transition bool, now time.Time) time.Duration {
	if transition || orig.Status.LastHeartbeatTime == nil {
		// Written with the transition (or, for a monitor with no heartbeat
		// stored, now: nothing else would time its refresh).
		storeBeatFields(&m.Status, b)
		return 0
	}
	m.Status.Deadline = orig.Status.Deadline
	return max(orig.Status.LastHeartbeatTime.Add(r.statusRefresh()).Sub(now), time.Millisecond)
}

func (r *PushMonitorReconciler) statusRefresh() time.Duration {
	if r.StatusRefresh > 0 {
		return r.StatusRefresh
	}
	return DefaultStatusRefresh
}
