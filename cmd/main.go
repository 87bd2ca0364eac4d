// Command manager runs pushmon: the PushMonitor reconciler (leader only) and
// the push endpoint (every replica).
package main

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
	"github.com/pushmon/pushmon/controllers"
	"github.com/pushmon/pushmon/internal/certs"
	"github.com/pushmon/pushmon/internal/dashboard"
	"github.com/pushmon/pushmon/internal/heartbeat"
	"github.com/pushmon/pushmon/internal/notify"
	"github.com/pushmon/pushmon/internal/operator"
	"github.com/pushmon/pushmon/internal/push"
	"github.com/pushmon/pushmon/internal/relay"
)

// defaultPushBaseURL is the in-cluster address of the push Service.
const defaultPushBaseURL = "http://pushmon-push.pushmon-system.svc:8082"

var scheme = runtime.NewScheme()

func init() {
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(monitoringv1alpha1.AddToScheme(scheme))
}

// defaultGCPercent is the manager's GOGC unless the environment sets one.
// Its heap is mostly informer caches that live as long as the process, so
// Go's default (100: collect when the heap has doubled since the last
// collection) lets RSS reach twice what is live; 50 trades some CPU in the
// collector for a third less headroom (docs/configuration.md, measured in
// docs/performance.md).
const defaultGCPercent = 50

func main() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(defaultGCPercent)
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

// managerOptions configure the manager itself: its API client, metrics,
// probes and leader election, and what it watches.
type managerOptions struct {
	metricsAddr, probeAddr, pprofAddr string
	secureMetrics, enableHTTP2        bool
	apiQPS                            float64
	apiBurst                          int
	leaderElect                       bool
	leaderElectNamespace              string
	leaseDuration, renewDeadline      time.Duration
	retryPeriod                       time.Duration
	watchNamespaces                   string
	mode                              string
}

func (o *managerOptions) BindFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.metricsAddr, "metrics-bind-address", "0", "Address the metrics endpoint binds to: :8443 for HTTPS, :8080 for HTTP, 0 to disable.")
	fs.BoolVar(&o.secureMetrics, "metrics-secure", true, "Serve metrics over HTTPS with authentication and authorization.")
	fs.BoolVar(&o.enableHTTP2, "enable-http2", false, "Enable HTTP/2 for the metrics server (off: CVE-2023-44487, CVE-2023-39325).")
	fs.StringVar(&o.probeAddr, "health-probe-bind-address", ":8081", "Address the healthz/readyz endpoints bind to; 0 to disable.")
	fs.StringVar(&o.pprofAddr, "pprof-bind-address", "0", "Address of the Go pprof endpoints (debugging); 0 disables them.")
	fs.Float64Var(&o.apiQPS, "kube-api-qps", 500, "Queries per second to the Kubernetes API (the API server's priority and fairness still applies).")
	fs.IntVar(&o.apiBurst, "kube-api-burst", 1000, "Burst of queries to the Kubernetes API: many monitors expiring together are written in one burst.")
	fs.BoolVar(&o.leaderElect, "leader-elect", false, "Elect a leader, so that only one replica reconciles; every replica serves pushes.")
	fs.StringVar(&o.leaderElectNamespace, "leader-elect-namespace", "", "Namespace of the leader election Lease; in a cluster, the manager's own.")
	fs.DurationVar(&o.leaseDuration, "leader-elect-lease-duration", 15*time.Second, "How long a leader's lease lasts; a dead leader is replaced after at most this long.")
	fs.DurationVar(&o.renewDeadline, "leader-elect-renew-deadline", 10*time.Second, "How long the leader retries renewing before it steps down.")
	fs.DurationVar(&o.retryPeriod, "leader-elect-retry-period", 2*time.Second, "How often candidates try to acquire or renew the lease.")
	fs.StringVar(&o.mode, "mode", string(operator.ModeAll),
		"What this process runs: all (reconcilers, webhooks and the push endpoint), controller (no push endpoint) or ingest (the push endpoint only, with no access to Secrets; it never leads, and --leader-elect tells it where the controllers' relay Lease is). docs/deploy.md")
	fs.StringVar(&o.watchNamespaces, "watch-namespaces", "",
		"Comma-separated namespaces whose PushMonitors and Secrets pushmon watches; empty: all namespaces.")
}

