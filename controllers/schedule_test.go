package controllers_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
)

// fakeNow, when set, is the reconciler's clock (the push endpoint keeps the
// real one). Tests in this package run one at a time.
var fakeNow atomic.Pointer[time.Time]

func suiteNow() time.Time {
	if t := fakeNow.Load(); t != nil {
		return *t
	}
	return time.Now()
}

// clockFunc is a clock.PassiveClock that reads the time from a function.
type clockFunc func() time.Time

func (f clockFunc) Now() time.Time                  { return f() }
func (f clockFunc) Since(t time.Time) time.Duration { return f().Sub(t) }

// setClock sets the reconciler's clock until the test ends.
func setClock(t *testing.T, at time.Time) {
	fakeNow.Store(&at)
	t.Cleanup(func() { fakeNow.Store(nil) })
}

// nextRunTime in status follows the schedule in its time zone on both sides
// of Europe/Berlin's DST changes, as a CronJob would: 02:30 does not exist
// on 2026-03-29 and exists twice on 2026-10-25.
func TestScheduleNextRunAcrossDST(t *testing.T) {
	for _, c := range []struct{ name, clock, want string }{
		{"winter time", "2026-03-27T12:00:00Z", "2026-03-28T01:30:00Z"},
		{"the spring-forward night has no 02:30", "2026-03-28T12:00:00Z", "2026-03-30T00:30:00Z"},
		{"fall back: the second 02:30", "2026-10-25T00:45:00Z", "2026-10-25T01:30:00Z"},
		{"winter time again", "2026-10-25T12:00:00Z", "2026-10-26T01:30:00Z"},
	} {
		t.Run(c.name, func(t *testing.T) {
			g := NewWithT(t)
			clock, _ := time.Parse(time.RFC3339, c.clock)
			want, _ := time.Parse(time.RFC3339, c.want)
			setClock(t, clock)
			berlin := "Europe/Berlin"
			m := monitor(newNamespace(t), "nightly", monitoringv1alpha1.PushMonitorSpec{Schedule: "30 2 * * *", TimeZone: &berlin})
			createMonitor(t, m)
			// Deleted before the real clock returns, which is past its deadline.
			t.Cleanup(func() { _ = k8sClient.Delete(context.Background(), m) })
			g.Eventually(func(g Gomega) {
				got := getMonitor(g, m)
				g.Expect(got.Status.State).To(Equal(monitoringv1alpha1.StatePending))
				g.Expect(got.Status.NextRunTime).NotTo(BeNil())
				g.Expect(got.Status.NextRunTime.Time.UTC()).To(Equal(want))
				g.Expect(got.Status.Deadline.Time.UTC()).To(Equal(want.Add(monitoringv1alpha1.DefaultScheduleGracePeriod)))
			}).Should(Succeed())
		})
	}
}

// In real time: a schedule nobody reports on goes Down (ScheduleMissed) at
// the scheduled time + grace; a report brings it back and moves nextRunTime.
func TestScheduleMissedAndRecovered(t *testing.T) {
	g := NewWithT(t)
	m := monitor(newNamespace(t), "every-2s", monitoringv1alpha1.PushMonitorSpec{Schedule: "@every 2s", GracePeriod: dur(time.Second)})
	tok := createMonitor(t, m)
	got := expectState(t, m, monitoringv1alpha1.StateDown, monitoringv1alpha1.ScheduleMissedReason, 10*time.Second)
	g.Expect(got.Status.NextRunTime).NotTo(BeNil())
	g.Expect(meta.FindStatusCondition(got.Status.Conditions, monitoringv1alpha1.HealthyCondition).Message).
		To(ContainSubstring(`(schedule "@every 2s" in UTC, grace 1s)`))
	expectEvents(t, m, monitoringv1alpha1.ScheduleMissedReason, 1)

	before := time.Now()
	mustPush(t, tok, "msg=ran")
	got = expectState(t, m, monitoringv1alpha1.StateUp, monitoringv1alpha1.RecoveredReason, 10*time.Second)
	g.Expect(got.Status.NextRunTime.Time).To(BeTemporally(">", before))
	g.Expect(got.Status.Deadline.Time).To(Equal(got.Status.NextRunTime.Add(time.Second)))
}

// A schedule that reached the reconciler unchecked (no validating webhook
// runs in this suite) is reported, not retried.
func TestInvalidScheduleIsReported(t *testing.T) {
	g := NewWithT(t)
	m := monitor(newNamespace(t), "bad", monitoringv1alpha1.PushMonitorSpec{Schedule: "61 * * * *"})
	g.Expect(k8sClient.Create(context.Background(), m)).To(Succeed())
	g.Eventually(func(g Gomega) {
		c := meta.FindStatusCondition(getMonitor(g, m).Status.Conditions, monitoringv1alpha1.ReadyCondition)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Status).To(Equal(metav1.ConditionFalse))
		g.Expect(c.Reason).To(Equal(monitoringv1alpha1.InvalidScheduleReason))
		g.Expect(c.Message).To(ContainSubstring(`invalid schedule "61 * * * *"`))
	}).Should(Succeed())
	expectEvents(t, m, monitoringv1alpha1.InvalidScheduleReason, 1)
}
