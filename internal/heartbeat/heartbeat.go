// Package heartbeat records heartbeats in the API, where the leader's
// reconciler reads them.
//
// Every replica serves the push endpoint but only the leader decides Down, so
// a heartbeat travels from the replica that received it to the leader through
// the PushMonitor's status (a patch of the heartbeat fields only), never
// only through one process's memory. A heartbeat is answered 200 only after
// its write succeeded.
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

// Record writes hb into m's status. It returns only once the API server
// accepted the write.
func (w *Writer) Record(ctx context.Context, m *monitoringv1alpha1.PushMonitor, hb Heartbeat) error {
	if Counted(m, hb) {
		return w.recordCounted(ctx, m, hb)
	}
	// A JSON patch of the heartbeat fields only, so it never races with the
	// reconciler's fields (state, conditions, deadline). Its test operation
	// makes it fail on a monitor re-created under the same name (a merge
	// patch's metadata.uid is not checked on the status subresource).
	ops := []patchOp{
		{Op: "test", Path: "/metadata/uid", Value: m.UID},
		{Op: "add", Path: "/status/lastHeartbeatTime", Value: metav1.NewMicroTime(hb.Time)},
		{Op: "add", Path: "/status/lastReportedStatus", Value: hb.Status},
		{Op: "add", Path: "/status/lastMessage", Value: hb.Message},
		{Op: "add", Path: "/status/lastValue", Value: hb.Value},
	}
	if m.Status.State == monitoringv1alpha1.StateUp && !m.Spec.Suspend && hb.Status == monitoringv1alpha1.ReportedUp &&
		m.Spec.CronJobRef == nil { // a followed CronJob's schedule is known to the reconciler only
		// While Up, the new deadline follows from the heartbeat alone; writing
		// it here spares the reconciler a write per heartbeat.
		ops = append(ops, patchOp{Op: "add", Path: "/status/deadline", Value: metav1.NewMicroTime(m.DeadlineFrom(hb.Time))})
	}
	body, err := json.Marshal(ops)
	if err != nil {
		return fmt.Errorf("encoding heartbeat: %w", err)
	}
	target := &monitoringv1alpha1.PushMonitor{}
	target.Namespace, target.Name = m.Namespace, m.Name
	err = w.Client.Status().Patch(ctx, target, client.RawPatch(types.JSONPatchType, body))
	if apierrors.IsInvalid(err) {
		// The test operation failed. (An invalid heartbeat cannot reach
		// here: the push endpoint validated and capped every field.)
		return ErrMonitorReplaced
	}
	if err != nil {
		return fmt.Errorf("writing heartbeat of %s/%s: %w", m.Namespace, m.Name, err)
	}
	return nil
}
