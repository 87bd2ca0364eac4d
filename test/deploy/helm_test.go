package deploy

import (
	"bytes"
	"context"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"
)

// The chart (charts/pushmon) rendered by Helm built from hack/tools
// (make helm): linted, rendered with several value sets and each applied
// with a server-side dry run, compared with config/default, and installed
// for real (TestHelmInstall, helminstall_test.go).

// chartRelease and chartNamespace are the release name and namespace the
// chart renders config/default's names with.
const (
	chartRelease   = "pushmon"
	chartNamespace = namespace
)

func chartDir() string { return filepath.Join(root, "charts", "pushmon") }

// helm runs bin/helm (make helm) with its config, cache and data under the
// test's work directory, against the test API server, and returns stdout
// (and stderr in the error).
func helm(t *testing.T, args ...string) (string, error) {
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
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		return stdout.String(), &helmError{err: err, stderr: stderr.String()}
	}
	return stdout.String(), nil
}

type helmError struct {
	err    error
	stderr string
}

func (e *helmError) Error() string { return e.err.Error() + ": " + e.stderr }

// valuesFile is a value set under testdata/helm-values.
func valuesFile(name string) string { return filepath.Join("testdata", "helm-values", name+".yaml") }

// renderChart runs helm template for release and namespace with extra
// arguments (-f, --set) and returns the manifest and its objects.
func renderChart(t *testing.T, release, ns string, extra ...string) ([]byte, []*unstructured.Unstructured) {
	t.Helper()
	out, err := helm(t, append([]string{"template", release, chartDir(), "--namespace", ns}, extra...)...)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := decode([]byte(out))
	if err != nil {
		t.Fatalf("decoding the rendered chart: %v", err)
	}
	return []byte(out), objs
}

var standins sync.Once

// installStandinCRDs installs the Prometheus Operator and Gateway API
// stand-in CRDs (once) and waits until they are established.
func installStandinCRDs(t *testing.T) {
	t.Helper()
	standins.Do(func() {
		g := NewWithT(t)
		out, err := kubectlRun(nil, "apply", "-f", filepath.Join("testdata", "helm-standin-crds.yaml"))
		g.Expect(err).NotTo(HaveOccurred(), out)
		g.Eventually(func(g Gomega) {
			for _, name := range []string{"servicemonitors.monitoring.coreos.com", "podmonitors.monitoring.coreos.com",
				"prometheusrules.monitoring.coreos.com", "httproutes.gateway.networking.k8s.io"} {
				crd := &unstructured.Unstructured{}
				crd.SetAPIVersion("apiextensions.k8s.io/v1")
				crd.SetKind("CustomResourceDefinition")
				g.Expect(k8sClient.Get(context.Background(), client.ObjectKey{Name: name}, crd)).To(Succeed())
				g.Expect(established(crd)).To(BeTrue(), "CRD %s not established", name)
			}
		}).WithPolling(100 * time.Millisecond).Should(Succeed())
	})
}

// chartValueSets are the value sets each test renders: name, the helm
// arguments, and what the rendered objects must show beyond the dry run.
var chartValueSets = []struct {
	name  string
	args  []string
	check func(t *testing.T, objs []*unstructured.Unstructured)
}{
	{"default", nil, checkDefault},
	{"ingress-tls", []string{"-f", valuesFile("ingress-tls")}, checkIngress},
	{"httproute", []string{"-f", valuesFile("httproute")}, checkHTTPRoute},
	{"monitoring", []string{"-f", valuesFile("monitoring")}, checkMonitoring},
	{"ingest", []string{"-f", valuesFile("ingest")}, checkIngest},
	{"no-crds", []string{"-f", valuesFile("no-crds")}, checkNoCRDs},
	{"no-webhooks", []string{"-f", valuesFile("no-webhooks")}, checkNoWebhooks},
	{"self-cert", []string{"-f", valuesFile("self-cert")}, checkSelfCert},
	{"dashboard", []string{"-f", valuesFile("dashboard")}, checkDashboard},
	{"no-dashboard", []string{"--set", "dashboard.enabled=false"}, checkNoDashboard},
}

