package deploy

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	admissionv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"
)

// These tests read the rendered objects only; the dry runs (dryrun_test.go)
// let the API server judge them.

const (
	managerSA   = "pushmon-controller-manager"
	managerRole = "pushmon-manager-role"
)

// find returns the rendered object of kind and name, failing if absent.
func find(t *testing.T, kind, name string) *unstructured.Unstructured {
	t.Helper()
	for _, o := range objects {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	t.Fatalf("config/default renders no %s %s", kind, name)
	return nil
}

// typed converts a rendered object into its Go type.
func typed[T any](t *testing.T, o *unstructured.Unstructured) *T {
	t.Helper()
	out := new(T)
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, out); err != nil {
		t.Fatalf("%s %s: %v", o.GetKind(), o.GetName(), err)
	}
	return out
}

func ofKind[T any](t *testing.T, kind string) []*T {
	var out []*T
	for _, o := range objects {
		if o.GetKind() == kind {
			out = append(out, typed[T](t, o))
		}
	}
	return out
}

func manager(t *testing.T) (*appsv1.Deployment, *corev1.Container) {
	d := typed[appsv1.Deployment](t, find(t, "Deployment", "pushmon-controller-manager"))
	for i, c := range d.Spec.Template.Spec.Containers {
		if c.Name == "manager" {
			return d, &d.Spec.Template.Spec.Containers[i]
		}
	}
	t.Fatal("the Deployment has no container named manager")
	return nil, nil
}

func TestNamesNamespaceAndLabels(t *testing.T) {
	g := NewWithT(t)
	for _, o := range objects {
		id := o.GetKind() + " " + o.GetName()
		g.Expect(o.GetLabels()).To(HaveKeyWithValue("app.kubernetes.io/part-of", "pushmon"), id)
		switch o.GetKind() {
		case "Namespace":
			g.Expect(o.GetName()).To(Equal(namespace))
		case "CustomResourceDefinition":
			g.Expect(o.GetName()).To(BeElementOf("pushmonitors.monitoring.pushmon.dev",
				"alertchannels.monitoring.pushmon.dev", "clusteralertchannels.monitoring.pushmon.dev"))
		default:
			g.Expect(o.GetName()).To(HavePrefix("pushmon-"), id)
		}
		switch o.GetKind() {
		case "Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding",
			"MutatingWebhookConfiguration", "ValidatingWebhookConfiguration":
			g.Expect(o.GetNamespace()).To(BeEmpty(), id)
		default:
			g.Expect(o.GetNamespace()).To(Equal(namespace), id)
		}
	}
	for _, name := range []string{"pushmon-push", "pushmon-webhook-service", "pushmon-controller-manager-metrics-service"} {
		find(t, "Service", name)
	}
	ns := find(t, "Namespace", namespace)
	g.Expect(ns.GetLabels()).To(HaveKeyWithValue("pod-security.kubernetes.io/enforce", "restricted"))
}

func TestDeployment(t *testing.T) {
	g := NewWithT(t)
	d, c := manager(t)
	pod := d.Spec.Template.Spec

	g.Expect(d.Spec.Replicas).To(HaveValue(BeEquivalentTo(2)))
	g.Expect(c.Image).To(Equal("ghcr.io/pushmon/pushmon:latest"))
	g.Expect(c.Command).To(Equal([]string{"/manager"}))
	g.Expect(c.Args).To(ContainElements(
		"--leader-elect",
		"--metrics-bind-address=:8443",
		"--health-probe-bind-address=:8081",
		"--push-bind-address=:8082",
		// The Secret's url must reach the pushmon-push Service.
		"--push-base-url=http://pushmon-push.pushmon-system.svc:8082",
	))
	push := typed[corev1.Service](t, find(t, "Service", "pushmon-push"))
	g.Expect(push.Spec.Ports).To(ContainElement(HaveField("Port", BeEquivalentTo(8082))))

	g.Expect(pod.ServiceAccountName).To(Equal(managerSA))
	find(t, "ServiceAccount", managerSA)
	g.Expect(pod.SecurityContext).NotTo(BeNil())
	g.Expect(pod.SecurityContext.RunAsNonRoot).To(Equal(ptr.To(true)))
	g.Expect(pod.SecurityContext.SeccompProfile).To(Equal(&corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}))
	g.Expect(c.SecurityContext).NotTo(BeNil())
	g.Expect(c.SecurityContext.ReadOnlyRootFilesystem).To(Equal(ptr.To(true)))
	g.Expect(c.SecurityContext.AllowPrivilegeEscalation).To(Equal(ptr.To(false)))
	g.Expect(c.SecurityContext.Capabilities.Drop).To(Equal([]corev1.Capability{"ALL"}))

	g.Expect(c.Resources.Requests).To(HaveKey(corev1.ResourceCPU))
	g.Expect(c.Resources.Requests).To(HaveKey(corev1.ResourceMemory))
	g.Expect(c.Resources.Limits[corev1.ResourceMemory]).To(Equal(resource.MustParse("512Mi")))
	g.Expect(c.Resources.Limits).NotTo(HaveKey(corev1.ResourceCPU), "a CPU limit throttles Down detection")

	// Probes on the port --health-probe-bind-address opens.
	g.Expect(containerPort(c, intstr.FromString("health"))).To(BeEquivalentTo(8081))
	for _, p := range []struct {
		probe *corev1.Probe
		path  string
	}{{c.LivenessProbe, "/healthz"}, {c.ReadinessProbe, "/readyz"}} {
		g.Expect(p.probe).NotTo(BeNil(), p.path)
		g.Expect(p.probe.HTTPGet).NotTo(BeNil(), p.path)
		g.Expect(p.probe.HTTPGet.Path).To(Equal(p.path))
		g.Expect(containerPort(c, p.probe.HTTPGet.Port)).To(BeEquivalentTo(8081), p.path)
	}

	pdb := find(t, "PodDisruptionBudget", "pushmon-controller-manager")
	sel, _, _ := unstructured.NestedStringMap(pdb.Object, "spec", "selector", "matchLabels")
	g.Expect(d.Spec.Template.Labels).To(matchSelector(sel))
}

