package controllers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
	"github.com/pushmon/pushmon/internal/token"
)

// errSecretConflict: the wanted Secret exists and is not this monitor's.
type errSecretConflict struct{ name string }

func (e *errSecretConflict) Error() string {
	return fmt.Sprintf("Secret %q already exists and is not managed by this PushMonitor; pushmon does not overwrite it (delete it or set spec.secretName)", e.name)
}

// tokenChange says what reconcileSecret did to the token, for the event.
type tokenChange int

const (
	tokenUnchanged tokenChange = iota
	tokenIssued
	tokenMoved
	tokenRotated
)

// reconcileSecret makes sure the monitor's token lives in the Secret its spec
// names: it issues a token on first sight, issues one again if the Secret was
// deleted, moves the token when spec.secretName changes, and keeps url and
// interval current. It never touches a Secret this monitor does not control.
func (r *PushMonitorReconciler) reconcileSecret(ctx context.Context, m *monitoringv1alpha1.PushMonitor) (tokenChange, error) {
	name := m.DesiredSecretName()
	var s corev1.Secret
	// The cache holds only Secrets with pushmon's labels; a foreign Secret of
	// this name shows up as AlreadyExists on create below.
	err := r.Get(ctx, types.NamespacedName{Namespace: m.Namespace, Name: name}, &s)
	if err == nil {
		if !metav1.IsControlledBy(&s, m) {
			return tokenUnchanged, &errSecretConflict{name: name}
		}
		if err := r.deleteMovedFrom(ctx, m, &s); err != nil {
			return tokenUnchanged, err
		}
		return r.refreshSecret(ctx, m, &s)
	}
	if !apierrors.IsNotFound(err) {
		return tokenUnchanged, fmt.Errorf("reading Secret %q: %w", name, err)
	}

	change := tokenIssued
	tok, old, err := r.tokenToMove(ctx, m, name)
	if err != nil {
		return tokenUnchanged, err
	}
	if tok != "" {
		change = tokenMoved
	} else if tok, err = token.New(); err != nil {
		return tokenUnchanged, err
	}

	s = corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: m.Namespace, Name: name}, Type: corev1.SecretTypeOpaque}
	r.fillSecret(m, &s, tok)
	if old != nil {
		// The token moves with its history: when it was issued, the
		// previous token still in its overlap, the rotation last acted on.
		for _, k := range []string{token.AnnotationTokenIssued, token.AnnotationRotatedFor,
			token.AnnotationPreviousDigest, token.AnnotationPreviousExpires} {
			if v, ok := old.Annotations[k]; ok {
				metav1.SetMetaDataAnnotation(&s.ObjectMeta, k, v)
			}
		}
		metav1.SetMetaDataAnnotation(&s.ObjectMeta, token.AnnotationMovedFrom, old.Name)
	} else {
		metav1.SetMetaDataAnnotation(&s.ObjectMeta, token.AnnotationTokenIssued, r.now().UTC().Format(time.RFC3339))
		// A fresh token answers any rotation asked for so far.
		if req := m.Annotations[token.AnnotationRotateToken]; req != "" {
			metav1.SetMetaDataAnnotation(&s.ObjectMeta, token.AnnotationRotatedFor, req)
		}
	}
	if err := controllerutil.SetControllerReference(m, &s, r.Scheme()); err != nil {
		return tokenUnchanged, err
	}
	if err := r.Create(ctx, &s); err != nil {
		if !apierrors.IsAlreadyExists(err) {
			return tokenUnchanged, fmt.Errorf("creating Secret %q: %w", name, err)
		}
		// Either a foreign Secret, or ours and the cache has not seen it yet.
		var live corev1.Secret
		if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(&s), &live); err != nil {
			return tokenUnchanged, fmt.Errorf("reading Secret %q: %w", name, err)
		}
		if !metav1.IsControlledBy(&live, m) {
			return tokenUnchanged, &errSecretConflict{name: name}
		}
		return tokenUnchanged, nil
	}
	publishToken(m, &s)
	// The Secret the token moved from stays until status names the new one
	// (deleteMovedFrom): the push endpoint takes a token from the Secret
	// status names, so deleting it now would refuse the token until then.
	return change, nil
}

