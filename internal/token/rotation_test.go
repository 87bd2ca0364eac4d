package token

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
)

// prevToken is the token a rotation replaced.
const prevToken = "PreviousPreviousPreviousPreviousPrevious-_0"

var rotNow = time.Date(2026, 3, 4, 12, 0, 0, 0, time.UTC)

// rotatedSecret is jobSecret after a rotation from prevToken, the previous
// token valid until expires.
func rotatedSecret(expires string) *corev1.Secret {
	s := idxSecret("job-push", "job", "uid-1", goodToken)
	s.Annotations = map[string]string{AnnotationPreviousDigest: Digest(prevToken), AnnotationPreviousExpires: expires}
	return s
}

// indexedClient is a fake cache serving DigestField with SetupIndex's
// extractor.
func indexedClient(t testing.TB, objs ...client.Object) client.Client {
	t.Helper()
	sch := runtime.NewScheme()
	if err := corev1.AddToScheme(sch); err != nil {
		t.Fatal(err)
	}
	if err := monitoringv1alpha1.AddToScheme(sch); err != nil {
		t.Fatal(err)
	}
	var ic indexCapture
	if err := SetupIndex(context.Background(), &ic); err != nil {
		t.Fatal(err)
	}
	return fake.NewClientBuilder().WithScheme(sch).WithObjects(objs...).WithIndex(ic.obj, ic.field, ic.fn).Build()
}

func TestLookupAfterRotation(t *testing.T) {
	until := rotNow.Add(time.Hour).Format(time.RFC3339)
	tests := []struct {
		name   string
		secret *corev1.Secret
		now    time.Time
		lookup string
		found  bool
	}{
		{name: "new token", secret: rotatedSecret(until), now: rotNow, lookup: goodToken, found: true},
		{name: "previous token in its overlap", secret: rotatedSecret(until), now: rotNow, lookup: prevToken, found: true},
		{name: "previous token a second before expiry", secret: rotatedSecret(until), now: rotNow.Add(time.Hour - time.Second), lookup: prevToken, found: true},
		{name: "previous token at expiry", secret: rotatedSecret(until), now: rotNow.Add(time.Hour), lookup: prevToken},
		{name: "previous token after expiry", secret: rotatedSecret(until), now: rotNow.Add(48 * time.Hour), lookup: prevToken},
		{name: "new token after the previous expired", secret: rotatedSecret(until), now: rotNow.Add(48 * time.Hour), lookup: goodToken, found: true},
		{name: "malformed expiry counts as expired", secret: rotatedSecret("tomorrow"), now: rotNow, lookup: prevToken},
		{name: "missing expiry counts as expired", secret: withSecret(rotatedSecret(until), func(s *corev1.Secret) {
			delete(s.Annotations, AnnotationPreviousExpires)
		}), now: rotNow, lookup: prevToken},
		{name: "a digest that is not a digest is not indexed", secret: withSecret(rotatedSecret(until), func(s *corev1.Secret) {
			s.Annotations[AnnotationPreviousDigest] = strings.ToUpper(Digest(prevToken))
		}), now: rotNow, lookup: prevToken},
		{name: "the token itself in the annotation does not work", secret: withSecret(rotatedSecret(until), func(s *corev1.Secret) {
			s.Annotations[AnnotationPreviousDigest] = prevToken
		}), now: rotNow, lookup: prevToken},
		{name: "unrelated token", secret: rotatedSecret(until), now: rotNow, lookup: strings.Repeat("z", 43)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			c := indexedClient(t, idxMonitor("job", "uid-1", "job-push"), tc.secret)
			idx := &Index{Reader: c, Clock: clocktesting.NewFakePassiveClock(tc.now)}
			m, err := idx.Lookup(context.Background(), tc.lookup)
			if tc.found {
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(m.Name).To(Equal("job"))
				return
			}
			g.Expect(err).To(MatchError(ErrUnknown), "after expiry, exactly like an unknown token")
			g.Expect(m).To(BeNil())
		})
	}
}

func TestIndexExtractorPrevious(t *testing.T) {
	g := NewWithT(t)
	var ic indexCapture
	g.Expect(SetupIndex(context.Background(), &ic)).To(Succeed())
	s := rotatedSecret(rotNow.Format(time.RFC3339))
	g.Expect(ic.fn(s)).To(Equal([]string{Digest(goodToken), Digest(prevToken)}))
	same := rotatedSecret("")
	same.Annotations[AnnotationPreviousDigest] = Digest(goodToken)
	g.Expect(ic.fn(same)).To(Equal([]string{Digest(goodToken)}), "indexed once")
	noTok := rotatedSecret("")
	delete(noTok.Data, SecretKeyToken)
	g.Expect(ic.fn(noTok)).To(BeEmpty(), "a Secret without a token holds no previous one either")
}

// FuzzLookup checks, for any string, that a lookup finds the monitor only
// for the current token or the previous one within its overlap, and answers
// everything else ErrUnknown (never another error, never a panic).
func FuzzLookup(f *testing.F) {
	for _, s := range []string{
		goodToken, prevToken, "", "short", goodToken[:42], goodToken + "A", goodToken[:42] + "=",
		strings.Repeat("A", 10240), "../../../etc/passwd", "%2e%2e%2f", "\x00" + goodToken[1:],
		Digest(goodToken), Digest(prevToken), strings.ToUpper(goodToken),
	} {
		f.Add(s, int64(0))
	}
	f.Add(prevToken, int64(2*time.Hour))
	until := rotNow.Add(time.Hour)
	c := indexedClient(f, idxMonitor("job", "uid-1", "job-push"), rotatedSecret(until.Format(time.RFC3339)))
	f.Fuzz(func(t *testing.T, tok string, offset int64) {
		now := rotNow.Add(time.Duration(offset))
		idx := &Index{Reader: c, Clock: clocktesting.NewFakePassiveClock(now)}
		m, err := idx.Lookup(context.Background(), tok)
		want := tok == goodToken || tok == prevToken && now.Before(until)
		switch {
		case want && (err != nil || m == nil || m.Name != "job"):
			t.Fatalf("Lookup(%q) at %s: %v, %v; want the monitor", tok, now, m, err)
		case !want && (!errors.Is(err, ErrUnknown) || m != nil):
			t.Fatalf("Lookup(%q) at %s: %v, %v; want ErrUnknown", tok, now, m, err)
		}
		if err != nil && len(tok) >= 16 && strings.Contains(err.Error(), tok) {
			t.Fatalf("error %q carries the token", err)
		}
	})
}
