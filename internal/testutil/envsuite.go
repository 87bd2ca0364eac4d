package testutil

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"go.uber.org/zap/zapcore"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
	"github.com/pushmon/pushmon/internal/heartbeat"
	"github.com/pushmon/pushmon/internal/operator"
)

// Suite-wide gomega defaults (set by the suites' TestMain). Gomega's own
// (1s, 100ms) are too tight for a real API server under -race on two
// loaded cores; a call that needs a tighter bound says so itself.
const (
	EventuallyTimeout    = 10 * time.Second
	ConsistentlyDuration = time.Second
)

// NewScheme is the scheme the suites' clients and managers use: client-go's
// types and pushmon's API.
func NewScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(monitoringv1alpha1.AddToScheme(s))
	return s
}

// EnvSuite is one real kube-apiserver and etcd (envtest, built by
// hack/build-controlplane.sh) with pushmon's manager running against it,
// wired as cmd/main.go wires it (internal/operator.Setup: reconciler, push
// endpoint, coalescer). The controllers and test/integration suites share
// it. Tests run one at a time; each works in its own namespace.
type EnvSuite struct {
	Env      *envtest.Environment
	Config   *rest.Config
	Client   client.Client // uncached: assertions read the API server
	Scheme   *runtime.Scheme
	Kubectl  string // bin/k8s's kubectl
	Kubecfg  string // an admin kubeconfig for it
	PushAddr string // the suite's manager's push endpoint
	// DashboardAddr is the suite's manager's dashboard.
	DashboardAddr string
	Logs          *SyncBuffer
	now           func() time.Time

	// The running manager; restartable for restart-safety tests.
	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan error
	// cache is the running manager's cache, which the push endpoint looks
	// tokens up in.
	cache client.Reader
}

// StartEnvSuite starts the control plane of the repository at root (CRDs
// from config/crd/bases, binaries from Assets) and pushmon's manager with
// now as the reconciler's clock (time.Now when nil). On error nothing is
// left running.
func StartEnvSuite(root string, now func() time.Time) (_ *EnvSuite, err error) {
	assets, err := Assets(root, "etcd", "kube-apiserver", "kubectl")
	if err != nil {
		return nil, err
	}
	s := &EnvSuite{Scheme: NewScheme(), Logs: &SyncBuffer{}, now: now,
		Kubectl: filepath.Join(assets, "kubectl")}
	s.Env = &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(root, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: assets,
	}
	if s.Config, err = s.Env.Start(); err != nil {
		_ = s.Env.Stop() // a half-started control plane must not outlive the test
		return nil, fmt.Errorf("starting envtest: %w", err)
	}
	defer func() {
		if err != nil {
			_ = s.Stop()
		}
	}()
	if s.Client, err = client.New(s.Config, client.Options{Scheme: s.Scheme}); err != nil {
		return nil, err
	}
	if s.Kubecfg, err = s.writeKubeconfig(); err != nil {
		return nil, fmt.Errorf("writing kubeconfig: %w", err)
	}
	if s.DashboardAddr, err = FreeAddr(); err != nil {
		return nil, err
	}
	if s.PushAddr, err = FreeAddr(); err != nil {
		return nil, err
	}
	if err := s.StartManager(); err != nil {
		return nil, fmt.Errorf("starting manager: %w", err)
	}
	return s, nil
}

// Stop stops the manager and the control plane.
func (s *EnvSuite) Stop() error {
	s.StopManager()
	if s.Kubecfg != "" {
		_ = os.Remove(s.Kubecfg)
	}
	if err := s.Env.Stop(); err != nil {
		return fmt.Errorf("stopping envtest: %w", err)
	}
	return nil
}

// StartManager starts pushmon's manager as cmd/main.go does, with the push
// endpoint on PushAddr. It returns once the push endpoint listens.
func (s *EnvSuite) StartManager() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	log := zap.New(zap.WriteTo(s.Logs), zap.UseDevMode(true), zap.Level(zapcore.DebugLevel))
	ctrl.SetLogger(log)
	mgr, err := ctrl.NewManager(s.Config, ctrl.Options{
		Scheme:                 s.Scheme,
		Logger:                 log,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Cache:                  operator.CacheOptions(),
		// The restart tests build a second manager in this process.
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(logr.NewContext(context.Background(), log))
	srv, err := operator.Setup(ctx, mgr, operator.Config{
		PushAddr: s.PushAddr, PushBaseURL: "http://" + s.PushAddr, Concurrency: 4,
		HeartbeatWindow: heartbeat.DefaultWindow, MaxHeartbeatWrites: heartbeat.DefaultMaxWrites, Clock: s.clock(), DashboardAddr: s.DashboardAddr,
	})
	if err != nil {
		cancel()
		return err
	}
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	deadline := time.Now().Add(30 * time.Second)
	for srv.Addr() == "" || !mgr.GetCache().WaitForCacheSync(ctx) {
		select {
		case err := <-done:
			cancel()
			return fmt.Errorf("manager stopped: %w", err)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cancel()
			return fmt.Errorf("manager did not start within 30s")
		}
	}
	s.cancel, s.done, s.cache = cancel, done, mgr.GetCache()
	return nil
}

// StopManager stops the running manager and waits until it has.
func (s *EnvSuite) StopManager() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cancel == nil {
		return
	}
	s.cancel()
	_ = <-s.done
	s.cancel, s.done = nil, nil
}

// Cache is the cache of the manager whose push endpoint tests talk to.
func (s *EnvSuite) Cache() client.Reader {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cache
}

// SetCache tells the suite that a test's own manager (with its cache c)
// serves the pushes now.
func (s *EnvSuite) SetCache(c client.Reader) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cache = c
}

// FreeAddr is a local address nothing listens on right now, and one this
// process has not been given before: the kernel may hand a port that was
// just closed out again, and two servers of one test given the same port
// would collide (a dashboard and a push endpoint did).
func FreeAddr() (string, error) {
	for {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		addr := l.Addr().String()
		l.Close()
		if _, given := givenAddrs.LoadOrStore(addr, true); !given {
			return addr, nil
		}
	}
}

var givenAddrs sync.Map

// writeKubeconfig writes an admin kubeconfig for kubectl from bin/k8s.
func (s *EnvSuite) writeKubeconfig() (string, error) {
	b, err := AdminKubeconfig(s.Env, "test-admin")
	if err != nil {
		return "", err
	}
	f, err := os.CreateTemp("", "pushmon-kubeconfig-*")
	if err != nil {
		return "", err
	}
	defer f.Close()
	_, err = f.Write(b)
	return f.Name(), err
}

// clock is the reconciler's clock: now, or the real one when now is nil.
func (s *EnvSuite) clock() clock.PassiveClock {
	if s.now == nil {
		return nil
	}
	return ClockFunc(s.now)
}
