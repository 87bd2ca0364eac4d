// Package e2e runs pushmon with real Kubernetes controllers: etcd,
// kube-apiserver and kube-controller-manager (CronJob and Job controllers)
// built by hack/, pushmon's manager binary with its Pod webhook, and kubectl.
// No kubelet runs: where a pod would run, the test plays the node (see
// runPod).
package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
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
	manager    *process
	// The manager's addresses: push endpoint and (plain HTTP) metrics.
	pushAddr, metricsAddr string
)

func init() {
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(monitoringv1alpha1.AddToScheme(scheme))
}

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	root, _ = filepath.Abs(filepath.Join("..", ".."))
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		assets = filepath.Join(root, "bin", "k8s")
	}
	for _, b := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kubectl"} {
		if _, err := os.Stat(filepath.Join(assets, b)); err != nil {
			fmt.Fprintf(os.Stderr, "control plane binary %s missing in %s: run `make controlplane` (or `make test`)\n", b, assets)
			return 1
		}
	}
	kubectl = filepath.Join(assets, "kubectl")
	var err error
	if workDir, err = os.MkdirTemp("", "pushmon-e2e-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(workDir)

	managerBin = filepath.Join(workDir, "manager")
	build := exec.Command("go", "build", "-o", managerBin, "./cmd")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building the manager: %v\n%s", err, out)
		return 1
	}
	// The webhook configuration as config/webhook renders it (with its
	// matchConditions); envtest points it at the manager's local port
	// and issues the serving certificate.
	hooks, err := renderedWebhooks()
	if err != nil {
		fmt.Fprintln(os.Stderr, "rendering config/webhook:", err)
		return 1
	}
	testEnv = &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(root, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: assets,
		WebhookInstallOptions: envtest.WebhookInstallOptions{MutatingWebhooks: hooks},
	}
	if restCfg, err = testEnv.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "starting envtest:", err)
		_ = testEnv.Stop() // a half-started control plane must not outlive the test
		return 1
	}
	defer testEnv.Stop() //nolint:errcheck
	if k8sClient, err = client.New(restCfg, client.Options{Scheme: scheme}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if kubecfg, err = writeKubeconfig(); err != nil {
		fmt.Fprintln(os.Stderr, "writing kubeconfig:", err)
		return 1
	}

	kcm, err := startKubeControllerManager(assets)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer kcm.stop()

	pushAddr, metricsAddr = freeAddr(), freeAddr()
	if manager, err = startManager(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { manager.stop() }()

	code := m.Run()
	if code != 0 {
		fmt.Fprintf(os.Stderr, "--- pushmon manager log (tail) ---\n%s\n", manager.out.Tail(80))
		fmt.Fprintf(os.Stderr, "--- kube-controller-manager log (tail) ---\n%s\n", kcm.out.Tail(40))
	}
	return code
}

// renderedWebhooks renders config/webhook with kubectl's kustomize and
// returns its MutatingWebhookConfigurations.
func renderedWebhooks() ([]*admissionv1.MutatingWebhookConfiguration, error) {
	out, err := exec.Command(kubectl, "kustomize", filepath.Join(root, "config", "webhook")).Output()
	if err != nil {
		return nil, err
	}
	var hooks []*admissionv1.MutatingWebhookConfiguration
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(out), 4096)
	for {
		var doc runtime.RawExtension
		if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, err
		}
		obj, _, err := clientgoscheme.Codecs.UniversalDeserializer().Decode(doc.Raw, nil, nil)
		if err != nil {
			return nil, err
		}
		if h, ok := obj.(*admissionv1.MutatingWebhookConfiguration); ok {
			hooks = append(hooks, h)
		}
	}
	if len(hooks) == 0 {
		return nil, errors.New("no MutatingWebhookConfiguration in config/webhook")
	}
	return hooks, nil
}

// process is a control plane or pushmon binary the suite runs.
type process struct {
	cmd    *exec.Cmd
	out    *testutil.SyncBuffer
	exited chan struct{}
}

func start(bin string, args ...string) (*process, error) {
	p := &process{out: &testutil.SyncBuffer{}, exited: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { _ = p.cmd.Wait(); close(p.exited) }()
	return p, nil
}

func (p *process) stop() {
	if p == nil || p.cmd.Process == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// waitHTTP waits until url answers, or the process exits.
func (p *process) waitHTTP(url string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-p.exited:
			return fmt.Errorf("exited: %s", p.out.Tail(40))
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not answering after %v: %s", url, within, p.out.Tail(40))
		}
	}
}

// startKubeControllerManager runs the CronJob and Job controllers.
func startKubeControllerManager(assets string) (*process, error) {
	healthAddr := freeAddr()
	_, port, _ := net.SplitHostPort(healthAddr)
	p, err := start(filepath.Join(assets, "kube-controller-manager"),
		"--kubeconfig="+kubecfg,
		"--controllers=cronjob,job",
		"--leader-elect=false",
		"--use-service-account-credentials=false",
		"--bind-address=127.0.0.1", "--secure-port="+port,
		"--authentication-skip-lookup", "--authorization-always-allow-paths=/healthz",
	)
	if err != nil {
		return nil, fmt.Errorf("starting kube-controller-manager: %w", err)
	}
	// Its health endpoint is HTTPS with a self-signed certificate; a TCP
	// connect is enough to know it serves.
	deadline := time.Now().Add(60 * time.Second)
	for {
		if c, err := net.Dial("tcp", healthAddr); err == nil {
			c.Close()
			return p, nil
		}
		select {
		case <-p.exited:
			return nil, fmt.Errorf("kube-controller-manager exited: %s", p.out.Tail(40))
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.stop()
			return nil, fmt.Errorf("kube-controller-manager did not start: %s", p.out.Tail(40))
		}
	}
}

// startManager runs bin/manager as a cluster would, with the webhook
// certificate envtest issued for its local webhook port.
func startManager() (*process, error) {
	wh := testEnv.WebhookInstallOptions
	p, err := start(managerBin,
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
	if err := p.waitHTTP("http://"+metricsAddr+"/metrics", 30*time.Second); err != nil {
		p.stop()
		return nil, fmt.Errorf("manager: %w", err)
	}
	// The webhook server listens once the manager runs its runnables.
	deadline := time.Now().Add(30 * time.Second)
	hookAddr := net.JoinHostPort(wh.LocalServingHost, strconv.Itoa(wh.LocalServingPort))
	for {
		if c, err := net.Dial("tcp", hookAddr); err == nil {
			c.Close()
			return p, nil
		}
		if time.Now().After(deadline) {
			p.stop()
			return nil, fmt.Errorf("webhook server not listening: %s", p.out.Tail(40))
		}
		time.Sleep(50 * time.Millisecond)
	}
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
	user, err := testEnv.ControlPlane.AddUser(envtest.User{Name: "e2e-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return "", err
	}
	b, err := user.KubeConfig()
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
