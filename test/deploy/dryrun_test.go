package deploy

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"
)

// applyModes are the two ways a user applies the manifests.
var applyModes = []struct {
	name string
	args []string
}{
	{"client-side apply", []string{"apply", "--dry-run=server", "-f", "-"}},
	{"server-side apply", []string{"apply", "--server-side", "--field-manager=pushmon-deploy-test", "--dry-run=server", "-f", "-"}},
}

// dryRun applies manifest with a server-side dry run in each apply mode and
// expects every object admitted, without a warning (a Pod Security warning
// for the Deployment included).
func dryRun(t *testing.T, manifest []byte, want int, extra ...string) {
	for _, mode := range applyModes {
		t.Run(mode.name, func(t *testing.T) {
			g := NewWithT(t)
			out, err := kubectlRun(manifest, append(mode.args, extra...)...)
			g.Expect(err).NotTo(HaveOccurred(), out)
			g.Expect(out).NotTo(ContainSubstring("Warning"))
			g.Expect(strings.Count(out, "(server dry run)")).To(Equal(want), out)
		})
	}
}

func TestDryRunConfigDefault(t *testing.T) {
	g := NewWithT(t)
	dryRun(t, rendered, len(objects))
	// docs/deploy.md's command as written, kustomize inside kubectl apply.
	out, err := kubectlRun(nil, "apply", "--dry-run=server", "-k", filepath.Join(root, "config", "default"))
	g.Expect(err).NotTo(HaveOccurred(), out)
	g.Expect(strings.Count(out, "(server dry run)")).To(Equal(len(objects)), out)
	// A dry run persists nothing.
	err = k8sClient.Get(context.Background(), client.ObjectKey{Namespace: namespace, Name: "pushmon-controller-manager"}, &appsv1.Deployment{})
	g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "the Deployment exists after a dry run: %v", err)
}

// TestPodSecurityWarns shows the namespace's restricted Pod Security labels
// are in force on this API server, so the absence of warnings above means
// the manager's pod passes them.
func TestPodSecurityWarns(t *testing.T) {
	g := NewWithT(t)
	d := find(t, "Deployment", "pushmon-controller-manager").DeepCopy()
	unstructured.RemoveNestedField(d.Object, "spec", "template", "spec", "securityContext")
	containers, _, _ := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "containers")
	for _, c := range containers {
		delete(c.(map[string]any), "securityContext")
	}
	g.Expect(unstructured.SetNestedSlice(d.Object, containers, "spec", "template", "spec", "containers")).To(Succeed())
	b, err := yaml.Marshal(d.Object)
	g.Expect(err).NotTo(HaveOccurred())
	out, err := kubectlRun(b, "apply", "--dry-run=server", "-f", "-")
	g.Expect(err).NotTo(HaveOccurred(), out)
	g.Expect(out).To(ContainSubstring(`would violate PodSecurity "restricted:latest"`))
}

// TestDryRunSamples: the samples are valid against the CRD as installed,
// in a user's namespace (their CronJob is no restricted pod).
func TestDryRunSamples(t *testing.T) {
	g := NewWithT(t)
	samples, err := render(filepath.Join(root, "config", "samples"))
	g.Expect(err).NotTo(HaveOccurred())
	objs, err := decode(samples)
	g.Expect(err).NotTo(HaveOccurred())
	ns := userNamespace(t, "samples")
	dryRun(t, samples, len(objs), "--namespace", ns)
}

// userNamespace creates a namespace (once per name) for a user's objects.
func userNamespace(t *testing.T, name string) string {
	t.Helper()
	err := k8sClient.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	return name
}

// TestWithoutWebhook renders config/default edited as docs/deploy.md says
// for a cluster without cert-manager, and dry-runs it.
func TestWithoutWebhook(t *testing.T) {
	g := NewWithT(t)
	dir := t.TempDir()
	g.Expect(os.CopyFS(dir, os.DirFS(filepath.Join(root, "config")))).To(Succeed())
	path := filepath.Join(dir, "default", "kustomization.yaml")
	k, err := os.ReadFile(path)
	g.Expect(err).NotTo(HaveOccurred())
	for _, line := range []string{"- ../webhook\n", "- ../certmanager\n", "patches:\n", "- path: manager_webhook_patch.yaml\n", "- path: webhook_ca_patch.yaml\n"} {
		g.Expect(bytes.Count(k, []byte(line))).To(Equal(1), "config/default/kustomization.yaml should hold the line %q once", line)
		k = bytes.Replace(k, []byte(line), nil, 1)
	}
	g.Expect(os.WriteFile(path, k, 0o644)).To(Succeed())

	out, err := render(filepath.Join(dir, "default"))
	g.Expect(err).NotTo(HaveOccurred())
	objs, err := decode(out)
	g.Expect(err).NotTo(HaveOccurred())
	for _, o := range objs {
		g.Expect(o.GetKind()).NotTo(BeElementOf("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration", "Certificate", "Issuer"))
		g.Expect(o.GetName()).NotTo(Equal("pushmon-webhook-service"))
		if o.GetKind() == "Deployment" {
			vols, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "volumes")
			g.Expect(vols).To(BeEmpty(), "without the patch the manager mounts no certificate")
		}
	}
	dryRun(t, out, len(objs))
}
