package deploy

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/pushmon/pushmon/internal/testutil"
)

// TestManagerRunsUnderItsRBAC installs config/default's ServiceAccount and
// RBAC for real and runs the manager as that ServiceAccount (impersonated),
// so a permission the manifests lack shows up as a failure here rather than
// as a "forbidden" in a cluster: leader election, the token Secret, status
// writes from the push endpoint, both kinds of events.
func TestManagerRunsUnderItsRBAC(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()

	applyRBAC(t, objects)

	buildErr := <-managerBuilt
	managerBuilt <- buildErr // for a rerun with -count
	g.Expect(buildErr).NotTo(HaveOccurred())

	pushAddr, probeAddr := freeAddr(t), freeAddr(t)
	noCerts := t.TempDir() // webhooks off: they need cert-manager's certificate
	mgr, err := testutil.Start(managerBin,
		"--kubeconfig="+saKubeconfig(t),
		"--leader-elect", "--leader-elect-namespace="+namespace,
		"--push-bind-address="+pushAddr, "--push-base-url=http://"+pushAddr,
		"--relay-bind-address=127.0.0.1:0",
		"--health-probe-bind-address="+probeAddr, "--metrics-bind-address=0",
		"--webhook-cert-path="+noCerts,
	)
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(mgr.Stop)
	defer func() {
		if t.Failed() {
			t.Logf("manager log (tail):\n%s", mgr.Out.Tail(60))
		}
	}()

	// Leader election: the Lease in pushmon-system, and its core/v1 event.
	g.Eventually(func(g Gomega) {
		var lease coordinationv1.Lease
		g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: namespace, Name: "pushmon.monitoring.pushmon.dev"}, &lease)).To(Succeed())
		g.Expect(lease.Spec.HolderIdentity).To(HaveValue(Not(BeEmpty())))
		var evs corev1.EventList
		g.Expect(k8sClient.List(ctx, &evs, client.InNamespace(namespace))).To(Succeed())
		g.Expect(evs.Items).To(ContainElement(HaveField("Reason", "LeaderElection")))
	}).WithPolling(100 * time.Millisecond).Should(Succeed())

	ns := userNamespace(t, "team-a")
	pm := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "monitoring.pushmon.dev/v1alpha1",
		"kind":       "PushMonitor",
		"metadata":   map[string]any{"name": "backup", "namespace": ns},
		"spec":       map[string]any{"timeout": "10m"},
	}}
	g.Expect(k8sClient.Create(ctx, pm)).To(Succeed())

	// The token Secret, Ready, and the TokenIssued event (events.k8s.io).
	var secret corev1.Secret
	g.Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "backup-push"}, &secret)).To(Succeed())
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(pm), pm)).To(Succeed())
		g.Expect(condition(pm, "Ready")).To(Equal("True"))
		var evs eventsv1.EventList
		g.Expect(k8sClient.List(ctx, &evs, client.InNamespace(ns))).To(Succeed())
		g.Expect(evs.Items).To(ContainElement(HaveField("Reason", "TokenIssued")))
	}).WithPolling(100 * time.Millisecond).Should(Succeed())
	g.Eventually(func() (int, error) {
		resp, err := http.Get("http://" + probeAddr + "/readyz")
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}).Should(Equal(http.StatusOK))

	// A heartbeat reaches the status through the push endpoint's writes.
	resp, err := http.Post(string(secret.Data["url"]), "", nil)
	g.Expect(err).NotTo(HaveOccurred())
	resp.Body.Close()
	g.Expect(resp.StatusCode).To(Equal(http.StatusOK))
	g.Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(pm), pm)).To(Succeed())
		state, _, _ := unstructured.NestedString(pm.Object, "status", "state")
		g.Expect(state).To(Equal("Up"))
	}).WithPolling(100 * time.Millisecond).Should(Succeed())

	g.Expect(mgr.Out.String()).NotTo(ContainSubstring("forbidden"))
}

func condition(o *unstructured.Unstructured, typ string) string {
	conds, _, _ := unstructured.NestedSlice(o.Object, "status", "conditions")
	for _, c := range conds {
		if m, ok := c.(map[string]any); ok && m["type"] == typ {
			s, _ := m["status"].(string)
			return s
		}
	}
	return ""
}

// saKubeconfig is the admin kubeconfig impersonating the manager's
// ServiceAccount, as the API server would see a pod running under it.
func saKubeconfig(t *testing.T) string {
	t.Helper()
	return saKubeconfigFor(t, managerSA)
}

// saKubeconfigFor is the admin kubeconfig impersonating ServiceAccount sa
// of pushmon's namespace.
func saKubeconfigFor(t *testing.T, sa string) string {
	t.Helper()
	return impersonating(t, namespace, sa)
}

// applyRBAC applies, for real, the ServiceAccounts and RBAC objects among
// objs.
func applyRBAC(t *testing.T, objs []*unstructured.Unstructured) {
	t.Helper()
	var docs []string
	for _, o := range objs {
		switch o.GetKind() {
		case "ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding":
			b, err := yaml.Marshal(o.Object)
			if err != nil {
				t.Fatal(err)
			}
			docs = append(docs, string(b))
		}
	}
	if out, err := kubectlRun([]byte(strings.Join(docs, "---\n")), "apply", "-f", "-"); err != nil {
		t.Fatalf("applying RBAC: %v\n%s", err, out)
	}
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
