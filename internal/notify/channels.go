package notify

import (
	"context"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
)

// invalidRecheck is how often an invalid channel is checked again: its
// Secret is not watched (the cache holds only pushmon's own Secrets).
const invalidRecheck = time.Minute

func equalAny(a, b any) bool { return equality.Semantic.DeepEqual(a, b) }

// channelReconciler validates a channel (Ready) and sends its test message
// when the test-notification annotation takes a new value.
type channelReconciler struct {
	n       *Notifier
	cluster bool
}

func (r *channelReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	var obj client.Object = &monitoringv1alpha1.AlertChannel{}
	kind := monitoringv1alpha1.AlertChannelKindNamespaced
	if r.cluster {
		obj, kind = &monitoringv1alpha1.ClusterAlertChannel{}, monitoringv1alpha1.AlertChannelKindCluster
	}
	if err := r.n.client.Get(ctx, req.NamespacedName, obj); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	spec := channelSpec(obj)
	ns := obj.GetNamespace()
	if r.cluster && spec.SecretRef != nil {
		ns = spec.SecretRef.Namespace
	}
	id := string(kind) + "/" + obj.GetName()
	_, invalid := r.n.channel(ctx, id, ns, spec)
	st := channelStatus(obj)
	want := obj.GetAnnotations()[monitoringv1alpha1.TestNotificationAnnotation]
	test := want != "" && want != st.LastTestNotification && !spec.Suspend && invalid == nil

	select {
	case <-r.n.started:
	default:
		return reconcile.Result{RequeueAfter: 100 * time.Millisecond}, nil
	}
	r.n.updateChannel(obj, func(st *monitoringv1alpha1.AlertChannelStatus, gen int64) {
		st.ObservedGeneration = gen
		ready := meta.FindStatusCondition(st.Conditions, monitoringv1alpha1.ReadyCondition)
		switch {
		case invalid != nil:
			st.LastError = limit(invalid.Error(), maxErrorLength)
			setReady(st, gen, metav1.ConditionFalse, monitoringv1alpha1.InvalidChannelReason, invalid.Error())
		case spec.Suspend:
			setReady(st, gen, metav1.ConditionTrue, monitoringv1alpha1.ChannelSuspendedReason, "suspended: nothing is sent")
		case ready == nil || ready.ObservedGeneration != gen || ready.Reason == monitoringv1alpha1.InvalidChannelReason ||
			ready.Reason == monitoringv1alpha1.ChannelSuspendedReason:
			// A new or changed spec starts afresh; the deliveries' result
			// stays until then.
			st.LastError = ""
			setReady(st, gen, metav1.ConditionTrue, monitoringv1alpha1.ChannelConfiguredReason, "configured; nothing delivered yet")
		}
	})
	if test {
		// Once per value, also while the cache still shows the old one.
		testKey := "test|" + id
		r.n.mu.Lock()
		test = r.n.tests[testKey] != want
		r.n.tests[testKey] = want
		r.n.mu.Unlock()
	}
	if test {
		t := target{id: id, namespace: ns, spec: spec, created: obj.GetCreationTimestamp().Time, obj: obj}
		go func() {
			note := Notification{Event: monitoringv1alpha1.NotifyTest, Channel: id, Time: r.n.now(), Namespace: obj.GetNamespace(), Name: obj.GetName()}
			err := r.n.deliver(t, &note)
			r.n.channelResult(t, err)
			r.n.updateChannel(obj, func(st *monitoringv1alpha1.AlertChannelStatus, _ int64) { st.LastTestNotification = want })
			if err != nil {
				r.n.log.Error(err, "test notification not delivered", "channel", id)
			} else {
				r.n.log.Info("test notification delivered", "channel", id)
			}
		}()
	}
	if invalid != nil {
		return reconcile.Result{RequeueAfter: invalidRecheck}, nil //nolint:nilerr // shown in Ready; the Secret is not watched, so look again later
	}
	return reconcile.Result{}, nil
}

func channelSpec(o client.Object) monitoringv1alpha1.AlertChannelSpec {
	switch c := o.(type) {
	case *monitoringv1alpha1.AlertChannel:
		return c.Spec
	case *monitoringv1alpha1.ClusterAlertChannel:
		return c.Spec
	}
	return monitoringv1alpha1.AlertChannelSpec{}
}
