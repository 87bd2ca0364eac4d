package heartbeat

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
)

func upMonitor() *monitoringv1alpha1.PushMonitor {
	at := metav1.NewMicroTime(time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC))
	return &monitoringv1alpha1.PushMonitor{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "m", UID: "uid-1"},
		Status: monitoringv1alpha1.PushMonitorStatus{State: monitoringv1alpha1.StateUp, LastHeartbeatTime: &at,
			LastReportedStatus: monitoringv1alpha1.ReportedUp, LastMessage: "ok"},
	}
}

func TestLiveKeepsTheNewestBeatOfThisTerm(t *testing.T) {
	g := NewWithT(t)
	m := upMonitor()
	key := types.NamespacedName{Namespace: "ns", Name: "m"}
	stored := m.Status.LastHeartbeatTime.Time
	l := NewLive()

	g.Expect(l.Put(key, Beat{UID: m.UID, Time: stored.Add(time.Second)})).To(BeFalse(), "not leading: nothing held")
	l.Lead(true)
	g.Expect(l.Put(key, Beat{UID: m.UID, Time: stored.Add(2 * time.Second), Value: "2"})).To(BeTrue())
	g.Expect(l.Put(key, Beat{UID: m.UID, Time: stored.Add(time.Second), Value: "1"})).To(BeTrue(), "an older beat is taken and dropped")
	b, ok := l.Newer(m)
	g.Expect(ok).To(BeTrue())
	g.Expect(b.Value).To(Equal("2"))

	newer := m.DeepCopy()
	at := metav1.NewMicroTime(stored.Add(3 * time.Second))
	newer.Status.LastHeartbeatTime = &at
	_, ok = l.Newer(newer)
	g.Expect(ok).To(BeFalse(), "status holds a newer heartbeat")

	recreated := m.DeepCopy()
	recreated.UID = "uid-2"
	_, ok = l.Newer(recreated)
	g.Expect(ok).To(BeFalse(), "a beat of the monitor's previous incarnation")

	l.Lead(false)
	g.Expect(l.Len()).To(BeZero(), "a term's beats end with it")
	l.Lead(true)
	_, ok = l.Newer(m)
	g.Expect(ok).To(BeFalse())
}

