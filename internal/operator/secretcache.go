package operator

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
	"github.com/pushmon/pushmon/internal/token"
)

// maxSecretValue bounds each value kept of token, url and interval: a token
// is 43 bytes, an interval a few, a url its base plus the token. An owner
// reference is anyone's to write, so a Secret claiming a monitor could
// otherwise bring bulk in through these keys. A longer value is held empty,
// which the reconciler repairs as it repairs any wrong value.
const maxSecretValue = 8 << 10

// secretLabels and secretAnnotations are all pushmon reads of a Secret's
// labels and annotations (controllers/secret.go, internal/token).
var (
	secretLabels      = []string{token.LabelManagedBy, monitoringv1alpha1.MonitorKey}
	secretAnnotations = []string{token.AnnotationTokenIssued, token.AnnotationRotatedFor,
		token.AnnotationPreviousDigest, token.AnnotationPreviousExpires, token.AnnotationMovedFrom}
)

// trimSecret is the cache transform for Secrets. pushmon's labels are
// anyone's to set, so the cache can see any number of large Secrets that are
// not pushmon's (seen: 150 of 1 MiB took the manager from 51 MB to 295 MB).
// It keeps only what pushmon reads, and of a Secret no PushMonitor controls
// only its identity: the reconciler needs no more than that to refuse it as
// a conflict, and the token index skips it.
//
// Everything the reconciler writes to a Secret is a merge patch computed
// against the cached copy, so fields left out here are not touched by it.
func trimSecret(o any) (any, error) {
	s, ok := o.(*corev1.Secret)
	if !ok {
		return o, nil
	}
	t := &corev1.Secret{
		TypeMeta: s.TypeMeta,
		ObjectMeta: metav1.ObjectMeta{
			Namespace: s.Namespace, Name: s.Name, UID: s.UID, ResourceVersion: s.ResourceVersion,
			Generation: s.Generation, CreationTimestamp: s.CreationTimestamp,
			DeletionTimestamp: s.DeletionTimestamp, DeletionGracePeriodSeconds: s.DeletionGracePeriodSeconds,
			Labels: pick(s.Labels, secretLabels),
		},
		Type:      s.Type,
		Immutable: s.Immutable,
	}
	ref := token.ControllingMonitor(s)
	if ref == nil {
		// No owner references either, so that metav1.IsControlledBy (which
		// compares UIDs only) agrees with this test: a Secret trimmed as
		// foreign is never mistaken for a monitor's own without its token.
		return t, nil
	}
	t.OwnerReferences = []metav1.OwnerReference{*ref}
	t.Annotations = pick(s.Annotations, secretAnnotations)
	t.Data = make(map[string][]byte, len(s.Data))
	for k, v := range s.Data {
		switch k {
		case token.SecretKeyToken, token.SecretKeyURL, token.SecretKeyInterval:
			if len(v) > maxSecretValue {
				v = []byte{}
			}
			t.Data[k] = v
		default:
			// Kept empty, not dropped: the reconciler compares the cached
			// data with what it writes and so still removes such keys.
			t.Data[k] = []byte{}
		}
	}
	return t, nil
}

// pick returns the entries of m under keys, or nil when there are none.
func pick(m map[string]string, keys []string) map[string]string {
	var out map[string]string
	for _, k := range keys {
		if v, ok := m[k]; ok {
			if out == nil {
				out = make(map[string]string, len(keys))
			}
			out[k] = v
		}
	}
	return out
}
