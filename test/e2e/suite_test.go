// Package e2e runs pushmon with real Kubernetes controllers: etcd,
// kube-apiserver and kube-controller-manager (CronJob and Job controllers)
// built by hack/, pushmon's manager binary with its Pod webhook, and kubectl.
// No kubelet runs: where a pod would run, the test plays the node (see
// runPod).
package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
	"github.com/pushmon/pushmon/internal/testutil"
)

var (
	testEnv    *envtest.Environment
	restCfg    *rest.Config
	k8sClient  client.Client // uncached: assertions read the API server
	scheme     = runtime.NewScheme()
	root       string
	workDir    string
	kubectl    string
	kubecfg    string
	managerBin string
	manager    *testutil.Process
	// The manager's addresses: push endpoint and (plain HTTP) metrics.
	pushAddr, metricsAddr string
)

func init() {
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(monitoringv1alpha1.AddToScheme(scheme))
}

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	// One suite-wide default that fits a real API server under -race on two
	// loaded cores, where kube-controller-manager's Jobs and Pods set the
	// pace (gomega's own: 1s), instead of a timeout on each call; a call
	// that needs another bound says so.
	gomega.SetDefaultEventuallyTimeout(20 * time.Second)
	gomega.SetDefaultConsistentlyDuration(time.Second)
	root, _ = filepath.Abs(filepath.Join("..", ".."))
	assets, err := testutil.Assets(root, "etcd", "kube-apiserver", "kube-controller-manager", "kubectl")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	kubectl = filepath.Join(assets, "kubectl")
	if workDir, err = os.MkdirTemp("", "pushmon-e2e-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(workDir)

	managerBin = filepath.Join(workDir, "manager")
	if err := testutil.BuildManager(root, managerBin); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	// The webhook configuration as config/webhook renders it (with its
	// matchConditions); envtest points it at the manager's local port
	// and issues the serving certificate.
	hooks, err := testutil.RenderWebhooks(kubectl, filepath.Join(root, "config", "webhook"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "rendering config/webhook:", err)
		return 1
	}
	testEnv = &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(root, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: assets,
		WebhookInstallOptions: hooks,
	}
	if restCfg, err = testEnv.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "starting envtest:", err)
		_ = testEnv.Stop() // a half-started control plane must not outlive the test
		return 1
	}
	defer testEnv.Stop() //nolint:errcheck // teardown after the tests: nothing to do about a failure
	if k8sClient, err = client.New(restCfg, client.Options{Scheme: scheme}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if kubecfg, err = writeKubeconfig(); err != nil {
		fmt.Fprintln(os.Stderr, "writing kubeconfig:", err)
		return 1
	}

	kcm, err := testutil.StartKubeControllerManager(assets, kubecfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer kcm.Stop()

	pushAddr, metricsAddr = freeAddr(), freeAddr()
	if manager, err = startManager(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { manager.Stop() }()

	code := m.Run()
	if code != 0 {
		fmt.Fprintf(os.Stderr, "--- pushmon manager log (tail) ---\n%s\n", manager.Out.Tail(80))
		fmt.Fprintf(os.Stderr, "--- kube-controller-manager log (tail) ---\n%s\n", kcm.Out.Tail(40))
	}
	return code
}

// startManager runs bin/manager as a cluster would, with the webhook
// certificate envtest issued for its local webhook port.
func startManager() (*testutil.Process, error) {
	wh := testEnv.WebhookInstallOptions
	p, err := testutil.Start(managerBin,
		"--kubeconfig="+kubecfg,
		"--push-bind-address="+pushAddr, "--push-base-url=http://"+pushAddr,
		"--health-probe-bind-address=0",
		"--metrics-bind-address="+metricsAddr, "--metrics-secure=false",
		"--webhook-cert-path="+wh.LocalServingCertDir, "--webhook-port="+strconv.Itoa(wh.LocalServingPort),
		"--zap-log-level=debug",
	)
	if err != nil {
		return nil, fmt.Errorf("starting the manager: %w", err)
	}
	for _, addr := range []string{pushAddr, metricsAddr, net.JoinHostPort(wh.LocalServingHost, strconv.Itoa(wh.LocalServingPort))} {
		if err := p.WaitListening(addr, 30*time.Second); err != nil {
			p.Stop()
			return nil, fmt.Errorf("manager: %w", err)
		}
	}
	return p, nil
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// writeKubeconfig writes an admin kubeconfig for kubectl, the
// kube-controller-manager and pushmon.
func writeKubeconfig() (string, error) {
	b, err := testutil.AdminKubeconfig(testEnv, "e2e-admin")
	if err != nil {
		return "", err
	}
	path := filepath.Join(workDir, "kubeconfig")
	return path, os.WriteFile(path, b, 0o600)
}

// runKubectl runs kubectl from bin/k8s against the test API server.
func runKubectl(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, kubectl, append([]string{"--kubeconfig", kubecfg}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}
