// Package heartbeat records heartbeats in the API, where the leader's
// reconciler reads them.
//
// Every replica serves the push endpoint but only the leader decides Down, so
// a heartbeat travels from the replica that received it to the leader through
// the PushMonitor's status (a patch of the heartbeat fields only). A
// heartbeat is answered 200 once it is written, or held by the Coalescer to
// be written within its window (the bounds are in docs/design.md). Writes
// only move the heartbeat fields forward in receive time, whichever replica
// makes them.
package heartbeat

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
)

// Kind is what a push says about a run.
type Kind string

const (
	// KindHeartbeat is a plain heartbeat (Status says up or down); it also
	// ends the run that is open, as a success or failure.
	KindHeartbeat Kind = ""
	// KindSuccess ends a run as a success (a /ping success, exit status 0).
	// Unlike a plain heartbeat it is never coalesced: the run it ends may
	// have started a moment ago, before this replica's cache saw it.
	KindSuccess Kind = "success"
	// KindStart opens a run.
	KindStart Kind = "start"
	// KindFail ends a run as failed (a /fail ping, a non-zero exit status).
	KindFail Kind = "fail"
	// KindLog only records a message.
	KindLog Kind = "log"
)

// Heartbeat is one push, as the push endpoint parsed it.
type Heartbeat struct {
	// Kind is what the push says about a run.
	Kind Kind
	// ExitCode is the exit status the client reported, if any.
	ExitCode *int32
	// RunID pairs a run's start with its end (the rid query parameter).
	RunID string
	// Time is when the push endpoint received it, in microseconds (the
	// precision status keeps, so that every reader computes the same deadline).
	Time time.Time
	// Status is what the client reported.
	Status monitoringv1alpha1.ReportedStatus
	// Message is the client's msg, already length-capped; empty if none.
	Message string
	// Value is the client's numeric value as sent; empty if none.
	Value string
}

// Now is the current time at the precision status keeps.
func Now() time.Time {
	return time.Now().Truncate(time.Microsecond)
}

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
		case newerFailure(&cur.Status, hb):
			// A down report a newer heartbeat superseded (held through an
			// outage, or stamped before another replica's): the heartbeat
			// fields stay, but the failure is kept, so that the leader
			// shows it (Down, then Recovered) rather than lose it.
			err = w.patchFailure(ctx, cur, hb)
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

// Superseded reports whether st already holds a heartbeat received at or
// after hb: writing hb would move the heartbeat fields back in time, or
// replace a report with an older one.
func Superseded(st *monitoringv1alpha1.PushMonitorStatus, hb Heartbeat) bool {
	return st.LastHeartbeatTime != nil && !hb.Time.After(st.LastHeartbeatTime.Time)
}

// newerFailure reports whether hb, superseded by a newer heartbeat, is a
// failure that must still be kept: none is kept yet, or the one kept has not
// been shown and hb is newer (the leader shows the newest). A failure kept
// and shown already covers hb: a replica holds a down report only while the
// monitor is Down as far as it knows, so hb repeated a failure the leader
// showed (writing it would raise a second DownReported for one episode).
func newerFailure(st *monitoringv1alpha1.PushMonitorStatus, hb Heartbeat) bool {
	if hb.Status != monitoringv1alpha1.ReportedDown {
		return false
	}
	f := st.LastFailure
	return f == nil || !f.Shown && hb.Time.After(f.Time.Time)
}

// patchFailure writes only status.lastFailure, guarded by the uid and by
// the lastFailure cur shows (compare-and-swap, as for heartbeats).
func (w *Writer) patchFailure(ctx context.Context, cur *monitoringv1alpha1.PushMonitor, hb Heartbeat) error {
	var stored any // JSON null: absent
	if f := cur.Status.LastFailure; f != nil {
		stored = f
	}
	return w.patch(ctx, cur, []patchOp{
		{Op: "test", Path: "/metadata/uid", Value: cur.UID},
		{Op: "test", Path: "/status/lastFailure", Value: stored},
		{Op: "add", Path: "/status/lastFailure", Value: failureOf(hb)},
	})
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

// failureOf is what status keeps of a failure report.
func failureOf(hb Heartbeat) *monitoringv1alpha1.FailureReport {
	st := monitoringv1alpha1.ReportedDown
	if hb.Kind == KindFail {
		st = monitoringv1alpha1.ReportedFailed
	}
	return &monitoringv1alpha1.FailureReport{Time: metav1.NewMicroTime(hb.Time), Status: st, Message: hb.Message, ExitCode: hb.ExitCode}
}
