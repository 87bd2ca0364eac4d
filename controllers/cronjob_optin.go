package controllers

import (
	"context"
	"fmt"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
)

const (
	actionOptIn = "CreatePushMonitor"
)

// +kubebuilder:rbac:groups=monitoring.pushmon.dev,resources=pushmonitors,verbs=create;delete

// CronJobOptInReconciler creates and removes the PushMonitors of CronJobs
// annotated monitoring.pushmon.dev/monitor: auto. The monitor is named
// after the CronJob, follows it (spec.cronJobRef) with default settings and
// is owned by it, so it goes when the CronJob goes. Explicit PushMonitors
// remain the GitOps way; an existing one of the same name is never taken
// over.
type CronJobOptInReconciler struct {
	client.Client
	Recorder events.EventRecorder
}

// Reconcile implements reconcile.Reconciler.
func (r *CronJobOptInReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var cj batchv1.CronJob
	if err := r.Get(ctx, req.NamespacedName, &cj); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err) // the garbage collector removes its monitor
	}
	var m monitoringv1alpha1.PushMonitor
	err := r.Get(ctx, req.NamespacedName, &m)
	exists := err == nil
	if err != nil && !apierrors.IsNotFound(err) {
		return ctrl.Result{}, err
	}
	ours := exists && metav1.IsControlledBy(&m, &cj)
	want := cj.Annotations[monitoringv1alpha1.MonitorKey] == monitoringv1alpha1.AutoMonitor && cj.DeletionTimestamp.IsZero()
	switch {
	case want && !exists:
		m = monitoringv1alpha1.PushMonitor{
			ObjectMeta: metav1.ObjectMeta{Namespace: cj.Namespace, Name: cj.Name,
				Labels: map[string]string{"app.kubernetes.io/managed-by": "pushmon"}},
			Spec: monitoringv1alpha1.PushMonitorSpec{CronJobRef: &monitoringv1alpha1.CronJobReference{Name: cj.Name}},
		}
		if err := controllerutil.SetControllerReference(&cj, &m, r.Scheme()); err != nil {
			return ctrl.Result{}, err
		}
		if err := r.Create(ctx, &m); err != nil {
			return ctrl.Result{}, client.IgnoreAlreadyExists(err)
		}
		r.Recorder.Eventf(&cj, nil, corev1.EventTypeNormal, monitoringv1alpha1.MonitorCreatedReason, actionOptIn,
			"PushMonitor %s follows this CronJob (annotation %s: %s)", m.Name, monitoringv1alpha1.MonitorKey, monitoringv1alpha1.AutoMonitor)
	case want && !ours:
		r.Recorder.Eventf(&cj, nil, corev1.EventTypeWarning, monitoringv1alpha1.MonitorNameTakenReason, actionOptIn,
			"PushMonitor %s exists and was not created for this CronJob; pushmon leaves it alone (set its spec.cronJobRef to follow this CronJob)", m.Name)
	case !want && ours:
		// Opted out: the monitor pushmon created goes.
		if err := r.Delete(ctx, &m); client.IgnoreNotFound(err) != nil {
			return ctrl.Result{}, fmt.Errorf("deleting PushMonitor %s: %w", m.Name, err)
		}
	}
	return ctrl.Result{}, nil
}

// SetupWithManager watches CronJobs and the monitors they own.
func (r *CronJobOptInReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&batchv1.CronJob{}).
		Owns(&monitoringv1alpha1.PushMonitor{}).
		Named("cronjob-optin").
		Complete(r)
}
