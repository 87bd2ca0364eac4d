// Package operator wires pushmon's parts into a controller-runtime manager:
// the token index, the reconcilers, the push endpoint and the webhooks. cmd/main.go and the
// integration tests both start pushmon through it, so tests run what ships.
package operator

import (
	"context"
	"fmt"
	"slices"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
	"github.com/pushmon/pushmon/controllers"
	"github.com/pushmon/pushmon/internal/certs"
	"github.com/pushmon/pushmon/internal/dashboard"
	"github.com/pushmon/pushmon/internal/heartbeat"
	"github.com/pushmon/pushmon/internal/inject"
	"github.com/pushmon/pushmon/internal/notify"
	"github.com/pushmon/pushmon/internal/push"
	"github.com/pushmon/pushmon/internal/relay"
	"github.com/pushmon/pushmon/internal/token"
	"github.com/pushmon/pushmon/internal/validation"
)

// Config is what Setup needs beyond the manager.
type Config struct {
	// PushAddr is the push endpoint's listen address.
	PushAddr string
	// PushBaseURL is the base of the url written into each Secret.
	PushBaseURL string
	// Concurrency is the reconciler's MaxConcurrentReconciles.
	Concurrency int
	// HeartbeatWindow bounds heartbeat writes to one per window per monitor
	// (and replica) while its state does not change; 0 writes every push.
	HeartbeatWindow time.Duration
	// MaxHeartbeatWrites bounds the heartbeat writes this replica makes at
	// once (heartbeat.Bounded); 0: unbounded.
	MaxHeartbeatWrites int
	// Clock is the reconciler's clock (tests); the real clock when nil. The
	// push endpoint and the heartbeat coalescer keep the real clock.
	Clock clock.PassiveClock
	// TokenOverlap is how long a rotated-out token keeps working.
	TokenOverlap time.Duration
	// PushLimits are the push endpoint's rate limits; zero: none.
	PushLimits push.Limits
	// PushMaxConns caps the push endpoint's concurrent connections; 0: none.
	PushMaxConns int
	// PushMaxConnsPerAddr caps concurrent connections from one client
	// address (trusted proxies exempt); 0: none.
	PushMaxConnsPerAddr int
	// StatusRefresh bounds how stale a healthy monitor's stored heartbeat
	// grows while the leader holds newer ones; 0: controllers' default.
	StatusRefresh time.Duration
	// Relay configures how replicas hand heartbeats to the leader's memory.
	Relay RelayConfig
	// DashboardAddr is the read-only dashboard's listen address; "" or "0":
	// no dashboard.
	DashboardAddr string
	// Mode says which parts this process runs; ModeAll when empty.
	Mode Mode
	// Notify configures the notifier (AlertChannels; leader only).
	Notify notify.Options
	// Webhooks registers the webhooks on the manager's webhook server (which
	// then starts with the manager): the Pod webhook that injects PUSH_URL
	// and the PushMonitor validating webhook.
	Webhooks bool
	// SelfCerts, with Webhooks, makes the manager issue its own serving
	// certificate (internal/certs) and start the webhook server once it
	// exists; nil: the certificate is provided (cert-manager).
	SelfCerts *certs.Config
}

// RelayConfig configures the heartbeat relay (internal/relay).
type RelayConfig struct {
	// Disabled writes every heartbeat into status, as before the relay.
	Disabled bool
	// Lease is the Lease the leader publishes its relay address in; with
	// no name, heartbeats are relayed only within the leading process (one
	// replica, or no leader election).
	Lease types.NamespacedName
	// BindAddr is the relay endpoint's listen address (e.g. ":8083").
	BindAddr string
	// AdvertiseAddr is how other replicas reach this one's relay endpoint
	// (host:port); without it this process never publishes itself.
	AdvertiseAddr string
}

// CacheOptions restricts the manager's Secret cache to the Secrets pushmon
// labeled, so pushmon never holds other Secrets of the cluster in memory, and
// of those it holds only what it reads, and no data at all of the ones no
// PushMonitor controls (trimSecret).
// With namespaces, every namespaced object the manager caches (PushMonitors,
// Secrets) is watched in those namespaces only, so that the manager needs
// no more than a RoleBinding in each (docs/security.md); without, it watches
// the whole cluster.
func CacheOptions(namespaces ...string) cache.Options {
	// Following CronJobs reads Jobs and their Pods: only Pods made by a Job
	// are cached, and of CronJobs, Jobs and Pods only what is read (status,
	// schedule), not their pod templates and specs.
	// The Job controller labels the Pods of a Job with its name.
	jobPods, err := labels.Parse(batchv1.JobNameLabel)
	if err != nil {
		panic(err) // a constant
	}
	o := cache.Options{
		// managedFields are never read, and with two writers of status per
		// monitor they are a good part of each cached object.
		DefaultTransform: cache.TransformStripManagedFields(),
		ByObject: map[client.Object]cache.ByObject{
			&corev1.Secret{}:   {Label: labels.SelectorFromSet(labels.Set{token.LabelManagedBy: token.LabelManagedByValue}), Transform: trimSecret},
			&corev1.Pod{}:      {Label: jobPods, Transform: controllers.TrimForCache},
			&batchv1.Job{}:     {Transform: controllers.TrimForCache},
			&batchv1.CronJob{}: {Transform: controllers.TrimForCache},
		},
	}
	if len(namespaces) > 0 {
		o.DefaultNamespaces = make(map[string]cache.Config, len(namespaces))
		for _, ns := range namespaces {
			o.DefaultNamespaces[ns] = cache.Config{}
		}
	}
	return o
}

