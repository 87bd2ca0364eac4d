package integration

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
	"github.com/pushmon/pushmon/internal/token"
)

// TestRealClients: the clients users copy from the product page turn a
// monitor Up. Each reads the push URL from the Secret, as an injected
// PUSH_URL would carry it.
func TestRealClients(t *testing.T) {
	cases := []struct {
		name string
		argv []string
	}{
		{"curl loop", []string{"bash", "-c", `for i in 1 2 3; do curl -fsS -X POST "$PUSH_URL"; sleep 0.1; done`}},
		{"curl cron success", []string{"bash", "-c", `curl -fsS -X POST "$PUSH_URL?status=up&msg=backup-completed"`}},
		{"python requests", []string{"python3", "-c", `
import os, requests
r = requests.post(os.environ["PUSH_URL"], params={"msg": "from-python", "value": "7"})
r.raise_for_status()
assert r.json() == {"ok": True}, r.text
`}},
		{"node fetch", []string{"node", "-e", `
(async () => {
  const r = await fetch(process.env.PUSH_URL + "?msg=from-node", { method: "POST" });
  const body = await r.json();
  if (!r.ok || body.ok !== true) { console.error(r.status, body); process.exit(1); }
})();
`}},
	}
	ns := newNamespace(t)
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			if _, err := exec.LookPath(tc.argv[0]); err != nil {
				t.Fatalf("%s is needed for this test (.ci/run installs it): %v", tc.argv[0], err)
			}
			m := monitor(ns, "client-"+string(rune('a'+i)), monitoringv1alpha1.PushMonitorSpec{Timeout: dur(time.Hour)})
			createMonitor(t, m)
			var s corev1.Secret
			g.Expect(k8sClient.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: m.DesiredSecretName()}, &s)).To(Succeed())
			cmd := exec.Command(tc.argv[0], tc.argv[1:]...)
			cmd.Env = append(os.Environ(), "PUSH_URL="+string(s.Data[token.SecretKeyURL]))
			out, err := cmd.CombinedOutput()
			g.Expect(err).NotTo(HaveOccurred(), string(out))
			expectState(t, m, monitoringv1alpha1.StateUp, monitoringv1alpha1.HeartbeatReceivedReason, 5*time.Second)
		})
	}
}

// TestCurlDownPushAndKubectlWait: the seed's failure form flips the monitor
// Down, and `kubectl wait --for=condition=Healthy=false` sees it.
func TestCurlDownPushAndKubectlWait(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	m := monitor(ns, "backup", monitoringv1alpha1.PushMonitorSpec{Timeout: dur(time.Hour)})
	tok := createMonitor(t, m)
	wait := exec.Command(kubectl, "--kubeconfig", kubecfg, "wait", "-n", ns, "--for=condition=Healthy=false", "pm/backup", "--timeout=30s")
	var waitOut strings.Builder
	wait.Stdout, wait.Stderr = &waitOut, &waitOut
	g.Expect(wait.Start()).To(Succeed())

	out, err := exec.Command("curl", "-fsS", "-X", "POST", pushURL(tok, "status=down&msg=backup-failed")).CombinedOutput()
	g.Expect(err).NotTo(HaveOccurred(), string(out))
	g.Expect(string(out)).To(Equal(`{"ok":true}` + "\n"))
	g.Expect(wait.Wait()).To(Succeed(), waitOut.String())
	g.Expect(waitOut.String()).To(ContainSubstring("pushmonitor.monitoring.pushmon.dev/backup condition met"))

	out, err = exec.Command("curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST", pushURL(tok, "status=maybe")).CombinedOutput()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(string(out)).To(Equal("400"))
}

// TestSamplesApply: kubectl apply -k config/samples gives Ready monitors in
// state Pending with their Secrets; a bad monitor is refused with a
// readable message.
func TestSamplesApply(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	out, err := runKubectl(t, "apply", "-n", ns, "-k", filepath.Join("..", "..", "config", "samples"))
	g.Expect(err).NotTo(HaveOccurred(), out)
	var list monitoringv1alpha1.PushMonitorList
	g.Expect(k8sClient.List(context.Background(), &list, client.InNamespace(ns))).To(Succeed())
	g.Expect(list.Items).NotTo(BeEmpty())
	for i := range list.Items {
		m := &list.Items[i]
		g.Eventually(func(g Gomega) {
			got := getMonitor(g, m)
			g.Expect(meta.IsStatusConditionTrue(got.Status.Conditions, monitoringv1alpha1.ReadyCondition)).To(BeTrue())
			g.Expect(got.Status.State).To(Equal(monitoringv1alpha1.StatePending))
			var s corev1.Secret
			g.Expect(k8sClient.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: got.Status.SecretName}, &s)).To(Succeed())
		}).Should(Succeed())
	}

	bad := filepath.Join(t.TempDir(), "bad.yaml")
	g.Expect(os.WriteFile(bad, []byte(`apiVersion: monitoring.pushmon.dev/v1alpha1
kind: PushMonitor
metadata:
  name: bad
spec:
  timeout: 30s
  interval: 5m
`), 0o600)).To(Succeed())
	out, err = runKubectl(t, "apply", "-n", ns, "-f", bad)
	g.Expect(err).To(HaveOccurred())
	g.Expect(out).To(ContainSubstring("interval must not be longer than timeout"))
	t.Logf("kubectl apply of a bad monitor: %s", strings.TrimSpace(out))
}