// runMode is --mode, checked.
func (o *managerOptions) runMode() (operator.Mode, error) {
	m := operator.Mode(o.mode)
	if !slices.Contains(operator.Modes, m) {
		return "", fmt.Errorf("--mode=%q: want one of %v", o.mode, operator.Modes)
	}
	return m, nil
}

// tlsOpts are the TLS options of the metrics and webhook servers.
func (o *managerOptions) tlsOpts() []func(*tls.Config) {
	if o.enableHTTP2 {
		return nil
	}
	return []func(*tls.Config){func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} }}
}

// leaseNamespace is the namespace of the leader-election Lease, "" without
// leader election: the flag, else the namespace of the pod's
// ServiceAccount, as controller-runtime finds it.
func (o *managerOptions) leaseNamespace() string {
	if !o.leaderElect {
		return ""
	}
	if o.leaderElectNamespace != "" {
		return o.leaderElectNamespace
	}
	return podNamespace()
}

// podNamespace is the namespace of the pod's ServiceAccount, as
// controller-runtime finds it; "" outside a pod.
func podNamespace() string {
	b, err := os.ReadFile("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func (o *managerOptions) metricsServer() metricsserver.Options {
	opts := metricsserver.Options{BindAddress: o.metricsAddr, SecureServing: o.secureMetrics, TLSOpts: o.tlsOpts()}
	if o.secureMetrics {
		opts.FilterProvider = filters.WithAuthenticationAndAuthorization
	}
	return opts
}

// pushOptions configure the push endpoint every replica serves.
type pushOptions struct {
	addr, baseURL   string
	dashboardAddr   string
	limits          push.Limits
	maxConns        int
	maxConnsPerAddr int
	trustedProxies  string
	heartbeatWindow time.Duration
	maxWrites       int
	noRelay         bool
	relayAddr       string
	relayAdvertise  string
}

func (o *pushOptions) BindFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.addr, "push-bind-address", ":8082", "Address the push endpoint (/api/push/{token}) binds to.")
	fs.StringVar(&o.dashboardAddr, "dashboard-bind-address", dashboard.DefaultAddr,
		"Address the read-only dashboard binds to; the default (the pod's loopback) is reached with kubectl port-forward only; 0 disables it. docs/dashboard.md")
	fs.StringVar(&o.baseURL, "push-base-url", defaultPushBaseURL, "Base URL written into each monitor's Secret (key url): how clients reach the push endpoint.")
	fs.DurationVar(&o.heartbeatWindow, "heartbeat-window", heartbeat.DefaultWindow,
		"Write a monitor's heartbeat at most once per window (capped at half its gracePeriod) while its state does not change; 0 writes every push.")
	fs.IntVar(&o.maxWrites, "max-heartbeat-writes", heartbeat.DefaultMaxWrites,
		"Heartbeat writes to the API this replica makes at once; a push whose write finds all taken waits (up to 5s) and is then answered 503, so that a flood of pushes cannot overload the API server. 0: no bound.")
	fs.Float64Var(&o.limits.TokenRate, "push-token-rate", push.DefaultTokenRate, "Requests per second allowed per push token (token bucket); 0 disables the limit.")
	fs.IntVar(&o.limits.TokenBurst, "push-token-burst", push.DefaultTokenBurst, "Burst of requests allowed per push token.")
	fs.Float64Var(&o.limits.IPRate, "push-ip-rate", push.DefaultIPRate, "Requests per second allowed per client address (token bucket); 0 disables the limit.")
	fs.IntVar(&o.limits.IPBurst, "push-ip-burst", push.DefaultIPBurst, "Burst of requests allowed per client address.")
	fs.IntVar(&o.maxConns, "push-max-connections", push.DefaultMaxConns, "Cap on concurrent connections to the push endpoint; 0 disables the cap.")
	fs.IntVar(&o.maxConnsPerAddr, "push-max-connections-per-address", push.DefaultMaxConnsPerAddr,
		"Cap on concurrent connections to the push endpoint from one client address (the connection's peer; --push-trusted-proxies are exempt); over it a connection is closed at once. 0 disables the cap.")
	fs.StringVar(&o.limits.ClientIPHeader, "push-client-ip-header", "",
		"Header a trusted reverse proxy sets to the client's address (e.g. X-Forwarded-For); empty: the connection's peer is the client.")
	fs.StringVar(&o.trustedProxies, "push-trusted-proxies", "",
		"Comma-separated CIDRs (or addresses) of the proxies whose --push-client-ip-header is believed; required with that header.")
	fs.BoolVar(&o.noRelay, "disable-heartbeat-relay", false,
		"Write every heartbeat into status instead of handing those that only say 'alive' to the leader's memory (docs/design.md).")
	fs.StringVar(&o.relayAddr, "relay-bind-address", ":8083", "Address of the endpoint that takes relayed heartbeats while this replica leads.")
	fs.StringVar(&o.relayAdvertise, "relay-advertise-address", "",
		"How other replicas reach this replica's --relay-bind-address (host:port); default $POD_IP with its port. Without it, this replica relays to the leader but never takes relayed heartbeats.")
}

