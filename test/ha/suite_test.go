// Package ha tests pushmon as it runs in a cluster: several manager
// processes (bin/manager built from ./cmd) with leader election against one
// real kube-apiserver, replicas killed with SIGKILL, and the API server made
// unreachable through a TCP proxy.
package ha

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
	"github.com/pushmon/pushmon/internal/testutil"
)

var (
	testEnv    *envtest.Environment
	restCfg    *rest.Config
	k8sClient  client.Client
	scheme     = runtime.NewScheme()
	managerBin string
	kubeconfig []byte // admin kubeconfig pointing straight at the API server
	workDir    string
)

func init() {
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(monitoringv1alpha1.AddToScheme(scheme))
}

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	// The managers under test are processes with logs of their own; the
	// clients this process makes (envtest, the plugin run in-process) log
	// nothing worth reading, and without a logger controller-runtime warns
	// with a stack trace after 30 s.
	logf.SetLogger(logr.Discard())
	root, _ := filepath.Abs(filepath.Join("..", ".."))
	assets, err := testutil.Assets(root, "etcd", "kube-apiserver")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if workDir, err = os.MkdirTemp("", "pushmon-ha-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(workDir)

	managerBin = filepath.Join(workDir, "manager")
	if err := testutil.BuildManager(root, managerBin); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}

	testEnv = &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(root, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: assets,
	}
	if restCfg, err = testEnv.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "starting envtest (run `make controlplane`):", err)
		_ = testEnv.Stop() // a half-started control plane must not outlive the test
		return 1
	}
	defer testEnv.Stop() //nolint:errcheck // teardown after the tests: nothing to do about a failure
	if k8sClient, err = client.New(restCfg, client.Options{Scheme: scheme}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if kubeconfig, err = testutil.AdminKubeconfig(testEnv, "pushmon"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// replica is one manager process.
type replica struct {
	name        string
	pushAddr    string
	metricsAddr string // plain HTTP
	cmd         *exec.Cmd
	out         *testutil.SyncBuffer
	exited      chan struct{}
}

// startReplica starts a manager with leader election and short lease
// timings. apiServer, if set, replaces the API server address (a proxy).
func startReplica(t *testing.T, name, apiServer string, extra ...string) *replica {
	t.Helper()
	kc := writeKubeconfig(t, name, apiServer)
	addr, metricsAddr, relayAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	r := &replica{name: name, pushAddr: addr, metricsAddr: metricsAddr, out: &testutil.SyncBuffer{}, exited: make(chan struct{})}
	args := append([]string{
		"--kubeconfig=" + kc,
		"--leader-elect", "--leader-elect-namespace=default",
		"--leader-elect-lease-duration=2s", "--leader-elect-renew-deadline=1500ms", "--leader-elect-retry-period=250ms",
		"--push-bind-address=" + addr, "--push-base-url=http://" + addr,
		"--relay-bind-address=" + relayAddr, "--relay-advertise-address=" + relayAddr,
		"--health-probe-bind-address=0", "--metrics-bind-address=" + metricsAddr, "--metrics-secure=false",
		"--zap-log-level=debug",
	}, extra...)
	r.cmd = exec.Command(managerBin, args...)
	r.cmd.Stdout, r.cmd.Stderr = r.out, r.out
	if err := r.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	go func() { _ = r.cmd.Wait(); close(r.exited) }()
	t.Cleanup(func() {
		r.kill()
		if t.Failed() {
			t.Logf("--- %s log (tail) ---\n%s", name, r.out.Tail(60))
		}
	})
	// Ready once the push endpoint answers.
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/api/push/x")
		if err == nil {
			resp.Body.Close()
			return r
		}
		select {
		case <-r.exited:
			t.Fatalf("%s exited: %s", name, r.out.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not start: %s", name, r.out.String())
		}
	}
}

// kill ends the process at once, as a crashed pod or a lost node would.
func (r *replica) kill() {
	if r.cmd.Process != nil {
		_ = r.cmd.Process.Signal(syscall.SIGKILL)
	}
	<-r.exited
}

func (r *replica) alive() bool {
	select {
	case <-r.exited:
		return false
	default:
		return true
	}
}

func (r *replica) isLeader() bool {
	return strings.Contains(strings.ToLower(r.out.String()), "successfully acquired lease")
}

func writeKubeconfig(t *testing.T, name, apiServer string) string {
	t.Helper()
	cfg, err := clientcmd.Load(kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	if apiServer != "" {
		for _, c := range cfg.Clusters {
			c.Server = "https://" + apiServer
		}
	}
	path := filepath.Join(workDir, name+".kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}

func freeAddr(t *testing.T) string {
	t.Helper()
	addr, err := testutil.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// proxy is a TCP proxy to the API server that a test can cut and restore,
// to make the API server unreachable for the manager only.
type proxy struct {
	addr, target string
	mu           sync.Mutex
	ln           net.Listener
	conns        map[net.Conn]struct{}
}

func newProxy(t *testing.T, target string) *proxy {
	p := &proxy{addr: freeAddr(t), target: target, conns: map[net.Conn]struct{}{}}
	p.up(t)
	t.Cleanup(p.down)
	return p
}

func (p *proxy) up(t *testing.T) {
	t.Helper()
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		t.Fatalf("proxy listen: %v", err)
	}
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
}

func (p *proxy) serve(c net.Conn) {
	u, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	p.conns[c], p.conns[u] = struct{}{}, struct{}{}
	p.mu.Unlock()
	go func() { _, _ = io.Copy(u, c); u.Close() }()
	_, _ = io.Copy(c, u)
	c.Close()
}

// down closes the listener and every proxied connection.
func (p *proxy) down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
	p.conns = map[net.Conn]struct{}{}
}
