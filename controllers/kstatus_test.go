package controllers_test

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
)

// kstatusOf computes the health Flux, Argo CD and kubectl wait read from a
// monitor as the API serves it.
func kstatusOf(g Gomega, m *monitoringv1alpha1.PushMonitor) status.Status {
	got := getMonitor(g, m)
	got.APIVersion, got.Kind = monitoringv1alpha1.GroupVersion.String(), "PushMonitor"
	obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(got)
	g.Expect(err).NotTo(HaveOccurred())
	res, err := status.Compute(&unstructured.Unstructured{Object: obj})
	g.Expect(err).NotTo(HaveOccurred())
	return res.Status
}

// A monitor's kstatus: Current whenever pushmon has set it up, whatever the
// watched job's health (Down is the job's state, not the object's); Failed
// when it cannot work without a change (Stalled); InProgress while pushmon
// is still setting it up and retrying (Reconciling).
func TestKstatus(t *testing.T) {
	for _, c := range []struct {
		name  string
		spec  monitoringv1alpha1.PushMonitorSpec
		setup func(t *testing.T, ns string)
		push  string // a push once Ready ("": none)
		state monitoringv1alpha1.MonitorState
		want  status.Status
	}{
		{name: "pending", spec: monitoringv1alpha1.PushMonitorSpec{Timeout: dur(time.Hour)},
			state: monitoringv1alpha1.StatePending, want: status.CurrentStatus},
		{name: "up", spec: monitoringv1alpha1.PushMonitorSpec{Timeout: dur(time.Hour)}, push: "msg=ok",
			state: monitoringv1alpha1.StateUp, want: status.CurrentStatus},
		{name: "down", spec: monitoringv1alpha1.PushMonitorSpec{Timeout: dur(time.Hour)}, push: "status=down&msg=broken",
			state: monitoringv1alpha1.StateDown, want: status.CurrentStatus},
		{name: "suspended", spec: monitoringv1alpha1.PushMonitorSpec{Timeout: dur(time.Hour), Suspend: true},
			state: monitoringv1alpha1.StateSuspended, want: status.CurrentStatus},
		{name: "invalid-schedule", spec: monitoringv1alpha1.PushMonitorSpec{Schedule: "61 * * * *"},
			want: status.FailedStatus},
		{name: "secret-conflict", spec: monitoringv1alpha1.PushMonitorSpec{Timeout: dur(time.Hour)},
			setup: func(t *testing.T, ns string) {
				foreign := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "secret-conflict-push"}}
				NewWithT(t).Expect(k8sClient.Create(context.Background(), foreign)).To(Succeed())
			},
			state: monitoringv1alpha1.StatePending, want: status.FailedStatus},
		{name: "cronjob-not-found", spec: monitoringv1alpha1.PushMonitorSpec{
			CronJobRef: &monitoringv1alpha1.CronJobReference{Name: "not-yet"}},
			state: monitoringv1alpha1.StatePending, want: status.InProgressStatus},
	} {
		t.Run(c.name, func(t *testing.T) {
			g := NewWithT(t)
			ns := newNamespace(t)
			if c.setup != nil {
				c.setup(t, ns)
			}
			m := monitor(ns, c.name, c.spec)
			if c.push != "" {
				mustPush(t, createMonitor(t, m), c.push)
			} else {
				g.Expect(k8sClient.Create(context.Background(), m)).To(Succeed())
			}
			g.Eventually(func(g Gomega) {
				got := getMonitor(g, m)
				g.Expect(got.Status.ObservedGeneration).To(Equal(got.Generation))
				if c.state != "" {
					g.Expect(got.Status.State).To(Equal(c.state))
				}
				g.Expect(kstatusOf(g, m)).To(Equal(c.want))
				// ... for the reason pushmon gives, not by accident.
				conds := got.Status.Conditions
				g.Expect(meta.IsStatusConditionTrue(conds, monitoringv1alpha1.StalledCondition)).To(Equal(c.want == status.FailedStatus))
				g.Expect(meta.IsStatusConditionTrue(conds, monitoringv1alpha1.ReconcilingCondition)).To(Equal(c.want == status.InProgressStatus))
			}).Should(Succeed())
		})
	}
}
