// Package selfcert installs config/default-selfcert on a real API server
// with no cert-manager (not even its CRDs) and runs two replicas of
// bin/manager under the RBAC that install grants: they issue the webhook
// serving certificate, inject its CA into the webhook configurations as
// applied (service references, no caBundle), and the webhooks admit.
package selfcert

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
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
	admissionv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
	"github.com/pushmon/pushmon/internal/testutil"
)

const (
	namespace  = "pushmon-system"
	managerSA  = "pushmon-controller-manager"
	certSecret = "pushmon-webhook-server-cert"
	service    = "pushmon-webhook-service"
	mutating   = "pushmon-mutating-webhook-configuration"
	validating = "pushmon-validating-webhook-configuration"
)

var (
	testEnv    *envtest.Environment
	k8sClient  client.Client // uncached: assertions read the API server
	scheme     = runtime.NewScheme()
	root       string
	kubectl    string
	kubecfg    string // system:masters
	workDir    string
	managerBin string
)

func init() {
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(apiextensionsv1.AddToScheme(scheme))
	utilruntime.Must(monitoringv1alpha1.AddToScheme(scheme))
}

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	SetDefaultEventuallyTimeout(30 * time.Second)
	root, _ = filepath.Abs(filepath.Join("..", ".."))
	assets, err := testutil.Assets(root, "etcd", "kube-apiserver", "kubectl")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	kubectl = filepath.Join(assets, "kubectl")
	if workDir, err = os.MkdirTemp("", "pushmon-selfcert-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(workDir)
	managerBin = filepath.Join(workDir, "manager")
	built := make(chan error, 1)
	go func() { built <- testutil.BuildManager(root, managerBin) }()

	testEnv = &envtest.Environment{BinaryAssetsDirectory: assets}
	// No kube-proxy runs here, so a Service's cluster IP leads nowhere: the
	// API server calls a webhook Service at its EndpointSlices' addresses
	// instead, as it does in clusters where the control plane cannot reach
	// cluster IPs. The webhook configurations keep their service references
	// and the certificate is checked against the Service's DNS name.
	testEnv.ControlPlane.GetAPIServer().Configure().Set("enable-aggregator-routing", "true")
	cfg, err := testEnv.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting envtest:", err)
		_ = testEnv.Stop() // a half-started control plane must not outlive the test
		return 1
	}
	defer testEnv.Stop() //nolint:errcheck // teardown after the tests: nothing to do about a failure
	if k8sClient, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	b, err := testutil.AdminKubeconfig(testEnv, "selfcert-admin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	kubecfg = filepath.Join(workDir, "kubeconfig")
	if err := os.WriteFile(kubecfg, b, 0o600); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := <-built; err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// replica is one manager process and where it serves.
type replica struct {
	proc        *testutil.Process
	webhook     string // host:port the API server reaches it at
	probe       string
	webhookPort int
}

func TestSelfIssuedCertificates(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()

	// docs/deploy.md's command, for real. The Deployment stays inert (no
	// nodes): the replicas run below as processes under its ServiceAccount.
	out, err := kubectlRun(nil, "apply", "-k", filepath.Join(root, "config", "default-selfcert"))
	g.Expect(err).NotTo(HaveOccurred(), out)
	g.Expect(out).NotTo(ContainSubstring("cert-manager"))
	g.Expect(out).NotTo(ContainSubstring("Warning")) // Pod Security included
	g.Eventually(func(g Gomega) {
		var crd apiextensionsv1.CustomResourceDefinition
		g.Expect(k8sClient.Get(ctx, client.ObjectKey{Name: "pushmonitors.monitoring.pushmon.dev"}, &crd)).To(Succeed())
		g.Expect(crd.Status.Conditions).To(ContainElement(SatisfyAll(
			HaveField("Type", apiextensionsv1.Established), HaveField("Status", apiextensionsv1.ConditionTrue))))
	}).WithPolling(100 * time.Millisecond).Should(Succeed())
	// As applied: no CA anywhere, an empty Secret.
	g.Expect(caBundles(ctx, g)).To(HaveEach(BeEmpty()))
	var secret corev1.Secret
	g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: namespace, Name: certSecret}, &secret)).To(Succeed())
	g.Expect(secret.Data).To(BeEmpty())

	// Once the replicas stop (cleanup, LIFO: this runs after), the
	// validating webhook (failurePolicy Fail) would refuse every PushMonitor
	// of a later test, such as TestHelmSelfCert's.
	t.Cleanup(func() {
		if out, err := kubectlRun(nil, "delete", "--ignore-not-found", "mutatingwebhookconfiguration/"+mutating, "validatingwebhookconfiguration/"+validating); err != nil {
			t.Errorf("deleting the webhook configurations: %v: %s", err, out)
		}
	})
	host := hostIP(t)
	sa := saKubeconfig(t)
	var replicas []*replica
	started := time.Now()
	for i := range 2 {
		r := &replica{probe: freeAddr(t)}
		// The webhook server listens on every interface: a port free on all.
		_, port, _ := net.SplitHostPort(freeAddr(t, ":0"))
		r.webhookPort, _ = strconv.Atoi(port)
		r.webhook = net.JoinHostPort(host, port)
		r.proc, err = testutil.Start(managerBin,
			"--kubeconfig="+sa,
			"--leader-elect", "--leader-elect-namespace="+namespace,
			// Outside a pod nothing tells the manager its namespace.
			"--webhook-cert-mode=self", "--webhook-cert-namespace="+namespace,
			"--webhook-cert-path="+filepath.Join(t.TempDir(), "certs"), "--webhook-port="+port,
			"--push-bind-address=127.0.0.1:0", "--push-base-url=http://pushmon-push.example",
			"--relay-bind-address=127.0.0.1:0",
			"--health-probe-bind-address="+r.probe, "--metrics-bind-address=0",
		)
		g.Expect(err).NotTo(HaveOccurred())
		t.Cleanup(r.proc.Stop)
		replicas = append(replicas, r)
		// The API server picks one of the Service's endpoints per call:
		// both replicas must answer with a certificate it trusts.
		g.Expect(k8sClient.Create(ctx, endpointSlice(i, host, r.webhookPort))).To(Succeed())
	}
	defer func() {
		if t.Failed() {
			for i, r := range replicas {
				t.Logf("replica %d log:\n%s", i, withoutProbeFailures(r.proc.Out.String()))
			}
		}
	}()

	// The CA is issued once and injected into both configurations, and
	// each replica serves a certificate that chains to it for the Service's
	// name, which is what the API server checks.
	var ca []byte
	g.Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(&secret), &secret)).To(Succeed())
		ca = secret.Data["ca.crt"]
		g.Expect(ca).NotTo(BeEmpty())
		g.Expect(caBundles(ctx, g)).To(HaveEach(Equal(ca)))
		for _, r := range replicas {
			g.Expect(get("http://" + r.probe + "/readyz")).To(Equal(http.StatusOK))
		}
	}).WithTimeout(time.Minute).WithPolling(200 * time.Millisecond).Should(Succeed())
	t.Logf("CA injected and both replicas ready %v after start", time.Since(started).Round(100*time.Millisecond))
	for _, r := range replicas {
		g.Expect(servesFor(r.webhook, ca)).To(Succeed(), "replica at %s", r.webhook)
	}
	rejectsBadSchedule(ctx, g)

	// Renewal: a Secret whose certificate is gone or invalid (here: emptied,
	// the rotator's check on its watch and every 12h is the same) gets a new
	// CA and certificate; both replicas serve the new one without a restart
	// and the webhook configurations trust it.
	g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(&secret), &secret)).To(Succeed())
	secret.Data = nil
	g.Expect(k8sClient.Update(ctx, &secret)).To(Succeed())
	renewed := time.Now()
	g.Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(&secret), &secret)).To(Succeed())
		newCA := secret.Data["ca.crt"]
		g.Expect(newCA).NotTo(BeEmpty())
		g.Expect(newCA).NotTo(Equal(ca))
		g.Expect(caBundles(ctx, g)).To(HaveEach(Equal(newCA)))
		for _, r := range replicas {
			g.Expect(servesFor(r.webhook, newCA)).To(Succeed(), "replica at %s", r.webhook)
		}
	}).WithTimeout(time.Minute).WithPolling(200 * time.Millisecond).Should(Succeed())
	t.Logf("re-issued and served by both replicas %v after the Secret was emptied", time.Since(renewed).Round(100*time.Millisecond))
	rejectsBadSchedule(ctx, g)
	ca = secret.Data["ca.crt"]

	// Applying the install again (an upgrade, GitOps) keeps the issued
	// Secret and the injected CA: neither apply owns those fields. A
	// caBundle someone removes anyway is put back.
	for _, args := range [][]string{
		{"apply", "-k", filepath.Join(root, "config", "default-selfcert")},
		{"apply", "--server-side", "--force-conflicts", "-k", filepath.Join(root, "config", "default-selfcert")},
	} {
		out, err := kubectlRun(nil, args...)
		g.Expect(err).NotTo(HaveOccurred(), out)
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(&secret), &secret)).To(Succeed())
		g.Expect(secret.Data["ca.crt"]).To(Equal(ca), "%v", args)
		g.Expect(caBundles(ctx, g)).To(HaveEach(Equal(ca)), "%v", args)
	}
	var v admissionv1.ValidatingWebhookConfiguration
	g.Expect(k8sClient.Get(ctx, client.ObjectKey{Name: validating}, &v)).To(Succeed())
	v.Webhooks[0].ClientConfig.CABundle = nil
	g.Expect(k8sClient.Update(ctx, &v)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(caBundles(ctx, g)).To(HaveEach(Equal(ca)))
	}).WithPolling(100 * time.Millisecond).Should(Succeed())

	// The Pod webhook injects PUSH_URL into a pod that opts in, once the
	// monitor's Secret exists.
	pm := &monitoringv1alpha1.PushMonitor{ObjectMeta: metav1.ObjectMeta{Name: "backup", Namespace: "default"}}
	g.Expect(k8sClient.Create(ctx, pm)).To(Succeed())
	g.Eventually(func() error {
		return k8sClient.Get(ctx, client.ObjectKey{Namespace: "default", Name: "backup-push"}, &corev1.Secret{})
	}).WithPolling(100 * time.Millisecond).Should(Succeed())
	for i := range 4 {
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("job-%d", i), Namespace: "default",
				Annotations: map[string]string{monitoringv1alpha1.MonitorKey: "backup"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "job", Image: "busybox"}}},
		}
		g.Expect(k8sClient.Create(ctx, pod)).To(Succeed())
		g.Expect(pod.Spec.Containers[0].Env).To(ContainElement(SatisfyAll(
			HaveField("Name", "PUSH_URL"),
			HaveField("ValueFrom.SecretKeyRef.LocalObjectReference.Name", "backup-push"),
			HaveField("ValueFrom.SecretKeyRef.Key", "url"))), "pod %s", pod.Name)
	}

	for i, r := range replicas {
		g.Expect(r.proc.Out.String()).NotTo(ContainSubstring("forbidden"), "replica %d", i)
	}
}

