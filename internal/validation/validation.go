// Package validation is pushmon's validating admission webhook for
// PushMonitors: it refuses at apply time what the CRD's schema and CEL
// rules cannot check, a schedule that does not parse or a time zone that
// does not exist, with the parser's own message.
package validation

import (
	"context"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
)

// failurePolicy=fail: a monitor must not be stored with a schedule nobody
// checked. It concerns PushMonitors only, so pushmon being down blocks
// nothing but PushMonitor changes (the reconciler would still report an
// invalid schedule as Ready=False, InvalidSchedule).
// +kubebuilder:webhook:path=/validate-monitoring-pushmon-dev-v1alpha1-pushmonitor,mutating=false,failurePolicy=fail,sideEffects=None,groups=monitoring.pushmon.dev,resources=pushmonitors,verbs=create;update,versions=v1alpha1,name=vpushmonitor.pushmon.dev,admissionReviewVersions=v1,timeoutSeconds=5

// Setup registers the webhook on mgr's webhook server.
func Setup(mgr ctrl.Manager) error {
	return ctrl.NewWebhookManagedBy(mgr, &monitoringv1alpha1.PushMonitor{}).WithValidator(Validator{}).Complete()
}

// Validator checks PushMonitors.
type Validator struct{}

// ValidateCreate refuses a monitor whose schedule or time zone is invalid.
func (Validator) ValidateCreate(_ context.Context, m *monitoringv1alpha1.PushMonitor) (admission.Warnings, error) {
	return nil, validate(m)
}

// ValidateUpdate refuses an update to an invalid schedule or time zone.
func (Validator) ValidateUpdate(_ context.Context, _, m *monitoringv1alpha1.PushMonitor) (admission.Warnings, error) {
	return nil, validate(m)
}

// ValidateDelete allows every deletion.
func (Validator) ValidateDelete(context.Context, *monitoringv1alpha1.PushMonitor) (admission.Warnings, error) {
	return nil, nil
}

func validate(m *monitoringv1alpha1.PushMonitor) error {
	if m.Spec.Schedule == "" {
		return nil
	}
	var errs field.ErrorList
	if _, err := monitoringv1alpha1.LoadTimeZone(m.Spec.TimeZone); err != nil {
		errs = append(errs, field.Invalid(field.NewPath("spec", "timeZone"), *m.Spec.TimeZone, err.Error()))
	} else if _, err := m.ParsedSchedule(); err != nil {
		errs = append(errs, field.Invalid(field.NewPath("spec", "schedule"), m.Spec.Schedule, err.Error()))
	}
	if len(errs) == 0 {
		return nil
	}
	return apierrors.NewInvalid(schema.GroupKind{Group: monitoringv1alpha1.GroupVersion.Group, Kind: "PushMonitor"}, m.Name, errs)
}