// TestHelmLint: helm lint --strict finds nothing (no warning, no error)
// with each value set.
func TestHelmLint(t *testing.T) {
	for _, vs := range chartValueSets {
		t.Run(vs.name, func(t *testing.T) {
			g := NewWithT(t)
			out, err := helm(t, append([]string{"lint", "--strict", chartDir(), "--namespace", chartNamespace}, vs.args...)...)
			g.Expect(err).NotTo(HaveOccurred(), out)
			g.Expect(out).To(ContainSubstring("1 chart(s) linted, 0 chart(s) failed"))
			g.Expect(out).NotTo(ContainSubstring("[WARNING]"))
			g.Expect(out).NotTo(ContainSubstring("[ERROR]"))
		})
	}
}

// TestChartDryRun renders the chart with each value set and applies it with
// a server-side dry run (client- and server-side apply, no warning, Pod
// Security included), then checks the set's own objects.
func TestChartDryRun(t *testing.T) {
	installStandinCRDs(t)
	for _, vs := range chartValueSets {
		t.Run(vs.name, func(t *testing.T) {
			manifest, objs := renderChart(t, chartRelease, chartNamespace, vs.args...)
			checkCommon(t, objs)
			vs.check(t, objs)
			dryRun(t, manifest, len(objs))
		})
	}
}

// TestChartValuesSchema: values.schema.json refuses unknown keys and wrong
// values, and the templates refuse settings that cannot work.
func TestChartValuesSchema(t *testing.T) {
	for _, c := range []struct {
		set  []string
		want string
	}{
		{[]string{"--set", "replica=3"}, "additional properties 'replica' not allowed"},
		{[]string{"--set", "webhook.certs.mode=vault"}, "/webhook/certs/mode"},
		{[]string{"--set", "ingress.enabled=true", "--set", "ingress.host=Push_Example"}, "/ingress/host"},
		{[]string{"--set", "push.baseURL=push.example.com"}, "/push/baseURL"},
		{[]string{"--set", "extraArgs={-v}"}, "/extraArgs/0"},
		{[]string{"--set", "ingress.enabled=true", "--set", "push.clientIP.trustedProxies=null"}, "push.clientIP.trustedProxies is empty"},
		{[]string{"--set", "httpRoute.enabled=true"}, "httpRoute.parentRefs"},
		{[]string{"--set", "webhook.certs.secretName=Webhook_Cert"}, "/webhook/certs/secretName"},
		{[]string{"--set", "dashboard.expose=yes"}, "/dashboard/expose"},
		{[]string{"--set", "dashboard.service.port=0"}, "/dashboard/service/port"},
	} {
		t.Run(strings.Join(c.set, " "), func(t *testing.T) {
			g := NewWithT(t)
			out, err := helm(t, append([]string{"template", chartRelease, chartDir(), "--namespace", chartNamespace}, c.set...)...)
			g.Expect(err).To(HaveOccurred(), out)
			g.Expect(err.Error()).To(ContainSubstring(c.want))
		})
	}
}

