package deploy

import (
	"context"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
	"github.com/pushmon/pushmon/internal/metrics"
	"github.com/pushmon/pushmon/internal/testutil"
	"github.com/pushmon/pushmon/internal/token"
)

const ingestSA = "pushmon-ingest"

// renderIngest is config/ingest as kubectl kustomize renders it.
func renderIngest(t *testing.T) ([]byte, []*unstructured.Unstructured) {
	t.Helper()
	b, err := render(filepath.Join(root, "config", "ingest"))
	if err != nil {
		t.Fatal(err)
	}
	objs, err := decode(b)
	if err != nil {
		t.Fatal(err)
	}
	return b, objs
}

// TestIngestLayout checks what config/ingest changes against
// config/default: the controller runs --mode=controller, the ingest
// Deployment --mode=ingest under its own ServiceAccount, pushmon-push
// selects the ingest pods, and the server admits all of it.
func TestIngestLayout(t *testing.T) {
	g := NewWithT(t)
	manifest, objs := renderIngest(t)
	dryRun(t, manifest, len(objs))

	deployments := map[string]*appsv1.Deployment{}
	var push *corev1.Service
	for _, o := range objs {
		switch {
		case o.GetKind() == "Deployment":
			var d appsv1.Deployment
			g.Expect(runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &d)).To(Succeed())
			deployments[d.Name] = &d
		case o.GetKind() == "Service" && o.GetName() == "pushmon-push":
			push = &corev1.Service{}
			g.Expect(runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, push)).To(Succeed())
		}
	}
	g.Expect(deployments).To(HaveKey("pushmon-controller-manager"))
	g.Expect(deployments).To(HaveKey("pushmon-ingest"))
	ctl, ing := deployments["pushmon-controller-manager"], deployments["pushmon-ingest"]
	g.Expect(ctl.Spec.Template.Spec.Containers[0].Args).To(ContainElement("--mode=controller"))
	g.Expect(ing.Spec.Template.Spec.Containers[0].Args).To(ContainElement("--mode=ingest"))
	g.Expect(ing.Spec.Template.Spec.ServiceAccountName).To(Equal(ingestSA))
	g.Expect(push).NotTo(BeNil())
	g.Expect(push.Spec.Selector).To(Equal(ing.Spec.Template.Labels), "pushmon-push selects the ingest pods")
	g.Expect(push.Spec.Selector).NotTo(Equal(ctl.Spec.Template.Labels))
}

