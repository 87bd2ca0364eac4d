package token

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
)

// goodToken is a well-formed token (43 characters of the URL-safe alphabet,
// using every kind of character it may hold).
const goodToken = "Abcdefghijklmnopqrstuvwxyz0123456789-_ABCDE"

func isTokenChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}

func TestLength(t *testing.T) {
	g := NewWithT(t)
	g.Expect(Bytes).To(Equal(32), "256 bits of entropy")
	g.Expect(Length).To(Equal(43))
	g.Expect(goodToken).To(HaveLen(Length))
}

func TestNew(t *testing.T) {
	g := NewWithT(t)
	const n = 1000
	seen := make(map[string]struct{}, n)
	for range n {
		tok, err := New()
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(tok).To(HaveLen(43))
		for i := 0; i < len(tok); i++ {
			g.Expect(isTokenChar(tok[i])).To(BeTrue(), "character %q of %q", tok[i], tok)
		}
		g.Expect(WellFormed(tok)).To(BeTrue(), tok)
		raw, err := base64.RawURLEncoding.DecodeString(tok)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(raw).To(HaveLen(Bytes))
		g.Expect(seen).NotTo(HaveKey(tok), "duplicate token")
		seen[tok] = struct{}{}
	}
	g.Expect(seen).To(HaveLen(n))
}

func TestDigest(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"empty", "", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
		{"abc", "abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
		{"token", goodToken, func() string { s := sha256.Sum256([]byte(goodToken)); return hex.EncodeToString(s[:]) }()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			d := Digest(tc.in)
			g.Expect(d).To(Equal(tc.want))
			g.Expect(d).To(MatchRegexp(`^[0-9a-f]{64}$`))
			g.Expect(Digest(tc.in)).To(Equal(d), "stable")
		})
	}
	t.Run("distinct", func(t *testing.T) {
		g := NewWithT(t)
		g.Expect(Digest(goodToken)).NotTo(Equal(Digest(goodToken[:42] + "F")))
		g.Expect(Digest(goodToken)).NotTo(ContainSubstring(goodToken))
	})
}

func TestWellFormed(t *testing.T) {
	replaceAt := func(i int, s string) string { return goodToken[:i] + s + goodToken[i+1:] }
	tests := []struct {
		name string
		in   string
		want bool
	}{
		{"good", goodToken, true},
		{"all dashes", strings.Repeat("-", 43), true},
		{"all underscores", strings.Repeat("_", 43), true},
		{"empty", "", false},
		{"one short", goodToken[:42], false},
		{"one long", goodToken + "A", false},
		{"padded base64url", goodToken + "=", false},
		{"plus", replaceAt(5, "+"), false},
		{"slash", replaceAt(5, "/"), false},
		{"equals", replaceAt(42, "="), false},
		{"dot", replaceAt(0, "."), false},
		{"space", replaceAt(20, " "), false},
		{"percent", replaceAt(20, "%"), false},
		{"tilde", replaceAt(20, "~"), false},
		{"NUL", replaceAt(20, "\x00"), false},
		{"newline", replaceAt(42, "\n"), false},
		{"high byte", replaceAt(20, "\xff"), false},
		// é is two bytes: 42 ASCII bytes + 2 = 44 bytes, 43 runes.
		{"non-ASCII, 43 runes", goodToken[:42] + "é", false},
		// 41 ASCII bytes + é = 43 bytes.
		{"non-ASCII, 43 bytes", goodToken[:41] + "é", false},
		{"fullwidth A, 43 bytes", goodToken[:40] + "Ａ", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			NewWithT(t).Expect(WellFormed(tc.in)).To(Equal(tc.want), "%q", tc.in)
		})
	}
}

func FuzzWellFormed(f *testing.F) {
	for _, s := range []string{
		"", goodToken, goodToken[:42], goodToken + "A", goodToken[:41] + "é",
		strings.Repeat("+", 43), strings.Repeat("/", 43), strings.Repeat("\xff", 43),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ok := WellFormed(s)
		if !ok {
			return
		}
		if len(s) != 43 {
			t.Fatalf("WellFormed(%q) with length %d", s, len(s))
		}
		if !utf8.ValidString(s) {
			t.Fatalf("WellFormed(%q) on invalid UTF-8", s)
		}
		for i := 0; i < len(s); i++ {
			if !isTokenChar(s[i]) {
				t.Fatalf("WellFormed(%q) with character %q", s, s[i])
			}
		}
	})
}

