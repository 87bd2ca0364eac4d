package heartbeat

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
)

func TestApplyRuns(t *testing.T) {
	g := NewWithT(t)
	t0 := time.Date(2026, 6, 10, 2, 30, 0, 0, time.UTC)
	code := func(c int32) *int32 { return &c }
	var st monitoringv1alpha1.PushMonitorStatus

	// Two overlapping runs, paired by rid.
	Apply(&st, Heartbeat{Kind: KindStart, RunID: "a", Time: t0})
	Apply(&st, Heartbeat{Kind: KindStart, RunID: "b", Time: t0.Add(time.Minute)})
	g.Expect(st.OpenRuns).To(HaveLen(2))
	g.Expect(st.LastStartTime.Time).To(Equal(t0.Add(time.Minute)))
	g.Expect(st.LastHeartbeatTime).To(BeNil(), "a start is not an end")

	Apply(&st, Heartbeat{Kind: KindHeartbeat, Status: monitoringv1alpha1.ReportedUp, RunID: "a", ExitCode: code(0), Time: t0.Add(5 * time.Minute)})
	g.Expect(st.LastRunDuration.Duration).To(Equal(5 * time.Minute))
	g.Expect(st.OpenRuns).To(HaveLen(1))
	g.Expect(st.OpenRuns[0].RunID).To(Equal("b"))
	g.Expect(*st.LastExitCode).To(Equal(int32(0)))
	g.Expect(st.ConsecutiveSuccesses).To(Equal(int32(1)))

	Apply(&st, Heartbeat{Kind: KindFail, RunID: "b", ExitCode: code(3), Message: "disk full", Time: t0.Add(7 * time.Minute)})
	g.Expect(st.LastRunDuration.Duration).To(Equal(6 * time.Minute))
	g.Expect(st.OpenRuns).To(BeEmpty())
	g.Expect(st.LastReportedStatus).To(Equal(monitoringv1alpha1.ReportedFailed))
	g.Expect(*st.LastExitCode).To(Equal(int32(3)))
	g.Expect(st.LastMessage).To(Equal("disk full"))
	g.Expect(st.ConsecutiveFailures).To(Equal(int32(1)))
	g.Expect(st.ConsecutiveSuccesses).To(BeZero())

	// A log line changes the message only; a success without a start is a
	// plain heartbeat (no duration).
	Apply(&st, Heartbeat{Kind: KindLog, Message: "still here", Time: t0.Add(8 * time.Minute)})
	g.Expect(st.LastMessage).To(Equal("still here"))
	g.Expect(st.ConsecutiveFailures).To(Equal(int32(1)))
	Apply(&st, Heartbeat{Kind: KindHeartbeat, Status: monitoringv1alpha1.ReportedDown, Time: t0.Add(9 * time.Minute)})
	g.Expect(st.ConsecutiveFailures).To(Equal(int32(2)))
	Apply(&st, Heartbeat{Kind: KindHeartbeat, Status: monitoringv1alpha1.ReportedUp, Time: t0.Add(10 * time.Minute)})
	g.Expect(st.LastRunDuration.Duration).To(Equal(6*time.Minute), "unchanged by an end without a start")
	g.Expect(st.ConsecutiveFailures).To(BeZero())
	g.Expect(st.ConsecutiveSuccesses).To(Equal(int32(1)))

	// Without rid, an end closes the newest run started without one.
	Apply(&st, Heartbeat{Kind: KindStart, Time: t0.Add(11 * time.Minute)})
	Apply(&st, Heartbeat{Kind: KindStart, Time: t0.Add(12 * time.Minute)})
	Apply(&st, Heartbeat{Kind: KindHeartbeat, Status: monitoringv1alpha1.ReportedUp, Time: t0.Add(15 * time.Minute)})
	g.Expect(st.LastRunDuration.Duration).To(Equal(3 * time.Minute))
	g.Expect(st.OpenRuns).To(HaveLen(1))

	// Runs that never end are bounded.
	for i := range 40 {
		Apply(&st, Heartbeat{Kind: KindStart, Time: t0.Add(time.Hour + time.Duration(i)*time.Minute)})
	}
	g.Expect(st.OpenRuns).To(HaveLen(monitoringv1alpha1.MaxOpenRuns))
	g.Expect(st.OpenRuns[len(st.OpenRuns)-1].StartTime.Time).To(Equal(t0.Add(time.Hour + 39*time.Minute)))
}
