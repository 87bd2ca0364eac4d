// Package heartbeat records heartbeats in the API, where the leader's
// reconciler reads them.
//
// Every replica serves the push endpoint but only the leader decides Down, so
// a heartbeat travels from the replica that received it to the leader through
// the PushMonitor's status (a merge patch of the heartbeat fields only), never
// only through one process's memory. A heartbeat is answered 200 only after
// its write succeeded.
package heartbeat

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
)

// Heartbeat is one push, as the push endpoint parsed it.
type Heartbeat struct {
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
}

// statusPatch is the JSON merge patch of one heartbeat. It names only the
// heartbeat fields, so it never races with the reconciler's fields (state,
// conditions, deadline). A null clears a field the last push did not send.
type statusPatch struct {
	Metadata struct {
		// UID makes the patch fail on a monitor deleted and re-created
		// under the same name since the token was looked up.
		UID types.UID `json:"uid"`
	} `json:"metadata"`
	Status struct {
		LastHeartbeatTime  metav1.MicroTime                  `json:"lastHeartbeatTime"`
		LastReportedStatus monitoringv1alpha1.ReportedStatus `json:"lastReportedStatus"`
		LastMessage        *string                           `json:"lastMessage"`
		LastValue          *string                           `json:"lastValue"`
	} `json:"status"`
}

// Record writes hb into m's status. It returns only once the API server
// accepted the write.
func (w *Writer) Record(ctx context.Context, m *monitoringv1alpha1.PushMonitor, hb Heartbeat) error {
	var p statusPatch
	p.Metadata.UID = m.UID
	p.Status.LastHeartbeatTime = metav1.NewMicroTime(hb.Time)
	p.Status.LastReportedStatus = hb.Status
	if hb.Message != "" {
		p.Status.LastMessage = &hb.Message
	}
	if hb.Value != "" {
		p.Status.LastValue = &hb.Value
	}
	body, err := json.Marshal(&p)
	if err != nil {
		return fmt.Errorf("encoding heartbeat: %w", err)
	}
	target := &monitoringv1alpha1.PushMonitor{}
	target.Namespace, target.Name = m.Namespace, m.Name
	if err := w.Client.Status().Patch(ctx, target, client.RawPatch(types.MergePatchType, body)); err != nil {
		return fmt.Errorf("writing heartbeat of %s/%s: %w", m.Namespace, m.Name, err)
	}
	return nil
}
