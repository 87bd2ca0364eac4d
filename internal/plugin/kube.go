package plugin

import (
	"context"
	"errors"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
	"github.com/pushmon/pushmon/internal/token"
)

// getMonitor reads one PushMonitor, with a readable error when it is not
// there.
func (o *Options) getMonitor(ctx context.Context, name string) (*monitoringv1alpha1.PushMonitor, error) {
	c, err := o.Client()
	if err != nil {
		return nil, err
	}
	ns, err := o.Namespace()
	if err != nil {
		return nil, err
	}
	var m monitoringv1alpha1.PushMonitor
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &m); err != nil {
		if apierrors.IsNotFound(err) && !meta.IsNoMatchError(err) {
			return nil, fmt.Errorf("pushmonitor %q not found in namespace %q", name, ns)
		}
		return nil, friendly(err)
	}
	return &m, nil
}

// pushSecret is what push, ping and url need from a monitor's Secret. The
// token stays in this struct: nothing formats it but url.
type pushSecret struct {
	monitor string // namespace/name, for messages
	token   string
	url     string // the Secret's url: <base>/api/push/<token>
}

// readPushSecret reads the Secret status.secretName names. Before the
// reconciler issued a token, it says so with the Ready condition's reason.
func (o *Options) readPushSecret(ctx context.Context, m *monitoringv1alpha1.PushMonitor) (*pushSecret, error) {
	c, err := o.Client()
	if err != nil {
		return nil, err
	}
	ref := m.Namespace + "/" + m.Name
	if m.Status.SecretName == "" {
		return nil, errNoToken(m)
	}
	var s corev1.Secret
	if err := c.Get(ctx, client.ObjectKey{Namespace: m.Namespace, Name: m.Status.SecretName}, &s); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("pushmonitor %s: its Secret %q is not there (yet): %s", ref, m.Status.SecretName, readyReason(m))
		}
		return nil, friendly(err)
	}
	ps := &pushSecret{monitor: ref, token: string(s.Data[token.SecretKeyToken]), url: string(s.Data[token.SecretKeyURL])}
	if !token.WellFormed(ps.token) || !strings.HasSuffix(ps.url, token.PushPathPrefix+ps.token) {
		// Never say what is there: it may be most of a token.
		return nil, fmt.Errorf("pushmon has not issued a push token into Secret %s/%s (yet): %s", m.Namespace, s.Name, readyReason(m))
	}
	return ps, nil
}

// baseURL is the push endpoint's base, the Secret's url without
// /api/push/<token>.
func (p *pushSecret) baseURL() string {
	return strings.TrimSuffix(p.url, token.PushPathPrefix+p.token)
}

func errNoToken(m *monitoringv1alpha1.PushMonitor) error {
	return fmt.Errorf("pushmonitor %s/%s has no push token yet: %s", m.Namespace, m.Name, readyReason(m))
}

// readyReason says why a monitor is not Ready, from its condition.
func readyReason(m *monitoringv1alpha1.PushMonitor) string {
	c := meta.FindStatusCondition(m.Status.Conditions, monitoringv1alpha1.ReadyCondition)
	switch {
	case c == nil:
		return "not reconciled yet (is the pushmon manager running?)"
	case c.Status == "True":
		return "Ready"
	case c.Message != "":
		return fmt.Sprintf("Ready=%s, %s: %s", c.Status, c.Reason, c.Message)
	default:
		return fmt.Sprintf("Ready=%s, %s", c.Status, c.Reason)
	}
}

// friendly turns the API errors users meet into one line that says what to
// do; others pass unchanged.
func friendly(err error) error {
	var status apierrors.APIStatus
	switch {
	case err == nil:
		return nil
	case meta.IsNoMatchError(err):
		return fmt.Errorf("the cluster has no PushMonitor API (%s): is pushmon installed?", monitoringv1alpha1.GroupVersion)
	case apierrors.IsForbidden(err) && errors.As(err, &status):
		// The server's message names the user, verb, resource and namespace.
		return fmt.Errorf("forbidden: %s (ask for RBAC that allows it)", status.Status().Message)
	case apierrors.IsUnauthorized(err):
		return fmt.Errorf("unauthorized: the API server did not accept your credentials (check your kubeconfig): %w", err)
	}
	return err
}

// oneLine folds a multi-line message into one.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