// relayConfig is the heartbeat relay's configuration; lease names the
// leader-election Lease's namespace ("" without leader election: then the
// process leads alone and needs no relay between replicas).
func (o *pushOptions) relayConfig(leaseNamespace string) operator.RelayConfig {
	cfg := operator.RelayConfig{Disabled: o.noRelay, BindAddr: o.relayAddr, AdvertiseAddr: o.relayAdvertise}
	if cfg.AdvertiseAddr == "" {
		if ip := os.Getenv("POD_IP"); ip != "" {
			if _, port, err := net.SplitHostPort(o.relayAddr); err == nil {
				cfg.AdvertiseAddr = net.JoinHostPort(ip, port)
			}
		}
	}
	if leaseNamespace != "" {
		cfg.Lease = types.NamespacedName{Namespace: leaseNamespace, Name: relay.DefaultLeaseName}
	}
	return cfg
}

// complete parses the trusted proxies and refuses values that would
// silently mean something else.
func (o *pushOptions) complete() error {
	var err error
	if o.limits.TrustedProxies, err = parsePrefixes(o.trustedProxies); err != nil {
		return fmt.Errorf("--push-trusted-proxies: %w", err)
	}
	return checkLimits(o.limits, o.maxConns, o.maxConnsPerAddr)
}

// reconcilerOptions configure the PushMonitor reconciler (leader only).
type reconcilerOptions struct {
	concurrency   int
	tokenOverlap  time.Duration
	statusRefresh time.Duration
	notifyRetry   time.Duration
}

func (o *reconcilerOptions) BindFlags(fs *flag.FlagSet) {
	fs.IntVar(&o.concurrency, "max-concurrent-reconciles", 16, "PushMonitors reconciled in parallel.")
	fs.DurationVar(&o.statusRefresh, "status-refresh", controllers.DefaultStatusRefresh,
		"How stale a healthy monitor's status.lastHeartbeatTime may grow while the leader holds newer heartbeats in memory (one write per refresh instead of one per push).")
	fs.DurationVar(&o.tokenOverlap, "token-rotation-overlap", controllers.DefaultTokenOverlap,
		"After a token rotation (annotation monitoring.pushmon.dev/rotate-token), how long the previous token keeps working; 0 ends it at once.")
	fs.DurationVar(&o.notifyRetry, "notify-retry-timeout", notify.DefaultRetryFor,
		"How long one notification is retried (with backoff) before its AlertChannel turns Ready=False; it is tried again as long later.")
}