// containerPort resolves a (named or numbered) port of the container; 0 if
// it has no such port.
func containerPort(c *corev1.Container, p intstr.IntOrString) int32 {
	for _, cp := range c.Ports {
		if (p.Type == intstr.String && cp.Name == p.StrVal) || (p.Type == intstr.Int && cp.ContainerPort == p.IntVal) {
			return cp.ContainerPort
		}
	}
	return 0
}

func matchSelector(sel map[string]string) OmegaMatcher {
	if len(sel) == 0 {
		return BeNil() // an empty selector is never what we mean
	}
	var ms []OmegaMatcher
	for k, v := range sel {
		ms = append(ms, HaveKeyWithValue(k, v))
	}
	return SatisfyAll(ms...)
}

// TestServicesReachTheManager: every Service selects the manager's pods and
// targets a port the container opens.
func TestServicesReachTheManager(t *testing.T) {
	g := NewWithT(t)
	d, c := manager(t)
	want := map[string]int32{ // Service → the container port behind it
		"pushmon-push":                               8082,
		"pushmon-webhook-service":                    9443,
		"pushmon-controller-manager-metrics-service": 8443,
	}
	for _, s := range ofKind[corev1.Service](t, "Service") {
		g.Expect(d.Spec.Template.Labels).To(matchSelector(s.Spec.Selector), s.Name)
		g.Expect(s.Spec.Ports).To(HaveLen(1), s.Name)
		g.Expect(containerPort(c, s.Spec.Ports[0].TargetPort)).To(Equal(want[s.Name]), s.Name)
	}
	metrics := typed[corev1.Service](t, find(t, "Service", "pushmon-controller-manager-metrics-service"))
	g.Expect(metrics.Spec.Ports[0].Name).To(Equal("https"))
	g.Expect(metrics.Spec.Ports[0].Port).To(BeEquivalentTo(8443))
	// config/prometheus's ServiceMonitor selects these labels.
	g.Expect(metrics.Labels).To(HaveKeyWithValue("app.kubernetes.io/component", "metrics"))
}

func TestWebhooks(t *testing.T) {
	g := NewWithT(t)
	_, c := manager(t)
	mutating := typed[admissionv1.MutatingWebhookConfiguration](t, find(t, "MutatingWebhookConfiguration", "pushmon-mutating-webhook-configuration"))
	g.Expect(mutating.Webhooks).To(HaveLen(1))
	inject := mutating.Webhooks[0]
	// Pod creation must never wait on pushmon: failures admit the pod, and
	// only pods that opted in are sent at all.
	g.Expect(inject.FailurePolicy).To(HaveValue(Equal(admissionv1.Ignore)))
	g.Expect(inject.MatchConditions).To(ContainElement(HaveField("Expression", ContainSubstring("'monitoring.pushmon.dev/monitor' in object.metadata.annotations"))))
	g.Expect(inject.ClientConfig.Service.Path).To(HaveValue(Equal("/mutate-v1-pod")))

	validating := typed[admissionv1.ValidatingWebhookConfiguration](t, find(t, "ValidatingWebhookConfiguration", "pushmon-validating-webhook-configuration"))
	cert := find(t, "Certificate", "pushmon-serving-cert")
	dnsNames, _, _ := unstructured.NestedStringSlice(cert.Object, "spec", "dnsNames")
	certSecret, _, _ := unstructured.NestedString(cert.Object, "spec", "secretName")
	issuer, _, _ := unstructured.NestedString(cert.Object, "spec", "issuerRef", "name")
	find(t, "Issuer", issuer)

	for _, cfg := range []struct {
		name  string
		ann   map[string]string
		svcs  []*admissionv1.ServiceReference
		count int
	}{
		{mutating.Name, mutating.Annotations, []*admissionv1.ServiceReference{inject.ClientConfig.Service}, 1},
		{validating.Name, validating.Annotations, servicesOf(validating), len(validating.Webhooks)},
	} {
		g.Expect(cfg.ann).To(HaveKeyWithValue("cert-manager.io/inject-ca-from", cert.GetNamespace()+"/"+cert.GetName()), cfg.name)
		g.Expect(cfg.svcs).To(HaveLen(cfg.count), cfg.name)
		for _, ref := range cfg.svcs {
			g.Expect(ref).NotTo(BeNil(), cfg.name)
			svc := typed[corev1.Service](t, find(t, "Service", ref.Name))
			g.Expect(ref.Namespace).To(Equal(svc.Namespace), cfg.name)
			g.Expect(svc.Spec.Ports[0].Port).To(Equal(ptr.Deref(ref.Port, 443)), cfg.name)
			// The certificate must name the Service the API server calls.
			g.Expect(dnsNames).To(ContainElement(fmt.Sprintf("%s.%s.svc", svc.Name, svc.Namespace)), cfg.name)
		}
	}
	// The manager serves the certificate cert-manager writes.
	d, _ := manager(t)
	g.Expect(d.Spec.Template.Spec.Volumes).To(ContainElement(HaveField("Secret.SecretName", certSecret)))
	g.Expect(c.VolumeMounts).To(ContainElement(SatisfyAll(
		HaveField("MountPath", "/tmp/k8s-webhook-server/serving-certs"),
		HaveField("ReadOnly", true))))
}

