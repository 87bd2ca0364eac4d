// Command demo runs pushmon on a local control plane (etcd, kube-apiserver
// and kube-controller-manager from bin/k8s, no cluster needed), applies
// config/samples and walks one monitor through Pending → Up → Down →
// Recovered with curl, shows a silent monitor's HeartbeatMissed alert and
// its recovery reaching a webhook receiver through an AlertChannel, then runs the sample CronJob, whose pod gets PUSH_URL
// from pushmon's webhook, printing kubectl's view after each step.
// `make demo` runs it; Ctrl-C stops every process it started. DEMO_EXIT=1
// exits after the walk-through.
package main

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
	"github.com/pushmon/pushmon/internal/dashboard"
	"github.com/pushmon/pushmon/internal/heartbeat"
	"github.com/pushmon/pushmon/internal/operator"
	"github.com/pushmon/pushmon/internal/testutil"
)

const pushAddr = "127.0.0.1:8082"

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run() error {
	root, _ := filepath.Abs(".")
	bin := filepath.Join(root, "bin", "k8s")
	kubeconfig := filepath.Join(root, "bin", "demo", "kubeconfig")
	say("starting etcd, kube-apiserver and kube-controller-manager from bin/k8s")
	hooks, err := testutil.RenderWebhooks(filepath.Join(bin, "kubectl"), filepath.Join(root, "config", "webhook"))
	if err != nil {
		return err
	}
	env := &envtest.Environment{
		CRDDirectoryPaths: []string{filepath.Join(root, "config", "crd", "bases")}, ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: bin,
		// envtest issues the webhook's certificate and points the
		// configuration at the manager's local webhook port.
		WebhookInstallOptions: hooks,
	}
	cfg, err := env.Start()
	defer func() {
		say("stopping the manager, kube-apiserver and etcd")
		_ = env.Stop()
	}()
	if err != nil {
		return fmt.Errorf("starting the control plane (make controlplane): %w", err)
	}
	user, err := env.ControlPlane.AddUser(envtest.User{Name: "demo", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return err
	}
	kc, err := user.KubeConfig()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(kubeconfig), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(kubeconfig, kc, 0o600); err != nil {
		return err
	}
	kcm, err := testutil.StartKubeControllerManager(bin, kubeconfig)
	if err != nil {
		return err
	}
	defer kcm.Stop()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(monitoringv1alpha1.AddToScheme(scheme))
	log := zap.New(zap.WriteTo(mustCreate(filepath.Join(root, "bin", "demo", "manager.log"))))
	ctrl.SetLogger(log)
	wh := env.WebhookInstallOptions
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme: scheme, Logger: log, Cache: operator.CacheOptions(),
		Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0",
		WebhookServer: webhook.NewServer(webhook.Options{Host: wh.LocalServingHost, Port: wh.LocalServingPort, CertDir: wh.LocalServingCertDir}),
	})
	if err != nil {
		return err
	}
	srv, err := operator.Setup(ctx, mgr, operator.Config{
		PushAddr: pushAddr, PushBaseURL: "http://" + pushAddr, Concurrency: 4, HeartbeatWindow: heartbeat.DefaultWindow,
		Webhooks: true, DashboardAddr: dashboard.DefaultAddr,
	})
	if err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	for srv.Addr() == "" {
		select {
		case err := <-done:
			return fmt.Errorf("manager stopped: %w", err)
		case <-time.After(50 * time.Millisecond):
		}
	}
	say("pushmon is running; push endpoint on http://" + pushAddr + ", dashboard on http://" + dashboard.DefaultAddr + "/ (log: bin/demo/manager.log)")

	k := kubectlRunner(filepath.Join(bin, "kubectl"), kubeconfig)
	step("apply config/samples", k("apply", "-k", "config/samples"))
	waitFor(k, "queue-worker", "Pending")
	show(k)
	raw, err := decode(strings.TrimSpace(k("get", "secret", "queue-worker-push", "-o", "jsonpath={.data.url}")))
	if err != nil {
		return fmt.Errorf("reading the push URL from Secret queue-worker-push: %w", err)
	}
	url := raw // never printed: it carries the token

	step("a heartbeat: curl -X POST \"$URL?msg=started\"", curl(url+"?msg=started"))
	waitFor(k, "queue-worker", "Up")
	show(k)
	step("a failure: curl -X POST \"$URL?status=down&msg=backup-failed\"", curl(url+"?status=down&msg=backup-failed"))
	waitFor(k, "queue-worker", "Down")
	show(k)
	step("it works again: curl -X POST \"$URL?msg=backup-completed\"", curl(url+"?msg=backup-completed"))
	waitFor(k, "queue-worker", "Up")
	show(k)

	if err := notifyStep(root, k); err != nil {
		return err
	}
	if err := cronJobStep(ctx, cfg, scheme, k); err != nil {
		return err
	}

	fmt.Printf(`
Try it yourself (another terminal):
  export KUBECONFIG=%s
  URL=$(bin/k8s/kubectl get secret queue-worker-push -o jsonpath='{.data.url}' | base64 -d)
  curl -X POST "$URL?status=down&msg=by-hand"
  bin/k8s/kubectl describe pm queue-worker
  open http://%s/ (the dashboard: history, uptime; docs/dashboard.md)
`, kubeconfig, dashboard.DefaultAddr)
	if os.Getenv("DEMO_EXIT") == "1" {
		stop()
	} else {
		fmt.Println("\nCtrl-C stops the demo and every process it started.")
	}
	<-ctx.Done()
	return <-done
}

