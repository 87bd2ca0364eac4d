// Package certs gives the webhook server a serving certificate without
// cert-manager (--webhook-cert-mode=self): open-policy-agent/cert-controller
// issues a CA and a serving certificate into one Secret in the manager's
// namespace, renews them, and writes the CA into the webhook configurations'
// caBundle; every replica writes the Secret's certificate into its
// certificate directory, and the webhook server starts once that certificate
// is there and the CA is injected.
package certs

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"

	"github.com/open-policy-agent/cert-controller/pkg/rotator"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
)

// Config names what the rotator issues and where it injects the CA.
type Config struct {
	// Secret holds ca.crt, ca.key, tls.crt and tls.key. It must exist
	// (config/selfcert ships it empty): the rotator only updates it, so the
	// manager needs no right to create Secrets.
	Secret types.NamespacedName
	// Service is the webhook Service in Secret's namespace; the certificate
	// names <service>.<namespace>.svc (and .svc.cluster.local), which is the
	// name the API server checks when it calls a service reference.
	Service string
	// MutatingWebhook and ValidatingWebhook are the webhook configurations
	// whose caBundle is kept; empty: none of that kind.
	MutatingWebhook, ValidatingWebhook string
	// CertDir, CertName and KeyName are where the webhook server reads its
	// certificate (webhook.Options).
	CertDir, CertName, KeyName string
}

func (c Config) webhooks() []rotator.WebhookInfo {
	var out []rotator.WebhookInfo
	if c.MutatingWebhook != "" {
		out = append(out, rotator.WebhookInfo{Name: c.MutatingWebhook, Type: rotator.Mutating})
	}
	if c.ValidatingWebhook != "" {
		out = append(out, rotator.WebhookInfo{Name: c.ValidatingWebhook, Type: rotator.Validating})
	}
	return out
}

// Setup adds the rotator and the Secret's projection into CertDir to mgr,
// on every replica, and returns a channel closed once this replica's
// certificate is on disk and the CA is in the webhook configurations.
//
// Every replica runs the rotator (RequireLeaderElection false) rather than
// the leader alone: a replica's webhook server may start only once its own
// certificate exists, which cert-controller signals only where its rotator
// runs, and followers serve webhooks too. Replicas agree because the Secret
// is the one source: the rotator writes it with an Update carrying the
// resourceVersion it read, so when two replicas issue at once one write wins
// and the other gets a conflict, re-reads, finds a valid certificate and
// keeps it; each replica injects the CA it reads from the Secret.
func Setup(mgr manager.Manager, cfg Config) (<-chan struct{}, error) {
	if cfg.Secret.Namespace == "" || cfg.Secret.Name == "" || cfg.Service == "" {
		return nil, errors.New("self-issued webhook certificates need a Secret namespace and name and a Service name")
	}
	ready := make(chan struct{})
	svc := cfg.Service + "." + cfg.Secret.Namespace + ".svc"
	cr := &rotator.CertRotator{
		SecretKey:      cfg.Secret,
		CertDir:        cfg.CertDir,
		CertName:       cfg.CertName,
		KeyName:        cfg.KeyName,
		CAName:         "pushmon-webhook-ca",
		CAOrganization: "pushmon",
		DNSName:        svc,
		ExtraDNSNames:  []string{svc + ".cluster.local"},
		IsReady:        ready,
		Webhooks:       cfg.webhooks(),
		FieldOwner:     "pushmon",
		// Reconcile the webhook configurations only after this replica's
		// certificate is on disk, as its readiness needs both.
		EnableReadinessCheck: true,
	}
	if err := rotator.AddRotator(namedOnly{mgr, cfg}, cr); err != nil {
		return nil, fmt.Errorf("adding the webhook certificate rotator: %w", err)
	}
	p, err := newProjector(mgr, cfg)
	if err != nil {
		return nil, err
	}
	if err := mgr.Add(p); err != nil {
		return nil, fmt.Errorf("adding the webhook certificate projection: %w", err)
	}
	return ready, nil
}

// namedOnly is the manager as the rotator sees it, with a config whose list
// and watch requests for Secrets in the namespace and for webhook
// configurations select the one named object. cert-controller's own cache
// would otherwise list every Secret in the namespace and every webhook
// configuration in the cluster; with the selector the RBAC rules can name
// their objects (resourceNames), and the cache holds only those.
type namedOnly struct {
	manager.Manager
	cfg Config
}

func (m namedOnly) GetConfig() *rest.Config {
	c := rest.CopyConfig(m.Manager.GetConfig())
	names := map[string]string{"/api/v1/namespaces/" + m.cfg.Secret.Namespace + "/secrets": m.cfg.Secret.Name}
	if m.cfg.MutatingWebhook != "" {
		names["/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations"] = m.cfg.MutatingWebhook
	}
	if m.cfg.ValidatingWebhook != "" {
		names["/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations"] = m.cfg.ValidatingWebhook
	}
	c.Wrap(func(next http.RoundTripper) http.RoundTripper { return nameSelector{next: next, names: names} })
	return c
}

// nameSelector adds fieldSelector=metadata.name=<name> to GET requests on
// the collections it knows (list and watch; a get of one object has a
// longer path and passes unchanged).
type nameSelector struct {
	next  http.RoundTripper
	names map[string]string // collection path → object name
}

func (t nameSelector) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method != http.MethodGet {
		return t.next.RoundTrip(req)
	}
	for path, name := range t.names {
		// A suffix: the API server may sit under a path prefix (a proxy).
		if !strings.HasSuffix(req.URL.Path, path) {
			continue
		}
		req = req.Clone(req.Context())
		q := req.URL.Query()
		sel := "metadata.name=" + name
		if s := q.Get("fieldSelector"); s != "" {
			sel = s + "," + sel
		}
		q.Set("fieldSelector", sel)
		req.URL.RawQuery = q.Encode()
		break
	}
	return t.next.RoundTrip(req)
}

// Gate starts the webhook server once the certificate is ready: register
// adds the webhooks (and with them the server) to the manager, which starts
// them at once since it already runs. Until then the manager runs without
// a webhook server, as controller-runtime's would fail on a missing
// certificate.
type Gate struct {
	Ready    <-chan struct{}
	Register func() (healthz.Checker, error)
	started  atomic.Pointer[healthz.Checker]
}

// NeedLeaderElection is false: every replica serves the webhooks.
func (g *Gate) NeedLeaderElection() bool { return false }

func (g *Gate) Start(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return nil
	case <-g.Ready:
	}
	check, err := g.Register()
	if err != nil {
		return fmt.Errorf("starting the webhook server: %w", err)
	}
	g.started.Store(&check)
	return nil
}

// ReadyCheck fails until the webhook server serves with its certificate,
// so that a replica gets webhook traffic only once it can answer.
func (g *Gate) ReadyCheck(req *http.Request) error {
	check := g.started.Load()
	if check == nil {
		return errors.New("webhook certificate not ready yet")
	}
	return (*check)(req)
}
