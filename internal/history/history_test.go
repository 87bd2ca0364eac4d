package history

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
)

func TestAddTransitionKeepsTheNewest(t *testing.T) {
	g := NewWithT(t)
	t0 := time.Date(2026, 6, 10, 0, 0, 0, 0, time.UTC)
	var st monitoringv1alpha1.PushMonitorStatus
	for i := range 12 {
		AddTransition(&st, monitoringv1alpha1.TransitionRecord{Time: metav1.NewMicroTime(t0.Add(time.Duration(i) * time.Minute)),
			State: monitoringv1alpha1.StateUp, Reason: "R"}, monitoringv1alpha1.DefaultHistoryLimit)
	}
	g.Expect(st.RecentTransitions).To(HaveLen(monitoringv1alpha1.DefaultHistoryLimit))
	g.Expect(st.RecentTransitions[0].Time.Time).To(Equal(t0.Add(2 * time.Minute)))
	g.Expect(st.RecentTransitions[9].Time.Time).To(Equal(t0.Add(11 * time.Minute)))
	// A limit beyond the CRD's MaxItems is cut to it.
	for range 60 {
		AddTransition(&st, monitoringv1alpha1.TransitionRecord{Time: metav1.NewMicroTime(t0), State: monitoringv1alpha1.StateUp, Reason: "R"}, 1000)
	}
	g.Expect(st.RecentTransitions).To(HaveLen(monitoringv1alpha1.MaxHistoryLimit))
}

func TestShort(t *testing.T) {
	g := NewWithT(t)
	g.Expect(Short("ok")).To(Equal("ok"))
	long := strings.Repeat("ä", 300) // two bytes each
	s := Short(long)
	g.Expect(len(s)).To(BeNumerically("<=", monitoringv1alpha1.MaxHistoryMessage))
	g.Expect(utf8.ValidString(s)).To(BeTrue())
	g.Expect(s).To(HaveSuffix("…"))
}

func TestUptime(t *testing.T) {
	g := NewWithT(t)
	t0 := time.Date(2026, 6, 10, 0, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	st := &monitoringv1alpha1.PushMonitorStatus{}
	step := func(d time.Duration, s monitoringv1alpha1.MonitorState) {
		EnterState(st, st.State, s, at(d))
		st.State = s
	}
	g.Expect(Uptime(st, 24*time.Hour, at(0)).Known()).To(BeFalse())
	step(0, monitoringv1alpha1.StatePending)
	g.Expect(Uptime(st, 24*time.Hour, at(time.Hour)).Known()).To(BeFalse(), "Pending is not counted")
	step(time.Hour, monitoringv1alpha1.StateUp)
	step(11*time.Hour, monitoringv1alpha1.StateDown) // Down 1h
	step(12*time.Hour, monitoringv1alpha1.StateUp)
	step(13*time.Hour, monitoringv1alpha1.StateSuspended) // not counted
	step(15*time.Hour, monitoringv1alpha1.StateUp)
	step(20*time.Hour, monitoringv1alpha1.StateDown) // open, counted up to now

	f := Uptime(st, 24*time.Hour, at(21*time.Hour))
	// Counted from 1h (first Up) to 21h, less 2h Suspended: 18h; Down 1h + 1h.
	g.Expect(f.Counted).To(Equal(18 * time.Hour))
	g.Expect(f.Down).To(Equal(2 * time.Hour))
	g.Expect(f.Ratio).To(BeNumerically("~", 16.0/18, 1e-9))

	// A day later the 24h window starts at 45h-24h = 21h: Down throughout.
	f = Uptime(st, 24*time.Hour, at(45*time.Hour))
	g.Expect(f.Counted).To(Equal(24 * time.Hour))
	g.Expect(f.Ratio).To(BeZero())

	// Outages past the window are dropped; past MaxOutages the record says
	// since when it is complete.
	for i := range monitoringv1alpha1.MaxOutages + 2 {
		base := 50*time.Hour + time.Duration(i)*2*time.Minute
		step(base, monitoringv1alpha1.StateUp)
		step(base+time.Minute, monitoringv1alpha1.StateDown)
	}
	g.Expect(st.Uptime.Outages).To(HaveLen(monitoringv1alpha1.MaxOutages))
	g.Expect(st.Uptime.CompleteSince).NotTo(BeNil())
	f = Uptime(st, 7*24*time.Hour, at(60*time.Hour))
	g.Expect(f.Counted).To(Equal(at(60 * time.Hour).Sub(st.Uptime.CompleteSince.Time)))
}

func TestRunStats(t *testing.T) {
	g := NewWithT(t)
	var runs []monitoringv1alpha1.RunRecord
	for i := 1; i <= 20; i++ {
		r := monitoringv1alpha1.RunRecord{Result: monitoringv1alpha1.RunSucceeded, Duration: &metav1.Duration{Duration: time.Duration(i) * time.Second}}
		if i%4 == 0 {
			r.Result = monitoringv1alpha1.RunFailed
		}
		runs = append(runs, r)
	}
	runs = append(runs, monitoringv1alpha1.RunRecord{Result: monitoringv1alpha1.RunSucceeded}) // no start: not timed
	s := Runs(runs)
	g.Expect(s.Runs).To(Equal(21))
	g.Expect(s.Succeeded).To(Equal(16))
	g.Expect(s.Timed).To(Equal(20))
	g.Expect(s.P50).To(Equal(10 * time.Second))
	g.Expect(s.P95).To(Equal(19 * time.Second))
}
