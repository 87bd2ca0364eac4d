package deploy

import (
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// The chart's webhook.certs.mode=self, rendered: what config/selfcert adds
// (the empty Secret, the by-name Role and ClusterRole, their bindings) with
// the release's names, and the flags that tell the manager those names.
// test/selfcert installs it for real (helm install on an API server without
// cert-manager, two manager processes).

// checkSelfCert: the self-cert value set (the chart's defaults but the
// mode) renders no cert-manager object and what self mode needs, and the
// RBAC rules are config/selfcert's.
func checkSelfCert(t *testing.T, objs []*unstructured.Unstructured) {
	g := NewWithT(t)
	g.Expect(chartKinds(objs)).NotTo(ContainElements("Certificate", "Issuer"))
	g.Expect(chartKinds(objs)).To(ContainElement("CustomResourceDefinition"))
	for _, o := range objs {
		g.Expect(o.GetAnnotations()).NotTo(HaveKey("cert-manager.io/inject-ca-from"), objectKey(o))
	}
	d, c := controller(t, objs)
	g.Expect(d.Spec.Template.Spec.Volumes).To(ConsistOf(SatisfyAll(
		HaveField("Name", "webhook-certs"), HaveField("EmptyDir.Medium", corev1.StorageMediumMemory))))
	g.Expect(c.VolumeMounts).To(ConsistOf(SatisfyAll(
		HaveField("MountPath", "/tmp/k8s-webhook-server/serving-certs"), HaveField("ReadOnly", false))))
	checkSelfCertObjects(t, objs, chartRelease, chartNamespace)

	// With release "pushmon" the names are config/selfcert's, and so are
	// the rules, whole.
	b, err := os.ReadFile(filepath.Join(root, "config", "selfcert", "rbac.yaml"))
	g.Expect(err).NotTo(HaveOccurred())
	kustomize, err := decode(b)
	g.Expect(err).NotTo(HaveOccurred())
	for _, want := range kustomize {
		switch want.GetKind() {
		case "Role":
			g.Expect(typed[rbacv1.Role](t, chartFind(t, objs, "Role", want.GetName())).Rules).
				To(Equal(typed[rbacv1.Role](t, want).Rules), "Role %s", want.GetName())
		case "ClusterRole":
			g.Expect(typed[rbacv1.ClusterRole](t, chartFind(t, objs, "ClusterRole", want.GetName())).Rules).
				To(Equal(typed[rbacv1.ClusterRole](t, want).Rules), "ClusterRole %s", want.GetName())
		case "RoleBinding", "ClusterRoleBinding":
			chartFind(t, objs, want.GetKind(), want.GetName())
		}
	}
}

// checkSelfCertObjects: for the release rendered as objs, the Secret, the
// RBAC on it and on the two webhook configurations, bound to the
// controller's ServiceAccount, and the manager's flags naming the objects
// the chart renders (the Secret, the webhook Service, both configurations).
func checkSelfCertObjects(t *testing.T, objs []*unstructured.Unstructured, release, ns string) {
	g := NewWithT(t)
	prefix := release
	if prefix != "pushmon" {
		prefix += "-pushmon"
	}
	d, c := container(t, chartFind(t, objs, "Deployment", prefix+"-controller-manager"), "manager")
	flags := map[string]string{}
	for _, f := range []string{"webhook-cert-mode", "webhook-cert-secret", "webhook-cert-namespace", "webhook-service",
		"webhook-mutating-configuration", "webhook-validating-configuration"} {
		v, ok := flagValue(c.Args, f)
		g.Expect(ok).To(BeTrue(), "--%s in %v", f, c.Args)
		flags[f] = v
	}
	g.Expect(flags["webhook-cert-mode"]).To(Equal("self"))
	g.Expect(flags["webhook-cert-namespace"]).To(Equal(ns))

	secret := typed[corev1.Secret](t, chartFind(t, objs, "Secret", flags["webhook-cert-secret"]))
	g.Expect(secret.Namespace).To(Equal(ns))
	g.Expect(secret.Data).To(BeEmpty())
	g.Expect(secret.StringData).To(BeEmpty())
	// Decided: no keep policy (helm upgrade keeps the issued data, test/selfcert shows it).
	g.Expect(secret.Annotations).NotTo(HaveKey("helm.sh/resource-policy"))
	svc := typed[corev1.Service](t, chartFind(t, objs, "Service", flags["webhook-service"]))
	g.Expect(svc.Namespace).To(Equal(ns))
	for _, kind := range []string{"MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"} {
		name := flags["webhook-mutating-configuration"]
		if kind == "ValidatingWebhookConfiguration" {
			name = flags["webhook-validating-configuration"]
		}
		wc := chartFind(t, objs, kind, name)
		hooks, _, _ := unstructured.NestedSlice(wc.Object, "webhooks")
		g.Expect(hooks).NotTo(BeEmpty())
		for _, h := range hooks {
			ref, _, _ := unstructured.NestedStringMap(h.(map[string]any), "clientConfig", "service")
			g.Expect(ref).To(HaveKeyWithValue("name", svc.Name), "%s calls the Service the certificate names", name)
			g.Expect(ref).To(HaveKeyWithValue("namespace", ns))
			_, hasCA, _ := unstructured.NestedString(h.(map[string]any), "clientConfig", "caBundle")
			g.Expect(hasCA).To(BeFalse(), "the manager injects the CA; the chart must not own caBundle")
		}
	}

	// What the controller's ServiceAccount is granted beyond the chart's
	// defaults: exactly these, by name.
	sa := rbacv1.Subject{Kind: "ServiceAccount", Name: d.Spec.Template.Spec.ServiceAccountName, Namespace: ns}
	verbs := []string{"get", "list", "watch", "update"}
	role := typed[rbacv1.Role](t, chartFind(t, objs, "Role", prefix+"-webhook-cert-role"))
	g.Expect(role.Namespace).To(Equal(ns))
	g.Expect(role.Rules).To(Equal([]rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: []string{secret.Name}, Verbs: verbs},
	}))
	cr := typed[rbacv1.ClusterRole](t, chartFind(t, objs, "ClusterRole", prefix+"-webhook-cert-role"))
	g.Expect(cr.Rules).To(Equal([]rbacv1.PolicyRule{
		{APIGroups: []string{"admissionregistration.k8s.io"}, Resources: []string{"mutatingwebhookconfigurations"},
			ResourceNames: []string{flags["webhook-mutating-configuration"]}, Verbs: verbs},
		{APIGroups: []string{"admissionregistration.k8s.io"}, Resources: []string{"validatingwebhookconfigurations"},
			ResourceNames: []string{flags["webhook-validating-configuration"]}, Verbs: verbs},
	}))
	rb := typed[rbacv1.RoleBinding](t, chartFind(t, objs, "RoleBinding", prefix+"-webhook-cert-rolebinding"))
	g.Expect(rb.Namespace).To(Equal(ns))
	g.Expect(rb.RoleRef).To(Equal(rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: role.Name}))
	g.Expect(rb.Subjects).To(Equal([]rbacv1.Subject{sa}))
	crb := typed[rbacv1.ClusterRoleBinding](t, chartFind(t, objs, "ClusterRoleBinding", prefix+"-webhook-cert-rolebinding"))
	g.Expect(crb.RoleRef).To(Equal(rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: cr.Name}))
	g.Expect(crb.Subjects).To(Equal([]rbacv1.Subject{sa}))
}

