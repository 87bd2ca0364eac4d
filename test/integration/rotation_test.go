package integration

import (
	"context"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
	"github.com/pushmon/pushmon/internal/operator"
	"github.com/pushmon/pushmon/internal/token"
)

// unknownAnswer is the push endpoint's one answer to a token that leads to
// no monitor.
const unknownAnswer = `{"ok":false,"msg":"unknown push token"}`

func secretOf(g Gomega, m *monitoringv1alpha1.PushMonitor) *corev1.Secret {
	var s corev1.Secret
	g.Expect(k8sClient.Get(context.Background(), client.ObjectKey{Namespace: m.Namespace, Name: m.DesiredSecretName()}, &s)).To(Succeed())
	return &s
}

// requestRotation sets the rotate-token annotation to value.
func requestRotation(t *testing.T, m *monitoringv1alpha1.PushMonitor, value string) {
	t.Helper()
	g := NewWithT(t)
	cur := getMonitor(g, m)
	patch := client.MergeFrom(cur.DeepCopy())
	if cur.Annotations == nil {
		cur.Annotations = map[string]string{}
	}
	cur.Annotations[token.AnnotationRotateToken] = value
	g.Expect(k8sClient.Patch(context.Background(), cur, patch)).To(Succeed())
}

// rotatedToken waits until the Secret holds a token other than old and
// returns it.
func rotatedToken(t *testing.T, m *monitoringv1alpha1.PushMonitor, old string) string {
	t.Helper()
	var tok string
	NewWithT(t).Eventually(func(g Gomega) {
		tok = string(secretOf(g, m).Data[token.SecretKeyToken])
		g.Expect(tok).To(MatchRegexp(tokenAlphabet.String()))
		g.Expect(tok).NotTo(Equal(old))
	}).Should(Succeed())
	return tok
}

// pushOK waits until tok is accepted (the push endpoint's cache may be a
// moment behind the Secret).
func pushOK(t *testing.T, base, tok string) {
	t.Helper()
	NewWithT(t).Eventually(func() int {
		code, _, _ := send(t, "POST", base+token.PushPathPrefix+tok, nil, nil)
		return code
	}).Should(Equal(200))
}

// TestTokenRotationWithOverlap: a new rotate-token value issues a new token;
// the previous one keeps working until the overlap ends, then answers
// exactly as an unknown token; status says when the token was issued; one
// TokenIssued event says it was rotated; no token in status, events or log.
func TestTokenRotationWithOverlap(t *testing.T) {
	g := NewWithT(t)
	const overlap = 4 * time.Second
	base := ownManager(t, nil, operator.Config{TokenOverlap: overlap})
	ns := newNamespace(t)
	m := monitor(ns, "rotate", monitoringv1alpha1.PushMonitorSpec{Timeout: dur(time.Hour)})
	old := createMonitor(t, m)
	first := getMonitor(g, m)
	g.Expect(first.Status.TokenIssuedTime).NotTo(BeNil(), "status says when the token was issued")
	g.Expect(first.Status.TokenIssuedTime.Time).To(BeTemporally("~", time.Now(), 10*time.Second))
	s := secretOf(g, m)
	g.Expect(s.Annotations).To(HaveKey(token.AnnotationTokenIssued))
	g.Expect(s.Annotations).NotTo(HaveKey(token.AnnotationPreviousDigest))
	g.Expect(first.Status.PushToken).To(Equal(&monitoringv1alpha1.PushTokenStatus{SHA256: token.Digest(old)}),
		"status publishes the digest the push tier looks the token up by")
	pushOK(t, base, old)

	requestRotation(t, m, "2026-03-04")
	tok := rotatedToken(t, m, old)
	s = secretOf(g, m)
	g.Expect(string(s.Data[token.SecretKeyURL])).To(Equal(base + token.PushPathPrefix + tok))
	g.Expect(s.Annotations).To(HaveKeyWithValue(token.AnnotationRotatedFor, "2026-03-04"))
	g.Expect(s.Annotations).To(HaveKeyWithValue(token.AnnotationPreviousDigest, token.Digest(old)), "the digest, never the token")
	expires, err := time.Parse(time.RFC3339, s.Annotations[token.AnnotationPreviousExpires])
	g.Expect(err).NotTo(HaveOccurred())
	for k, v := range s.Annotations {
		g.Expect(v).NotTo(ContainSubstring(old), k)
		g.Expect(v).NotTo(ContainSubstring(tok), k)
	}
	g.Eventually(func(g Gomega) {
		pt := getMonitor(g, m).Status.PushToken
		g.Expect(pt).NotTo(BeNil())
		g.Expect(pt.SHA256).To(Equal(token.Digest(tok)))
		g.Expect(pt.PreviousSHA256).To(Equal(token.Digest(old)))
		g.Expect(pt.PreviousExpireTime).NotTo(BeNil())
		g.Expect(pt.PreviousExpireTime.Time).To(BeTemporally("==", expires))
	}).Should(Succeed(), "status publishes both digests during the overlap")

	// Both tokens work during the overlap.
	pushOK(t, base, tok)
	code, _, body := send(t, "POST", base+token.PushPathPrefix+old+"?msg=old", nil, nil)
	g.Expect(time.Now()).To(BeTemporally("<", expires), "the test was too slow to see the overlap")
	g.Expect(code).To(Equal(200), body)

	var rotated *monitoringv1alpha1.PushMonitor
	g.Eventually(func(g Gomega) {
		rotated = getMonitor(g, m)
		g.Expect(rotated.Status.TokenIssuedTime).NotTo(BeNil())
		g.Expect(rotated.Status.TokenIssuedTime.Time).To(BeTemporally(">", first.Status.TokenIssuedTime.Time.Add(-time.Second)))
		g.Expect(rotated.Status.TokenIssuedTime.Add(overlap)).To(BeTemporally("~", expires, time.Second))
	}).Should(Succeed())
	evs := expectEvents(t, m, monitoringv1alpha1.TokenIssuedReason, 2)
	var note string
	for _, e := range evs {
		if strings.Contains(e.Note, "rotated") {
			note = e.Note
		}
	}
	g.Expect(note).To(ContainSubstring("rotated in Secret rotate-push"))
	g.Expect(note).To(ContainSubstring("keeps working until " + expires.UTC().Format(time.RFC3339)))

	// After the overlap: the old token is exactly an unknown token.
	g.Eventually(func() string {
		code, _, body := send(t, "POST", base+token.PushPathPrefix+old, nil, nil)
		if code != 404 {
			return body
		}
		return strings.TrimSpace(body)
	}).WithTimeout(overlap + 10*time.Second).Should(Equal(unknownAnswer))
	_, hdrOld, bodyOld := send(t, "GET", base+token.PushPathPrefix+old+"?status=down", nil, nil)
	_, hdrUnknown, bodyUnknown := send(t, "GET", base+token.PushPathPrefix+randomToken(7)+"?status=down", nil, nil)
	g.Expect(bodyOld).To(Equal(bodyUnknown))
	hdrOld.Del("Date")
	hdrUnknown.Del("Date")
	g.Expect(hdrOld).To(Equal(hdrUnknown))
	code, _, _ = send(t, "POST", base+token.PushPathPrefix+tok, nil, nil)
	g.Expect(code).To(Equal(200), "the new token still works")
	// The next reconcile (here: of a label change) tidies the expired
	// digest out of the Secret.
	cur := getMonitor(g, m)
	patch := client.MergeFrom(cur.DeepCopy())
	cur.Labels = map[string]string{"touched": "yes"}
	g.Expect(k8sClient.Patch(context.Background(), cur, patch)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(secretOf(g, m).Annotations).NotTo(HaveKey(token.AnnotationPreviousDigest))
		g.Expect(secretOf(g, m).Annotations).NotTo(HaveKey(token.AnnotationPreviousExpires))
	}).Should(Succeed())

	// The same value again rotates nothing; a new one rotates again.
	requestRotation(t, m, "2026-03-04")
	g.Consistently(func(g Gomega) {
		g.Expect(string(secretOf(g, m).Data[token.SecretKeyToken])).To(Equal(tok))
	}).WithTimeout(time.Second).Should(Succeed())
	requestRotation(t, m, "2026-03-05")
	third := rotatedToken(t, m, tok)
	pushOK(t, base, third)
	expectEvents(t, m, monitoringv1alpha1.TokenIssuedReason, 3)

	final := getMonitor(g, m)
	for _, k := range []string{old, tok, third} {
		assertTokenNowhere(t, k, final)
	}
}

