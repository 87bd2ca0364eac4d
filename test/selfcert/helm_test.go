package selfcert

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
	"github.com/pushmon/pushmon/internal/testutil"
)

// The release TestHelmSelfCert installs: names other than config/default's
// (pm-self-pushmon-*, in pushmon-chart), so that nothing meets what
// TestSelfIssuedCertificates applies, and so that the manager works only if
// the chart passes it the release's names.
const (
	helmRelease   = "pm-self"
	helmNamespace = "pushmon-chart"
	helmPrefix    = "pm-self-pushmon"
)

// TestHelmSelfCert installs charts/pushmon with webhook.certs.mode=self for
// real (helm install) on this API server, which has no cert-manager, not
// even its CRDs, then runs two replicas of the manager built from this tree
// with the installed Deployment's arguments, as the chart's ServiceAccount
// (impersonated): within a minute they issue the certificate into the
// chart's Secret, inject its CA into both of the chart's webhook
// configurations, and the webhooks admit (a PushMonitor, a pod given
// PUSH_URL) and reject (an invalid schedule, with the webhook's message).
// helm upgrade keeps the issued Secret and the injected CA.
func TestHelmSelfCert(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()

	g.Expect(client.IgnoreAlreadyExists(k8sClient.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name: helmNamespace,
		Labels: map[string]string{
			"pod-security.kubernetes.io/enforce": "restricted",
			"pod-security.kubernetes.io/warn":    "restricted",
			"pod-security.kubernetes.io/audit":   "restricted",
		},
	}}))).To(Succeed())
	// No cert-manager here, not even its CRDs.
	var crds apiextensionsv1.CustomResourceDefinitionList
	g.Expect(k8sClient.List(ctx, &crds)).To(Succeed())
	for _, crd := range crds.Items {
		g.Expect(crd.Spec.Group).NotTo(Equal("cert-manager.io"))
	}
	// The CRD is applied as config/default-selfcert applies it (so that
	// TestSelfIssuedCertificates, before or after, finds it its own way) and
	// left out of the release (crds.install=false; TestHelmInstall in
	// test/deploy installs it with the chart).
	out, err := kubectlRun(nil, "apply", "-k", filepath.Join(root, "config", "crd"))
	g.Expect(err).NotTo(HaveOccurred(), out)

	out, err = helmRun(t, "install", helmRelease, filepath.Join(root, "charts", "pushmon"), "--namespace", helmNamespace,
		"--set", "webhook.certs.mode=self", "--set", "crds.install=false")
	g.Expect(err).NotTo(HaveOccurred(), out)
	// Uninstalled at the end, or its validating webhook (failurePolicy Fail)
	// would refuse every later PushMonitor once the replicas stop.
	t.Cleanup(func() {
		if out, err := helmRun(t, "uninstall", helmRelease, "--namespace", helmNamespace); err != nil {
			t.Errorf("helm uninstall: %v: %s", err, out)
		}
	})
	g.Expect(out).To(ContainSubstring("STATUS: deployed"))
	g.Expect(out).To(ContainSubstring("issues the webhooks' certificate itself"))
	g.Expect(out).NotTo(ContainSubstring("cert-manager"))

	mutatingName, validatingName := helmPrefix+"-mutating-webhook-configuration", helmPrefix+"-validating-webhook-configuration"
	svc := helmPrefix + "-webhook-service"
	var secret corev1.Secret
	g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: helmNamespace, Name: helmPrefix + "-webhook-server-cert"}, &secret)).To(Succeed())
	g.Expect(secret.Data).To(BeEmpty())
	g.Expect(caBundlesOf(ctx, g, mutatingName, validatingName)).To(HaveEach(BeEmpty()))

	var d appsv1.Deployment
	g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: helmNamespace, Name: helmPrefix + "-controller-manager"}, &d)).To(Succeed())
	c := d.Spec.Template.Spec.Containers[0]
	g.Expect(c.Command).To(Equal([]string{"/manager"}))
	g.Expect(c.Args).To(ContainElements("--webhook-cert-mode=self", "--webhook-cert-namespace="+helmNamespace))
	sa := kubeconfigAs(t, helmNamespace, d.Spec.Template.Spec.ServiceAccountName)

	host := hostIP(t)
	var replicas []*replica
	started := time.Now()
	for i := range 2 {
		r := &replica{probe: freeAddr(t)}
		_, port, _ := net.SplitHostPort(freeAddr(t, ":0"))
		r.webhookPort, _ = strconv.Atoi(port)
		r.webhook = net.JoinHostPort(host, port)
		// The installed Deployment's arguments, the bind addresses moved to
		// free local ports (no pod network here); the certificate directory
		// and webhook port are the pod's emptyDir and container port.
		args := rebindArgs(t, c.Args, map[string]string{
			"push-bind-address":         "127.0.0.1:0",
			"health-probe-bind-address": r.probe,
			"metrics-bind-address":      "0",
			"relay-bind-address":        "127.0.0.1:0",
		})
		r.proc, err = testutil.Start(managerBin, append(args,
			"--kubeconfig="+sa, "--leader-elect-namespace="+helmNamespace,
			"--webhook-cert-path="+filepath.Join(t.TempDir(), "certs"), "--webhook-port="+port)...)
		g.Expect(err).NotTo(HaveOccurred())
		t.Cleanup(r.proc.Stop)
		replicas = append(replicas, r)
		slice := endpointSliceOf(helmNamespace, svc, i, host, r.webhookPort)
		g.Expect(k8sClient.Create(ctx, slice)).To(Succeed())
		t.Cleanup(func() { _ = k8sClient.Delete(ctx, slice) }) // for -count
	}
	defer func() {
		if t.Failed() {
			for i, r := range replicas {
				t.Logf("replica %d log:\n%s", i, withoutProbeFailures(r.proc.Out.String()))
			}
		}
	}()

	var ca []byte
	g.Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(&secret), &secret)).To(Succeed())
		ca = secret.Data["ca.crt"]
		g.Expect(ca).NotTo(BeEmpty())
		g.Expect(caBundlesOf(ctx, g, mutatingName, validatingName)).To(HaveEach(Equal(ca)))
		for _, r := range replicas {
			g.Expect(get("http://" + r.probe + "/readyz")).To(Equal(http.StatusOK))
		}
	}).WithTimeout(time.Minute).WithPolling(200 * time.Millisecond).Should(Succeed())
	t.Logf("CA injected and both replicas ready %v after start", time.Since(started).Round(100*time.Millisecond))
	for _, r := range replicas {
		g.Expect(servesForService(r.webhook, ca, helmNamespace, svc)).To(Succeed(), "replica at %s", r.webhook)
	}
	rejectsBadSchedule(ctx, g)

	// Admitted: a valid monitor, and a pod that opts in gets PUSH_URL.
	team := "chart-team"
	g.Expect(client.IgnoreAlreadyExists(k8sClient.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: team}}))).To(Succeed())
	pm := &monitoringv1alpha1.PushMonitor{ObjectMeta: metav1.ObjectMeta{Name: "nightly", Namespace: team}}
	g.Expect(client.IgnoreAlreadyExists(k8sClient.Create(ctx, pm))).To(Succeed())
	g.Eventually(func() error {
		return k8sClient.Get(ctx, client.ObjectKey{Namespace: team, Name: "nightly-push"}, &corev1.Secret{})
	}).WithPolling(100 * time.Millisecond).Should(Succeed())
	for i := range 4 {
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{GenerateName: fmt.Sprintf("job-%d-", i), Namespace: team,
				Annotations: map[string]string{monitoringv1alpha1.MonitorKey: "nightly"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "job", Image: "busybox"}}},
		}
		g.Expect(k8sClient.Create(ctx, pod)).To(Succeed())
		g.Expect(pod.Spec.Containers[0].Env).To(ContainElement(SatisfyAll(
			HaveField("Name", "PUSH_URL"),
			HaveField("ValueFrom.SecretKeyRef.LocalObjectReference.Name", "nightly-push"))), "pod %s", pod.Name)
	}

	// helm upgrade (here: one more replica) merges three ways: the chart
	// sets neither the Secret's data nor any caBundle, so what was issued
	// and injected stays, with no re-issue.
	out, err = helmRun(t, "upgrade", helmRelease, filepath.Join(root, "charts", "pushmon"), "--namespace", helmNamespace,
		"--reuse-values", "--set", "replicas=3")
	g.Expect(err).NotTo(HaveOccurred(), out)
	g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(&d), &d)).To(Succeed())
	g.Expect(d.Spec.Replicas).To(HaveValue(BeEquivalentTo(3)))
	g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(&secret), &secret)).To(Succeed())
	g.Expect(secret.Data["ca.crt"]).To(Equal(ca))
	g.Expect(secret.Data).To(HaveKey("ca.key"))
	g.Expect(caBundlesOf(ctx, g, mutatingName, validatingName)).To(HaveEach(Equal(ca)))
	rejectsBadSchedule(ctx, g)

	for i, r := range replicas {
		g.Expect(r.proc.Out.String()).NotTo(ContainSubstring("forbidden"), "replica %d", i)
	}
}

// rebindArgs replaces the values of the flags in addrs (each must be there).
func rebindArgs(t *testing.T, args []string, addrs map[string]string) []string {
	t.Helper()
	out := make([]string, 0, len(args))
	seen := map[string]bool{}
	for _, a := range args {
		name, _, ok := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		if v, found := addrs[name]; ok && found {
			a = "--" + name + "=" + v
			seen[name] = true
		}
		out = append(out, a)
	}
	for name := range addrs {
		if !seen[name] {
			t.Fatalf("the chart's Deployment has no --%s: %v", name, args)
		}
	}
	return out
}

// helmRun runs bin/helm (make helm) as cluster admin against the test API
// server, its config, cache and data under the suite's work directory, and
// returns its combined output.
func helmRun(t *testing.T, args ...string) (string, error) {
	t.Helper()
	bin := filepath.Join(root, "bin", "helm")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%s: %v (make helm builds it; make test does first)", bin, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append(args, "--kubeconfig", kubecfg)...)
	home := filepath.Join(workDir, "helm")
	cmd.Env = append(os.Environ(),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"),
	)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err := cmd.Run()
	return buf.String(), err
}
