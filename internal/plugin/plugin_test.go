package plugin

import (
	"errors"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"

	"github.com/pushmon/pushmon/internal/history"
	"github.com/pushmon/pushmon/internal/push"
)

func TestPingPathPrefix(t *testing.T) {
	NewWithT(t).Expect(pingPathPrefix).To(Equal(push.PingPathPrefix))
}

func TestLastRunString(t *testing.T) {
	for _, tc := range []struct {
		run  *LastRun
		want string
	}{
		{nil, "-"},
		{&LastRun{Result: "running"}, "running"},
		{&LastRun{Result: "succeeded", Duration: &metav1.Duration{Duration: 1500 * time.Millisecond}}, "succeeded in 1.5s"},
		{&LastRun{Result: "succeeded", ExitCode: ptr.To[int32](0), Duration: &metav1.Duration{Duration: 42 * time.Millisecond}}, "succeeded in 42ms"},
		{&LastRun{Result: "failed", ExitCode: ptr.To[int32](3), Duration: &metav1.Duration{Duration: 90 * time.Minute}}, "failed (exit 3) in 1h30m"},
		{&LastRun{Result: "failed"}, "failed"},
	} {
		NewWithT(t).Expect(tc.run.String()).To(Equal(tc.want))
	}
}

func TestShortDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		42 * time.Millisecond: "42ms", 1500 * time.Millisecond: "1.5s", 90 * time.Second: "1m30s",
		5 * time.Minute: "5m", time.Hour: "1h", 25 * time.Hour: "25h", 90 * time.Minute: "1h30m",
	} {
		NewWithT(t).Expect(shortDuration(d)).To(Equal(want))
	}
}

func TestLastRun(t *testing.T) {
	g := NewWithT(t)
	at := func(s int) *metav1.MicroTime { m := metav1.NewMicroTime(time.Unix(int64(s), 0)); return &m }
	// start, fail, then a plain up push: the run failed.
	st := &monitoringv1alpha1.PushMonitorStatus{LastStartTime: at(10), LastRunDuration: &metav1.Duration{Duration: time.Second},
		LastFailure:        &monitoringv1alpha1.FailureReport{Time: *at(11), Status: monitoringv1alpha1.ReportedFailed, ExitCode: ptr.To[int32](4)},
		LastReportedStatus: monitoringv1alpha1.ReportedUp}
	g.Expect(lastRun(st).String()).To(Equal("failed (exit 4) in 1s"))
	// A later start that succeeded.
	st.LastStartTime = at(20)
	g.Expect(lastRun(st).String()).To(Equal("succeeded in 1s"))
	// Still open.
	st.OpenRuns = []monitoringv1alpha1.OpenRun{{StartTime: *at(30)}}
	g.Expect(lastRun(st).String()).To(Equal("running"))
	// Exit status pings alone; plain heartbeats are no runs.
	g.Expect(lastRun(&monitoringv1alpha1.PushMonitorStatus{LastExitCode: ptr.To[int32](2)}).String()).To(Equal("failed (exit 2)"))
	g.Expect(lastRun(&monitoringv1alpha1.PushMonitorStatus{LastHeartbeatTime: at(1)})).To(BeNil())
}

func TestAgesAndDeadlines(t *testing.T) {
	g := NewWithT(t)
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	g.Expect(ago(nil, now)).To(Equal("-"))
	g.Expect(ago(ptr.To(now.Add(-75*time.Second)), now)).To(Equal("75s ago"))
	g.Expect(ago(ptr.To(now.Add(time.Second)), now)).To(Equal("0s ago"), "a clock ahead of ours")
	g.Expect(until(ptr.To(now.Add(5*time.Minute)), now)).To(Equal("in 5m"))
	g.Expect(until(ptr.To(now.Add(-4*time.Hour)), now)).To(Equal("overdue 4h"))
}

func TestSendMethod(t *testing.T) {
	g := NewWithT(t)
	for _, tc := range []struct {
		allowed []string
		verb    string
		body    bool
		want    string
	}{
		{nil, "push", false, "POST"},
		{[]string{"GET"}, "push", false, "GET"},
		{[]string{"HEAD"}, "ping", false, "HEAD"},
		{[]string{"GET", "HEAD"}, "ping", true, "GET"},
		{[]string{"HEAD"}, "push", false, ""},
		{[]string{"HEAD"}, "ping", true, ""},
	} {
		got, err := sendMethod(tc.allowed, served[tc.verb], tc.body)
		g.Expect(got).To(Equal(tc.want), "%v %s", tc.allowed, tc.verb)
		g.Expect(err != nil).To(Equal(tc.want == ""))
	}
}

func TestRedact(t *testing.T) {
	g := NewWithT(t)
	tok := "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQ"
	err := redact(errors.New(`Post "http://x/api/push/`+tok+`": EOF`), tok)
	g.Expect(err.Error()).To(Equal(`Post "http://x/api/push/<token>": EOF`))
}

func TestUptimeColumn(t *testing.T) {
	g := NewWithT(t)
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	m := &monitoringv1alpha1.PushMonitor{}
	g.Expect(uptimeColumn(uptimeOf(m, now))).To(Equal("-"), "nothing counted while Pending")
	history.EnterState(&m.Status, "", monitoringv1alpha1.StateUp, now.Add(-10*time.Hour))
	history.EnterState(&m.Status, monitoringv1alpha1.StateUp, monitoringv1alpha1.StateDown, now.Add(-time.Minute))
	m.Status.State = monitoringv1alpha1.StateDown
	u := uptimeOf(m, now)
	g.Expect(u).To(HaveKey("30d"))
	g.Expect(uptimeColumn(u)).To(Equal("99.83%"), "1m of 10h, rounded down")
}
