// Package inject is pushmon's mutating admission webhook for Pods: a pod
// template annotated with monitoring.pushmon.dev/monitor: <name> gets the
// env vars PUSH_URL and PUSH_INTERVAL, each a secretKeyRef to that monitor's
// Secret, so no token is ever copied into a manifest or a pod spec.
package inject

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
	"github.com/pushmon/pushmon/internal/token"
)

const (
	// EnvPushURL and EnvPushInterval are the injected variables.
	EnvPushURL      = "PUSH_URL"
	EnvPushInterval = "PUSH_INTERVAL"
	// Path is where the webhook is served.
	Path = "/mutate-v1-pod"

	actionInject = "InjectPushURL"
)

// The webhook's configuration. failurePolicy=ignore: pushmon being down
// must never block workloads (the pod then starts without PUSH_URL).
// Only pods carrying the annotation reach the webhook: config/webhook adds
// a matchCondition on it, which the marker cannot express.
// +kubebuilder:webhook:path=/mutate-v1-pod,mutating=true,failurePolicy=ignore,sideEffects=NoneOnDryRun,groups="",resources=pods,verbs=create,versions=v1,name=inject.pushmon.dev,admissionReviewVersions=v1,timeoutSeconds=5,reinvocationPolicy=Never

// PodInjector adds the push env vars to opted-in pods.
type PodInjector struct {
	// Reader reads PushMonitors (the manager's cache).
	Reader   client.Reader
	Decoder  admission.Decoder
	Recorder events.EventRecorder
}

// Handle implements admission.Handler.
func (p *PodInjector) Handle(ctx context.Context, req admission.Request) admission.Response {
	pod := &corev1.Pod{}
	if err := p.Decoder.Decode(req, pod); err != nil {
		return admission.Errored(http.StatusBadRequest, err)
	}
	name, ok := pod.Annotations[monitoringv1alpha1.MonitorKey]
	if !ok {
		return admission.Allowed("not opted in to push URL injection")
	}
	secretName, problem := p.secretFor(ctx, req.Namespace, name)
	if problem != "" {
		if req.DryRun == nil || !*req.DryRun {
			p.warn(req.Namespace, pod, problem)
		}
		return admission.Allowed(problem).WithWarnings(problem)
	}
	if !Inject(pod, secretName) {
		return admission.Allowed("PUSH_URL and PUSH_INTERVAL already set in every container")
	}
	mutated, err := json.Marshal(pod)
	if err != nil {
		return admission.Errored(http.StatusInternalServerError, err)
	}
	return admission.PatchResponseFromRaw(req.Object.Raw, mutated)
}

// secretFor returns the Secret a pod opted in to monitor name reads, or why
// it cannot be injected.
func (p *PodInjector) secretFor(ctx context.Context, namespace, name string) (secret, problem string) {
	var m monitoringv1alpha1.PushMonitor
	err := p.Reader.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, &m)
	switch {
	case apierrors.IsNotFound(err):
		return "", fmt.Sprintf("pushmon: PushMonitor %q not found in namespace %s (annotation %s); pod admitted without %s",
			name, namespace, monitoringv1alpha1.MonitorKey, EnvPushURL)
	case err != nil:
		logf.FromContext(ctx).Error(err, "reading PushMonitor for injection", "namespace", namespace, "name", name)
		return "", fmt.Sprintf("pushmon: cannot read PushMonitor %q in namespace %s: %v; pod admitted without %s",
			name, namespace, err, EnvPushURL)
	}
	// A Secret of that name that pushmon does not own holds no push URL of
	// this monitor; pointing the pod at it would leak or break.
	if c := meta.FindStatusCondition(m.Status.Conditions, monitoringv1alpha1.ReadyCondition); c != nil &&
		c.Reason == monitoringv1alpha1.SecretConflictReason {
		return "", fmt.Sprintf("pushmon: PushMonitor %q cannot issue its token (%s); pod admitted without %s",
			name, c.Message, EnvPushURL)
	}
	return m.DesiredSecretName(), ""
}

// warn records a Warning event. A pod created from a template (by a Job,
// ReplicaSet, ...) has no name yet during admission, so the event then
// regards the pod's controller instead, where `kubectl describe` shows it.
func (p *PodInjector) warn(namespace string, pod *corev1.Pod, note string) {
	var regarding runtime.Object
	switch owner := metav1.GetControllerOf(pod); {
	case pod.Name != "":
		regarding = &corev1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: namespace, Name: pod.Name}
	case owner != nil:
		regarding = &corev1.ObjectReference{Kind: owner.Kind, APIVersion: owner.APIVersion, Namespace: namespace,
			Name: owner.Name, UID: owner.UID}
	default:
		return // nothing an event could point at; the admission warning remains
	}
	p.Recorder.Eventf(regarding, nil, corev1.EventTypeWarning, monitoringv1alpha1.MonitorNotFoundReason, actionInject, "%s", note)
}

// Inject adds PUSH_URL and PUSH_INTERVAL from Secret secretName to every
// container and init container that does not define them already (a
// container's own value wins). It reports whether it changed the pod.
func Inject(pod *corev1.Pod, secretName string) bool {
	vars := []corev1.EnvVar{
		secretEnv(EnvPushURL, secretName, token.SecretKeyURL),
		secretEnv(EnvPushInterval, secretName, token.SecretKeyInterval),
	}
	changed := false
	for _, cs := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for i := range cs {
			for _, v := range vars {
				if !hasEnv(&cs[i], v.Name) {
					cs[i].Env = append(cs[i].Env, v)
					changed = true
				}
			}
		}
	}
	return changed
}

func secretEnv(name, secret, key string) corev1.EnvVar {
	return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{
		SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: secret}, Key: key},
	}}
}

func hasEnv(c *corev1.Container, name string) bool {
	for _, e := range c.Env {
		if e.Name == name {
			return true
		}
	}
	return false
}
