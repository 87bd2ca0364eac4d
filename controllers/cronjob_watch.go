package controllers

import (
	"context"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
)

// Following a CronJob (spec.cronJobRef): the monitor takes the CronJob's
// schedule, time zone and suspend, and counts its Jobs as runs, so a
// CronJob is watched without a change to its code. What a failed run
// reports comes from the Job and its Pods.

// +kubebuilder:rbac:groups=batch,resources=cronjobs;jobs,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=list

const (
	// cronJobRefIndex indexes PushMonitors by spec.cronJobRef.name.
	cronJobRefIndex = ".spec.cronJobRef.name"
	// jobOwnerIndex indexes Jobs by the name of the CronJob that owns them.
	jobOwnerIndex = ".metadata.ownerReferences.cronJob"
)

// setupCronJobFollowing indexes and watches what following CronJobs needs.
func setupCronJobFollowing(ctx context.Context, mgr ctrl.Manager, b *ctrl.Builder) error {
	idx := mgr.GetFieldIndexer()
	if err := idx.IndexField(ctx, &monitoringv1alpha1.PushMonitor{}, cronJobRefIndex, func(o client.Object) []string {
		if ref := o.(*monitoringv1alpha1.PushMonitor).Spec.CronJobRef; ref != nil {
			return []string{ref.Name}
		}
		return nil
	}); err != nil {
		return err
	}
	if err := idx.IndexField(ctx, &batchv1.Job{}, jobOwnerIndex, func(o client.Object) []string {
		if ref := metav1.GetControllerOf(o); ref != nil && ref.Kind == "CronJob" {
			return []string{ref.Name}
		}
		return nil
	}); err != nil {
		return err
	}
	c := mgr.GetClient()
	monitorsOf := func(ctx context.Context, ns, cronJob string) []reconcile.Request {
		var list monitoringv1alpha1.PushMonitorList
		if err := c.List(ctx, &list, client.InNamespace(ns), client.MatchingFields{cronJobRefIndex: cronJob}); err != nil {
			return nil
		}
		out := make([]reconcile.Request, 0, len(list.Items))
		for i := range list.Items {
			out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
		}
		return out
	}
	jobMonitors := func(ctx context.Context, ns, job string) []reconcile.Request {
		var j batchv1.Job
		if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: job}, &j); err != nil {
			return nil
		}
		if ref := metav1.GetControllerOf(&j); ref != nil && ref.Kind == "CronJob" {
			return monitorsOf(ctx, ns, ref.Name)
		}
		return nil
	}
	b.Watches(&batchv1.CronJob{}, handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
		return monitorsOf(ctx, o.GetNamespace(), o.GetName())
	})).
		Watches(&batchv1.Job{}, handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
			if ref := metav1.GetControllerOf(o); ref != nil && ref.Kind == "CronJob" {
				return monitorsOf(ctx, o.GetNamespace(), ref.Name)
			}
			return nil
		})).
		Watches(&corev1.Pod{}, handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
			if job := o.GetLabels()[batchv1.JobNameLabel]; job != "" {
				return jobMonitors(ctx, o.GetNamespace(), job)
			}
			return nil
		}))
	return nil
}

// TrimForCache keeps only what following CronJobs reads of Jobs, Pods and
// CronJobs in the cache (a cache transform): pod templates and specs can be
// large, and pushmon may see many.
func TrimForCache(o any) (any, error) {
	switch v := o.(type) {
	case *batchv1.Job:
		v.Spec.Template = corev1.PodTemplateSpec{}
		v.ManagedFields = nil
	case *batchv1.CronJob:
		v.Spec.JobTemplate = batchv1.JobTemplateSpec{}
		v.ManagedFields = nil
	case *corev1.Pod:
		v.Spec = corev1.PodSpec{}
		v.ManagedFields = nil
		v.Annotations = nil
	}
	return o, nil
}
