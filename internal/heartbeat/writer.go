package heartbeat

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
)

// Writer writes heartbeats into PushMonitor status.
type Writer struct {
	Client client.Client
	// Reader re-reads a monitor whose counted write conflicted (the
	// manager's API reader); Client when nil.
	Reader client.Reader
}

// patchOp is one JSON Patch (RFC 6902) operation.
type patchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value"`
}

// ErrMonitorReplaced: the monitor was deleted and re-created under the same
// name since its token was looked up; the heartbeat is not its.
var ErrMonitorReplaced = errors.New("monitor was replaced since the token was looked up")

// maxWriteAttempts bounds the re-reads of a heartbeat write whose guards
// found the monitor changed under it (another replica wrote a heartbeat,
// the leader changed the state).
const maxWriteAttempts = 5

// Record writes hb into m's status. It returns only once the API server
// accepted the write, or once a newer heartbeat is known to be stored (hb
// is then superseded: heartbeat fields only move forward in receive time).
//
// m is the monitor as the caller last saw it; its lastHeartbeatTime and
// state are the guards of the write. When they no longer hold in the API,
// the monitor is read again (around the cache) and the write retried.
func (w *Writer) Record(ctx context.Context, m *monitoringv1alpha1.PushMonitor, hb Heartbeat) error {
	if Counted(m, hb) {
		return w.recordCounted(ctx, m, hb)
	}
	cur := m
	for attempt := 1; ; attempt++ {
		var err error
		switch {
		case !Superseded(&cur.Status, hb):
			err = w.patchHeartbeat(ctx, cur, hb)
		case keptFailure(&cur.Status, hb) != nil:
			// A down report a newer heartbeat superseded (held through an
			// outage, or stamped before another replica's): the heartbeat
			// fields stay, but the failure is kept, so that the leader
			// shows it (Down, then Recovered) rather than lose it.
			err = w.patchFailure(ctx, cur, keptFailure(&cur.Status, hb))
		case hb.Folded != nil && keptFailure(&cur.Status, *hb.Folded) != nil:
			// Superseded, but carrying a newer failure than status shows.
			err = w.patchFailure(ctx, cur, keptFailure(&cur.Status, *hb.Folded))
		default:
			return nil
		}
		if err == nil {
			return nil
		}
		if !apierrors.IsInvalid(err) {
			return fmt.Errorf("writing heartbeat of %s/%s: %w", m.Namespace, m.Name, err)
		}
		// A test operation failed: the monitor was re-created, another
		// replica stored a heartbeat, or the state changed. Which one, the
		// API tells. (An invalid heartbeat cannot reach here: the push
		// endpoint validated and capped every field.)
		if attempt == maxWriteAttempts {
			return fmt.Errorf("writing heartbeat of %s/%s: status kept changing under %d attempts", m.Namespace, m.Name, attempt)
		}
		if cur, err = w.reread(ctx, m); err != nil {
			return err
		}
	}
}

// maxCountedAttempts bounds the retries of a counted write whose monitor
// changed under it.
const maxCountedAttempts = 5

// patchFailure writes only status.lastFailure, guarded by the uid and by
// the lastFailure cur shows (compare-and-swap, as for heartbeats).
func (w *Writer) patchFailure(ctx context.Context, cur *monitoringv1alpha1.PushMonitor, kept *monitoringv1alpha1.FailureReport) error {
	return w.patch(ctx, cur, append([]patchOp{{Op: "test", Path: "/metadata/uid", Value: cur.UID}}, failureOps(cur, kept)...))
}

// failureOps replace the lastFailure cur shows with kept, guarded by it.
func failureOps(cur *monitoringv1alpha1.PushMonitor, kept *monitoringv1alpha1.FailureReport) []patchOp {
	var stored any // JSON null: absent
	if f := cur.Status.LastFailure; f != nil {
		stored = f
	}
	return []patchOp{
		{Op: "test", Path: "/status/lastFailure", Value: stored},
		{Op: "add", Path: "/status/lastFailure", Value: kept},
	}
}

