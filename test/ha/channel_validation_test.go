package ha

import (
	"context"
	"testing"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
)

// TestChannelValidation: the API server refuses channels that cannot work,
// with the CRD's own message.
func TestChannelValidation(t *testing.T) {
	ns := newNamespace(t, "chanvalid")
	for _, tc := range []struct {
		name string
		spec monitoringv1alpha1.AlertChannelSpec
		want string
	}{
		{"no address", monitoringv1alpha1.AlertChannelSpec{Type: monitoringv1alpha1.ChannelSlack}, "set address, or secretRef"},
		{"not a url", monitoringv1alpha1.AlertChannelSpec{Type: monitoringv1alpha1.ChannelWebhook, Address: "hooks.example.com"}, "address must be an http:// or https:// URL"},
		{"email without email", monitoringv1alpha1.AlertChannelSpec{Type: monitoringv1alpha1.ChannelEmail, Address: "smtp.example.com:587"}, "type Email needs email"},
		{"email address as url", monitoringv1alpha1.AlertChannelSpec{Type: monitoringv1alpha1.ChannelEmail, Address: "smtp://x",
			Email: &monitoringv1alpha1.EmailConfig{From: "a@b.c", To: []string{"d@e.f"}}}, "host:port"},
		{"telegram without chat", monitoringv1alpha1.AlertChannelSpec{Type: monitoringv1alpha1.ChannelTelegram, SecretRef: &monitoringv1alpha1.SecretReference{Name: "s"}}, "telegram.chatID"},
		{"short repeat", monitoringv1alpha1.AlertChannelSpec{Type: monitoringv1alpha1.ChannelWebhook, Address: "https://x", RepeatInterval: &metav1.Duration{Duration: 1}}, "repeatInterval must be at least 1s"},
		{"unknown type", monitoringv1alpha1.AlertChannelSpec{Type: "Pigeon", Address: "https://x"}, "Unsupported value"},
		{"secret in another namespace", monitoringv1alpha1.AlertChannelSpec{Type: monitoringv1alpha1.ChannelWebhook, Address: "https://x",
			SecretRef: &monitoringv1alpha1.SecretReference{Name: "s", Namespace: "other"}}, "secretRef.namespace is only for a ClusterAlertChannel"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			c := &monitoringv1alpha1.AlertChannel{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "c"}, Spec: tc.spec}
			g.Expect(k8sClient.Create(context.Background(), c)).To(MatchError(ContainSubstring(tc.want)))
		})
	}
	g := NewWithT(t)
	cc := &monitoringv1alpha1.ClusterAlertChannel{ObjectMeta: metav1.ObjectMeta{Name: ns},
		Spec: monitoringv1alpha1.AlertChannelSpec{Type: monitoringv1alpha1.ChannelWebhook, SecretRef: &monitoringv1alpha1.SecretReference{Name: "s"}}}
	g.Expect(k8sClient.Create(context.Background(), cc)).To(MatchError(ContainSubstring("a ClusterAlertChannel's secretRef needs a namespace")))
}
