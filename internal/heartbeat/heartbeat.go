// Package heartbeat turns pushes into PushMonitor status, where the leader's
// reconciler reads them.
//
// Every replica serves the push endpoint but only the leader decides Down, so
// a heartbeat travels from the replica that received it to the leader: a
// push that only says "alive" is held by the leader in memory (live.go,
// carried there by internal/relay); every other one goes through status.
// heartbeat.go says what a heartbeat is and when one supersedes another,
// runs.go what a run signal does to status, writer.go writes a heartbeat
// (a guarded patch of the heartbeat fields only), and coalescer.go holds
// pushes for the rest of their window so that a monitor costs one write per
// window (the bounds are in docs/design.md). Writes only move the heartbeat
// fields forward in receive time, whichever replica makes them.
package heartbeat

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

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

// failureOf is what status keeps of a failure report.
func failureOf(hb Heartbeat) *monitoringv1alpha1.FailureReport {
	st := monitoringv1alpha1.ReportedDown
	if hb.Kind == KindFail {
		st = monitoringv1alpha1.ReportedFailed
	}
	return &monitoringv1alpha1.FailureReport{Time: metav1.NewMicroTime(hb.Time), Status: st, Message: hb.Message, ExitCode: hb.ExitCode}
}