// TestTokenRotationWithoutOverlap: with no overlap (the suite's manager),
// the previous token stops at once.
func TestTokenRotationWithoutOverlap(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	m := monitor(ns, "rotate-now", monitoringv1alpha1.PushMonitorSpec{Timeout: dur(time.Hour)})
	old := createMonitor(t, m)
	mustPush(t, old, "")
	// As docs/security.md says to.
	out, err := runKubectl(t, "annotate", "pushmonitor", "rotate-now", "-n", ns,
		"monitoring.pushmon.dev/rotate-token=2026-03-04", "--overwrite")
	g.Expect(err).NotTo(HaveOccurred(), out)
	tok := rotatedToken(t, m, old)
	g.Eventually(func(g Gomega) {
		out, err := runKubectl(t, "get", "pushmonitor", "rotate-now", "-n", ns, "-o", "jsonpath={.status.tokenIssuedTime}")
		g.Expect(err).NotTo(HaveOccurred(), out)
		at, err := time.Parse(time.RFC3339, out)
		g.Expect(err).NotTo(HaveOccurred(), out)
		g.Expect(at).To(BeTemporally("~", time.Now(), 10*time.Second))
	}).Should(Succeed())
	g.Expect(secretOf(g, m).Annotations).NotTo(HaveKey(token.AnnotationPreviousDigest))
	g.Eventually(func() int { code, _ := push(t, "POST", tok, ""); return code }).Should(Equal(200))
	code, body := push(t, "POST", old, "")
	g.Expect(code).To(Equal(404))
	g.Expect(strings.TrimSpace(body)).To(Equal(unknownAnswer))
	evs := expectEvents(t, m, monitoringv1alpha1.TokenIssuedReason, 2)
	var notes []string
	for _, e := range evs {
		notes = append(notes, e.Note)
	}
	g.Expect(notes).To(ContainElement(ContainSubstring("previous token no longer works")))
	assertTokenNowhere(t, old, getMonitor(g, m))
	assertTokenNowhere(t, tok, getMonitor(g, m))
}

// TestRotationRequestedAtCreation: a monitor created with the annotation
// gets one token, not two; the value counts as acted on.
func TestRotationRequestedAtCreation(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	m := monitor(ns, "born-rotated", monitoringv1alpha1.PushMonitorSpec{})
	m.Annotations = map[string]string{token.AnnotationRotateToken: "v1"}
	tok := createMonitor(t, m)
	g.Expect(secretOf(g, m).Annotations).To(HaveKeyWithValue(token.AnnotationRotatedFor, "v1"))
	g.Consistently(func(g Gomega) {
		g.Expect(string(secretOf(g, m).Data[token.SecretKeyToken])).To(Equal(tok))
	}).WithTimeout(time.Second).Should(Succeed())
	expectEvents(t, m, monitoringv1alpha1.TokenIssuedReason, 1)
}