func servicesOf(v *admissionv1.ValidatingWebhookConfiguration) []*admissionv1.ServiceReference {
	var out []*admissionv1.ServiceReference
	for _, w := range v.Webhooks {
		out = append(out, w.ClientConfig.Service)
	}
	return out
}

// TestRBAC: the manager gets cluster-wide exactly the generated ClusterRole
// (and the metrics auth checks), everything else namespaced; no wildcards;
// nothing but the generated role touches Secrets.
func TestRBAC(t *testing.T) {
	g := NewWithT(t)

	// The ClusterRole is controller-gen's, unchanged.
	b, err := os.ReadFile(filepath.Join(root, "config", "rbac", "role.yaml"))
	g.Expect(err).NotTo(HaveOccurred())
	var generated rbacv1.ClusterRole
	g.Expect(yaml.Unmarshal(b, &generated)).To(Succeed())
	mgr := typed[rbacv1.ClusterRole](t, find(t, "ClusterRole", managerRole))
	g.Expect(mgr.Rules).To(Equal(generated.Rules))

	roles := map[string][]rbacv1.PolicyRule{} // kind/name → rules
	for _, r := range ofKind[rbacv1.ClusterRole](t, "ClusterRole") {
		g.Expect(r.AggregationRule).To(BeNil(), r.Name)
		roles["ClusterRole/"+r.Name] = r.Rules
	}
	for _, r := range ofKind[rbacv1.Role](t, "Role") {
		roles["Role/"+r.Name] = r.Rules
	}
	for id, rules := range roles {
		for _, rule := range rules {
			for _, f := range [][]string{rule.APIGroups, rule.Resources, rule.Verbs, rule.ResourceNames} {
				g.Expect(f).NotTo(ContainElement(ContainSubstring("*")), "%s grants a wildcard: %+v", id, rule)
			}
			if id != "ClusterRole/"+managerRole && slices.Contains(rule.APIGroups, "") {
				g.Expect(rule.Resources).NotTo(ContainElement(HavePrefix("secrets")), "%s grants Secrets", id)
			}
		}
	}

	// What the manager's ServiceAccount is bound to.
	bound := map[string]bool{}
	for _, rb := range ofKind[rbacv1.ClusterRoleBinding](t, "ClusterRoleBinding") {
		g.Expect(rb.Subjects).To(Equal([]rbacv1.Subject{{Kind: "ServiceAccount", Name: managerSA, Namespace: namespace}}), rb.Name)
		bound["ClusterRole/"+rb.RoleRef.Name] = true
	}
	g.Expect(bound).To(Equal(map[string]bool{"ClusterRole/" + managerRole: true, "ClusterRole/pushmon-metrics-auth-role": true}))
	for _, rb := range ofKind[rbacv1.RoleBinding](t, "RoleBinding") {
		g.Expect(rb.Namespace).To(Equal(namespace))
		g.Expect(rb.RoleRef.Kind).To(Equal("Role"), rb.Name)
		g.Expect(rb.Subjects).To(Equal([]rbacv1.Subject{{Kind: "ServiceAccount", Name: managerSA, Namespace: namespace}}), rb.Name)
	}
	// Leader election stays in pushmon-system: its Lease and events.
	le := typed[rbacv1.Role](t, find(t, "Role", "pushmon-leader-election-role"))
	for _, rule := range le.Rules {
		g.Expect(strings.Join(rule.Resources, ",")).To(BeElementOf("leases", "events"))
	}
}
