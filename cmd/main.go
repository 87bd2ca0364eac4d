// Command manager runs pushmon: the PushMonitor reconciler (leader only) and
// the push endpoint (every replica).
package main

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
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
	"github.com/pushmon/pushmon/internal/heartbeat"
	"github.com/pushmon/pushmon/internal/operator"
	"github.com/pushmon/pushmon/internal/push"
)

// defaultPushBaseURL is the in-cluster address of the push Service.
const defaultPushBaseURL = "http://pushmon-push.pushmon-system.svc:8082"

var scheme = runtime.NewScheme()

func init() {
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(monitoringv1alpha1.AddToScheme(scheme))
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		metricsAddr, probeAddr, pushAddr, pushBaseURL string
		leaderElect, secureMetrics, enableHTTP2       bool
		apiQPS                                        float64
		apiBurst, concurrency                         int
		heartbeatWindow, leaseDuration, renewDeadline time.Duration
		retryPeriod                                   time.Duration
		leaderElectNamespace, pprofAddr               string
		webhookCertPath, webhookCertName, webhookKey  string
		webhookPort                                   int
		tokenOverlap                                  time.Duration
		limits                                        push.Limits
		maxConns, maxConnsPerAddr                     int
		trustedProxies, watchNamespaces               string
	)
	flag.StringVar(&metricsAddr, "metrics-bind-address", "0", "Address the metrics endpoint binds to: :8443 for HTTPS, :8080 for HTTP, 0 to disable.")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "Address the healthz/readyz endpoints bind to; 0 to disable.")
	flag.StringVar(&pushAddr, "push-bind-address", ":8082", "Address the push endpoint (/api/push/{token}) binds to.")
	flag.StringVar(&pushBaseURL, "push-base-url", defaultPushBaseURL, "Base URL written into each monitor's Secret (key url): how clients reach the push endpoint.")
	flag.BoolVar(&leaderElect, "leader-elect", false, "Elect a leader, so that only one replica reconciles; every replica serves pushes.")
	flag.StringVar(&pprofAddr, "pprof-bind-address", "0", "Address of the Go pprof endpoints (debugging); 0 disables them.")
	flag.StringVar(&leaderElectNamespace, "leader-elect-namespace", "", "Namespace of the leader election Lease; in a cluster, the manager's own.")
	flag.DurationVar(&leaseDuration, "leader-elect-lease-duration", 15*time.Second, "How long a leader's lease lasts; a dead leader is replaced after at most this long.")
	flag.DurationVar(&renewDeadline, "leader-elect-renew-deadline", 10*time.Second, "How long the leader retries renewing before it steps down.")
	flag.DurationVar(&retryPeriod, "leader-elect-retry-period", 2*time.Second, "How often candidates try to acquire or renew the lease.")
	flag.BoolVar(&secureMetrics, "metrics-secure", true, "Serve metrics over HTTPS with authentication and authorization.")
	flag.BoolVar(&enableHTTP2, "enable-http2", false, "Enable HTTP/2 for the metrics server (off: CVE-2023-44487, CVE-2023-39325).")
	flag.Float64Var(&apiQPS, "kube-api-qps", 500, "Queries per second to the Kubernetes API (the API server's priority and fairness still applies).")
	flag.IntVar(&apiBurst, "kube-api-burst", 1000, "Burst of queries to the Kubernetes API: many monitors expiring together are written in one burst.")
	flag.IntVar(&concurrency, "max-concurrent-reconciles", 16, "PushMonitors reconciled in parallel.")
	flag.DurationVar(&heartbeatWindow, "heartbeat-window", heartbeat.DefaultWindow,
		"Write a monitor's heartbeat at most once per window (capped at half its gracePeriod) while its state does not change; 0 writes every push.")
	flag.StringVar(&webhookCertPath, "webhook-cert-path", "", "Directory of the webhook's serving certificate (default: controller-runtime's, <tmp>/k8s-webhook-server/serving-certs). Without a certificate there the Pod webhook is off.")
	flag.StringVar(&webhookCertName, "webhook-cert-name", "tls.crt", "File name of the webhook certificate in --webhook-cert-path.")
	flag.StringVar(&webhookKey, "webhook-cert-key", "tls.key", "File name of the webhook key in --webhook-cert-path.")
	flag.IntVar(&webhookPort, "webhook-port", 9443, "Port the webhook server listens on (all interfaces).")
	flag.DurationVar(&tokenOverlap, "token-rotation-overlap", controllers.DefaultTokenOverlap,
		"After a token rotation (annotation monitoring.pushmon.dev/rotate-token), how long the previous token keeps working; 0 ends it at once.")
	flag.Float64Var(&limits.TokenRate, "push-token-rate", push.DefaultTokenRate, "Requests per second allowed per push token (token bucket); 0 disables the limit.")
	flag.IntVar(&limits.TokenBurst, "push-token-burst", push.DefaultTokenBurst, "Burst of requests allowed per push token.")
	flag.Float64Var(&limits.IPRate, "push-ip-rate", push.DefaultIPRate, "Requests per second allowed per client address (token bucket); 0 disables the limit.")
	flag.IntVar(&limits.IPBurst, "push-ip-burst", push.DefaultIPBurst, "Burst of requests allowed per client address.")
	flag.IntVar(&maxConns, "push-max-connections", push.DefaultMaxConns, "Cap on concurrent connections to the push endpoint; 0 disables the cap.")
	flag.IntVar(&maxConnsPerAddr, "push-max-connections-per-address", push.DefaultMaxConnsPerAddr,
		"Cap on concurrent connections to the push endpoint from one client address (the connection's peer; --push-trusted-proxies are exempt); over it a connection is closed at once. 0 disables the cap.")
	flag.StringVar(&limits.ClientIPHeader, "push-client-ip-header", "",
		"Header a trusted reverse proxy sets to the client's address (e.g. X-Forwarded-For); empty: the connection's peer is the client.")
	flag.StringVar(&trustedProxies, "push-trusted-proxies", "",
		"Comma-separated CIDRs (or addresses) of the proxies whose --push-client-ip-header is believed; required with that header.")
	flag.StringVar(&watchNamespaces, "watch-namespaces", "",
		"Comma-separated namespaces whose PushMonitors and Secrets pushmon watches; empty: all namespaces.")
	zapOpts := zap.Options{Development: false}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()

	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	log := ctrl.Log.WithName("setup")

	var err error
	if limits.TrustedProxies, err = parsePrefixes(trustedProxies); err != nil {
		return fmt.Errorf("--push-trusted-proxies: %w", err)
	}
	if err := checkLimits(limits, maxConns, maxConnsPerAddr, tokenOverlap); err != nil {
		return err
	}
	namespaces := splitList(watchNamespaces)

	var tlsOpts []func(*tls.Config)
	if !enableHTTP2 {
		tlsOpts = append(tlsOpts, func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} })
	}
	metricsOpts := metricsserver.Options{BindAddress: metricsAddr, SecureServing: secureMetrics, TLSOpts: tlsOpts}
	if secureMetrics {
		metricsOpts.FilterProvider = filters.WithAuthenticationAndAuthorization
	}

	hookOpts := webhook.Options{Port: webhookPort, CertDir: webhookCertPath, CertName: webhookCertName, KeyName: webhookKey, TLSOpts: tlsOpts}
	webhooks, why := webhooksEnabled(&hookOpts)
	if !webhooks {
		log.Info("webhooks off: pods are admitted without PUSH_URL injection (docs/injection.md)", "reason", why)
	}

	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("loading kubeconfig: %w", err)
	}
	cfg.QPS, cfg.Burst = float32(apiQPS), apiBurst

	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                        scheme,
		Metrics:                       metricsOpts,
		HealthProbeBindAddress:        probeAddr,
		PprofBindAddress:              pprofAddr,
		LeaderElection:                leaderElect,
		LeaderElectionID:              "pushmon.monitoring.pushmon.dev",
		LeaderElectionNamespace:       leaderElectNamespace,
		LeaderElectionReleaseOnCancel: true,
		LeaseDuration:                 &leaseDuration,
		RenewDeadline:                 &renewDeadline,
		RetryPeriod:                   &retryPeriod,
		Cache:                         operator.CacheOptions(namespaces...),
		WebhookServer:                 webhook.NewServer(hookOpts),
	})
	if err != nil {
		return fmt.Errorf("creating manager: %w", err)
	}
	ctx := ctrl.SetupSignalHandler()
	running, err := operator.Setup(ctx, mgr, operator.Config{
		PushAddr: pushAddr, PushBaseURL: pushBaseURL, Concurrency: concurrency, HeartbeatWindow: heartbeatWindow,
		Webhooks: webhooks, TokenOverlap: tokenOverlap, PushLimits: limits, PushMaxConns: maxConns,
		PushMaxConnsPerAddr: maxConnsPerAddr,
	})
	if err != nil {
		return err
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return err
	}
	log.Info("starting manager", "pushAddress", pushAddr, "pushBaseURL", pushBaseURL, "leaderElection", leaderElect, "webhooks", webhooks,
		"watchNamespaces", namespaces)
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