func (o *reconcilerOptions) complete() error {
	if o.tokenOverlap < 0 {
		return errors.New("--token-rotation-overlap must be >= 0")
	}
	if o.notifyRetry <= 0 {
		return errors.New("--notify-retry-timeout must be > 0")
	}
	if o.statusRefresh <= 0 {
		return errors.New("--status-refresh must be > 0")
	}
	return nil
}

// webhookOptions configure the webhook server (Pod injection, PushMonitor
// validation).
type webhookOptions struct {
	certPath, certName, certKey string
	port                        int
	// certMode is where the serving certificate comes from: certModeCertManager
	// (mounted into certPath by someone else) or certModeSelf (issued by the
	// manager into certSecret, internal/certs).
	certMode                     string
	certSecret, certNamespace    string
	service                      string
	mutatingName, validatingName string
}

const (
	certModeCertManager = "cert-manager"
	certModeSelf        = "self"
)

func (o *webhookOptions) BindFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.certPath, "webhook-cert-path", "", "Directory of the webhook's serving certificate (default: controller-runtime's, <tmp>/k8s-webhook-server/serving-certs). Without a certificate there the Pod webhook is off.")
	fs.StringVar(&o.certName, "webhook-cert-name", "tls.crt", "File name of the webhook certificate in --webhook-cert-path.")
	fs.StringVar(&o.certKey, "webhook-cert-key", "tls.key", "File name of the webhook key in --webhook-cert-path.")
	fs.IntVar(&o.port, "webhook-port", 9443, "Port the webhook server listens on (all interfaces).")
	// cert-manager by default: config/default mounts cert-manager's
	// certificate and grants no rights on the Secret self mode writes.
	fs.StringVar(&o.certMode, "webhook-cert-mode", certModeCertManager,
		"Where the webhook serving certificate comes from: cert-manager (a certificate mounted at --webhook-cert-path; any provider will do) or self (the manager issues and renews it into --webhook-cert-secret and injects its CA into the webhook configurations).")
	fs.StringVar(&o.certSecret, "webhook-cert-secret", "pushmon-webhook-server-cert", "With --webhook-cert-mode=self: the Secret (which must exist) holding the CA and the serving certificate.")
	fs.StringVar(&o.certNamespace, "webhook-cert-namespace", "", "With --webhook-cert-mode=self: namespace of --webhook-cert-secret and --webhook-service; default the pod's namespace.")
	fs.StringVar(&o.service, "webhook-service", "pushmon-webhook-service", "With --webhook-cert-mode=self: the Service the API server calls the webhooks through; the certificate names <service>.<namespace>.svc.")
	fs.StringVar(&o.mutatingName, "webhook-mutating-configuration", "pushmon-mutating-webhook-configuration",
		"With --webhook-cert-mode=self: the MutatingWebhookConfiguration whose caBundle the manager keeps; empty: none.")
	fs.StringVar(&o.validatingName, "webhook-validating-configuration", "pushmon-validating-webhook-configuration",
		"With --webhook-cert-mode=self: the ValidatingWebhookConfiguration whose caBundle the manager keeps; empty: none.")
}

func (o *webhookOptions) complete() error {
	if o.certMode != certModeCertManager && o.certMode != certModeSelf {
		return fmt.Errorf("--webhook-cert-mode must be %s or %s, not %q", certModeCertManager, certModeSelf, o.certMode)
	}
	return nil
}

