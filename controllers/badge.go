package controllers

import (
	"crypto/rand"
	"encoding/base64"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
)

// setBadgeKey issues status.badgeKey while the monitor opts in to the public
// status page (label monitoring.pushmon.dev/public=true) and removes it when
// it opts out, so that an old badge URL stops working. It rides on the
// reconcile's status write that the label change triggered.
func setBadgeKey(m *monitoringv1alpha1.PushMonitor) {
	if m.Labels[monitoringv1alpha1.PublicKey] != "true" {
		m.Status.BadgeKey = ""
		return
	}
	if m.Status.BadgeKey != "" {
		return
	}
	// 192 bits, 32 characters: unguessable, short enough for a README.
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	m.Status.BadgeKey = base64.RawURLEncoding.EncodeToString(b)
}