// rejectsBadSchedule: the validating webhook refuses a monitor the CRD's
// schema lets pass, with its message. A few calls, so that both endpoints
// are likely asked.
func rejectsBadSchedule(ctx context.Context, g Gomega) {
	for range 4 {
		bad := &monitoringv1alpha1.PushMonitor{
			ObjectMeta: metav1.ObjectMeta{GenerateName: "bad-", Namespace: "default"},
			Spec:       monitoringv1alpha1.PushMonitorSpec{Schedule: "61 * * * *"},
		}
		g.Expect(k8sClient.Create(ctx, bad)).To(MatchError(SatisfyAll(
			ContainSubstring(`admission webhook "vpushmonitor.pushmon.dev" denied the request`),
			ContainSubstring(`spec.schedule: Invalid value: "61 * * * *"`))))
	}
}

// servesFor checks that the webhook server at addr presents a certificate
// that ca signed for the Service's DNS name: what the API server checks.
func servesFor(addr string, ca []byte) error {
	return servesForService(addr, ca, namespace, service)
}

// servesForService is servesFor for the Service svc in namespace ns.
func servesForService(addr string, ca []byte, ns, svc string) error {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return errors.New("no CA certificate")
	}
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, ServerName: svc + "." + ns + ".svc", MinVersion: tls.VersionTLS12})
	if err != nil {
		return err
	}
	return conn.Close()
}

