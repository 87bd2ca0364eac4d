package token

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
)

// statusMonitor is a monitor whose status publishes current (and previous,
// valid until prevUntil, when given).
func statusMonitor(name, current, previous string, prevUntil time.Time) *monitoringv1alpha1.PushMonitor {
	m := &monitoringv1alpha1.PushMonitor{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, UID: "uid-1"}}
	if current == "" {
		return m
	}
	m.Status.PushToken = &monitoringv1alpha1.PushTokenStatus{SHA256: Digest(current)}
	if previous != "" {
		m.Status.PushToken.PreviousSHA256 = Digest(previous)
		m.Status.PushToken.PreviousExpireTime = &metav1.Time{Time: prevUntil}
	}
	return m
}

func TestStatusIndexLookup(t *testing.T) {
	sch := runtime.NewScheme()
	if err := monitoringv1alpha1.AddToScheme(sch); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	other := strings.Repeat("x", 43)
	third := strings.Repeat("y", 43)
	apiErr := errors.New("cache not synced")
	tests := []struct {
		name    string
		lookup  string
		objs    []client.Object
		listErr error
		want    string // the monitor found; "" with wantErr
		wantErr error
	}{
		{name: "current token", lookup: goodToken, objs: []client.Object{statusMonitor("job", goodToken, "", time.Time{})}, want: "job"},
		{name: "unknown token", lookup: other, objs: []client.Object{statusMonitor("job", goodToken, "", time.Time{})}, wantErr: ErrUnknown},
		{name: "malformed token", lookup: "short", objs: []client.Object{statusMonitor("job", goodToken, "", time.Time{})}, wantErr: ErrUnknown},
		{name: "nothing published", lookup: goodToken, objs: []client.Object{statusMonitor("job", "", "", time.Time{})}, wantErr: ErrUnknown},
		{name: "previous token in its overlap", lookup: other, want: "job",
			objs: []client.Object{statusMonitor("job", goodToken, other, now.Add(time.Minute))}},
		{name: "previous token past its overlap", lookup: other, wantErr: ErrUnknown,
			objs: []client.Object{statusMonitor("job", goodToken, other, now)}},
		{name: "previous digest without an expiry", lookup: other, wantErr: ErrUnknown,
			objs: []client.Object{func() client.Object {
				m := statusMonitor("job", goodToken, other, now.Add(time.Minute))
				m.Status.PushToken.PreviousExpireTime = nil
				return m
			}()}},
		{name: "current token beside the previous", lookup: goodToken, want: "job",
			objs: []client.Object{statusMonitor("job", goodToken, other, now.Add(time.Minute))}},
		{name: "monitor being deleted", lookup: goodToken, wantErr: ErrUnknown, objs: []client.Object{func() client.Object {
			m := statusMonitor("job", goodToken, "", time.Time{})
			m.Finalizers = []string{"test/keep"}
			m.DeletionTimestamp = ptr.To(metav1.Now())
			return m
		}()}},
		// Whoever may write status could copy another monitor's digest: a
		// digest two monitors publish is refused, in either list order.
		{name: "digest published by two monitors, copy listed first", lookup: goodToken, wantErr: ErrUnknown,
			objs: []client.Object{statusMonitor("a-copy", goodToken, "", time.Time{}), statusMonitor("job", goodToken, "", time.Time{})}},
		{name: "digest published by two monitors, copy listed last", lookup: goodToken, wantErr: ErrUnknown,
			objs: []client.Object{statusMonitor("job", goodToken, "", time.Time{}), statusMonitor("z-copy", third, goodToken, now.Add(time.Minute))}},
		{name: "copy as an expired previous token does not count", lookup: goodToken, want: "job",
			objs: []client.Object{statusMonitor("job", goodToken, "", time.Time{}), statusMonitor("z-copy", third, goodToken, now)}},
		{name: "list fails", lookup: goodToken, listErr: apiErr},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			var ic indexCapture
			g.Expect(SetupStatusIndex(context.Background(), &ic)).To(Succeed())
			g.Expect(ic.field).To(Equal(StatusDigestField))
			c := fake.NewClientBuilder().WithScheme(sch).WithObjects(tc.objs...).
				WithIndex(ic.obj, ic.field, ic.fn).
				WithInterceptorFuncs(interceptor.Funcs{
					List: func(ctx context.Context, c client.WithWatch, l client.ObjectList, o ...client.ListOption) error {
						if tc.listErr != nil {
							return tc.listErr
						}
						return c.List(ctx, l, o...)
					},
				}).Build()
			got, err := (&StatusIndex{Reader: c, Clock: clocktesting.NewFakePassiveClock(now)}).Lookup(context.Background(), tc.lookup)
			switch {
			case tc.listErr != nil:
				g.Expect(err).To(HaveOccurred())
				g.Expect(errors.Is(err, ErrUnknown)).To(BeFalse(), "an API failure is not an unknown token")
				g.Expect(err.Error()).NotTo(ContainSubstring(tc.lookup), "errors never carry the token")
			case tc.wantErr != nil:
				g.Expect(err).To(MatchError(tc.wantErr))
				g.Expect(got).To(BeNil())
			default:
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(got.Name).To(Equal(tc.want))
			}
		})
	}
}

func TestStatusIndexExtractor(t *testing.T) {
	var ic indexCapture
	NewWithT(t).Expect(SetupStatusIndex(context.Background(), &ic)).To(Succeed())
	until := time.Now().Add(time.Hour)
	other := strings.Repeat("x", 43)
	tests := []struct {
		name string
		obj  client.Object
		want []string
	}{
		{"current only", statusMonitor("job", goodToken, "", time.Time{}), []string{Digest(goodToken)}},
		{"current and previous", statusMonitor("job", goodToken, other, until), []string{Digest(goodToken), Digest(other)}},
		{"nothing published", statusMonitor("job", "", "", time.Time{}), nil},
		{"previous equal to current, once", statusMonitor("job", goodToken, goodToken, until), []string{Digest(goodToken)}},
		{"malformed digest", func() client.Object {
			m := statusMonitor("job", goodToken, "", time.Time{})
			m.Status.PushToken.SHA256 = "not-a-digest"
			return m
		}(), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			NewWithT(t).Expect(ic.fn(tc.obj)).To(Equal(tc.want))
		})
	}
}