// TestChartSelfCertNames: with another release name, namespace and
// secretName the flags still name what the chart renders, and the cert-manager
// mode renders none of it.
func TestChartSelfCertNames(t *testing.T) {
	_, objs := renderChart(t, "team-a", "monitoring-a", "--set", "webhook.certs.mode=self")
	checkSelfCertObjects(t, objs, "team-a", "monitoring-a")

	_, objs = renderChart(t, "team-a", "monitoring-a", "--set", "webhook.certs.mode=self",
		"--set", "webhook.certs.secretName=webhook-tls")
	checkSelfCertObjects(t, objs, "team-a", "monitoring-a")
	chartFind(t, objs, "Secret", "webhook-tls")

	g := NewWithT(t)
	for _, args := range [][]string{nil, {"--set", "webhook.certs.mode=self", "--set", "webhook.enabled=false"}} {
		_, objs = renderChart(t, "team-a", "monitoring-a", args...)
		for _, o := range objs {
			g.Expect(o.GetName()).NotTo(HaveSuffix("-webhook-cert-role"), "%v", args)
			g.Expect(o.GetName()).NotTo(HaveSuffix("-webhook-cert-rolebinding"), "%v", args)
			g.Expect(o.GetKind()).NotTo(Equal("Secret"), "%v", args)
		}
		_, c := container(t, chartFind(t, objs, "Deployment", "team-a-pushmon-controller-manager"), "manager")
		g.Expect(slices.ContainsFunc(c.Args, func(a string) bool { return strings.HasPrefix(a, "--webhook-") })).
			To(BeFalse(), "%v: %v", args, c.Args)
	}
}