func TestRelayable(t *testing.T) {
	code := int32(0)
	for _, c := range []struct {
		name string
		edit func(*monitoringv1alpha1.PushMonitor, *Heartbeat)
		want bool
	}{
		{"an up push repeating the message", func(*monitoringv1alpha1.PushMonitor, *Heartbeat) {}, true},
		{"a new message", func(_ *monitoringv1alpha1.PushMonitor, hb *Heartbeat) { hb.Message = "new" }, false},
		{"a down push", func(_ *monitoringv1alpha1.PushMonitor, hb *Heartbeat) { hb.Status = monitoringv1alpha1.ReportedDown }, false},
		{"a run signal", func(_ *monitoringv1alpha1.PushMonitor, hb *Heartbeat) { hb.Kind = KindSuccess }, false},
		{"an exit status", func(_ *monitoringv1alpha1.PushMonitor, hb *Heartbeat) { hb.ExitCode = &code }, false},
		{"a run id", func(_ *monitoringv1alpha1.PushMonitor, hb *Heartbeat) { hb.RunID = "r1" }, false},
		{"the first heartbeat of a Pending monitor", func(m *monitoringv1alpha1.PushMonitor, hb *Heartbeat) {
			m.Status = monitoringv1alpha1.PushMonitorStatus{State: monitoringv1alpha1.StatePending}
			hb.Message = "first"
		}, true},
		{"Pending with a heartbeat stored", func(m *monitoringv1alpha1.PushMonitor, _ *Heartbeat) {
			m.Status.State = monitoringv1alpha1.StatePending
		}, false},
		{"Down for silence, a new message", func(m *monitoringv1alpha1.PushMonitor, hb *Heartbeat) {
			m.Status.State = monitoringv1alpha1.StateDown
			m.Status.Conditions = []metav1.Condition{{Type: monitoringv1alpha1.HealthyCondition, Reason: monitoringv1alpha1.HeartbeatMissedReason}}
			hb.Message = "back"
		}, true},
		{"Down for silence, never a heartbeat", func(m *monitoringv1alpha1.PushMonitor, _ *Heartbeat) {
			m.Status = monitoringv1alpha1.PushMonitorStatus{State: monitoringv1alpha1.StateDown,
				Conditions: []metav1.Condition{{Type: monitoringv1alpha1.HealthyCondition, Reason: monitoringv1alpha1.HeartbeatMissedReason}}}
		}, true},
		{"Down for a report", func(m *monitoringv1alpha1.PushMonitor, _ *Heartbeat) {
			m.Status.State, m.Status.LastReportedStatus = monitoringv1alpha1.StateDown, monitoringv1alpha1.ReportedDown
			m.Status.Conditions = []metav1.Condition{{Type: monitoringv1alpha1.HealthyCondition, Reason: monitoringv1alpha1.DownReportedReason}}
			m.Status.LastFailure = &monitoringv1alpha1.FailureReport{Status: monitoringv1alpha1.ReportedDown, Shown: true}
		}, false},
		{"Down for a run too long", func(m *monitoringv1alpha1.PushMonitor, _ *Heartbeat) {
			m.Status.State = monitoringv1alpha1.StateDown
			m.Status.Conditions = []metav1.Condition{{Type: monitoringv1alpha1.HealthyCondition, Reason: monitoringv1alpha1.RunTooLongReason}}
		}, false},
		{"Down with no reason", func(m *monitoringv1alpha1.PushMonitor, _ *Heartbeat) { m.Status.State = monitoringv1alpha1.StateDown }, false},
		{"Up after a failure below the threshold", func(m *monitoringv1alpha1.PushMonitor, _ *Heartbeat) {
			m.Status.LastReportedStatus = monitoringv1alpha1.ReportedDown
		}, false},
		{"a failure not shown yet", func(m *monitoringv1alpha1.PushMonitor, _ *Heartbeat) {
			m.Status.LastFailure = &monitoringv1alpha1.FailureReport{Status: monitoringv1alpha1.ReportedDown}
		}, false},
		{"a failure shown", func(m *monitoringv1alpha1.PushMonitor, _ *Heartbeat) {
			m.Status.LastFailure = &monitoringv1alpha1.FailureReport{Status: monitoringv1alpha1.ReportedDown, Shown: true}
		}, true},
		{"suspended", func(m *monitoringv1alpha1.PushMonitor, _ *Heartbeat) { m.Spec.Suspend = true }, false},
		{"a schedule", func(m *monitoringv1alpha1.PushMonitor, _ *Heartbeat) { m.Spec.Schedule = "0 3 * * *" }, false},
		{"a followed CronJob", func(m *monitoringv1alpha1.PushMonitor, _ *Heartbeat) {
			m.Spec.CronJobRef = &monitoringv1alpha1.CronJobReference{Name: "backup"}
		}, false},
		{"a monitor that counts runs", func(m *monitoringv1alpha1.PushMonitor, _ *Heartbeat) { m.Spec.FailureThreshold = 2 }, false},
		{"a run open", func(m *monitoringv1alpha1.PushMonitor, _ *Heartbeat) {
			m.Status.OpenRuns = []monitoringv1alpha1.OpenRun{{StartTime: *m.Status.LastHeartbeatTime}}
		}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := upMonitor()
			hb := Heartbeat{Time: m.Status.LastHeartbeatTime.Add(time.Second), Status: monitoringv1alpha1.ReportedUp, Message: "ok"}
			c.edit(m, &hb)
			NewWithT(t).Expect(Relayable(m, hb)).To(Equal(c.want))
		})
	}
}

// A beat that ends its monitor's state wakes the reconciler, once it is
// held as the newest; other beats, and beats not taken, do not.
func TestLiveWakesOnBeatsThatEndAState(t *testing.T) {
	g := NewWithT(t)
	m := upMonitor()
	key := types.NamespacedName{Namespace: "ns", Name: "m"}
	stored := m.Status.LastHeartbeatTime.Time
	l := NewLive()
	var woken []types.NamespacedName
	l.OnEnds(func(k types.NamespacedName) { woken = append(woken, k) })

	g.Expect(l.Put(key, Beat{UID: m.UID, Time: stored.Add(time.Second), Ends: true})).To(BeFalse())
	g.Expect(woken).To(BeEmpty(), "not leading: not taken, nothing to wake")
	l.Lead(true)
	g.Expect(l.Put(key, Beat{UID: m.UID, Time: stored.Add(time.Second)})).To(BeTrue())
	g.Expect(woken).To(BeEmpty(), "an alive beat waits for the recheck")
	g.Expect(l.Put(key, Beat{UID: m.UID, Time: stored.Add(2 * time.Second), Ends: true})).To(BeTrue())
	g.Expect(woken).To(Equal([]types.NamespacedName{key}))
	g.Expect(l.Put(key, Beat{UID: m.UID, Time: stored.Add(time.Second), Ends: true})).To(BeTrue())
	g.Expect(woken).To(HaveLen(1), "an older beat is dropped, nothing to wake for")
}
