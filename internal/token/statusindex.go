package token

import (
	"context"
	"crypto/subtle"
	"fmt"
	"time"

	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
)

// StatusDigestField indexes PushMonitors by the token digests their status
// publishes (status.pushToken).
const StatusDigestField = ".pushmon.status.pushToken"

// SetupStatusIndex registers StatusDigestField with the manager's cache,
// for StatusIndex. It needs no access to Secrets: this is how a push tier
// whose ServiceAccount may read PushMonitors only looks tokens up.
func SetupStatusIndex(ctx context.Context, indexer client.FieldIndexer) error {
	return indexer.IndexField(ctx, &monitoringv1alpha1.PushMonitor{}, StatusDigestField, func(o client.Object) []string {
		m, ok := o.(*monitoringv1alpha1.PushMonitor)
		if !ok || m.Status.PushToken == nil || !wellFormedDigest(m.Status.PushToken.SHA256) {
			return nil
		}
		pt := m.Status.PushToken
		keys := []string{pt.SHA256}
		// Indexed until status drops it; Lookup checks its expiry.
		if wellFormedDigest(pt.PreviousSHA256) && pt.PreviousSHA256 != pt.SHA256 && pt.PreviousExpireTime != nil {
			keys = append(keys, pt.PreviousSHA256)
		}
		return keys
	})
}

// StatusIndex finds the monitor a token belongs to from the digests in
// PushMonitor status, as Index does from Secrets. The reconciler publishes
// a token's digest in the status write that follows the Secret's, so a new
// token works here a moment (one status write) later than through Index.
type StatusIndex struct {
	// Reader must be the manager's cache (it serves StatusDigestField).
	Reader client.Reader
	// Clock is the clock previous tokens expire by; the real clock when nil.
	Clock clock.PassiveClock
}

// Lookup returns the monitor whose status publishes tok's digest, or
// ErrUnknown. The returned monitor is shared with the cache and must not be
// modified.
func (i *StatusIndex) Lookup(ctx context.Context, tok string) (*monitoringv1alpha1.PushMonitor, error) {
	d, now, ok := lookupKey(tok, i.Clock)
	if !ok {
		return nil, ErrUnknown
	}
	var monitors monitoringv1alpha1.PushMonitorList
	if err := i.Reader.List(ctx, &monitors, client.MatchingFields{StatusDigestField: d}, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("listing monitors by token digest: %w", err)
	}
	var found *monitoringv1alpha1.PushMonitor
	for n := range monitors.Items {
		m := &monitors.Items[n]
		if !m.DeletionTimestamp.IsZero() || !publishes(m.Status.PushToken, d, now) {
			continue
		}
		if found != nil {
			// Status is writable by whoever may write it, not only by
			// pushmon: a digest claimed twice is refused, as Index refuses
			// a token two monitors claim.
			return nil, ErrUnknown
		}
		found = m
	}
	if found == nil {
		return nil, ErrUnknown
	}
	return found, nil
}

// publishes reports whether pt names digest d as the current token, or as
// the previous one until it expires (compared in constant time, as holds).
func publishes(pt *monitoringv1alpha1.PushTokenStatus, d string, now time.Time) bool {
	if pt == nil {
		return false
	}
	if subtle.ConstantTimeCompare([]byte(pt.SHA256), []byte(d)) == 1 {
		return true
	}
	return subtle.ConstantTimeCompare([]byte(pt.PreviousSHA256), []byte(d)) == 1 &&
		pt.PreviousExpireTime != nil && now.Before(pt.PreviousExpireTime.Time)
}