// withoutProbeFailures drops the line the manager logs for each failed
// probe, which this test's polling of /readyz makes many of.
func withoutProbeFailures(log string) string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		if !strings.Contains(l, "healthz check failed") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// caBundles are the caBundles of every webhook in both configurations.
func caBundles(ctx context.Context, g Gomega) [][]byte {
	return caBundlesOf(ctx, g, mutating, validating)
}

// caBundlesOf is caBundles of the configurations mutating and validating.
func caBundlesOf(ctx context.Context, g Gomega, mutating, validating string) [][]byte {
	var m admissionv1.MutatingWebhookConfiguration
	var v admissionv1.ValidatingWebhookConfiguration
	g.Expect(k8sClient.Get(ctx, client.ObjectKey{Name: mutating}, &m)).To(Succeed())
	g.Expect(k8sClient.Get(ctx, client.ObjectKey{Name: validating}, &v)).To(Succeed())
	var out [][]byte
	for _, w := range m.Webhooks {
		out = append(out, w.ClientConfig.CABundle)
	}
	for _, w := range v.Webhooks {
		out = append(out, w.ClientConfig.CABundle)
	}
	g.Expect(out).To(HaveLen(2))
	return out
}

// endpointSlice is what the EndpointSlice controller (not running here)
// would publish for a ready replica of the webhook Service.
func endpointSlice(i int, ip string, port int) *discoveryv1.EndpointSlice {
	return endpointSliceOf(namespace, service, i, ip, port)
}

