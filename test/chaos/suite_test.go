// Package chaos is pushmon's chaos run (make chaos; a short form runs in
// make test): three manager processes (bin/manager built from ./cmd) with
// leader election against one real kube-apiserver and etcd, monitors pushed
// every second through every replica in turn, the leader and standbys
// killed with SIGKILL over and over, and the API server and etcd stopped
// and restarted once with their data. It prints one table of what the
// clients were told against what the API shows (docs/reliability.md) and
// fails when a target is missed.
package chaos

import (
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
	"github.com/pushmon/pushmon/internal/testutil"
)

// The defaults are the short form that go test ./... (make test) runs;
// make chaos passes the long form. Each flag also reads an environment
// variable, for runs through make test's plain go test.
var (
	flagDuration = flag.Duration("chaos.duration", envDuration("CHAOS_DURATION", 45*time.Second),
		"how long monitors are pushed and replicas killed (env CHAOS_DURATION)")
	flagMonitors = flag.Int("chaos.monitors", envInt("CHAOS_MONITORS", 50),
		"how many monitors (env CHAOS_MONITORS)")
	flagKillEvery = flag.Duration("chaos.kill-interval", envDuration("CHAOS_KILL_INTERVAL", 5*time.Second),
		"time between two SIGKILLs (env CHAOS_KILL_INTERVAL)")
	flagAPIRestart = flag.Bool("chaos.api-restart", envInt("CHAOS_API_RESTART", 1) != 0,
		"stop and restart the API server and etcd once, with their data (env CHAOS_API_RESTART=0 to skip)")
	flagKeep = flag.Bool("chaos.keep", envInt("CHAOS_KEEP", 0) != 0,
		"keep the work directory (manager logs, etcd data) for inspection (env CHAOS_KEEP=1)")
)

// apiStopTimeout bounds the API server's graceful stop in the restart.
const apiStopTimeout = 5 * time.Second

func envDuration(name string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(os.Getenv(name)); err == nil {
		return d
	}
	return def
}

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return n
	}
	return def
}

var (
	testEnv        *envtest.Environment
	restCfg        *rest.Config
	k8sClient      client.WithWatch
	scheme         = runtime.NewScheme()
	managerBin     string
	kubeconfigPath string // admin kubeconfig the managers use
	workDir        string
)

func init() {
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(monitoringv1alpha1.AddToScheme(scheme))
}

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(run(m))
}

func run(m *testing.M) int {
	root, _ := filepath.Abs(filepath.Join("..", ".."))
	assets, err := testutil.Assets(root, "etcd", "kube-apiserver")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if workDir, err = os.MkdirTemp("", "pushmon-chaos-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if *flagKeep {
		fmt.Fprintln(os.Stderr, "chaos: keeping", workDir)
	} else {
		defer os.RemoveAll(workDir)
	}

	managerBin = filepath.Join(workDir, "manager")
	if err := testutil.BuildManager(root, managerBin); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}

	// Explicit directories: envtest deletes only directories it allocated
	// itself, so Stop keeps etcd's data and the API server's certificates
	// and Start reuses them (and the ports, kept in the structs), which is
	// what the restart in the run needs.
	etcdDir, certDir := filepath.Join(workDir, "etcd"), filepath.Join(workDir, "apiserver")
	for _, d := range []string{etcdDir, certDir, filepath.Join(workDir, "logs")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	testEnv = &envtest.Environment{
		CRDDirectoryPaths:        []string{filepath.Join(root, "config", "crd", "bases")},
		ErrorIfCRDPathMissing:    true,
		BinaryAssetsDirectory:    assets,
		ControlPlaneStartTimeout: time.Minute, // two loaded cores
		// kube-apiserver waits for its open watches on SIGTERM; a
		// static pod's grace period ends that the same way (SIGKILL).
		ControlPlaneStopTimeout: apiStopTimeout,
	}
	etcdLog, err := os.Create(filepath.Join(workDir, "logs", "etcd.log"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer etcdLog.Close()
	apiLog, err := os.Create(filepath.Join(workDir, "logs", "kube-apiserver.log"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer apiLog.Close()
	testEnv.ControlPlane.Etcd = &envtest.Etcd{DataDir: etcdDir, Out: etcdLog, Err: etcdLog}
	api := testEnv.ControlPlane.GetAPIServer()
	api.CertDir, api.Out, api.Err = certDir, apiLog, apiLog
	if restCfg, err = testEnv.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "starting envtest (run `make controlplane`):", err)
		_ = testEnv.Stop() // a half-started control plane must not outlive the test
		return 1
	}
	defer testEnv.Stop() //nolint:errcheck // teardown after the tests: nothing to do about a failure
	// The harness reads through a watch and polls the Lease every 50ms:
	// client-go's default 5 QPS would throttle it.
	restCfg.QPS, restCfg.Burst = 200, 400
	if k8sClient, err = client.NewWithWatch(restCfg, client.Options{Scheme: scheme}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	kc, err := testutil.AdminKubeconfig(testEnv, "pushmon")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	cfg, err := clientcmd.Load(kc)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	kubeconfigPath = filepath.Join(workDir, "manager.kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, kubeconfigPath); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// restartControlPlane stops the API server and etcd and starts them again
// on the same ports with the same data and certificates, so that the
// managers' kubeconfig stays valid: the admin user's client certificate is
// signed by the authenticator's CA, which lives in the envtest struct and
// is written out again on Start.
func restartControlPlane() (stopped, serving time.Time, err error) {
	if err := testEnv.ControlPlane.Stop(); err != nil {
		// A stop that timed out ended in SIGKILL: wait until the port is
		// free so that the new API server can take it.
		fmt.Fprintln(os.Stderr, "chaos: stopping the control plane:", err)
		addr := testEnv.ControlPlane.APIServer.SecureServing.ListenAddr.HostPort()
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
			if err != nil {
				break
			}
			c.Close()
		}
	}
	stopped = time.Now()
	if err := testEnv.ControlPlane.Start(); err != nil {
		return stopped, time.Time{}, fmt.Errorf("starting the control plane again: %w", err)
	}
	return stopped, time.Now(), nil
}