// Mode says which of pushmon's parts a process runs.
type Mode string

const (
	// ModeAll runs everything in one process: the reconcilers, the
	// webhooks and the push endpoint (the default).
	ModeAll Mode = "all"
	// ModeController runs the reconcilers and the webhooks, and takes
	// relayed heartbeats while leading, but serves no push endpoint.
	ModeController Mode = "controller"
	// ModeIngest serves the push endpoint only. It looks tokens up by the
	// digests in PushMonitor status (token.StatusIndex), so it needs no
	// access to Secrets, and never leads.
	ModeIngest Mode = "ingest"
)

// Modes are the valid values of Config.Mode (and of --mode).
var Modes = []Mode{ModeAll, ModeController, ModeIngest}

// Running is what Setup added to the manager: the push server (whose Addr
// tells where it listens once the manager runs; nil in ModeController) and
// the heartbeats it holds.
type Running struct {
	*push.Server
	coalescer *heartbeat.Coalescer
}

// Drain writes the heartbeats held in memory, within timeout. Call it once
// the manager's Start returned, whatever the reason: a manager that lost its
// leader election returns without waiting for its runnables, and held
// heartbeats were answered 200.
func (r *Running) Drain(timeout time.Duration) {
	if r.coalescer != nil {
		r.coalescer.Drain(timeout)
	}
}

// Setup adds pushmon's parts for cfg.Mode to mgr.
func Setup(ctx context.Context, mgr ctrl.Manager, cfg Config) (*Running, error) {
	mode := cfg.Mode
	if mode == "" {
		mode = ModeAll
	}
	if !slices.Contains(Modes, mode) {
		return nil, fmt.Errorf("unknown mode %q (one of %v)", mode, Modes)
	}
	if cfg.DashboardAddr != "" && cfg.DashboardAddr != "0" {
		// Every mode caches PushMonitors, which is all the dashboard reads.
		if err := dashboard.Setup(ctx, mgr, cfg.DashboardAddr); err != nil {
			return nil, fmt.Errorf("adding the dashboard: %w", err)
		}
	}
	live := heartbeat.NewLive()
	if cfg.Relay.Disabled {
		live = nil
	}
	var monitors monitorLookup
	if mode == ModeIngest {
		if err := token.SetupStatusIndex(ctx, mgr.GetFieldIndexer()); err != nil {
			return nil, fmt.Errorf("indexing token digests: %w", err)
		}
		monitors = &token.StatusIndex{Reader: mgr.GetCache()}
	} else {
		index, err := setupController(ctx, mgr, cfg, live)
		if err != nil {
			return nil, err
		}
		monitors = index
	}
	if mode == ModeController {
		return &Running{}, nil
	}

	coalescer := &heartbeat.Coalescer{
		Writer: heartbeat.NewBounded(&heartbeat.Writer{Client: mgr.GetClient(), Reader: mgr.GetAPIReader()}, cfg.MaxHeartbeatWrites),
		Window: cfg.HeartbeatWindow,
		Log:    mgr.GetLogger().WithName("heartbeat"),
	}
	if err := mgr.Add(coalescer); err != nil {
		return nil, fmt.Errorf("adding the heartbeat coalescer: %w", err)
	}
	pushOpts := push.Options{Addr: cfg.PushAddr, Limits: cfg.PushLimits, MaxConns: cfg.PushMaxConns, MaxConnsPerAddr: cfg.PushMaxConnsPerAddr}
	if live != nil {
		fwd, err := setupForwarder(mgr, cfg.Relay, live)
		if err != nil {
			return nil, err
		}
		pushOpts.Relay = fwd
	}
	srv := push.New(pushOpts, monitors, coalescer, mgr.GetLogger().WithName("push"))
	if err := mgr.Add(srv); err != nil {
		return nil, fmt.Errorf("adding the push endpoint: %w", err)
	}
	if err := mgr.AddReadyzCheck("push-endpoint", srv.ReadyCheck); err != nil {
		return nil, err
	}
	return &Running{Server: srv, coalescer: coalescer}, nil
}

// monitorLookup finds the monitor a token belongs to: token.Index from
// Secrets, or token.StatusIndex from status.
type monitorLookup interface {
	Lookup(ctx context.Context, tok string) (*monitoringv1alpha1.PushMonitor, error)
}