// endpointSliceOf is endpointSlice for the Service svc in namespace ns.
func endpointSliceOf(ns, svc string, i int, ip string, port int) *discoveryv1.EndpointSlice {
	return &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Name: fmt.Sprintf("%s-%d", svc, i), Namespace: ns,
			Labels: map[string]string{discoveryv1.LabelServiceName: svc},
		},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{ip}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}}},
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("webhook"), Port: ptr.To(int32(port)), Protocol: ptr.To(corev1.ProtocolTCP)}},
	}
}

// hostIP is an IPv4 address of this machine other than loopback, which
// endpoints may not use.
func hostIP(t *testing.T) string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && n.IP.IsGlobalUnicast() {
			return n.IP.String()
		}
	}
	t.Skip("no non-loopback IPv4 address to publish as the webhook endpoint")
	return ""
}

func get(url string) (int, error) {
	resp, err := http.Get(url) //nolint:gosec,noctx // the test's own probe address
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// saKubeconfig is the admin kubeconfig impersonating the manager's
// ServiceAccount, as the API server would see a pod running under it.
func saKubeconfig(t *testing.T) string {
	t.Helper()
	return kubeconfigAs(t, namespace, managerSA)
}

// kubeconfigAs is the admin kubeconfig impersonating the ServiceAccount sa
// of namespace ns.
func kubeconfigAs(t *testing.T, ns, sa string) string {
	t.Helper()
	cfg, err := clientcmd.LoadFromFile(kubecfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range cfg.AuthInfos {
		a.Impersonate = "system:serviceaccount:" + ns + ":" + sa
		a.ImpersonateGroups = []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"}
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// freeAddr is a free address of the form of on (default 127.0.0.1:0).
func freeAddr(t *testing.T, on ...string) string {
	addr := "127.0.0.1:0"
	if len(on) > 0 {
		addr = on[0]
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// kubectlRun runs bin/k8s's kubectl as cluster admin, with stdin, and
// returns its combined output.
func kubectlRun(stdin []byte, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, kubectl, append([]string{"--kubeconfig", kubecfg}, args...)...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), errors.Join(err, errors.New(string(out)))
	}
	return string(out), nil
}
