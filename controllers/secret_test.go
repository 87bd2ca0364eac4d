package controllers_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
	"github.com/pushmon/pushmon/internal/token"
)

// TestTokenSecretIssued checks the Secret a new monitor gets: keys, labels,
// owner, token shape; and status: Ready, Pending, secretName; and the event.
func TestTokenSecretIssued(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	m := monitor(ns, "backup", monitoringv1alpha1.PushMonitorSpec{Timeout: dur(2 * time.Minute), Interval: dur(90 * time.Second)})
	tok := createMonitor(t, m)

	g.Expect(tok).To(MatchRegexp(tokenAlphabet.String()), "256 bits, base64url without padding")
	var s corev1.Secret
	g.Expect(k8sClient.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "backup-push"}, &s)).To(Succeed())
	g.Expect(s.Data).To(HaveLen(3))
	g.Expect(string(s.Data[token.SecretKeyURL])).To(Equal("http://" + pushAddr + "/api/push/" + tok))
	g.Expect(string(s.Data[token.SecretKeyInterval])).To(Equal("90"))
	g.Expect(s.Labels).To(HaveKeyWithValue("app.kubernetes.io/managed-by", "pushmon"))
	g.Expect(s.Labels).To(HaveKeyWithValue("monitoring.pushmon.dev/monitor", "backup"))
	got := getMonitor(g, m)
	g.Expect(metav1.IsControlledBy(&s, got)).To(BeTrue(), "owned by the monitor, so it goes with it")

	g.Expect(got.Status.State).To(Equal(monitoringv1alpha1.StatePending))
	g.Expect(got.Status.SecretName).To(Equal("backup-push"))
	g.Expect(got.Status.ObservedGeneration).To(Equal(got.Generation))
	ready := meta.FindStatusCondition(got.Status.Conditions, monitoringv1alpha1.ReadyCondition)
	g.Expect(ready.Reason).To(Equal(monitoringv1alpha1.TokenIssuedReason))
	healthy := meta.FindStatusCondition(got.Status.Conditions, monitoringv1alpha1.HealthyCondition)
	g.Expect(healthy.Status).To(Equal(metav1.ConditionUnknown))
	g.Expect(healthy.Reason).To(Equal(monitoringv1alpha1.AwaitingFirstHeartbeatReason))

	ev := expectEvents(t, m, monitoringv1alpha1.TokenIssuedReason, 1)
	g.Expect(ev[0].Type).To(Equal(corev1.EventTypeNormal))
	g.Expect(ev[0].ReportingController).To(Equal("pushmon"))
	g.Expect(ev[0].Note).NotTo(ContainSubstring(tok))
	assertTokenNowhere(t, tok, got)

	// Two monitors never share a token.
	other := monitor(ns, "other", monitoringv1alpha1.PushMonitorSpec{})
	g.Expect(createMonitor(t, other)).NotTo(Equal(tok))
}

// TestTokenReissuedAfterSecretDeleted: deleting the Secret gives a new token.
func TestTokenReissuedAfterSecretDeleted(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	m := monitor(ns, "reissue", monitoringv1alpha1.PushMonitorSpec{})
	old := createMonitor(t, m)
	var s corev1.Secret
	g.Expect(k8sClient.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "reissue-push"}, &s)).To(Succeed())
	g.Expect(k8sClient.Delete(context.Background(), &s)).To(Succeed())

	g.Eventually(func(g Gomega) {
		var s2 corev1.Secret
		g.Expect(k8sClient.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "reissue-push"}, &s2)).To(Succeed())
		g.Expect(s2.UID).NotTo(Equal(s.UID))
		g.Expect(string(s2.Data[token.SecretKeyToken])).To(MatchRegexp(tokenAlphabet.String()))
		g.Expect(string(s2.Data[token.SecretKeyToken])).NotTo(Equal(old))
	}).Should(Succeed())
	expectEvents(t, m, monitoringv1alpha1.TokenIssuedReason, 2)
	code, _ := push(t, "POST", old, "")
	g.Expect(code).To(Equal(404), "the deleted token no longer works")
	mustPush(t, tokenOf(t, m), "")
}