func TestPushURL(t *testing.T) {
	tests := []struct {
		base, want string
	}{
		{"http://pushmon-push.pushmon-system.svc:8082", "http://pushmon-push.pushmon-system.svc:8082/api/push/" + goodToken},
		{"http://pushmon-push.pushmon-system.svc:8082/", "http://pushmon-push.pushmon-system.svc:8082/api/push/" + goodToken},
		{"https://push.example.com//", "https://push.example.com/api/push/" + goodToken},
		{"https://example.com/pushmon", "https://example.com/pushmon/api/push/" + goodToken},
		{"https://example.com/pushmon/", "https://example.com/pushmon/api/push/" + goodToken},
		{"", "/api/push/" + goodToken},
	}
	for _, tc := range tests {
		t.Run(tc.base, func(t *testing.T) {
			NewWithT(t).Expect(PushURL(tc.base, goodToken)).To(Equal(tc.want))
		})
	}
}

// indexCapture is a client.FieldIndexer that hands SetupIndex's extractor
// to the fake client, so that Lookup runs against the real index function.
type indexCapture struct {
	obj   client.Object
	field string
	fn    client.IndexerFunc
}

func (c *indexCapture) IndexField(_ context.Context, obj client.Object, field string, fn client.IndexerFunc) error {
	c.obj, c.field, c.fn = obj, field, fn
	return nil
}

// idxMonitor is a monitor whose status names secretName.
func idxMonitor(name string, uid types.UID, secretName string) *monitoringv1alpha1.PushMonitor {
	return &monitoringv1alpha1.PushMonitor{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, UID: uid},
		Status:     monitoringv1alpha1.PushMonitorStatus{SecretName: secretName},
	}
}

// idxSecret is a Secret pushmon issued tok into for the monitor owner.
func idxSecret(name, owner string, ownerUID types.UID, tok string) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: "ns", Name: name,
			Labels: map[string]string{LabelManagedBy: LabelManagedByValue, monitoringv1alpha1.MonitorKey: owner},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: monitoringv1alpha1.GroupVersion.String(), Kind: "PushMonitor",
				Name: owner, UID: ownerUID, Controller: ptr.To(true),
			}},
		},
		Data: map[string][]byte{SecretKeyToken: []byte(tok)},
	}
}

func withSecret(s *corev1.Secret, f func(*corev1.Secret)) *corev1.Secret { f(s); return s }

func withMonitor(m *monitoringv1alpha1.PushMonitor, f func(*monitoringv1alpha1.PushMonitor)) *monitoringv1alpha1.PushMonitor {
	f(m)
	return m
}