// deleteMovedFrom deletes the Secret s's token moved from (its
// AnnotationMovedFrom), once stored status names s: until then the push
// endpoint takes the token from the old one.
func (r *PushMonitorReconciler) deleteMovedFrom(ctx context.Context, m *monitoringv1alpha1.PushMonitor, s *corev1.Secret) error {
	from := s.Annotations[token.AnnotationMovedFrom]
	if from == "" || m.Status.SecretName != s.Name {
		return nil
	}
	// Read around the cache: once, and a Secret the cache has not seen yet
	// must not be left behind.
	var old corev1.Secret
	err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: m.Namespace, Name: from}, &old)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading previous Secret %q: %w", from, err)
	}
	if !metav1.IsControlledBy(&old, m) {
		return nil // not this monitor's (any more): not pushmon's to delete
	}
	if err := r.Delete(ctx, &old, client.Preconditions{UID: &old.UID}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("deleting previous Secret %q: %w", from, err)
	}
	return nil
}

// tokenToMove returns the token of the Secret the monitor used until now, if
// spec.secretName moved away from it and the old Secret is still this
// monitor's, so that clients keep working across the rename.
func (r *PushMonitorReconciler) tokenToMove(ctx context.Context, m *monitoringv1alpha1.PushMonitor, newName string) (string, *corev1.Secret, error) {
	oldName := m.Status.SecretName
	if oldName == "" || oldName == newName {
		return "", nil, nil
	}
	var old corev1.Secret
	err := r.Get(ctx, types.NamespacedName{Namespace: m.Namespace, Name: oldName}, &old)
	if apierrors.IsNotFound(err) {
		return "", nil, nil
	}
	if err != nil {
		return "", nil, fmt.Errorf("reading previous Secret %q: %w", oldName, err)
	}
	tok := string(old.Data[token.SecretKeyToken])
	if !metav1.IsControlledBy(&old, m) || !token.WellFormed(tok) {
		return "", nil, nil
	}
	return tok, &old, nil
}

// refreshSecret brings an existing Secret of this monitor up to date: labels,
// url and interval; a missing or malformed token is issued anew, and a new
// value of the rotate-token annotation rotates the token (rotateToken).
func (r *PushMonitorReconciler) refreshSecret(ctx context.Context, m *monitoringv1alpha1.PushMonitor, s *corev1.Secret) (tokenChange, error) {
	change := tokenUnchanged
	want := s.DeepCopy()
	now := r.now().UTC()
	tok := string(s.Data[token.SecretKeyToken])
	req := m.Annotations[token.AnnotationRotateToken]
	switch {
	case !token.WellFormed(tok):
		var err error
		if tok, err = token.New(); err != nil {
			return tokenUnchanged, err
		}
		change = tokenIssued
		// Whatever was there is no token anyone holds: nothing overlaps.
		delete(want.Annotations, token.AnnotationPreviousDigest)
		delete(want.Annotations, token.AnnotationPreviousExpires)
		metav1.SetMetaDataAnnotation(&want.ObjectMeta, token.AnnotationTokenIssued, now.Format(time.RFC3339))
	case req != "" && req != s.Annotations[token.AnnotationRotatedFor]:
		var err error
		if tok, err = r.rotateToken(want, tok, now); err != nil {
			return tokenUnchanged, err
		}
		change = tokenRotated
	}
	if req != "" {
		metav1.SetMetaDataAnnotation(&want.ObjectMeta, token.AnnotationRotatedFor, req)
	}
	if m.Status.SecretName == s.Name {
		delete(want.Annotations, token.AnnotationMovedFrom) // deleteMovedFrom did its work
	}
	if at, ok := token.PreviousExpiry(want); ok && !now.Before(at) {
		// Lookups already refuse it; this only tidies the Secret up.
		delete(want.Annotations, token.AnnotationPreviousDigest)
		delete(want.Annotations, token.AnnotationPreviousExpires)
	}
	r.fillSecret(m, want, tok)
	if maps.EqualFunc(want.Data, s.Data, bytes.Equal) && maps.Equal(want.Labels, s.Labels) && maps.Equal(want.Annotations, s.Annotations) {
		publishToken(m, s)
		return change, nil
	}
	if err := r.Patch(ctx, want, client.MergeFromWithOptions(s, client.MergeFromWithOptimisticLock{})); err != nil {
		return tokenUnchanged, fmt.Errorf("updating Secret %q: %w", s.Name, err)
	}
	publishToken(m, want)
	return change, nil
}