// checkLimits refuses values that would silently mean something else.
func checkLimits(l push.Limits, maxConns, maxConnsPerAddr int, overlap time.Duration) error {
	switch {
	case l.TokenRate < 0 || l.IPRate < 0:
		return errors.New("--push-token-rate and --push-ip-rate must be >= 0")
	case l.TokenRate > 0 && l.TokenBurst < 1, l.IPRate > 0 && l.IPBurst < 1:
		return errors.New("--push-token-burst and --push-ip-burst must be >= 1 when their rate is set")
	case maxConns < 0:
		return errors.New("--push-max-connections must be >= 0")
	case maxConnsPerAddr < 0:
		return errors.New("--push-max-connections-per-address must be >= 0")
	case overlap < 0:
		return errors.New("--token-rotation-overlap must be >= 0")
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
// make demo, a cluster without cert-manager). It fills in the default
// certificate directory and says why webhooks are off.
func webhooksEnabled(o *webhook.Options) (bool, string) {
	if os.Getenv("ENABLE_WEBHOOKS") == "false" {
		return false, "ENABLE_WEBHOOKS=false"
	}
	if o.CertDir == "" {
		o.CertDir = filepath.Join(os.TempDir(), "k8s-webhook-server", "serving-certs")
	}
	for _, f := range []string{o.CertName, o.KeyName} {
		if _, err := os.Stat(filepath.Join(o.CertDir, f)); err != nil {
			return false, fmt.Sprintf("no webhook certificate: %v", err)
		}
	}
	return true, ""
}
