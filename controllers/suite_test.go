package controllers_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/onsi/gomega"
	"go.uber.org/zap/zapcore"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
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
	"github.com/pushmon/pushmon/internal/testutil"
)

// The suite starts one real kube-apiserver and etcd (built by
// hack/build-controlplane.sh) and runs pushmon's manager against it, as
// cmd/main.go wires it. Tests run one at a time; each works in its own
// namespace.
var (
	testEnv   *envtest.Environment
	restCfg   *rest.Config
	k8sClient client.Client // uncached: assertions read the API server
	scheme    = runtime.NewScheme()
	kubectl   string
	kubecfg   string

	// The running manager; restartable for restart-safety tests.
	mgrMu     sync.Mutex
	mgrCancel context.CancelFunc
	mgrDone   chan error
	pushAddr  string
	// mgrCache is the running manager's cache, which the push endpoint
	// looks tokens up in.
	mgrCache client.Reader
	logs     = &testutil.SyncBuffer{}
)

func init() {
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(monitoringv1alpha1.AddToScheme(scheme))
}

func TestMain(m *testing.M) {
	os.Exit(runSuite(m))
}

// Suite-wide gomega defaults. Gomega's own (1s, 100ms) are too tight for
// a real API server under -race on two loaded cores; a call that needs a
// tighter bound says so itself.
const (
	eventuallyTimeout    = 10 * time.Second
	consistentlyDuration = time.Second
)

func runSuite(m *testing.M) int {
	gomega.SetDefaultEventuallyTimeout(eventuallyTimeout)
	gomega.SetDefaultConsistentlyDuration(consistentlyDuration)
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		assets = filepath.Join("..", "bin", "k8s")
	}
	for _, b := range []string{"etcd", "kube-apiserver", "kubectl"} {
		if _, err := os.Stat(filepath.Join(assets, b)); err != nil {
			fmt.Fprintf(os.Stderr, "control plane binary %s missing in %s: run `make controlplane` (or `make test`)\n", b, assets)
			return 1
		}
	}
	testEnv = &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: assets,
	}
	var err error
	if restCfg, err = testEnv.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "starting envtest:", err)
		_ = testEnv.Stop() // a half-started control plane must not outlive the test
		return 1
	}
	defer func() {
		stopManager()
		if err := testEnv.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stopping envtest:", err)
		}
	}()
	if k8sClient, err = client.New(restCfg, client.Options{Scheme: scheme}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	kubectl = filepath.Join(assets, "kubectl")
	if kubecfg, err = writeKubeconfig(); err != nil {
		fmt.Fprintln(os.Stderr, "writing kubeconfig:", err)
		return 1
	}
	if pushAddr, err = freeAddr(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := startManager(); err != nil {
		fmt.Fprintln(os.Stderr, "starting manager:", err)
		return 1
	}
	code := m.Run()
	if code != 0 {
		fmt.Fprintf(os.Stderr, "--- manager log (last 200 lines) ---\n%s\n", logs.Tail(200))
	}
	return code
}

// startManager starts pushmon's manager as cmd/main.go does, with the push
// endpoint on pushAddr. It returns once the push endpoint listens.
func startManager() error {
	mgrMu.Lock()
	defer mgrMu.Unlock()
	log := zap.New(zap.WriteTo(logs), zap.UseDevMode(true), zap.Level(zapcore.DebugLevel))
	ctrl.SetLogger(log)
	mgr, err := ctrl.NewManager(restCfg, ctrl.Options{
		Scheme:                 scheme,
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
		PushAddr: pushAddr, PushBaseURL: "http://" + pushAddr, Concurrency: 4,
		HeartbeatWindow: heartbeat.DefaultWindow, Now: suiteNow,
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
	mgrCancel, mgrDone, mgrCache = cancel, done, mgr.GetCache()
	return nil
}

// stopManager stops the running manager and waits until it has.
func stopManager() {
	mgrMu.Lock()
	defer mgrMu.Unlock()
	if mgrCancel == nil {
		return
	}
	mgrCancel()
	_ = <-mgrDone
	mgrCancel, mgrDone = nil, nil
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// writeKubeconfig writes an admin kubeconfig for kubectl from bin/k8s.
func writeKubeconfig() (string, error) {
	user, err := testEnv.ControlPlane.AddUser(envtest.User{Name: "test-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return "", err
	}
	b, err := user.KubeConfig()
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