// rotateToken puts a new token into s (a copy being prepared) and keeps the
// digest of the current one valid for TokenOverlap, so that clients still
// holding the old URL keep working until they pick up the new one. Only one
// previous token is kept: rotating again during an overlap ends the older
// one at once.
func (r *PushMonitorReconciler) rotateToken(s *corev1.Secret, current string, now time.Time) (string, error) {
	tok, err := token.New()
	if err != nil {
		return "", err
	}
	if r.TokenOverlap > 0 {
		metav1.SetMetaDataAnnotation(&s.ObjectMeta, token.AnnotationPreviousDigest, token.Digest(current))
		metav1.SetMetaDataAnnotation(&s.ObjectMeta, token.AnnotationPreviousExpires, now.Add(r.TokenOverlap).Format(time.RFC3339))
	} else {
		delete(s.Annotations, token.AnnotationPreviousDigest)
		delete(s.Annotations, token.AnnotationPreviousExpires)
	}
	metav1.SetMetaDataAnnotation(&s.ObjectMeta, token.AnnotationTokenIssued, now.Format(time.RFC3339))
	return tok, nil
}

// rotatedNote is the TokenIssued event's note after a rotation; it never
// carries the token or its digest.
func (r *PushMonitorReconciler) rotatedNote(m *monitoringv1alpha1.PushMonitor) string {
	note := fmt.Sprintf("push token rotated in Secret %s (annotation %s); clients need the new URL", m.Status.SecretName, token.AnnotationRotateToken)
	if r.TokenOverlap > 0 && m.Status.TokenIssuedTime != nil {
		return note + "; the previous token keeps working until " + m.Status.TokenIssuedTime.Add(r.TokenOverlap).UTC().Format(time.RFC3339)
	}
	return note + "; the previous token no longer works"
}

// issuedTime is when s's token was issued: its annotation, or, for Secrets
// publishToken mirrors what status tells of the token in s: when it was
// issued, and the digests of the tokens that work now, which the push tier
// looks tokens up by without reading Secrets (token.StatusIndex). A
// previous token past its expiry is left out.
func publishToken(m *monitoringv1alpha1.PushMonitor, s *corev1.Secret) {
	m.Status.TokenIssuedTime = issuedTime(s)
	tok := s.Data[token.SecretKeyToken]
	if !token.WellFormed(string(tok)) {
		m.Status.PushToken = nil
		return
	}
	pt := &monitoringv1alpha1.PushTokenStatus{SHA256: token.Digest(string(tok))}
	if at, ok := token.PreviousExpiry(s); ok && !at.IsZero() {
		pt.PreviousSHA256 = s.Annotations[token.AnnotationPreviousDigest]
		pt.PreviousExpireTime = &metav1.Time{Time: at}
	}
	m.Status.PushToken = pt
}

// issued before pushmon recorded it, the Secret's creation.
func issuedTime(s *corev1.Secret) *metav1.Time {
	if at, err := time.Parse(time.RFC3339, s.Annotations[token.AnnotationTokenIssued]); err == nil {
		return &metav1.Time{Time: at}
	}
	if s.CreationTimestamp.IsZero() {
		return nil
	}
	return s.CreationTimestamp.DeepCopy()
}

// fillSecret sets the labels and data of a monitor's Secret.
func (r *PushMonitorReconciler) fillSecret(m *monitoringv1alpha1.PushMonitor, s *corev1.Secret, tok string) {
	metav1.SetMetaDataLabel(&s.ObjectMeta, token.LabelManagedBy, token.LabelManagedByValue)
	metav1.SetMetaDataLabel(&s.ObjectMeta, monitoringv1alpha1.MonitorKey, m.Name)
	s.Data = map[string][]byte{
		token.SecretKeyToken:    []byte(tok),
		token.SecretKeyURL:      []byte(token.PushURL(r.PushBaseURL, tok)),
		token.SecretKeyInterval: []byte(intervalSeconds(m.IntervalDuration())),
	}
}

// intervalSeconds renders the interval as whole seconds (at least 1), the
// form `sleep "$PUSH_INTERVAL"` and int() both read.
func intervalSeconds(d time.Duration) string {
	return strconv.FormatInt(max(int64(d/time.Second), 1), 10)
}

func isSecretConflict(err error) bool {
	var c *errSecretConflict
	return errors.As(err, &c)
}

// DefaultTokenOverlap is how long a rotated-out token keeps working by
// default: a day, so that a daily CronJob started before the rotation, or a
// client whose owner rotates in the morning and redeploys by evening, does
// not fail.
const DefaultTokenOverlap = 24 * time.Hour
