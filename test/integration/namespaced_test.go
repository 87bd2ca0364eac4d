package integration

import (
	"context"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
	"github.com/pushmon/pushmon/internal/operator"
	pushsrv "github.com/pushmon/pushmon/internal/push"
	"github.com/pushmon/pushmon/internal/token"
)

// TestWatchNamespaces runs the manager as a user that holds the generated
// ClusterRole only through a RoleBinding in one namespace (docs/security.md,
// namespaced mode), with --watch-namespaces naming it: monitors there work,
// monitors elsewhere are left alone, and the RBAC really is that narrow. The
// same manager has tight rate limits behind a trusted proxy header, to show
// 429 with Retry-After per token and per client address.
func TestWatchNamespaces(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	watched, other := newNamespace(t), newNamespace(t)

	// The ClusterRole `make manifests` generates, under a name of this test's.
	b, err := os.ReadFile(filepath.Join("..", "..", "config", "rbac", "role.yaml"))
	g.Expect(err).NotTo(HaveOccurred())
	var role rbacv1.ClusterRole
	g.Expect(yaml.Unmarshal(b, &role)).To(Succeed())
	g.Expect(role.Name).To(Equal("manager-role"))
	// Named as config/default names it (namePrefix pushmon-).
	role.ObjectMeta = metav1.ObjectMeta{Name: "pushmon-manager-role"}
	g.Expect(k8sClient.Create(ctx, &role)).To(Succeed())
	t.Cleanup(func() { _ = k8sClient.Delete(ctx, &role) })
	const userName = "pushmon-namespaced"
	// The commands of docs/security.md: the deployed ServiceAccount's form,
	// and the same for the user this test's manager connects as.
	for _, subject := range []string{"--serviceaccount=pushmon-system:pushmon-controller-manager", "--user=" + userName} {
		out, err := runKubectl(t, "create", "rolebinding", "pushmon-manager-"+strings.TrimPrefix(strings.SplitN(subject, "=", 2)[0], "--"),
			"--clusterrole=pushmon-manager-role", subject, "-n", watched)
		g.Expect(err).NotTo(HaveOccurred(), out)
	}
	user, err := testEnv.ControlPlane.AddUser(envtest.User{Name: userName}, restCfg)
	g.Expect(err).NotTo(HaveOccurred())
	userClient, err := client.New(user.Config(), client.Options{Scheme: scheme})
	g.Expect(err).NotTo(HaveOccurred())
	// The binding took effect in its namespace, and grants nothing beyond.
	g.Eventually(func() error {
		return userClient.List(ctx, &corev1.SecretList{}, client.InNamespace(watched))
	}).Should(Succeed())
	err = userClient.List(ctx, &corev1.SecretList{}, client.InNamespace(other))
	g.Expect(apierrors.IsForbidden(err)).To(BeTrue(), "%v", err)
	err = userClient.List(ctx, &corev1.SecretList{})
	g.Expect(apierrors.IsForbidden(err)).To(BeTrue(), "no cluster-wide Secret list: %v", err)

	base := ownManager(t, user.Config(), operator.Config{
		PushLimits: pushsrv.Limits{
			TokenRate: 0.2, TokenBurst: 3, // one more every 5s
			IPRate: 0.2, IPBurst: 6,
			ClientIPHeader: "X-Forwarded-For",
			// The test's requests come through "the proxy" on loopback.
			TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		},
		PushMaxConns: 64,
	}, watched)

	m := monitor(watched, "job", monitoringv1alpha1.PushMonitorSpec{Timeout: dur(time.Hour)})
	tok := createMonitor(t, m)
	elsewhere := monitor(other, "job", monitoringv1alpha1.PushMonitorSpec{Timeout: dur(time.Hour)})
	g.Expect(k8sClient.Create(ctx, elsewhere)).To(Succeed())
	g.Consistently(func(g Gomega) {
		got := getMonitor(g, elsewhere)
		g.Expect(got.Status.SecretName).To(BeEmpty(), "a namespace not watched is left alone")
		g.Expect(got.Status.Conditions).To(BeEmpty())
	}).WithTimeout(2 * time.Second).Should(Succeed())
	var secrets corev1.SecretList
	g.Expect(k8sClient.List(ctx, &secrets, client.InNamespace(other))).To(Succeed())
	g.Expect(secrets.Items).To(BeEmpty())

	// Per token: the burst passes, then 429 from any address, whatever the
	// route; the answer has the push endpoint's JSON shape.
	url := base + token.PushPathPrefix + tok
	for i := range 3 {
		code, _, body := send(t, "POST", url, header("X-Forwarded-For", "198.51.100.1"), nil)
		g.Expect(code).To(Equal(200), "push %d: %s", i, body)
	}
	for _, client := range []string{"198.51.100.1", "198.51.100.2"} {
		code, hdr, body := send(t, "POST", url, header("X-Forwarded-For", client), nil)
		g.Expect(code).To(Equal(429), body)
		retry, err := strconv.Atoi(hdr.Get("Retry-After"))
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(retry).To(BeNumerically(">=", 1))
		g.Expect(retry).To(BeNumerically("<=", 5))
		var ans map[string]any
		g.Expect(json.Unmarshal([]byte(body), &ans)).To(Succeed())
		g.Expect(ans).To(HaveKeyWithValue("ok", false))
		g.Expect(ans["msg"]).To(ContainSubstring("too many requests"))
	}
	code, _, _ := send(t, "GET", base+"/ping/"+tok, header("X-Forwarded-For", "198.51.100.3"), nil)
	g.Expect(code).To(Equal(429), "the ping routes share the token's bucket")
	// The heartbeats the limit let through were recorded.
	expectState(t, m, monitoringv1alpha1.StateUp, monitoringv1alpha1.HeartbeatReceivedReason, 10*time.Second)

	// Per address (from the trusted header): 198.51.100.9 guessing tokens
	// is stopped after its burst; others are not.
	for i := range 6 {
		code, _, _ := send(t, "GET", base+token.PushPathPrefix+randomToken(i), header("X-Forwarded-For", "198.51.100.9"), nil)
		g.Expect(code).To(Equal(404))
	}
	code, hdr, body := send(t, "GET", base+token.PushPathPrefix+randomToken(99), header("X-Forwarded-For", "198.51.100.9"), nil)
	g.Expect(code).To(Equal(429), body)
	g.Expect(hdr.Get("Retry-After")).To(Equal("5"))
	g.Expect(body).To(ContainSubstring("from this address"))
	code, _, _ = send(t, "GET", base+token.PushPathPrefix+randomToken(99), header("X-Forwarded-For", "198.51.100.10"), nil)
	g.Expect(code).To(Equal(404), "another client address has its own bucket")

	// Buckets refill: the token works again once Retry-After has passed.
	g.Eventually(func() int {
		code, _, _ := send(t, "POST", url, header("X-Forwarded-For", "198.51.100.11"), nil)
		return code
	}).WithTimeout(15 * time.Second).WithPolling(time.Second).Should(Equal(200))

	assertTokenNowhere(t, tok, getMonitor(g, m))
}