// selfCerts is the configuration of self-issued certificates, nil in
// cert-manager mode; o.certPath must be filled in (webhooksEnabled).
func (o *webhookOptions) selfCerts() (*certs.Config, error) {
	if o.certMode != certModeSelf {
		return nil, nil
	}
	ns := o.certNamespace
	if ns == "" {
		ns = podNamespace()
	}
	if ns == "" {
		return nil, errors.New("--webhook-cert-mode=self needs --webhook-cert-namespace outside a pod")
	}
	if o.certSecret == "" || o.service == "" {
		return nil, errors.New("--webhook-cert-mode=self needs --webhook-cert-secret and --webhook-service")
	}
	return &certs.Config{
		Secret:  types.NamespacedName{Namespace: ns, Name: o.certSecret},
		Service: o.service, MutatingWebhook: o.mutatingName, ValidatingWebhook: o.validatingName,
		CertDir: o.certPath, CertName: o.certName, KeyName: o.certKey,
	}, nil
}

func run() error {
	var (
		mgrOpts     managerOptions
		pushOpts    pushOptions
		reconOpts   reconcilerOptions
		webhookOpts webhookOptions
		zapOpts     = zap.Options{Development: false}
	)
	mgrOpts.BindFlags(flag.CommandLine)
	pushOpts.BindFlags(flag.CommandLine)
	reconOpts.BindFlags(flag.CommandLine)
	webhookOpts.BindFlags(flag.CommandLine)
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()

	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	log := ctrl.Log.WithName("setup")

	mode, modeErr := mgrOpts.runMode()
	if err := errors.Join(modeErr, pushOpts.complete(), reconOpts.complete(), webhookOpts.complete()); err != nil {
		return err
	}
	namespaces := splitList(mgrOpts.watchNamespaces)

	hookOpts := webhook.Options{Port: webhookOpts.port, CertDir: webhookOpts.certPath, CertName: webhookOpts.certName,
		KeyName: webhookOpts.certKey, TLSOpts: mgrOpts.tlsOpts()}
	selfCerts := webhookOpts.certMode == certModeSelf
	webhooks, why := false, "--mode=ingest"
	if mode != operator.ModeIngest {
		webhooks, why = webhooksEnabled(&hookOpts, selfCerts)
	}
	if !webhooks {
		log.Info("webhooks off: pods are admitted without PUSH_URL injection (docs/injection.md)", "reason", why)
	}
	webhookOpts.certPath = hookOpts.CertDir
	var certsCfg *certs.Config
	if webhooks {
		var err error
		if certsCfg, err = webhookOpts.selfCerts(); err != nil {
			return err
		}
	}
	// An ingest process never campaigns: it would win the Lease and leave
	// nothing reconciling. Its --leader-elect only says that the
	// controllers elect a leader, whose relay Lease it follows.
	campaign := mgrOpts.leaderElect && mode != operator.ModeIngest

	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("loading kubeconfig: %w", err)
	}
	cfg.QPS, cfg.Burst = float32(mgrOpts.apiQPS), mgrOpts.apiBurst

	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                        scheme,
		Metrics:                       mgrOpts.metricsServer(),
		HealthProbeBindAddress:        mgrOpts.probeAddr,
		PprofBindAddress:              mgrOpts.pprofAddr,
		LeaderElection:                campaign,
		LeaderElectionID:              "pushmon.monitoring.pushmon.dev",
		LeaderElectionNamespace:       mgrOpts.leaderElectNamespace,
		LeaderElectionReleaseOnCancel: true,
		LeaseDuration:                 &mgrOpts.leaseDuration,
		RenewDeadline:                 &mgrOpts.renewDeadline,
		RetryPeriod:                   &mgrOpts.retryPeriod,
		Cache:                         operator.CacheOptions(namespaces...),
		WebhookServer:                 webhook.NewServer(hookOpts),
	})
	if err != nil {
		return fmt.Errorf("creating manager: %w", err)
	}
	ctx := ctrl.SetupSignalHandler()
	running, err := operator.Setup(ctx, mgr, operator.Config{
		PushAddr: pushOpts.addr, PushBaseURL: pushOpts.baseURL, HeartbeatWindow: pushOpts.heartbeatWindow,
		MaxHeartbeatWrites: pushOpts.maxWrites,
		PushLimits:         pushOpts.limits, PushMaxConns: pushOpts.maxConns, PushMaxConnsPerAddr: pushOpts.maxConnsPerAddr,
		Concurrency: reconOpts.concurrency, TokenOverlap: reconOpts.tokenOverlap, StatusRefresh: reconOpts.statusRefresh,
		Notify:   notify.Options{RetryFor: reconOpts.notifyRetry},
		Relay:    pushOpts.relayConfig(mgrOpts.leaseNamespace()),
		Webhooks: webhooks, SelfCerts: certsCfg,
		Mode: mode, DashboardAddr: pushOpts.dashboardAddr,
	})
	if err != nil {
		return err
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return err
	}
	log.Info("starting manager", "mode", mode, "pushAddress", pushOpts.addr, "pushBaseURL", pushOpts.baseURL, "leaderElection", mgrOpts.leaderElect,
		"webhooks", webhooks, "webhookCertMode", webhookOpts.certMode, "watchNamespaces", namespaces)
	err = mgr.Start(ctx)
	// After SIGTERM the manager waited for the final flush already; after a
	// lost leader election it did not (controller-runtime gives runnables no
	// grace then), so held heartbeats are written here before the exit.
	running.Drain(heartbeat.FinalFlushTimeout)
	return err
}

