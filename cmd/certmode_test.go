package main

import (
	"flag"
	"testing"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
)

// parseWebhookFlags binds and parses the webhook flags as main does.
func parseWebhookFlags(t *testing.T, args ...string) *webhookOptions {
	t.Helper()
	fs := flag.NewFlagSet("manager", flag.ContinueOnError)
	var o webhookOptions
	o.BindFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return &o
}

func TestWebhookCertMode(t *testing.T) {
	g := NewWithT(t)

	// The default keeps config/default (cert-manager's mounted certificate).
	o := parseWebhookFlags(t)
	g.Expect(o.complete()).To(Succeed())
	g.Expect(o.certMode).To(Equal(certModeCertManager))
	cfg, err := o.selfCerts()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(cfg).To(BeNil())

	g.Expect(parseWebhookFlags(t, "--webhook-cert-mode=vault").complete()).To(MatchError(ContainSubstring("must be cert-manager or self")))

	// Outside a pod the namespace must be given; the other names default
	// to config/'s rendered ones.
	o = parseWebhookFlags(t, "--webhook-cert-mode=self", "--webhook-cert-path=/certs")
	g.Expect(o.complete()).To(Succeed())
	if podNamespace() == "" { // the test may run in a pod
		_, err = o.selfCerts()
		g.Expect(err).To(MatchError(ContainSubstring("--webhook-cert-namespace")))
	}
	o = parseWebhookFlags(t, "--webhook-cert-mode=self", "--webhook-cert-path=/certs", "--webhook-cert-namespace=pushmon-system")
	cfg, err = o.selfCerts()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(cfg.Secret).To(Equal(types.NamespacedName{Namespace: "pushmon-system", Name: "pushmon-webhook-server-cert"}))
	g.Expect(cfg.Service).To(Equal("pushmon-webhook-service"))
	g.Expect(cfg.MutatingWebhook).To(Equal("pushmon-mutating-webhook-configuration"))
	g.Expect(cfg.ValidatingWebhook).To(Equal("pushmon-validating-webhook-configuration"))
	g.Expect(cfg.CertDir).To(Equal("/certs"))
	g.Expect([]string{cfg.CertName, cfg.KeyName}).To(Equal([]string{"tls.crt", "tls.key"}))
}

// In self mode the webhooks are on before any certificate exists: the
// manager writes it later and starts the webhook server then.
func TestWebhooksEnabledSelf(t *testing.T) {
	g := NewWithT(t)
	t.Setenv("ENABLE_WEBHOOKS", "")
	empty := t.TempDir()
	on, why := webhooksEnabled(&webhook.Options{CertDir: empty, CertName: "tls.crt", KeyName: "tls.key"}, false)
	g.Expect(on).To(BeFalse())
	g.Expect(why).To(ContainSubstring("no webhook certificate"))
	on, _ = webhooksEnabled(&webhook.Options{CertDir: empty, CertName: "tls.crt", KeyName: "tls.key"}, true)
	g.Expect(on).To(BeTrue())
	t.Setenv("ENABLE_WEBHOOKS", "false")
	on, why = webhooksEnabled(&webhook.Options{CertDir: empty}, true)
	g.Expect(on).To(BeFalse())
	g.Expect(why).To(Equal("ENABLE_WEBHOOKS=false"))
}