func TestIndexLookup(t *testing.T) {
	sch := runtime.NewScheme()
	if err := corev1.AddToScheme(sch); err != nil {
		t.Fatal(err)
	}
	if err := monitoringv1alpha1.AddToScheme(sch); err != nil {
		t.Fatal(err)
	}
	other := strings.Repeat("x", 43)
	apiErr := errors.New("cache not synced")
	job := func() *monitoringv1alpha1.PushMonitor { return idxMonitor("job", "uid-1", "job-push") }
	jobSecret := func() *corev1.Secret { return idxSecret("job-push", "job", "uid-1", goodToken) }
	standard := func() []client.Object { return []client.Object{job(), jobSecret()} }

	tests := []struct {
		name    string
		lookup  string
		objs    []client.Object // default: standard()
		listErr error
		getErr  error
		want    string // the monitor found; "" with wantErr
		wantErr error
	}{
		{name: "found", lookup: goodToken, want: "job"},
		{name: "unknown token", lookup: other, wantErr: ErrUnknown},
		{name: "malformed token", lookup: "short", wantErr: ErrUnknown},
		{name: "malformed token of the right length", lookup: goodToken[:42] + "+", wantErr: ErrUnknown},
		{name: "empty token", lookup: "", wantErr: ErrUnknown},
		{name: "secret without pushmon label", lookup: goodToken, wantErr: ErrUnknown, objs: []client.Object{job(),
			withSecret(jobSecret(), func(s *corev1.Secret) { delete(s.Labels, LabelManagedBy) })}},
		{name: "secret not controlled by a monitor", lookup: goodToken, wantErr: ErrUnknown, objs: []client.Object{job(),
			withSecret(jobSecret(), func(s *corev1.Secret) { s.OwnerReferences[0].Controller = ptr.To(false) })}},
		{name: "owner of another kind", lookup: goodToken, wantErr: ErrUnknown, objs: []client.Object{job(),
			withSecret(jobSecret(), func(s *corev1.Secret) { s.OwnerReferences[0].Kind = "ConfigMap" })}},
		{name: "owner of another API version", lookup: goodToken, wantErr: ErrUnknown, objs: []client.Object{job(),
			withSecret(jobSecret(), func(s *corev1.Secret) { s.OwnerReferences[0].APIVersion = "monitoring.pushmon.dev/v2" })}},
		{name: "monitor re-created under the same name", lookup: goodToken, wantErr: ErrUnknown,
			objs: []client.Object{idxMonitor("job", "uid-2", "job-push"), jobSecret()}},
		{name: "monitor moved to another secret", lookup: goodToken, wantErr: ErrUnknown,
			objs: []client.Object{idxMonitor("job", "uid-1", "elsewhere"), jobSecret(), idxSecret("elsewhere", "job", "uid-1", other)}},
		// Status can name the Secret a token moved into before that
		// Secret reaches the cache (separate watches): until it does, the
		// Secret the token moved from still answers for it.
		{name: "status names a secret the cache has not seen yet", lookup: goodToken, want: "job",
			objs: []client.Object{idxMonitor("job", "uid-1", "job-moved"), jobSecret()}},
		{name: "monitor without a secret in status", lookup: goodToken, wantErr: ErrUnknown,
			objs: []client.Object{idxMonitor("job", "uid-1", ""), jobSecret()}},
		{name: "monitor gone", lookup: goodToken, wantErr: ErrUnknown, objs: []client.Object{jobSecret()}},
		{name: "monitor being deleted", lookup: goodToken, wantErr: ErrUnknown, objs: []client.Object{
			withMonitor(job(), func(m *monitoringv1alpha1.PushMonitor) {
				m.Finalizers = []string{"test/keep"}
				m.DeletionTimestamp = ptr.To(metav1.Now())
			}), jobSecret()}},
		// spec.secretName moving: the old and the new Secret both hold the
		// token for one monitor, in either list order.
		{name: "secret name moving, new secret listed first", lookup: goodToken, want: "job", objs: []client.Object{
			idxMonitor("job", "uid-1", "a-new"), idxSecret("a-new", "job", "uid-1", goodToken), jobSecret()}},
		{name: "secret name moving, new secret listed last", lookup: goodToken, want: "job", objs: []client.Object{
			idxMonitor("job", "uid-1", "z-new"), idxSecret("z-new", "job", "uid-1", goodToken), jobSecret()}},
		{name: "secret name moving, status still names the old secret", lookup: goodToken, want: "job", objs: []client.Object{
			job(), idxSecret("z-new", "job", "uid-1", goodToken), jobSecret()}},
		{name: "secret name moving, status names neither", lookup: goodToken, wantErr: ErrUnknown, objs: []client.Object{
			idxMonitor("job", "uid-1", "elsewhere"), idxSecret("z-new", "job", "uid-1", goodToken), jobSecret(),
			idxSecret("elsewhere", "job", "uid-1", other)}},
		// Copies of the token that two live monitors both claim: refused,
		// in either list order.
		{name: "token copied into another monitor's secret, listed first", lookup: goodToken, wantErr: ErrUnknown, objs: []client.Object{
			job(), jobSecret(), idxMonitor("other", "uid-2", "a-copy"), idxSecret("a-copy", "other", "uid-2", goodToken)}},
		{name: "token copied into another monitor's secret, listed last", lookup: goodToken, wantErr: ErrUnknown, objs: []client.Object{
			job(), jobSecret(), idxMonitor("other", "uid-2", "z-copy"), idxSecret("z-copy", "other", "uid-2", goodToken)}},
		// A labeled Secret no monitor controls is not indexed, so a copy of
		// a token in one cannot make the real monitor's pushes unknown
		// (anyone who may create Secrets could otherwise take it Down).
		{name: "token copied into a secret no monitor controls", lookup: goodToken, want: "job", objs: []client.Object{
			job(), jobSecret(), withSecret(idxSecret("z-copy", "other", "uid-2", goodToken), func(s *corev1.Secret) { s.OwnerReferences = nil })}},
		{name: "token copied into a secret whose controller is of another kind", lookup: goodToken, want: "job", objs: []client.Object{
			job(), jobSecret(), withSecret(idxSecret("a-copy", "job", "uid-1", goodToken), func(s *corev1.Secret) { s.OwnerReferences[0].Kind = "ConfigMap" })}},
		{name: "stale copy of a deleted monitor beside the live secret", lookup: goodToken, want: "job", objs: []client.Object{
			job(), jobSecret(), idxSecret("a-stale", "gone", "uid-9", goodToken)}},
		{name: "list fails", lookup: goodToken, listErr: apiErr},
		{name: "get fails", lookup: goodToken, getErr: apiErr},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			objs := tc.objs
			if objs == nil {
				objs = standard()
			}
			var ic indexCapture
			g.Expect(SetupIndex(context.Background(), &ic)).To(Succeed())
			g.Expect(ic.field).To(Equal(DigestField))
			c := fake.NewClientBuilder().WithScheme(sch).WithObjects(objs...).
				WithIndex(ic.obj, ic.field, ic.fn).
				WithInterceptorFuncs(interceptor.Funcs{
					List: func(ctx context.Context, c client.WithWatch, l client.ObjectList, o ...client.ListOption) error {
						if tc.listErr != nil {
							return tc.listErr
						}
						return c.List(ctx, l, o...)
					},
					Get: func(ctx context.Context, c client.WithWatch, k client.ObjectKey, o client.Object, opts ...client.GetOption) error {
						if tc.getErr != nil {
							return tc.getErr
						}
						return c.Get(ctx, k, o, opts...)
					},
				}).Build()

			got, err := (&Index{Reader: c}).Lookup(context.Background(), tc.lookup)
			switch {
			case tc.listErr != nil || tc.getErr != nil:
				g.Expect(err).To(HaveOccurred())
				g.Expect(errors.Is(err, ErrUnknown)).To(BeFalse(), "an API failure is not an unknown token")
				g.Expect(err.Error()).NotTo(ContainSubstring(tc.lookup), "errors never carry the token")
			case tc.wantErr != nil:
				g.Expect(err).To(MatchError(tc.wantErr))
				g.Expect(got).To(BeNil())
			default:
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(got.Name).To(Equal(tc.want))
				g.Expect(got.UID).To(Equal(types.UID("uid-1")))
			}
		})
	}
}