// setupController adds the controller's parts: the token index over Secrets,
// the reconcilers and the leader's bookkeeping, the leader's end of the
// heartbeat relay (with live; nil when the relay is off) and the webhooks.
func setupController(ctx context.Context, mgr ctrl.Manager, cfg Config, live *heartbeat.Live) (*token.Index, error) {
	if err := token.SetupIndex(ctx, mgr.GetFieldIndexer()); err != nil {
		return nil, fmt.Errorf("indexing token secrets: %w", err)
	}
	index := &token.Index{Reader: mgr.GetCache()}
	// Every event note is cut to what the Events API stores.
	recorder := controllers.LimitNotes(mgr.GetEventRecorder("pushmon"))
	r := &controllers.PushMonitorReconciler{
		Client:                  mgr.GetClient(),
		APIReader:               mgr.GetAPIReader(),
		Recorder:                recorder,
		PushBaseURL:             cfg.PushBaseURL,
		Clock:                   cfg.Clock,
		MaxConcurrentReconciles: cfg.Concurrency,
		TokenOverlap:            cfg.TokenOverlap,
		StatusRefresh:           cfg.StatusRefresh,
		Live:                    live,
	}
	if err := r.SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("setting up the PushMonitor controller: %w", err)
	}
	if err := mgr.Add(manager.RunnableFunc(r.Lead)); err != nil {
		return nil, fmt.Errorf("adding the leader's bookkeeping: %w", err)
	}
	if cfg.Notify.Clock == nil {
		cfg.Notify.Clock = cfg.Clock
	}
	if err := notify.Setup(mgr, cfg.Notify); err != nil {
		return nil, fmt.Errorf("setting up the notifier: %w", err)
	}
	optIn := &controllers.CronJobOptInReconciler{Client: mgr.GetClient(), Recorder: recorder}
	if err := optIn.SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("setting up the CronJob opt-in controller: %w", err)
	}
	if live != nil && cfg.Relay.Lease.Name != "" {
		log := mgr.GetLogger().WithName("relay")
		runnables := []manager.Runnable{&relay.Server{Addr: cfg.Relay.BindAddr, Live: live, Monitors: index, Log: log}}
		if cfg.Relay.AdvertiseAddr != "" {
			runnables = append(runnables, &relay.Publisher{Client: mgr.GetClient(), Reader: mgr.GetAPIReader(),
				Lease: cfg.Relay.Lease, Address: cfg.Relay.AdvertiseAddr, Log: log})
		}
		for _, run := range runnables {
			if err := mgr.Add(run); err != nil {
				return nil, fmt.Errorf("adding the heartbeat relay: %w", err)
			}
		}
	}
	if cfg.Webhooks {
		// Registering the webhooks adds the webhook server to the manager.
		register := func() (healthz.Checker, error) {
			hooks := mgr.GetWebhookServer()
			hooks.Register(inject.Path, &webhook.Admission{Handler: &inject.PodInjector{
				Reader:   mgr.GetClient(),
				Decoder:  admission.NewDecoder(mgr.GetScheme()),
				Recorder: recorder,
			}})
			if err := validation.Setup(mgr); err != nil {
				return nil, fmt.Errorf("setting up the PushMonitor validating webhook: %w", err)
			}
			return hooks.StartedChecker(), nil
		}
		check, err := webhookServer(mgr, cfg.SelfCerts, register)
		if err != nil {
			return nil, err
		}
		if err := mgr.AddReadyzCheck("webhook", check); err != nil {
			return nil, err
		}
	}
	return index, nil
}

// webhookServer registers the webhooks now, or with self-issued
// certificates once this replica's certificate exists (certs.Gate), and
// returns the webhook server's readiness check.
func webhookServer(mgr ctrl.Manager, self *certs.Config, register func() (healthz.Checker, error)) (healthz.Checker, error) {
	if self == nil {
		return register()
	}
	ready, err := certs.Setup(mgr, *self)
	if err != nil {
		return nil, err
	}
	gate := &certs.Gate{Ready: ready, Register: register}
	if err := mgr.Add(gate); err != nil {
		return nil, fmt.Errorf("adding the webhook server's start: %w", err)
	}
	return gate.ReadyCheck, nil
}

// setupForwarder adds what hands relayable heartbeats to the leader's
// memory: the forwarder and, with a Lease, the resolver of the leader's
// address (both on every replica that serves pushes).
func setupForwarder(mgr ctrl.Manager, cfg RelayConfig, live *heartbeat.Live) (*relay.Forwarder, error) {
	fwd := &relay.Forwarder{Live: live, Log: mgr.GetLogger().WithName("relay")}
	if cfg.Lease.Name != "" {
		resolver := &relay.Resolver{Reader: mgr.GetAPIReader(), Lease: cfg.Lease, Self: cfg.AdvertiseAddr}
		fwd.Leader = resolver.Leader
		if err := mgr.Add(resolver); err != nil {
			return nil, fmt.Errorf("adding the heartbeat relay: %w", err)
		}
	}
	if err := mgr.Add(fwd); err != nil {
		return nil, fmt.Errorf("adding the heartbeat relay: %w", err)
	}
	return fwd, nil
}
