package token

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
)

// DigestField indexes pushmon's Secrets by the digest of their token.
const DigestField = ".pushmon.tokenDigest"

// ErrUnknown is returned for any token that does not lead to a live monitor,
// whatever the reason, so that callers answer all of them alike.
var ErrUnknown = errors.New("unknown push token")

// SetupIndex registers DigestField with the manager's cache. Only Secrets
// with pushmon's labels that a PushMonitor controls are indexed: the labels
// alone are anyone's to set, and a copy of a token in a Secret no monitor
// controls must not make the real monitor's token ambiguous (Lookup refuses
// a token claimed twice), nor cost memory for each tenant's Secret.
func SetupIndex(ctx context.Context, indexer client.FieldIndexer) error {
	return indexer.IndexField(ctx, &corev1.Secret{}, DigestField, func(o client.Object) []string {
		s, ok := o.(*corev1.Secret)
		if !ok || s.Labels[LabelManagedBy] != LabelManagedByValue || ControllingMonitor(s) == nil {
			return nil
		}
		var keys []string
		if tok := s.Data[SecretKeyToken]; len(tok) > 0 {
			keys = append(keys, Digest(string(tok)))
		}
		// The previous token after a rotation is indexed until the Secret
		// drops it; Lookup checks its expiry, since an index cannot.
		if prev := s.Annotations[AnnotationPreviousDigest]; wellFormedDigest(prev) && len(keys) > 0 && prev != keys[0] {
			keys = append(keys, prev)
		}
		return keys
	})
}

// PreviousExpiry is when the previous token recorded in s stops working,
// and whether s records one at all (a malformed expiry counts as expired).
func PreviousExpiry(s *corev1.Secret) (time.Time, bool) {
	if !wellFormedDigest(s.Annotations[AnnotationPreviousDigest]) {
		return time.Time{}, false
	}
	at, err := time.Parse(time.RFC3339, s.Annotations[AnnotationPreviousExpires])
	if err != nil {
		return time.Time{}, true
	}
	return at, true
}

// holds reports whether s holds the token whose digest is d: as its current
// token, or as the previous one until that expires. Digests, not tokens, are
// compared, and in constant time, so that timing tells nothing about how
// much of a digest matched (it could not tell about the token anyway).
func holds(s *corev1.Secret, d string, now time.Time) bool {
	if tok := s.Data[SecretKeyToken]; len(tok) > 0 &&
		subtle.ConstantTimeCompare([]byte(Digest(string(tok))), []byte(d)) == 1 {
		return true
	}
	if subtle.ConstantTimeCompare([]byte(s.Annotations[AnnotationPreviousDigest]), []byte(d)) != 1 {
		return false
	}
	at, ok := PreviousExpiry(s)
	return ok && now.Before(at)
}

// Index finds the monitor a token belongs to, from the manager's cache.
type Index struct {
	// Reader must be the manager's cache (it serves DigestField).
	Reader client.Reader
	// Clock is the clock previous tokens expire by; the real clock when nil.
	Clock clock.PassiveClock
}

// Lookup returns the monitor whose Secret holds tok, or ErrUnknown. The
// returned monitor is shared with the cache and must not be modified.
func (i *Index) Lookup(ctx context.Context, tok string) (*monitoringv1alpha1.PushMonitor, error) {
	d, now, ok := lookupKey(tok, i.Clock)
	if !ok {
		return nil, ErrUnknown
	}
	var secrets corev1.SecretList
	if err := i.Reader.List(ctx, &secrets,
		client.MatchingFields{DigestField: d},
		client.UnsafeDisableDeepCopy,
	); err != nil {
		return nil, fmt.Errorf("listing token secrets: %w", err)
	}
	// Normally one Secret holds a token. While spec.secretName moves, the old
	// and the new Secret both do, for one monitor: use the one its status
	// names. Anything else (copies owned by different monitors) is refused.
	var found, moving *monitoringv1alpha1.PushMonitor
	var owner types.UID
	for n := range secrets.Items {
		s := &secrets.Items[n]
		if !holds(s, d, now) {
			// A previous token past its expiry (still indexed until the
			// reconciler drops it): as if the Secret did not hold it.
			continue
		}
		ref := ControllingMonitor(s)
		if ref == nil {
			continue // claims nothing (SetupIndex does not index it either)
		}
		var m monitoringv1alpha1.PushMonitor
		err := i.Reader.Get(ctx, types.NamespacedName{Namespace: s.Namespace, Name: ref.Name}, &m, client.UnsafeDisableDeepCopy)
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading monitor: %w", err)
		}
		if m.UID != ref.UID || !m.DeletionTimestamp.IsZero() {
			continue
		}
		if owner != "" && owner != m.UID {
			// Live monitors claim the same token: refuse, whatever the order.
			return nil, ErrUnknown
		}
		owner = m.UID
		if m.Status.SecretName == s.Name {
			found = &m
		} else {
			moving = &m
		}
	}
	if found == nil && moving != nil && moving.Status.SecretName != "" {
		// The monitor's status names a Secret the cache has not seen yet:
		// the Secret and the monitor come through separate watches, so
		// status can name the Secret a token moved into before that
		// Secret's creation reaches the cache. Until it does, the token is
		// taken from the Secret it moved from.
		var named corev1.Secret
		err := i.Reader.Get(ctx, types.NamespacedName{Namespace: moving.Namespace, Name: moving.Status.SecretName}, &named, client.UnsafeDisableDeepCopy)
		if apierrors.IsNotFound(err) {
			return moving, nil
		}
		if err != nil {
			return nil, fmt.Errorf("reading Secret: %w", err)
		}
	}
	if found == nil {
		return nil, ErrUnknown
	}
	return found, nil
}

// lookupKey is what a lookup of tok needs: its digest and the time on clk
// (the real clock when nil) that previous tokens expire by; ok is false for
// a malformed token, which is answered as an unknown one.
func lookupKey(tok string, clk clock.PassiveClock) (digest string, now time.Time, ok bool) {
	if !WellFormed(tok) {
		return "", time.Time{}, false
	}
	if clk == nil {
		clk = clock.RealClock{}
	}
	return Digest(tok), clk.Now(), true
}

// ControllingMonitor is the owner reference of the PushMonitor that controls
// s (controller=true, kind PushMonitor of pushmon's API group and version),
// or nil. Its UID is not checked against a live monitor here.
func ControllingMonitor(s *corev1.Secret) *metav1.OwnerReference {
	for i, ref := range s.OwnerReferences {
		if ref.Controller != nil && *ref.Controller &&
			ref.Kind == "PushMonitor" && ref.APIVersion == monitoringv1alpha1.GroupVersion.String() {
			return &s.OwnerReferences[i]
		}
	}
	return nil
}