// splitList splits a comma-separated flag, dropping empty entries.
func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// parsePrefixes reads comma-separated CIDRs; a bare address is a /32 or /128.
func parsePrefixes(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range splitList(s) {
		if !strings.Contains(f, "/") {
			ip, err := netip.ParseAddr(f)
			if err != nil {
				return nil, err
			}
			out = append(out, netip.PrefixFrom(ip.Unmap(), ip.Unmap().BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, err
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// checkLimits refuses push limits that would silently mean something else.
func checkLimits(l push.Limits, maxConns, maxConnsPerAddr int) error {
	switch {
	case l.TokenRate < 0 || l.IPRate < 0:
		return errors.New("--push-token-rate and --push-ip-rate must be >= 0")
	case l.TokenRate > 0 && l.TokenBurst < 1, l.IPRate > 0 && l.IPBurst < 1:
		return errors.New("--push-token-burst and --push-ip-burst must be >= 1 when their rate is set")
	case maxConns < 0:
		return errors.New("--push-max-connections must be >= 0")
	case maxConnsPerAddr < 0:
		return errors.New("--push-max-connections-per-address must be >= 0")
	case len(l.TrustedProxies) > 0 && l.ClientIPHeader == "":
		return errors.New("--push-trusted-proxies needs --push-client-ip-header")
	case l.ClientIPHeader != "" && len(l.TrustedProxies) == 0:
		// Believed from every peer, the header would let any client choose
		// its own address bucket; the limiter believes it from none.
		return errors.New("--push-client-ip-header needs --push-trusted-proxies: the CIDRs of the proxies that set it (a header from any other peer is not believed)")
	}
	return nil
}

// webhooksEnabled follows kubebuilder's convention: webhooks are served
// unless ENABLE_WEBHOOKS=false, and only when their certificate exists, so
// that the manager also runs where no certificate was provisioned (make run,
// make demo, a cluster without cert-manager). With self-issued certificates
// (self) the manager writes the certificate there itself, later. It fills
// in the default certificate directory and says why webhooks are off.
func webhooksEnabled(o *webhook.Options, self bool) (bool, string) {
	if os.Getenv("ENABLE_WEBHOOKS") == "false" {
		return false, "ENABLE_WEBHOOKS=false"
	}
	if o.CertDir == "" {
		o.CertDir = filepath.Join(os.TempDir(), "k8s-webhook-server", "serving-certs")
	}
	if self {
		return true, ""
	}
	for _, f := range []string{o.CertName, o.KeyName} {
		if _, err := os.Stat(filepath.Join(o.CertDir, f)); err != nil {
			return false, fmt.Sprintf("no webhook certificate: %v", err)
		}
	}
	return true, ""
}