// TestChartFilesAreCopies: what the chart loads from files/ is exactly what
// config/ holds (make chart-files copies them; make verify-generated fails
// on a stale copy too).
func TestChartFilesAreCopies(t *testing.T) {
	g := NewWithT(t)
	files := filepath.Join(chartDir(), "files")
	crds, err := filepath.Glob(filepath.Join(root, "config", "crd", "bases", "*.yaml"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(crds).NotTo(BeEmpty())
	copies, err := filepath.Glob(filepath.Join(files, "crds", "*.yaml"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(len(copies)).To(Equal(len(crds)), "files/crds holds other CRDs than config/crd/bases: run make chart-files")
	pairs := map[string]string{
		filepath.Join(root, "config", "rbac", "role.yaml"):                         filepath.Join(files, "rbac", "role.yaml"),
		filepath.Join(root, "config", "ingest", "base", "role.yaml"):               filepath.Join(files, "rbac", "ingest-role.yaml"),
		filepath.Join(root, "config", "prometheus", "rules", "pushmon.rules.yaml"): filepath.Join(files, "prometheus", "pushmon.rules.yaml"),
		filepath.Join(root, "config", "grafana", "pushmon.json"):                   filepath.Join(files, "grafana", "pushmon.json"),
	}
	for _, crd := range crds {
		pairs[crd] = filepath.Join(files, "crds", filepath.Base(crd))
	}
	for src, dst := range pairs {
		want, err := os.ReadFile(src)
		g.Expect(err).NotTo(HaveOccurred())
		got, err := os.ReadFile(dst)
		g.Expect(err).NotTo(HaveOccurred(), "run make chart-files")
		g.Expect(string(got)).To(Equal(string(want)), "%s is not a copy of %s: run make chart-files", dst, src)
	}
}

// TestChartMatchesConfigDefault: the chart with its defaults, as release
// "pushmon" in pushmon-system, renders the objects config/default does
// (kind, name, namespace) with the same content, so neither can drift from
// the other. What may differ, and is normalised away:
//   - the Namespace, which config/default creates and a chart leaves to
//     helm install --create-namespace (docs/deploy.md labels it);
//   - bookkeeping labels on metadata (app.kubernetes.io/name, instance,
//     part-of, version, managed-by, helm.sh/chart); other labels, such as
//     the aggregation and component labels, must match;
//   - app.kubernetes.io/instance in selectors and pod template labels (the
//     chart's pods carry the release's name);
//   - the keep annotation on the CRD (helm.sh/resource-policy);
//   - the webhook certificate's Secret name, prefixed like every other name
//     in the chart (pushmon-webhook-server-cert, webhook-server-cert in
//     config/default).
//
// Everything else (RBAC rules, Deployment args, ports, probes, security
// context, resources, the CRD's spec, webhook rules) is compared whole.
func TestChartMatchesConfigDefault(t *testing.T) {
	g := NewWithT(t)
	_, chart := renderChart(t, chartRelease, chartNamespace)

	want := map[string]map[string]any{}
	for _, o := range objects {
		if o.GetKind() == "Namespace" {
			continue
		}
		want[objectKey(o)] = normalise(o, nil)
	}
	got := map[string]map[string]any{}
	for _, o := range chart {
		got[objectKey(o)] = normalise(o, map[string]string{"pushmon-webhook-server-cert": "webhook-server-cert"})
	}
	g.Expect(slices.Sorted(maps.Keys(got))).To(Equal(slices.Sorted(maps.Keys(want))), "the chart and config/default render different objects")
	for k, w := range want {
		g.Expect(got[k]).To(Equal(w), "%s differs between the chart and config/default", k)
	}
}

func objectKey(o *unstructured.Unstructured) string {
	return o.GetKind() + " " + o.GetNamespace() + "/" + o.GetName()
}

// bookkeepingLabels say who rendered an object, not what it does.
var bookkeepingLabels = []string{
	"app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/part-of",
	"app.kubernetes.io/version", "app.kubernetes.io/managed-by", "helm.sh/chart",
}

// normalise is a copy of o without what TestChartMatchesConfigDefault
// allows to differ, with the strings of rename replaced.
func normalise(o *unstructured.Unstructured, rename map[string]string) map[string]any {
	c := o.DeepCopy()
	labels := c.GetLabels()
	for _, k := range bookkeepingLabels {
		delete(labels, k)
	}
	c.SetLabels(labels)
	ann := c.GetAnnotations()
	delete(ann, "helm.sh/resource-policy")
	c.SetAnnotations(ann)
	out, _ := walk(c.Object, "", rename).(map[string]any)
	return out
}

// walk drops app.kubernetes.io/instance from every label map below the
// object's own metadata (selectors, pod templates) and renames strings.
func walk(v any, key string, rename map[string]string) any {
	switch v := v.(type) {
	case map[string]any:
		if key == "labels" || key == "matchLabels" || key == "selector" {
			delete(v, "app.kubernetes.io/instance")
		}
		for k, e := range v {
			v[k] = walk(e, k, rename)
		}
		return v
	case []any:
		for i, e := range v {
			v[i] = walk(e, key, rename)
		}
		return v
	case string:
		if r, ok := rename[v]; ok {
			return r
		}
		return v
	default:
		return v
	}
}

// Checks of the rendered objects, per value set.

func chartFind(t *testing.T, objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	t.Fatalf("the chart renders no %s %s", kind, name)
	return nil
}

func chartKinds(objs []*unstructured.Unstructured) []string {
	var kinds []string
	for _, o := range objs {
		kinds = append(kinds, o.GetKind())
	}
	return kinds
}

func chartOfKind[T any](t *testing.T, objs []*unstructured.Unstructured, kind string) []*T {
	var out []*T
	for _, o := range objs {
		if o.GetKind() == kind {
			out = append(out, typed[T](t, o))
		}
	}
	return out
}

// container returns the Deployment's container by name.
func container(t *testing.T, o *unstructured.Unstructured, name string) (*appsv1.Deployment, *corev1.Container) {
	t.Helper()
	d := typed[appsv1.Deployment](t, o)
	for i, c := range d.Spec.Template.Spec.Containers {
		if c.Name == name {
			return d, &d.Spec.Template.Spec.Containers[i]
		}
	}
	t.Fatalf("Deployment %s has no container %s", d.Name, name)
	return nil, nil
}

func controller(t *testing.T, objs []*unstructured.Unstructured) (*appsv1.Deployment, *corev1.Container) {
	return container(t, chartFind(t, objs, "Deployment", "pushmon-controller-manager"), "manager")
}

// flagValue is the value of --name=value in args, and whether it is there.
func flagValue(args []string, name string) (string, bool) {
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v, true
		}
	}
	return "", false
}

// checkCommon holds for every value set: the names and namespace, and every
// Service reaching pods of a Deployment on a port they open.
func checkCommon(t *testing.T, objs []*unstructured.Unstructured) {
	g := NewWithT(t)
	for _, o := range objs {
		id := objectKey(o)
		g.Expect(o.GetLabels()).To(HaveKeyWithValue("app.kubernetes.io/instance", chartRelease), id)
		g.Expect(o.GetLabels()).To(HaveKeyWithValue("app.kubernetes.io/managed-by", "Helm"), id)
		switch o.GetKind() {
		case "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding", "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration":
			g.Expect(o.GetNamespace()).To(BeEmpty(), id)
		default:
			g.Expect(o.GetNamespace()).To(Equal(chartNamespace), id)
		}
		if o.GetKind() != "CustomResourceDefinition" {
			g.Expect(o.GetName()).To(HavePrefix("pushmon-"), id)
		}
	}
	deployments := chartOfKind[appsv1.Deployment](t, objs, "Deployment")
	for _, s := range chartOfKind[corev1.Service](t, objs, "Service") {
		var backing []string
		for _, d := range deployments {
			if matchesAll(d.Spec.Template.Labels, s.Spec.Selector) {
				backing = append(backing, d.Name)
				g.Expect(containerPort(&d.Spec.Template.Spec.Containers[0], s.Spec.Ports[0].TargetPort)).NotTo(BeZero(), "%s → %s", s.Name, d.Name)
			}
		}
		g.Expect(backing).To(HaveLen(1), "Service %s must select the pods of exactly one Deployment", s.Name)
	}
	for _, p := range objs {
		if p.GetKind() != "PodDisruptionBudget" {
			continue
		}
		sel, _, _ := unstructured.NestedStringMap(p.Object, "spec", "selector", "matchLabels")
		n := 0
		for _, d := range deployments {
			if matchesAll(d.Spec.Template.Labels, sel) {
				n++
			}
		}
		g.Expect(n).To(Equal(1), "PDB %s", p.GetName())
	}
}

func matchesAll(labels, sel map[string]string) bool {
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func checkDefault(t *testing.T, objs []*unstructured.Unstructured) {
	g := NewWithT(t)
	g.Expect(chartKinds(objs)).NotTo(ContainElements("Ingress", "HTTPRoute", "NetworkPolicy", "ServiceMonitor", "PodMonitor", "PrometheusRule"))
	_, c := controller(t, objs)
	g.Expect(c.Args).To(ContainElement("--push-base-url=http://pushmon-push.pushmon-system.svc:8082"))
	_, ok := flagValue(c.Args, "push-client-ip-header")
	g.Expect(ok).To(BeFalse(), "no proxy is trusted without an Ingress or HTTPRoute")
	crd := chartFind(t, objs, "CustomResourceDefinition", "pushmonitors.monitoring.pushmon.dev")
	g.Expect(crd.GetAnnotations()).To(HaveKeyWithValue("helm.sh/resource-policy", "keep"))
	d, _ := controller(t, objs)
	g.Expect(d.Spec.Replicas).To(HaveValue(BeEquivalentTo(2)))
	_, ok = flagValue(c.Args, "dashboard-bind-address")
	g.Expect(ok).To(BeFalse(), "the dashboard stays on the pod's loopback (the manager's default)")
	for _, svc := range chartOfKind[corev1.Service](t, objs, "Service") {
		g.Expect(svc.Name).NotTo(Equal("pushmon-dashboard"))
	}
}

// checkDashboard: the dashboard bound on the pod's network, its named port,
// the Service on the chosen port, and the NetworkPolicy admitting only the
// given proxy to it.
func checkDashboard(t *testing.T, objs []*unstructured.Unstructured) {
	g := NewWithT(t)
	d, c := controller(t, objs)
	g.Expect(c.Args).To(ContainElement("--dashboard-bind-address=:8084"))
	g.Expect(c.Ports).To(ContainElement(corev1.ContainerPort{Name: "dashboard", ContainerPort: 8084, Protocol: corev1.ProtocolTCP}))
	svc := typed[corev1.Service](t, chartFind(t, objs, "Service", "pushmon-dashboard"))
	g.Expect(svc.Spec.Selector).To(Equal(d.Spec.Selector.MatchLabels))
	g.Expect(svc.Spec.Ports).To(Equal([]corev1.ServicePort{{Name: "dashboard", Port: 80, TargetPort: intstr.FromString("dashboard"), Protocol: corev1.ProtocolTCP}}))
	checkNetworkPolicy(t, objs)
	np := typed[networkingv1.NetworkPolicy](t, chartFind(t, objs, "NetworkPolicy", "pushmon-pods"))
	var from []networkingv1.NetworkPolicyPeer
	for _, r := range np.Spec.Ingress {
		if r.Ports[0].Port.StrVal == "dashboard" {
			from = r.From
		}
	}
	g.Expect(from).To(HaveLen(1), "only the proxy reaches the dashboard")
	g.Expect(from[0].PodSelector.MatchLabels).To(Equal(map[string]string{"app.kubernetes.io/name": "oauth2-proxy"}))
}

// checkNoDashboard: dashboard.enabled=false turns it off in the manager.
func checkNoDashboard(t *testing.T, objs []*unstructured.Unstructured) {
	g := NewWithT(t)
	_, c := controller(t, objs)
	g.Expect(c.Args).To(ContainElement("--dashboard-bind-address=0"))
	for _, p := range c.Ports {
		g.Expect(p.Name).NotTo(Equal("dashboard"))
	}
}

// checkExposed: the push Service behind the route, and the proxy settings.
func checkExposed(t *testing.T, objs []*unstructured.Unstructured, service string, port any, trusted string) {
	g := NewWithT(t)
	svc := typed[corev1.Service](t, chartFind(t, objs, "Service", service))
	switch p := port.(type) {
	case string:
		g.Expect(svc.Spec.Ports[0].Name).To(Equal(p))
	case int:
		g.Expect(svc.Spec.Ports[0].Port).To(BeEquivalentTo(p))
	}
	_, c := controller(t, objs)
	g.Expect(c.Args).To(ContainElements(
		"--push-base-url=https://push.example.com",
		"--push-client-ip-header=X-Forwarded-For",
		"--push-trusted-proxies="+trusted,
	))
}

const defaultTrustedProxies = "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,100.64.0.0/10,fc00::/7"

func checkIngress(t *testing.T, objs []*unstructured.Unstructured) {
	g := NewWithT(t)
	ing := typed[networkingv1.Ingress](t, chartFind(t, objs, "Ingress", "pushmon-push"))
	g.Expect(ing.Spec.TLS).To(Equal([]networkingv1.IngressTLS{{Hosts: []string{"push.example.com"}, SecretName: "pushmon-push-tls"}}))
	g.Expect(ing.Spec.IngressClassName).To(HaveValue(Equal("nginx")))
	g.Expect(ing.Spec.Rules).To(HaveLen(1))
	var paths []string
	for _, p := range ing.Spec.Rules[0].HTTP.Paths {
		paths = append(paths, p.Path)
		g.Expect(p.Backend.Service.Name).To(Equal("pushmon-push"))
		g.Expect(p.Backend.Service.Port.Name).To(Equal("push"))
	}
	g.Expect(paths).To(ConsistOf("/api/push/", "/ping/"))
	checkExposed(t, objs, ing.Spec.Rules[0].HTTP.Paths[0].Backend.Service.Name, "push", defaultTrustedProxies)
}

func checkHTTPRoute(t *testing.T, objs []*unstructured.Unstructured) {
	g := NewWithT(t)
	r := chartFind(t, objs, "HTTPRoute", "pushmon-push")
	g.Expect(r.GetAPIVersion()).To(Equal("gateway.networking.k8s.io/v1"))
	parents, _, _ := unstructured.NestedSlice(r.Object, "spec", "parentRefs")
	g.Expect(parents).To(Equal([]any{map[string]any{"name": "public", "namespace": "gateway-system", "sectionName": "https"}}))
	hosts, _, _ := unstructured.NestedStringSlice(r.Object, "spec", "hostnames")
	g.Expect(hosts).To(Equal([]string{"push.example.com"}))
	rules, _, _ := unstructured.NestedSlice(r.Object, "spec", "rules")
	g.Expect(rules).To(HaveLen(1))
	backends, _, _ := unstructured.NestedSlice(rules[0].(map[string]any), "backendRefs")
	g.Expect(backends).To(HaveLen(1))
	b := backends[0].(map[string]any)
	checkExposed(t, objs, b["name"].(string), int(b["port"].(float64)), "10.244.0.0/16")
}

func checkMonitoring(t *testing.T, objs []*unstructured.Unstructured) {
	g := NewWithT(t)
	sm := chartFind(t, objs, "ServiceMonitor", "pushmon-controller-manager-metrics-monitor")
	sel, _, _ := unstructured.NestedStringMap(sm.Object, "spec", "selector", "matchLabels")
	metrics := typed[corev1.Service](t, chartFind(t, objs, "Service", "pushmon-controller-manager-metrics-service"))
	g.Expect(matchesAll(metrics.Labels, sel)).To(BeTrue(), "the ServiceMonitor selects the metrics Service")
	g.Expect(sm.GetLabels()).To(HaveKeyWithValue("release", "prometheus"))
	endpoints, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
	g.Expect(endpoints).To(ContainElement(HaveKeyWithValue("port", metrics.Spec.Ports[0].Name)))

	pm := chartFind(t, objs, "PodMonitor", "pushmon-pods")
	psel, _, _ := unstructured.NestedStringMap(pm.Object, "spec", "selector", "matchLabels")
	d, c := controller(t, objs)
	g.Expect(matchesAll(d.Spec.Template.Labels, psel)).To(BeTrue(), "the PodMonitor selects the manager's pods")
	g.Expect(containerPort(c, intstr.FromString("metrics"))).To(BeEquivalentTo(8443))

	// The PrometheusRule carries the rules file's groups.
	rule := chartFind(t, objs, "PrometheusRule", "pushmon-alerts")
	groups, _, _ := unstructured.NestedSlice(rule.Object, "spec", "groups")
	b, err := os.ReadFile(filepath.Join(root, "config", "prometheus", "rules", "pushmon.rules.yaml"))
	g.Expect(err).NotTo(HaveOccurred())
	var file map[string]any
	g.Expect(yaml.Unmarshal(b, &file)).To(Succeed())
	g.Expect(groups).To(Equal(file["groups"]))

	dash := typed[corev1.ConfigMap](t, chartFind(t, objs, "ConfigMap", "pushmon-grafana-dashboard"))
	g.Expect(dash.Namespace).To(Equal(chartNamespace))
	g.Expect(dash.Labels).To(HaveKeyWithValue("grafana_dashboard", "1"), "the label Grafana's sidecar selects by default")
	g.Expect(dash.Annotations).To(HaveKeyWithValue("grafana_folder", "pushmon"))
	dashJSON, err := os.ReadFile(filepath.Join(root, "config", "grafana", "pushmon.json"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(dash.Data["pushmon.json"]).To(Equal(strings.TrimRight(string(dashJSON), "\n")), "the dashboard as config/grafana holds it")

	checkNetworkPolicy(t, objs)
}

// checkNetworkPolicy: the push port open to its clients, the relay port
// only to pushmon's own pods, the metrics and webhook ports.
func checkNetworkPolicy(t *testing.T, objs []*unstructured.Unstructured) {
	g := NewWithT(t)
	np := typed[networkingv1.NetworkPolicy](t, chartFind(t, objs, "NetworkPolicy", "pushmon-pods"))
	g.Expect(np.Spec.PolicyTypes).To(Equal([]networkingv1.PolicyType{networkingv1.PolicyTypeIngress}))
	for _, d := range chartOfKind[appsv1.Deployment](t, objs, "Deployment") {
		g.Expect(matchesAll(d.Spec.Template.Labels, np.Spec.PodSelector.MatchLabels)).To(BeTrue(), "the policy covers %s", d.Name)
	}
	rules := map[string]networkingv1.NetworkPolicyIngressRule{}
	for _, r := range np.Spec.Ingress {
		g.Expect(r.Ports).To(HaveLen(1))
		rules[r.Ports[0].Port.StrVal] = r
	}
	g.Expect(rules).To(HaveKey("push"))
	g.Expect(rules["push"].From).To(BeEmpty(), "every client may push")
	g.Expect(rules["relay"].From).To(HaveLen(1))
	relayFrom := rules["relay"].From[0]
	g.Expect(relayFrom.NamespaceSelector).To(BeNil(), "the relay is open to this namespace's pods only")
	g.Expect(relayFrom.IPBlock).To(BeNil())
	g.Expect(relayFrom.PodSelector).NotTo(BeNil())
	g.Expect(relayFrom.PodSelector.MatchLabels).To(Equal(np.Spec.PodSelector.MatchLabels), "the relay is open to pushmon's own pods only")
	g.Expect(rules).To(HaveKey("metrics"))
	g.Expect(rules).To(HaveKey("webhook"))
}

func checkIngest(t *testing.T, objs []*unstructured.Unstructured) {
	g := NewWithT(t)
	d, c := controller(t, objs)
	g.Expect(c.Args).To(ContainElement("--mode=controller"))
	ingest, ic := container(t, chartFind(t, objs, "Deployment", "pushmon-ingest"), "ingest")
	g.Expect(ingest.Spec.Replicas).To(HaveValue(BeEquivalentTo(3)))
	g.Expect(ic.Args).To(ContainElement("--mode=ingest"))
	g.Expect(ic.Args).To(ContainElements("--push-base-url=https://push.example.com", "--push-client-ip-header=X-Forwarded-For"))
	g.Expect(ic.Image).To(Equal(c.Image))
	g.Expect(ic.SecurityContext).To(Equal(c.SecurityContext))
	g.Expect(ingest.Spec.Template.Spec.SecurityContext).To(Equal(d.Spec.Template.Spec.SecurityContext))
	g.Expect(ingest.Spec.Template.Spec.Volumes).To(BeEmpty(), "the ingest mounts nothing, no certificate")

	// The push Service selects the ingest pods, not the controller's.
	push := typed[corev1.Service](t, chartFind(t, objs, "Service", "pushmon-push"))
	g.Expect(matchesAll(ingest.Spec.Template.Labels, push.Spec.Selector)).To(BeTrue())
	g.Expect(matchesAll(d.Spec.Template.Labels, push.Spec.Selector)).To(BeFalse())
	chartFind(t, objs, "PodDisruptionBudget", "pushmon-ingest")

	// The ingest's ServiceAccount: PushMonitors read, their status written,
	// Leases read in the release namespace, TokenReviews and
	// SubjectAccessReviews for its metrics endpoint; nothing else.
	sa := ingest.Spec.Template.Spec.ServiceAccountName
	g.Expect(sa).To(Equal("pushmon-ingest"))
	g.Expect(sa).NotTo(Equal(d.Spec.Template.Spec.ServiceAccountName))
	granted := map[string][]rbacv1.PolicyRule{}
	roles := map[string][]rbacv1.PolicyRule{}
	for _, r := range chartOfKind[rbacv1.ClusterRole](t, objs, "ClusterRole") {
		roles["ClusterRole/"+r.Name] = r.Rules
	}
	for _, r := range chartOfKind[rbacv1.Role](t, objs, "Role") {
		roles["Role/"+r.Name] = r.Rules
	}
	subject := rbacv1.Subject{Kind: "ServiceAccount", Name: sa, Namespace: chartNamespace}
	for _, b := range chartOfKind[rbacv1.ClusterRoleBinding](t, objs, "ClusterRoleBinding") {
		if slices.Contains(b.Subjects, subject) {
			granted["ClusterRole/"+b.RoleRef.Name] = roles["ClusterRole/"+b.RoleRef.Name]
		}
	}
	for _, b := range chartOfKind[rbacv1.RoleBinding](t, objs, "RoleBinding") {
		if slices.Contains(b.Subjects, subject) {
			g.Expect(b.Namespace).To(Equal(chartNamespace))
			granted[b.RoleRef.Kind+"/"+b.RoleRef.Name] = roles[b.RoleRef.Kind+"/"+b.RoleRef.Name]
		}
	}
	g.Expect(granted).To(Equal(map[string][]rbacv1.PolicyRule{
		"ClusterRole/pushmon-ingest-role": {
			{APIGroups: []string{"monitoring.pushmon.dev"}, Resources: []string{"pushmonitors"}, Verbs: []string{"get", "list", "watch"}},
			{APIGroups: []string{"monitoring.pushmon.dev"}, Resources: []string{"pushmonitors/status"}, Verbs: []string{"get", "patch", "update"}},
		},
		"Role/pushmon-ingest-leases": {
			{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, ResourceNames: []string{"pushmon-relay"}, Verbs: []string{"get"}},
		},
		"ClusterRole/pushmon-metrics-auth-role": roles["ClusterRole/pushmon-metrics-auth-role"],
	}))
	g.Expect(roles["ClusterRole/pushmon-metrics-auth-role"]).To(HaveLen(2))
	checkNetworkPolicy(t, objs)
}

func checkNoCRDs(t *testing.T, objs []*unstructured.Unstructured) {
	g := NewWithT(t)
	g.Expect(chartKinds(objs)).NotTo(ContainElement("CustomResourceDefinition"))
	d, c := controller(t, objs)
	g.Expect(c.Args).To(ContainElement("--webhook-cert-mode=self"))
	// No cert-manager objects; the manager writes its own certificate into
	// a memory-backed emptyDir, the webhooks are still configured.
	g.Expect(chartKinds(objs)).NotTo(ContainElements("Certificate", "Issuer"))
	g.Expect(chartKinds(objs)).To(ContainElements("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"))
	for _, o := range objs {
		g.Expect(o.GetAnnotations()).NotTo(HaveKey("cert-manager.io/inject-ca-from"), objectKey(o))
	}
	g.Expect(d.Spec.Template.Spec.Volumes).To(ConsistOf(SatisfyAll(
		HaveField("Name", "webhook-certs"), HaveField("EmptyDir", Not(BeNil())))))
	g.Expect(c.VolumeMounts).To(ConsistOf(SatisfyAll(
		HaveField("MountPath", "/tmp/k8s-webhook-server/serving-certs"), HaveField("ReadOnly", false))))
	checkSelfCertObjects(t, objs, chartRelease, chartNamespace)
}

func checkNoWebhooks(t *testing.T, objs []*unstructured.Unstructured) {
	g := NewWithT(t)
	g.Expect(chartKinds(objs)).NotTo(ContainElements("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration", "Certificate", "Issuer"))
	for _, o := range objs {
		g.Expect(o.GetName()).NotTo(Equal("pushmon-webhook-service"))
	}
	d, c := controller(t, objs)
	g.Expect(d.Spec.Template.Spec.Volumes).To(BeEmpty())
	g.Expect(c.Env).To(ContainElement(corev1.EnvVar{Name: "ENABLE_WEBHOOKS", Value: "false"}))
	g.Expect(c.Ports).NotTo(ContainElement(HaveField("Name", "webhook")))
}
