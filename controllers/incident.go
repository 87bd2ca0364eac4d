package controllers

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
)

// maxIncidentMessage bounds status.incident.message (the CRD's MaxLength).
const maxIncidentMessage = 1024

// recordIncident keeps status.incident in step with a transition into or out
// of Down. It runs before the one status patch, so the incident is stored
// with the transition (under the same optimistic lock) or not at all: the
// notifier (internal/notify) announces exactly what was stored.
func recordIncident(orig, m *monitoringv1alpha1.PushMonitor, h health, now metav1.MicroTime) {
	wasDown := orig.Status.State == monitoringv1alpha1.StateDown
	switch {
	case h.State == monitoringv1alpha1.StateDown && !wasDown:
		m.Status.Incident = &monitoringv1alpha1.Incident{StartTime: now, Reason: h.Reason, Message: limitText(h.Message, maxIncidentMessage)}
	case h.State == monitoringv1alpha1.StateDown && m.Status.Incident != nil && !sameHealth(orig, h):
		// Still Down for another reason: the same incident, newest reason.
		in := *m.Status.Incident
		in.Reason, in.Message = h.Reason, limitText(h.Message, maxIncidentMessage)
		m.Status.Incident = &in
	case h.State != monitoringv1alpha1.StateDown && wasDown && m.Status.Incident != nil && m.Status.Incident.EndTime == nil:
		in := *m.Status.Incident
		in.EndTime, in.EndState = &now, h.State
		m.Status.Incident = &in
	}
}
