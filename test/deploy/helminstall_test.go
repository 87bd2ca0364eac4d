package deploy

import (
	"context"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pushmon/pushmon/internal/testutil"
)

// The release TestHelmInstall installs: a name other than "pushmon", so
// that its cluster-scoped objects (pm-helm-pushmon-*) do not meet those
// TestManagerRunsUnderItsRBAC applies from config/default.
const (
	installRelease   = "pm-helm"
	installNamespace = "pushmon-helm"
	installPrefix    = "pm-helm-pushmon"
)

// TestHelmInstall installs the chart for real with helm install (exposed
// through an Ingress with TLS, webhooks off: no cert-manager runs here),
// runs the manager built from this tree with the arguments of the installed
// Deployment as the chart's ServiceAccount (impersonated), and shows a
// PushMonitor get its token and go Ready, and Up after a push. Then helm
// upgrade turns the ingest tier on, whose ServiceAccount may not read
// Secrets, and helm uninstall leaves the CRD and the monitor (crds.keep).
func TestHelmInstall(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()

	// The namespace as docs/deploy.md prepares it: restricted Pod Security.
	g.Expect(client.IgnoreAlreadyExists(k8sClient.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name: installNamespace,
		Labels: map[string]string{
			"pod-security.kubernetes.io/enforce": "restricted",
			"pod-security.kubernetes.io/warn":    "restricted",
			"pod-security.kubernetes.io/audit":   "restricted",
		},
	}}))).To(Succeed())

	// The suite installed the CRD with kubectl; hand it to the release as
	// one does when moving an install to Helm, so helm install takes it
	// over instead of refusing it.
	crdKey := client.ObjectKey{Name: "pushmonitors.monitoring.pushmon.dev"}
	adopt := []byte(`{"metadata":{"labels":{"app.kubernetes.io/managed-by":"Helm"},"annotations":{"meta.helm.sh/release-name":"` +
		installRelease + `","meta.helm.sh/release-namespace":"` + installNamespace + `"}}}`)
	// Afterwards (after helm uninstall, which keeps them) the CRDs are
	// handed back: without the release's labels and annotations, which
	// would otherwise conflict with a server-side apply of another release.
	release := []byte(`{"metadata":{"labels":{"app.kubernetes.io/managed-by":null,"app.kubernetes.io/instance":null,` +
		`"app.kubernetes.io/name":null,"app.kubernetes.io/version":null,"helm.sh/chart":null},` +
		`"annotations":{"meta.helm.sh/release-name":null,"meta.helm.sh/release-namespace":null,"helm.sh/resource-policy":null}}}`)
	var crd *unstructured.Unstructured
	for _, name := range []string{crdKey.Name, "alertchannels.monitoring.pushmon.dev", "clusteralertchannels.monitoring.pushmon.dev"} {
		o := &unstructured.Unstructured{}
		o.SetAPIVersion("apiextensions.k8s.io/v1")
		o.SetKind("CustomResourceDefinition")
		o.SetName(name)
		g.Expect(k8sClient.Patch(ctx, o, client.RawPatch(types.MergePatchType, adopt))).To(Succeed())
		t.Cleanup(func() {
			if err := k8sClient.Patch(ctx, o.DeepCopy(), client.RawPatch(types.MergePatchType, release)); err != nil {
				t.Errorf("handing the CRD %s back: %v", name, err)
			}
		})
		if name == crdKey.Name {
			crd = o
		}
	}

	out, err := helm(t, "install", installRelease, chartDir(), "--namespace", installNamespace,
		"-f", valuesFile("ingress-tls"), "--set", "webhook.enabled=false")
	g.Expect(err).NotTo(HaveOccurred(), out)
	t.Cleanup(func() { _, _ = helm(t, "uninstall", installRelease, "--namespace", installNamespace) })
	g.Expect(out).To(ContainSubstring("STATUS: deployed"))
	g.Expect(out).To(ContainSubstring("https://push.example.com"))

	// The CRD now carries the chart's labels and keep annotation.
	g.Expect(k8sClient.Get(ctx, crdKey, crd)).To(Succeed())
	g.Expect(crd.GetAnnotations()).To(HaveKeyWithValue("helm.sh/resource-policy", "keep"))
	g.Expect(crd.GetLabels()).To(HaveKeyWithValue("helm.sh/chart", HavePrefix("pushmon-")))

	// The manager with the installed Deployment's arguments, its bind
	// addresses moved to free local ports (no pod network here) and the
	// Lease namespace given (a pod reads it from its ServiceAccount).
	var d appsv1.Deployment
	g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: installNamespace, Name: installPrefix + "-controller-manager"}, &d)).To(Succeed())
	c := d.Spec.Template.Spec.Containers[0]
	g.Expect(c.Command).To(Equal([]string{"/manager"}))
	pushAddr, probeAddr, metricsAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	args := rebind(t, c.Args, map[string]string{
		"push-bind-address":         pushAddr,
		"health-probe-bind-address": probeAddr,
		"metrics-bind-address":      metricsAddr,
		"relay-bind-address":        "127.0.0.1:0",
	})
	g.Expect(args).To(ContainElements("--push-client-ip-header=X-Forwarded-For", "--push-trusted-proxies="+defaultTrustedProxies))
	for _, e := range c.Env {
		if e.ValueFrom == nil {
			t.Setenv(e.Name, e.Value) // ENABLE_WEBHOOKS=false
		}
	}
	sa := d.Spec.Template.Spec.ServiceAccountName
	g.Expect(sa).To(Equal(installPrefix + "-controller-manager"))

	buildErr := <-managerBuilt
	managerBuilt <- buildErr
	g.Expect(buildErr).NotTo(HaveOccurred())
	mgr, err := testutil.Start(managerBin, append(args,
		"--kubeconfig="+impersonating(t, installNamespace, sa),
		"--leader-elect-namespace="+installNamespace)...)
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(mgr.Stop)
	defer func() {
		if t.Failed() {
			t.Logf("manager log (tail):\n%s", mgr.Out.Tail(60))
		}
	}()

	g.Eventually(func(g Gomega) {
		var lease coordinationv1.Lease
		g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: installNamespace, Name: "pushmon.monitoring.pushmon.dev"}, &lease)).To(Succeed())
		g.Expect(lease.Spec.HolderIdentity).To(HaveValue(Not(BeEmpty())))
	}).WithPolling(100 * time.Millisecond).Should(Succeed())

	ns := userNamespace(t, "helm-team")
	pm := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "monitoring.pushmon.dev/v1alpha1",
		"kind":       "PushMonitor",
		"metadata":   map[string]any{"name": "nightly", "namespace": ns},
		"spec":       map[string]any{"timeout": "10m"},
	}}
	g.Expect(k8sClient.Create(ctx, pm)).To(Succeed())
	t.Cleanup(func() { // for -count: both outlive the release, and no garbage collector runs here
		_ = k8sClient.Delete(ctx, pm.DeepCopy())
		_ = k8sClient.Delete(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "nightly-push"}})
	})

	var secret corev1.Secret
	g.Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "nightly-push"}, &secret)).To(Succeed())
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(pm), pm)).To(Succeed())
		g.Expect(condition(pm, "Ready")).To(Equal("True"))
		var evs eventsv1.EventList
		g.Expect(k8sClient.List(ctx, &evs, client.InNamespace(ns))).To(Succeed())
		g.Expect(evs.Items).To(ContainElement(HaveField("Reason", "TokenIssued")))
	}).WithPolling(100 * time.Millisecond).Should(Succeed())

	// The Secret's url is the chart's push base URL (the Ingress host over
	// HTTPS); the push goes to the local port the Ingress would reach.
	u, err := url.Parse(string(secret.Data["url"]))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(u.Scheme + "://" + u.Host).To(Equal("https://push.example.com"))
	g.Expect(u.Path).To(HavePrefix("/api/push/"))
	g.Eventually(func() (int, error) {
		resp, err := http.Get("http://" + probeAddr + "/readyz")
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}).Should(Equal(http.StatusOK))
	resp, err := http.Post("http://"+pushAddr+u.Path+"?msg=from+helm", "", nil)
	g.Expect(err).NotTo(HaveOccurred())
	resp.Body.Close()
	g.Expect(resp.StatusCode).To(Equal(http.StatusOK))
	g.Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(pm), pm)).To(Succeed())
		state, _, _ := unstructured.NestedString(pm.Object, "status", "state")
		g.Expect(state).To(Equal("Up"))
		g.Expect(condition(pm, "Ready")).To(Equal("True"))
	}).WithPolling(100 * time.Millisecond).Should(Succeed())

	log := mgr.Out.String()
	g.Expect(log).NotTo(ContainSubstring("forbidden"))
	g.Expect(log).NotTo(ContainSubstring(string(secret.Data["token"])), "the token is in the manager's log")
	mgr.Stop()

	// helm upgrade to the ingest tier: its ServiceAccount reads
	// PushMonitors and writes their status, reads Leases here, and nothing
	// of Secrets (the manager on this branch has no --mode yet, so the
	// tier is checked by the API server's authorizer rather than run).
	out, err = helm(t, "upgrade", installRelease, chartDir(), "--namespace", installNamespace, "--reuse-values", "--set", "ingest.enabled=true")
	g.Expect(err).NotTo(HaveOccurred(), out)
	ingestSA := "system:serviceaccount:" + installNamespace + ":" + installPrefix + "-ingest"
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"get", "secrets", "-n", ns}, "no"},
		{[]string{"list", "secrets", "--all-namespaces"}, "no"},
		{[]string{"get", "secrets", "-n", installNamespace}, "no"},
		{[]string{"list", "pushmonitors.monitoring.pushmon.dev", "--all-namespaces"}, "yes"},
		{[]string{"patch", "pushmonitors.monitoring.pushmon.dev", "--subresource=status", "-n", ns}, "yes"},
		{[]string{"update", "pushmonitors.monitoring.pushmon.dev", "-n", ns}, "no"},
		{[]string{"get", "leases.coordination.k8s.io/pushmon-relay", "-n", installNamespace}, "yes"},
		{[]string{"get", "leases.coordination.k8s.io/pushmon.monitoring.pushmon.dev", "-n", installNamespace}, "no"},
		{[]string{"watch", "leases.coordination.k8s.io", "-n", installNamespace}, "no"},
		{[]string{"get", "leases.coordination.k8s.io", "-n", "default"}, "no"},
		{[]string{"update", "leases.coordination.k8s.io", "-n", installNamespace}, "no"},
		{[]string{"create", "events.events.k8s.io", "-n", ns}, "no"},
	} {
		out, _ := kubectlRun(nil, append(append([]string{"auth", "can-i"}, c.args...), "--as="+ingestSA)...)
		g.Expect(strings.TrimSpace(out)).To(Equal(c.want), "kubectl auth can-i %s as the ingest", strings.Join(c.args, " "))
	}
	var push corev1.Service
	g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: installNamespace, Name: installPrefix + "-push"}, &push)).To(Succeed())
	g.Expect(push.Spec.Selector).To(HaveKeyWithValue("app.kubernetes.io/component", "ingest"))

	// helm uninstall keeps the CRD, and with it the monitor.
	out, err = helm(t, "uninstall", installRelease, "--namespace", installNamespace)
	g.Expect(err).NotTo(HaveOccurred(), out)
	g.Expect(out).To(ContainSubstring("kept due to the resource policy"))
	g.Expect(k8sClient.Get(ctx, crdKey, crd)).To(Succeed())
	g.Expect(crd.GetDeletionTimestamp()).To(BeNil())
	g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(pm), pm)).To(Succeed())
	g.Eventually(func() error {
		return k8sClient.Get(ctx, client.ObjectKey{Namespace: installNamespace, Name: installPrefix + "-controller-manager"}, &d)
	}).Should(WithTransform(apierrors.IsNotFound, BeTrue()))
}

// rebind replaces the values of the flags in addrs (each must be there)
// and returns the new arguments.
func rebind(t *testing.T, args []string, addrs map[string]string) []string {
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

// impersonating is the admin kubeconfig acting as the ServiceAccount sa of
// namespace ns, as the API server sees a pod running under it.
func impersonating(t *testing.T, ns, sa string) string {
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
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