func TestIndexExtractor(t *testing.T) {
	var ic indexCapture
	NewWithT(t).Expect(SetupIndex(context.Background(), &ic)).To(Succeed())
	s := idxSecret("job-push", "job", "uid-1", goodToken)
	tests := []struct {
		name   string
		obj    client.Object
		mutate func(*corev1.Secret)
		want   []string
	}{
		{name: "pushmon secret", obj: s, want: []string{Digest(goodToken)}},
		{name: "unlabeled", obj: s, mutate: func(s *corev1.Secret) { s.Labels = nil }},
		{name: "other manager", obj: s, mutate: func(s *corev1.Secret) { s.Labels[LabelManagedBy] = "helm" }},
		{name: "no token key", obj: s, mutate: func(s *corev1.Secret) { delete(s.Data, SecretKeyToken) }},
		{name: "empty token", obj: s, mutate: func(s *corev1.Secret) { s.Data[SecretKeyToken] = nil }},
		// Labeled but no PushMonitor's: not indexed (nor, by the cache
		// transform, held whole).
		{name: "no owner", obj: s, mutate: func(s *corev1.Secret) { s.OwnerReferences = nil }},
		{name: "owner not the controller", obj: s, mutate: func(s *corev1.Secret) { s.OwnerReferences[0].Controller = ptr.To(false) }},
		{name: "controller of another kind", obj: s, mutate: func(s *corev1.Secret) { s.OwnerReferences[0].Kind = "ConfigMap" }},
		{name: "controller of another API version", obj: s, mutate: func(s *corev1.Secret) {
			s.OwnerReferences[0].APIVersion = "monitoring.pushmon.dev/v2"
		}},
		{name: "not a secret", obj: &corev1.ConfigMap{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			obj := tc.obj
			if sec, ok := obj.(*corev1.Secret); ok {
				sec = sec.DeepCopy()
				if tc.mutate != nil {
					tc.mutate(sec)
				}
				obj = sec
			}
			NewWithT(t).Expect(ic.fn(obj)).To(Equal(tc.want))
		})
	}
}