// patchHeartbeat writes hb with a JSON patch of the heartbeat fields only,
// so that it never races with the reconciler's fields, guarded by test
// operations on what cur shows: the monitor's uid (a merge patch's
// metadata.uid is not checked on the status subresource), its stored
// lastHeartbeatTime (compare-and-swap: no replica's write is overwritten
// by an older heartbeat), and, when it writes the deadline, state Up.
func (w *Writer) patchHeartbeat(ctx context.Context, cur *monitoringv1alpha1.PushMonitor, hb Heartbeat) error {
	var stored any // JSON null: a test that the field is absent
	if t := cur.Status.LastHeartbeatTime; t != nil {
		stored = t
	}
	ops := []patchOp{
		{Op: "test", Path: "/metadata/uid", Value: cur.UID},
		{Op: "test", Path: "/status/lastHeartbeatTime", Value: stored},
		{Op: "add", Path: "/status/lastHeartbeatTime", Value: metav1.NewMicroTime(hb.Time)},
		{Op: "add", Path: "/status/lastReportedStatus", Value: hb.Status},
		{Op: "add", Path: "/status/lastMessage", Value: hb.Message},
		{Op: "add", Path: "/status/lastValue", Value: hb.Value},
	}
	if hb.Status == monitoringv1alpha1.ReportedDown {
		// Kept after later successes, so that the leader shows this report
		// even if an up push supersedes it before any leader evaluates it.
		ops = append(ops, patchOp{Op: "add", Path: "/status/lastFailure", Value: failureOf(hb)})
	} else if hb.Folded != nil {
		// A down report this one replaced in the coalescer: its failure
		// is kept, though its heartbeat fields are not.
		if kept := keptFailure(&cur.Status, *hb.Folded); kept != nil {
			ops = append(ops, failureOps(cur, kept)...)
		}
	}
	if cur.Status.State == monitoringv1alpha1.StateUp && !cur.Spec.Suspend && hb.Status == monitoringv1alpha1.ReportedUp &&
		cur.Spec.CronJobRef == nil { // a followed CronJob's schedule is known to the reconciler only
		// While Up, the new deadline follows from the heartbeat alone; writing
		// it here spares the reconciler a write per heartbeat. Only while the
		// API still shows Up: over a Down the deadline is the one that was
		// missed, which the reconciler needs to see this heartbeat as newer.
		ops = append(ops,
			patchOp{Op: "test", Path: "/status/state", Value: monitoringv1alpha1.StateUp},
			patchOp{Op: "add", Path: "/status/deadline", Value: metav1.NewMicroTime(cur.DeadlineFrom(hb.Time))})
	}
	return w.patch(ctx, cur, ops)
}

// patch applies a JSON patch to cur's status.
func (w *Writer) patch(ctx context.Context, cur *monitoringv1alpha1.PushMonitor, ops []patchOp) error {
	body, err := json.Marshal(ops)
	if err != nil {
		return fmt.Errorf("encoding heartbeat: %w", err)
	}
	target := &monitoringv1alpha1.PushMonitor{}
	target.Namespace, target.Name = cur.Namespace, cur.Name
	return w.Client.Status().Patch(ctx, target, client.RawPatch(types.JSONPatchType, body))
}

// reread reads m from the API (around the cache, whose copy may be the
// stale one the guards failed on).
func (w *Writer) reread(ctx context.Context, m *monitoringv1alpha1.PushMonitor) (*monitoringv1alpha1.PushMonitor, error) {
	reader := w.Reader
	if reader == nil {
		reader = w.Client
	}
	fresh := &monitoringv1alpha1.PushMonitor{}
	if err := reader.Get(ctx, client.ObjectKeyFromObject(m), fresh); err != nil {
		return nil, err
	}
	if fresh.UID != m.UID {
		return nil, ErrMonitorReplaced
	}
	return fresh, nil
}

// recordCounted applies hb to the monitor's status as read and writes it
// with optimistic locking, re-reading from the API and retrying when
// another write came first, so that no signal is lost or counted twice.
func (w *Writer) recordCounted(ctx context.Context, m *monitoringv1alpha1.PushMonitor, hb Heartbeat) error {
	cur := m
	for attempt := 1; ; attempt++ {
		next := cur.DeepCopy()
		Apply(&next.Status, hb, next.HistoryLen())
		err := w.Client.Status().Patch(ctx, next, client.MergeFromWithOptions(cur, client.MergeFromWithOptimisticLock{}))
		if err == nil {
			return nil
		}
		if !apierrors.IsConflict(err) || attempt == maxCountedAttempts {
			return fmt.Errorf("writing run signal of %s/%s: %w", m.Namespace, m.Name, err)
		}
		if cur, err = w.reread(ctx, m); err != nil {
			return err
		}
	}
}
