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
	Apply(&st, Heartbeat{Kind: KindStart, RunID: "a", Time: t0}, 10)
	Apply(&st, Heartbeat{Kind: KindStart, RunID: "b", Time: t0.Add(time.Minute)}, 10)
	g.Expect(st.OpenRuns).To(HaveLen(2))
	g.Expect(st.LastStartTime.Time).To(Equal(t0.Add(time.Minute)))
	g.Expect(st.LastHeartbeatTime).To(BeNil(), "a start is not an end")

	Apply(&st, Heartbeat{Kind: KindHeartbeat, Status: monitoringv1alpha1.ReportedUp, RunID: "a", ExitCode: code(0), Time: t0.Add(5 * time.Minute)}, 10)
	g.Expect(st.LastRunDuration.Duration).To(Equal(5 * time.Minute))
	g.Expect(st.OpenRuns).To(HaveLen(1))
	g.Expect(st.OpenRuns[0].RunID).To(Equal("b"))
	g.Expect(*st.LastExitCode).To(Equal(int32(0)))
	g.Expect(st.ConsecutiveSuccesses).To(Equal(int32(1)))

	Apply(&st, Heartbeat{Kind: KindFail, RunID: "b", ExitCode: code(3), Message: "disk full", Time: t0.Add(7 * time.Minute)}, 10)
	g.Expect(st.LastRunDuration.Duration).To(Equal(6 * time.Minute))
	g.Expect(st.OpenRuns).To(BeEmpty())
	g.Expect(st.LastReportedStatus).To(Equal(monitoringv1alpha1.ReportedFailed))
	g.Expect(*st.LastExitCode).To(Equal(int32(3)))
	g.Expect(st.LastMessage).To(Equal("disk full"))
	g.Expect(st.ConsecutiveFailures).To(Equal(int32(1)))
	g.Expect(st.ConsecutiveSuccesses).To(BeZero())

	// A log line changes the message only; a success without a start is a
	// plain heartbeat (no duration).
	Apply(&st, Heartbeat{Kind: KindLog, Message: "still here", Time: t0.Add(8 * time.Minute)}, 10)
	g.Expect(st.LastMessage).To(Equal("still here"))
	g.Expect(st.ConsecutiveFailures).To(Equal(int32(1)))
	Apply(&st, Heartbeat{Kind: KindHeartbeat, Status: monitoringv1alpha1.ReportedDown, Time: t0.Add(9 * time.Minute)}, 10)
	g.Expect(st.ConsecutiveFailures).To(Equal(int32(2)))
	Apply(&st, Heartbeat{Kind: KindHeartbeat, Status: monitoringv1alpha1.ReportedUp, Time: t0.Add(10 * time.Minute)}, 10)
	g.Expect(st.LastRunDuration.Duration).To(Equal(6*time.Minute), "unchanged by an end without a start")
	g.Expect(st.ConsecutiveFailures).To(BeZero())
	g.Expect(st.ConsecutiveSuccesses).To(Equal(int32(1)))

	// Without rid, an end closes the newest run started without one.
	Apply(&st, Heartbeat{Kind: KindStart, Time: t0.Add(11 * time.Minute)}, 10)
	Apply(&st, Heartbeat{Kind: KindStart, Time: t0.Add(12 * time.Minute)}, 10)
	Apply(&st, Heartbeat{Kind: KindHeartbeat, Status: monitoringv1alpha1.ReportedUp, Time: t0.Add(15 * time.Minute)}, 10)
	g.Expect(st.LastRunDuration.Duration).To(Equal(3 * time.Minute))
	g.Expect(st.OpenRuns).To(HaveLen(1))

	// Runs that never end are bounded.
	for i := range 40 {
		Apply(&st, Heartbeat{Kind: KindStart, Time: t0.Add(time.Hour + time.Duration(i)*time.Minute)}, 10)
	}
	g.Expect(st.OpenRuns).To(HaveLen(monitoringv1alpha1.MaxOpenRuns))
	g.Expect(st.OpenRuns[len(st.OpenRuns)-1].StartTime.Time).To(Equal(t0.Add(time.Hour + 39*time.Minute)))
}

func TestApplyRecordsRecentRuns(t *testing.T) {
	g := NewWithT(t)
	t0 := time.Date(2026, 6, 10, 2, 30, 0, 0, time.UTC)
	code := func(c int32) *int32 { return &c }
	var st monitoringv1alpha1.PushMonitorStatus

	Apply(&st, Heartbeat{Kind: KindStart, RunID: "a", Time: t0}, 3)
	g.Expect(st.RecentRuns).To(BeEmpty(), "a start opens a run, it does not finish one")
	Apply(&st, Heartbeat{Kind: KindFail, RunID: "a", ExitCode: code(2), Message: "disk full", Time: t0.Add(90 * time.Second)}, 3)
	g.Expect(st.RecentRuns).To(HaveLen(1))
	r := st.RecentRuns[0]
	g.Expect(r.Result).To(Equal(monitoringv1alpha1.RunFailed))
	g.Expect(r.StartTime.Time).To(Equal(t0))
	g.Expect(r.Duration.Duration).To(Equal(90 * time.Second))
	g.Expect(*r.ExitCode).To(Equal(int32(2)))
	g.Expect(r.Message).To(Equal("disk full"))
	g.Expect(r.RunID).To(Equal("a"))

	// Plain heartbeats and log lines are not runs; a success ping is one
	// (without a start).
	Apply(&st, Heartbeat{Kind: KindHeartbeat, Status: monitoringv1alpha1.ReportedUp, Time: t0.Add(2 * time.Minute)}, 3)
	Apply(&st, Heartbeat{Kind: KindLog, Message: "x", Time: t0.Add(3 * time.Minute)}, 3)
	g.Expect(st.RecentRuns).To(HaveLen(1))
	Apply(&st, Heartbeat{Kind: KindSuccess, Status: monitoringv1alpha1.ReportedUp, Time: t0.Add(4 * time.Minute)}, 3)
	g.Expect(st.RecentRuns).To(HaveLen(2))
	g.Expect(st.RecentRuns[1].Result).To(Equal(monitoringv1alpha1.RunSucceeded))
	g.Expect(st.RecentRuns[1].StartTime).To(BeNil())
	g.Expect(st.RecentRuns[1].Duration).To(BeNil())

	// A late signal (another replica's, written after a newer one) goes in
	// end-time order; the limit keeps the newest.
	Apply(&st, Heartbeat{Kind: KindSuccess, Status: monitoringv1alpha1.ReportedUp, Time: t0.Add(10 * time.Minute)}, 3)
	Apply(&st, Heartbeat{Kind: KindSuccess, Status: monitoringv1alpha1.ReportedUp, Message: "late", Time: t0.Add(5 * time.Minute)}, 3)
	g.Expect(st.RecentRuns).To(HaveLen(3))
	g.Expect(st.RecentRuns[0].EndTime.Time).To(Equal(t0.Add(4 * time.Minute)))
	g.Expect(st.RecentRuns[1].Message).To(Equal("late"))
	g.Expect(st.RecentRuns[2].EndTime.Time).To(Equal(t0.Add(10 * time.Minute)))
}