// TestSecretConflict: a foreign Secret of the wanted name is never touched;
// the monitor says why it is not Ready.
func TestSecretConflict(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	foreign := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "taken-push"},
		StringData: map[string]string{"password": "hunter2"},
	}
	g.Expect(k8sClient.Create(context.Background(), foreign)).To(Succeed())

	m := monitor(ns, "taken", monitoringv1alpha1.PushMonitorSpec{})
	g.Expect(k8sClient.Create(context.Background(), m)).To(Succeed())
	g.Eventually(func(g Gomega) {
		got := getMonitor(g, m)
		c := meta.FindStatusCondition(got.Status.Conditions, monitoringv1alpha1.ReadyCondition)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Status).To(Equal(metav1.ConditionFalse))
		g.Expect(c.Reason).To(Equal(monitoringv1alpha1.SecretConflictReason))
		g.Expect(c.Message).To(ContainSubstring(`Secret "taken-push" already exists`))
		g.Expect(got.Status.State).To(Equal(monitoringv1alpha1.StatePending))
		g.Expect(got.Status.SecretName).To(BeEmpty())
	}).Should(Succeed())
	ev := expectEvents(t, m, monitoringv1alpha1.SecretConflictReason, 1)
	g.Expect(ev[0].Type).To(Equal(corev1.EventTypeWarning))

	var s corev1.Secret
	g.Expect(k8sClient.Get(context.Background(), client.ObjectKeyFromObject(foreign), &s)).To(Succeed())
	g.Expect(s.Data).To(Equal(map[string][]byte{"password": []byte("hunter2")}))
	g.Expect(s.Labels).To(BeEmpty())
	g.Expect(s.OwnerReferences).To(BeEmpty())

	// Pointing the monitor elsewhere resolves it.
	got := getMonitor(g, m)
	got.Spec.SecretName = "taken-token"
	g.Expect(k8sClient.Update(context.Background(), got)).To(Succeed())
	g.Eventually(func(g Gomega) {
		got := getMonitor(g, m)
		g.Expect(meta.IsStatusConditionTrue(got.Status.Conditions, monitoringv1alpha1.ReadyCondition)).To(BeTrue())
		g.Expect(got.Status.SecretName).To(Equal("taken-token"))
	}).Should(Succeed())
}

// TestSecretNameChangeMovesToken: the token moves to the new Secret, the old
// one is removed, and clients keep working.
func TestSecretNameChangeMovesToken(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	m := monitor(ns, "mover", monitoringv1alpha1.PushMonitorSpec{})
	tok := createMonitor(t, m)

	got := getMonitor(g, m)
	got.Spec.SecretName = "mover-credentials"
	g.Expect(k8sClient.Update(context.Background(), got)).To(Succeed())
	g.Eventually(func(g Gomega) {
		var s corev1.Secret
		g.Expect(k8sClient.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "mover-credentials"}, &s)).To(Succeed())
		g.Expect(string(s.Data[token.SecretKeyToken])).To(Equal(tok))
		err := k8sClient.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "mover-push"}, &corev1.Secret{})
		g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "old Secret removed")
		g.Expect(getMonitor(g, m).Status.SecretName).To(Equal("mover-credentials"))
	}).Should(Succeed())
	mustPush(t, tok, "msg=still-works")
	expectState(t, m, monitoringv1alpha1.StateUp, monitoringv1alpha1.HeartbeatReceivedReason, 10*time.Second)
}