// cronJobStep runs the sample CronJob now: the Job controller creates its
// pod, pushmon's webhook injects PUSH_URL, and the demo, standing in for the
// kubelet that does not run here, runs the pod's command.
func cronJobStep(ctx context.Context, cfg *rest.Config, scheme *runtime.Scheme, k func(...string) string) error {
	step("run the sample CronJob now: kubectl create job nightly-backup-now --from=cronjob/nightly-backup",
		k("create", "job", "nightly-backup-now", "--from=cronjob/nightly-backup"))
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return err
	}
	var pod *corev1.Pod
	for i := 0; i < 300 && pod == nil; i++ {
		var pods corev1.PodList
		if err := c.List(ctx, &pods, client.MatchingLabels{"batch.kubernetes.io/job-name": "nightly-backup-now"}); err != nil {
			return err
		}
		if len(pods.Items) > 0 {
			pod = &pods.Items[0]
		} else {
			time.Sleep(100 * time.Millisecond)
		}
	}
	if pod == nil {
		return fmt.Errorf("the Job controller created no pod for nightly-backup-now")
	}
	step("its pod got PUSH_URL from pushmon's webhook, as a reference to the Secret, not the token:\n"+
		"kubectl get pod -l batch.kubernetes.io/job-name=nightly-backup-now -o jsonpath='{.items[0].spec.containers[0].env}'",
		k("get", "pod", "-l", "batch.kubernetes.io/job-name=nightly-backup-now", "-o", "jsonpath={.items[0].spec.containers[0].env}")+"\n")
	out, err := testutil.RunPod(ctx, c, pod)
	if err != nil {
		return fmt.Errorf("running the pod's command: %w", err)
	}
	step("no kubelet runs here, so the demo runs the pod's command itself, with that env resolved", out+"\n")
	waitFor(k, "nightly-backup", "Up")
	show(k)
	return nil
}

func decode(b64 string) (string, error) {
	raw, err := base64.StdEncoding.DecodeString(b64)
	return string(raw), err
}

func say(s string) { fmt.Println("==> " + s) }

func step(title, out string) {
	fmt.Printf("\n==> %s\n%s", title, out)
}

func show(k func(...string) string) {
	fmt.Print(k("get", "pushmonitors", "-o", "wide"))
	fmt.Print(k("get", "events", "--field-selector", "involvedObject.kind=PushMonitor", "--sort-by=.metadata.creationTimestamp"))
}

// waitFor polls until the monitor shows the state (the demo's progress, not
// an assertion).
func waitFor(k func(...string) string, name, state string) {
	for i := 0; i < 100; i++ {
		if strings.TrimSpace(k("get", "pm", name, "-o", "jsonpath={.status.state}")) == state {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func kubectlRunner(kubectl, kubeconfig string) func(...string) string {
	return func(args ...string) string {
		out, err := exec.Command(kubectl, append([]string{"--kubeconfig", kubeconfig}, args...)...).CombinedOutput()
		if err != nil {
			return fmt.Sprintf("%s(kubectl: %v)\n", out, err)
		}
		return string(out)
	}
}

func curl(url string) string {
	out, err := exec.Command("curl", "-sS", "-X", "POST", url).CombinedOutput()
	if err != nil {
		return fmt.Sprintf("%s(curl: %v)\n", out, err)
	}
	return string(out)
}

func mustCreate(path string) *os.File {
	f, err := os.Create(path)
	if err != nil {
		panic(err)
	}
	return f
}
