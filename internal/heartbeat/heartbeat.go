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
	// Folded is the newest down report this heartbeat replaced while the
	// coalescer held them (it keeps one heartbeat a window), or nil. It is
	// written with this heartbeat, into lastFailure only, so that status
	// shows the newest failure a client sent.
	Folded *Heartbeat
}

// fold returns newer carrying the newest down report among older, what older
// carries, and what newer carries already: the coalescer calls it when newer
// replaces older, so that no down report is lost with it. A newer that is a
// down report itself carries nothing: it is the newest failure.
func fold(newer, older Heartbeat) Heartbeat {
	if newer.Status == monitoringv1alpha1.ReportedDown {
		newer.Folded = nil
		return newer
	}
	for _, c := range []*Heartbeat{&older, older.Folded} {
		if c != nil && c.Status == monitoringv1alpha1.ReportedDown && (newer.Folded == nil || c.Time.After(newer.Folded.Time)) {
			d := *c
			d.Folded = nil
			newer.Folded = &d
		}
	}
	return newer
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

// keptFailure is what status.lastFailure becomes for down report hb that a
// newer heartbeat superseded (held through an outage, stamped before another
// replica's, or folded into a newer one by the coalescer), or nil when the
// stored failure stays: hb is kept when it is newer than the stored one. It
// keeps the stored one's Shown: a replica holds or folds a down report only
// while the monitor is Down as far as it knows, so hb belongs to the episode
// a shown failure was shown for, and showing it again would raise a second
// DownReported for that episode. The message is the newest all the same.
func keptFailure(st *monitoringv1alpha1.PushMonitorStatus, hb Heartbeat) *monitoringv1alpha1.FailureReport {
	if hb.Status != monitoringv1alpha1.ReportedDown {
		return nil
	}
	f := st.LastFailure
	if f != nil && !hb.Time.After(f.Time.Time) {
		return nil
	}
	kept := failureOf(hb)
	kept.Shown = f != nil && f.Shown
	return kept
}

// failureOf is what status keeps of a failure report.
func failureOf(hb Heartbeat) *monitoringv1alpha1.FailureReport {
	st := monitoringv1alpha1.ReportedDown
	if hb.Kind == KindFail {
		st = monitoringv1alpha1.ReportedFailed
	}
	return &monitoringv1alpha1.FailureReport{Time: metav1.NewMicroTime(hb.Time), Status: st, Message: hb.Message, ExitCode: hb.ExitCode}
}