// TestSecretNameChangeKeepsTheTokenWorking: a client pushing all through a
// change of spec.secretName is never refused. The old Secret goes only once
// status names the new one, since the push endpoint takes a token from the
// Secret status names (before, the old Secret went before status named the
// new one, and pushes in between were answered 404).
func TestSecretNameChangeKeepsTheTokenWorking(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	for i := range 5 {
		m := monitor(ns, fmt.Sprintf("moving-%d", i), monitoringv1alpha1.PushMonitorSpec{})
		tok := createMonitor(t, m)
		url := envSuite(t).PushURL(tok, "msg=moving")
		// The push endpoint's cache may be a moment behind the Secret that
		// createMonitor read from the API: the move starts once the token
		// is taken.
		g.Eventually(func() (int, error) {
			resp, err := http.Post(url, "", nil)
			if err != nil {
				return 0, err
			}
			resp.Body.Close()
			return resp.StatusCode, nil
		}).Should(Equal(http.StatusOK))

		var refused atomic.Int64
		var lastRefusal atomic.Value
		stop, stopped := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(stopped)
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := http.Post(url, "", nil)
				if err != nil {
					refused.Add(1)
					lastRefusal.Store(err.Error())
					continue
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					refused.Add(1)
					lastRefusal.Store(fmt.Sprintf("%s: %d %s", time.Now().UTC().Format("15:04:05.000000"), resp.StatusCode, body))
				}
			}
		}()
		got := getMonitor(g, m)
		orig := got.DeepCopy()
		got.Spec.SecretName = got.Name + "-moved"
		// A merge patch: the pushes keep changing status.
		g.Expect(k8sClient.Patch(context.Background(), got, client.MergeFrom(orig))).To(Succeed())
		g.Eventually(func(g Gomega) {
			g.Expect(getMonitor(g, m).Status.SecretName).To(Equal(got.Name + "-moved"))
			err := k8sClient.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: got.Name + "-push"}, &corev1.Secret{})
			g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "old Secret removed")
		}).Should(Succeed())
		time.Sleep(100 * time.Millisecond) // pushes after the removal too, while caches catch up
		close(stop)
		<-stopped
		g.Expect(refused.Load()).To(BeZero(), "pushes refused during the move of %s, the last: %v", m.Name, lastRefusal.Load())
	}
}

// TestSecretRepairedAfterTampering: url and interval are put back; a
// mangled token is replaced.
func TestSecretRepairedAfterTampering(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	m := monitor(ns, "tamper", monitoringv1alpha1.PushMonitorSpec{Timeout: dur(30 * time.Second)})
	tok := createMonitor(t, m)
	var s corev1.Secret
	key := client.ObjectKey{Namespace: ns, Name: "tamper-push"}
	g.Expect(k8sClient.Get(context.Background(), key, &s)).To(Succeed())
	s.Data[token.SecretKeyURL] = []byte("http://elsewhere/")
	g.Expect(k8sClient.Update(context.Background(), &s)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(context.Background(), key, &s)).To(Succeed())
		g.Expect(string(s.Data[token.SecretKeyURL])).To(HaveSuffix("/api/push/" + tok))
	}).Should(Succeed())

	// The interval follows the spec.
	got := getMonitor(g, m)
	got.Spec.Interval = dur(10 * time.Second)
	g.Expect(k8sClient.Update(context.Background(), got)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(context.Background(), key, &s)).To(Succeed())
		g.Expect(string(s.Data[token.SecretKeyInterval])).To(Equal("10"))
	}).Should(Succeed())

	s.Data[token.SecretKeyToken] = []byte("short")
	g.Expect(k8sClient.Update(context.Background(), &s)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(context.Background(), key, &s)).To(Succeed())
		g.Expect(string(s.Data[token.SecretKeyToken])).To(MatchRegexp(tokenAlphabet.String()))
	}).Should(Succeed())
}

// TestSecretDeletedWithMonitor: the owner reference is set so garbage
// collection (not running in envtest) removes the Secret; and the token
// stops working at once.
func TestDeletedMonitorTokenStopsWorking(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	m := monitor(ns, "gone", monitoringv1alpha1.PushMonitorSpec{})
	tok := createMonitor(t, m)
	mustPush(t, tok, "")
	g.Expect(k8sClient.Delete(context.Background(), m)).To(Succeed())
	g.Eventually(func() int {
		code, _ := push(t, "POST", tok, "")
		return code
	}).Should(Equal(404))
}
