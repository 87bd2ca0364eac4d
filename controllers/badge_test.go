package controllers

import (
	"testing"

	. "github.com/onsi/gomega"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
)

func TestSetBadgeKey(t *testing.T) {
	g := NewWithT(t)
	m := &monitoringv1alpha1.PushMonitor{}
	setBadgeKey(m)
	g.Expect(m.Status.BadgeKey).To(BeEmpty(), "only on opt-in")
	m.Labels = map[string]string{monitoringv1alpha1.PublicKey: "true"}
	setBadgeKey(m)
	key := m.Status.BadgeKey
	g.Expect(key).To(MatchRegexp(`^[A-Za-z0-9_-]{32}$`))
	setBadgeKey(m)
	g.Expect(m.Status.BadgeKey).To(Equal(key), "kept while opted in")
	m.Labels = nil
	setBadgeKey(m)
	g.Expect(m.Status.BadgeKey).To(BeEmpty(), "opting out revokes it")
	m.Labels = map[string]string{monitoringv1alpha1.PublicKey: "true"}
	setBadgeKey(m)
	g.Expect(m.Status.BadgeKey).NotTo(Equal(key), "opting in again issues a new one")
}