// TestIngestRunsWithoutSecrets installs config/ingest's RBAC for real, runs
// one controller (--mode=controller, as the manager's ServiceAccount) and
// two ingest processes (--mode=ingest, as the ingest ServiceAccount, both
// impersonated): the ingest ServiceAccount cannot read a Secret, and pushes
// through either ingest process still reach the monitor's status, alive
// ones through the leader's memory.
func TestIngestRunsWithoutSecrets(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	_, objs := renderIngest(t)
	applyRBAC(t, objs)
	// docs/deploy.md's commands as written (the apply as a dry run).
	out, err := kubectlRun(nil, "apply", "--server-side", "--dry-run=server", "-k", filepath.Join(root, "config", "ingest"))
	g.Expect(err).NotTo(HaveOccurred(), out)
	out, _ = kubectlRun(nil, "auth", "can-i", "get", "secrets", "-A", "--as=system:serviceaccount:pushmon-system:pushmon-ingest")
	g.Expect(strings.TrimSpace(out)).To(Equal("no"))
	out, err = kubectlRun(nil, "auth", "can-i", "patch", "pushmonitors", "--subresource=status", "-A", "--as=system:serviceaccount:pushmon-system:pushmon-ingest")
	g.Expect(err).NotTo(HaveOccurred(), out)
	g.Expect(strings.TrimSpace(out)).To(Equal("yes"))

	buildErr := <-managerBuilt
	managerBuilt <- buildErr
	g.Expect(buildErr).NotTo(HaveOccurred())

	relayAddr := freeAddr(t)
	ctl, err := testutil.Start(managerBin, "--mode=controller",
		"--kubeconfig="+saKubeconfig(t),
		"--leader-elect", "--leader-elect-namespace="+namespace,
		"--push-base-url=https://push.example.com",
		"--relay-bind-address="+relayAddr, "--relay-advertise-address="+relayAddr,
		"--health-probe-bind-address=0", "--metrics-bind-address=0",
		"--webhook-cert-path="+t.TempDir())
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(ctl.Stop)
	ingestCfg := saKubeconfigFor(t, ingestSA)
	type ingest struct {
		proc               *testutil.Process
		pushAddr, metricsA string
	}
	var ingests []ingest
	for range 2 {
		in := ingest{pushAddr: freeAddr(t), metricsA: freeAddr(t)}
		in.proc, err = testutil.Start(managerBin, "--mode=ingest",
			"--kubeconfig="+ingestCfg,
			"--leader-elect", "--leader-elect-namespace="+namespace,
			"--push-bind-address="+in.pushAddr,
			"--health-probe-bind-address=0", "--metrics-bind-address="+in.metricsA, "--metrics-secure=false")
		g.Expect(err).NotTo(HaveOccurred())
		t.Cleanup(in.proc.Stop)
		ingests = append(ingests, in)
	}
	defer func() {
		if t.Failed() {
			t.Logf("controller log (tail):\n%s", ctl.Out.Tail(40))
			for i, in := range ingests {
				t.Logf("ingest %d log (tail):\n%s", i, in.proc.Out.Tail(40))
			}
		}
	}()

	// The ingest ServiceAccount reads no Secret, by name or by list.
	restCfg, err := clientcmd.BuildConfigFromFlags("", ingestCfg)
	g.Expect(err).NotTo(HaveOccurred())
	asIngest, err := client.New(restCfg, client.Options{Scheme: scheme})
	g.Expect(err).NotTo(HaveOccurred())

	ns := userNamespace(t, "team-ingest")
	pm := &monitoringv1alpha1.PushMonitor{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "backup"},
		Spec: monitoringv1alpha1.PushMonitorSpec{Timeout: &metav1.Duration{Duration: 10 * time.Minute}}}
	g.Expect(k8sClient.Create(ctx, pm)).To(Succeed())
	var secret corev1.Secret
	g.Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "backup-push"}, &secret)).To(Succeed())
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(pm), pm)).To(Succeed())
		g.Expect(pm.Status.PushToken).NotTo(BeNil())
		g.Expect(pm.Status.PushToken.SHA256).To(Equal(token.Digest(string(secret.Data[token.SecretKeyToken]))))
	}).Should(Succeed())
	err = asIngest.Get(ctx, client.ObjectKeyFromObject(&secret), &corev1.Secret{})
	g.Expect(apierrors.IsForbidden(err)).To(BeTrue(), "get Secret as the ingest ServiceAccount: %v", err)
	err = asIngest.List(ctx, &corev1.SecretList{}, client.InNamespace(ns))
	g.Expect(apierrors.IsForbidden(err)).To(BeTrue(), "list Secrets as the ingest ServiceAccount: %v", err)
	g.Expect(asIngest.Get(ctx, client.ObjectKeyFromObject(pm), &monitoringv1alpha1.PushMonitor{})).To(Succeed())

	tok := string(secret.Data[token.SecretKeyToken])
	pushTo := func(in ingest, query string) (int, string) {
		resp, err := http.Post("http://"+in.pushAddr+token.PushPathPrefix+tok+query, "", nil)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	state := func() monitoringv1alpha1.MonitorState {
		var m monitoringv1alpha1.PushMonitor
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(pm), &m)).To(Succeed())
		return m.Status.State
	}
	// Until its cache has the monitor an ingest process answers 404; then
	// the first heartbeat (a change, written) makes the monitor Up.
	g.Eventually(func() int { code, _ := pushTo(ingests[0], "?msg=first"); return code }).Should(Equal(http.StatusOK))
	g.Eventually(state).Should(Equal(monitoringv1alpha1.StateUp))
	g.Eventually(func() int { code, _ := pushTo(ingests[1], "?status=down&msg=disk+full"); return code }).Should(Equal(http.StatusOK))
	g.Eventually(state).Should(Equal(monitoringv1alpha1.StateDown))
	code, body := pushTo(ingests[0], "?status=up&msg=first")
	g.Expect(code).To(Equal(http.StatusOK), body)
	g.Eventually(state).Should(Equal(monitoringv1alpha1.StateUp))
	// Alive heartbeats go to the leader's memory, not to the API.
	g.Eventually(func(g Gomega) {
		code, body := pushTo(ingests[1], "?msg=first")
		g.Expect(code).To(Equal(http.StatusOK), body)
		g.Expect(counter(g, ingests[1].metricsA, metrics.RelayedName, "held")).To(BeNumerically(">", 0))
	}).Should(Succeed())
	// An unknown token is 404 on the ingest tier too.
	resp, err := http.Post("http://"+ingests[0].pushAddr+token.PushPathPrefix+strings.Repeat("x", 43), "", nil)
	g.Expect(err).NotTo(HaveOccurred())
	resp.Body.Close()
	g.Expect(resp.StatusCode).To(Equal(http.StatusNotFound))

	for i, in := range ingests {
		g.Expect(in.proc.Out.String()).NotTo(ContainSubstring("forbidden"), "ingest %d", i)
		g.Expect(in.proc.Out.String()).NotTo(ContainSubstring(tok), "ingest %d logged the token", i)
	}
	g.Expect(ctl.Out.String()).NotTo(ContainSubstring("forbidden"))
}

// counter reads the value of metric name with result label result from a
// metrics endpoint served over plain HTTP.
func counter(g Gomega, addr, name, result string) float64 {
	resp, err := http.Get("http://" + addr + "/metrics")
	g.Expect(err).NotTo(HaveOccurred())
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	g.Expect(err).NotTo(HaveOccurred())
	f, ok := families[name]
	if !ok {
		return 0
	}
	for _, m := range f.GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "result" && l.GetValue() == result {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}