// TestChartSelfCertMatchesConfigDefaultSelfcert: with webhook.certs.mode=self
// (release "pushmon") the chart renders the objects config/default-selfcert
// does, content included, normalised as in TestChartMatchesConfigDefault,
// and beyond that:
//   - the chart's name flags are dropped when they say what the manager's
//     defaults say (--webhook-cert-secret, --webhook-service, both
//     configurations) or the pod's namespace (--webhook-cert-namespace),
//     which config/selfcert leaves to the defaults;
//   - readOnly: false on a volume mount (config/selfcert's patch spells out
//     the default).
func TestChartSelfCertMatchesConfigDefaultSelfcert(t *testing.T) {
	g := NewWithT(t)
	b, err := render(filepath.Join(root, "config", "default-selfcert"))
	g.Expect(err).NotTo(HaveOccurred())
	kustomize, err := decode(b)
	g.Expect(err).NotTo(HaveOccurred())
	_, chart := renderChart(t, chartRelease, chartNamespace, "--set", "webhook.certs.mode=self")

	redundant := map[string]bool{
		"--webhook-cert-secret=pushmon-webhook-server-cert":                           true,
		"--webhook-cert-namespace=" + chartNamespace:                                  true,
		"--webhook-service=pushmon-webhook-service":                                   true,
		"--webhook-mutating-configuration=pushmon-mutating-webhook-configuration":     true,
		"--webhook-validating-configuration=pushmon-validating-webhook-configuration": true,
	}
	want := map[string]map[string]any{}
	for _, o := range kustomize {
		if o.GetKind() != "Namespace" {
			want[objectKey(o)] = withoutDefaults(t, normalise(o, nil), nil)
		}
	}
	got := map[string]map[string]any{}
	for _, o := range chart {
		got[objectKey(o)] = withoutDefaults(t, normalise(o, nil), redundant)
	}
	g.Expect(slices.Sorted(maps.Keys(got))).To(Equal(slices.Sorted(maps.Keys(want))), "the chart and config/default-selfcert render different objects")
	for k, w := range want {
		g.Expect(got[k]).To(Equal(w), "%s differs between the chart (self mode) and config/default-selfcert", k)
	}
}

// withoutDefaults drops, from a Deployment, the arguments in drop and
// readOnly: false from its volume mounts.
func withoutDefaults(t *testing.T, o map[string]any, drop map[string]bool) map[string]any {
	t.Helper()
	u := &unstructured.Unstructured{Object: o}
	if u.GetKind() != "Deployment" {
		return o
	}
	containers, _, _ := unstructured.NestedSlice(o, "spec", "template", "spec", "containers")
	for _, c := range containers {
		c := c.(map[string]any)
		if args, ok := c["args"].([]any); ok {
			c["args"] = slices.DeleteFunc(args, func(a any) bool { s, _ := a.(string); return drop[s] })
		}
		mounts, _ := c["volumeMounts"].([]any)
		for _, m := range mounts {
			if ro, ok := m.(map[string]any)["readOnly"]; ok && ro == false {
				delete(m.(map[string]any), "readOnly")
			}
		}
	}
	if err := unstructured.SetNestedSlice(o, containers, "spec", "template", "spec", "containers"); err != nil {
		t.Fatal(err)
	}
	return o
}
