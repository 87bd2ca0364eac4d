package controllers

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
)

// These tests exercise the state machine alone; they need no API server
// (the package's TestMain starts one only for the tests that ask for it:
// suite_test.go).

const (
	stTimeout = 5 * time.Minute
	stGrace   = 30 * time.Second
	stWindow  = stTimeout + stGrace // timeout + grace of stMonitor
)

// stBase is when the current leader began watching, in most cases.
var stBase = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

// stMonitor is a monitor with timeout 5m and grace 30s, changed by opts.
func stMonitor(opts ...func(*monitoringv1alpha1.PushMonitor)) *monitoringv1alpha1.PushMonitor {
	m := &monitoringv1alpha1.PushMonitor{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "job", UID: "uid-1"},
		Spec: monitoringv1alpha1.PushMonitorSpec{
			Timeout:     &metav1.Duration{Duration: stTimeout},
			GracePeriod: &metav1.Duration{Duration: stGrace},
		},
	}
	for _, o := range opts {
		o(m)
	}
	return m
}

func heardAt(t time.Time, status monitoringv1alpha1.ReportedStatus, msg string) func(*monitoringv1alpha1.PushMonitor) {
	return func(m *monitoringv1alpha1.PushMonitor) {
		mt := metav1.NewMicroTime(t)
		m.Status.LastHeartbeatTime = &mt
		m.Status.LastReportedStatus = status
		m.Status.LastMessage = msg
	}
}

func upAt(t time.Time) func(*monitoringv1alpha1.PushMonitor) {
	return heardAt(t, monitoringv1alpha1.ReportedUp, "")
}

// was sets the state and Healthy condition a previous evaluation wrote.
func was(state monitoringv1alpha1.MonitorState, status metav1.ConditionStatus, reason, msg string) func(*monitoringv1alpha1.PushMonitor) {
	return func(m *monitoringv1alpha1.PushMonitor) {
		m.Status.State = state
		m.Status.Conditions = []metav1.Condition{
			{Type: monitoringv1alpha1.ReadyCondition, Status: metav1.ConditionTrue, Reason: monitoringv1alpha1.TokenIssuedReason, Message: "ready"},
			{Type: monitoringv1alpha1.HealthyCondition, Status: status, Reason: reason, Message: msg},
		}
	}
}

// missed is a status left by a HeartbeatMissed Down with deadline d.
func missed(d time.Time, msg string) func(*monitoringv1alpha1.PushMonitor) {
	return func(m *monitoringv1alpha1.PushMonitor) {
		was(monitoringv1alpha1.StateDown, metav1.ConditionFalse, monitoringv1alpha1.HeartbeatMissedReason, msg)(m)
		mt := metav1.NewMicroTime(d)
		m.Status.Deadline = &mt
	}
}

func suspended(m *monitoringv1alpha1.PushMonitor) { m.Spec.Suspend = true }

func timing(timeout, grace *time.Duration) func(*monitoringv1alpha1.PushMonitor) {
	return func(m *monitoringv1alpha1.PushMonitor) {
		m.Spec.Timeout, m.Spec.GracePeriod = nil, nil
		if timeout != nil {
			m.Spec.Timeout = &metav1.Duration{Duration: *timeout}
		}
		if grace != nil {
			m.Spec.GracePeriod = &metav1.Duration{Duration: *grace}
		}
	}
}

func durp(d time.Duration) *time.Duration { return &d }

func timep(t time.Time) *time.Time { return &t }

func TestEvaluate(t *testing.T) {
	const (
		pending   = monitoringv1alpha1.StatePending
		upState   = monitoringv1alpha1.StateUp
		downState = monitoringv1alpha1.StateDown
		susp      = monitoringv1alpha1.StateSuspended
		cTrue     = metav1.ConditionTrue
		cFalse    = metav1.ConditionFalse
		cUnknown  = metav1.ConditionUnknown
	)
	const (
		rMissed   = monitoringv1alpha1.HeartbeatMissedReason
		rReported = monitoringv1alpha1.DownReportedReason
		rRecov    = monitoringv1alpha1.RecoveredReason
		rRecv     = monitoringv1alpha1.HeartbeatReceivedReason
		rAwait    = monitoringv1alpha1.AwaitingFirstHeartbeatReason
		rSusp     = monitoringv1alpha1.SuspendedReason
	)
	const (
		msgAwait    = "no heartbeat received yet"
		msgReceived = "heartbeats arrive within the timeout"
		msgAgain    = "heartbeats arrive again"
		limits      = " (timeout 5m, grace 30s)"
	)
	ws := stBase
	oldMissedMsg := "no heartbeat for 5m30s" + limits

	tests := []struct {
		name string
		m    *monitoringv1alpha1.PushMonitor
		now  time.Time
		ws   time.Time // default stBase

		state    monitoringv1alpha1.MonitorState
		status   metav1.ConditionStatus
		reason   string
		message  string
		deadline *time.Time
		recheck  time.Duration
	}{
		// Suspended
		{name: "suspended, never heard", m: stMonitor(suspended), now: ws.Add(time.Minute),
			state: susp, status: cUnknown, reason: rSusp},
		{name: "suspended past the deadline", m: stMonitor(suspended, upAt(ws)), now: ws.Add(10 * stWindow),
			state: susp, status: cUnknown, reason: rSusp},
		{name: "suspended while the client reports down", m: stMonitor(suspended, heardAt(ws, monitoringv1alpha1.ReportedDown, "x")), now: ws.Add(time.Second),
			state: susp, status: cUnknown, reason: rSusp},
		{name: "suspended while a missed Down is recorded", m: stMonitor(suspended, missed(ws.Add(-time.Hour), oldMissedMsg)), now: ws,
			state: susp, status: cUnknown, reason: rSusp},

		// Pending and the never-heard deadline
		{name: "pending at watch start", m: stMonitor(), now: ws,
			state: pending, status: cUnknown, reason: rAwait, message: msgAwait,
			deadline: timep(ws.Add(stWindow)), recheck: stWindow},
		{name: "pending before the deadline", m: stMonitor(), now: ws.Add(time.Minute),
			state: pending, status: cUnknown, reason: rAwait, message: msgAwait,
			deadline: timep(ws.Add(stWindow)), recheck: stWindow - time.Minute},
		{name: "pending 1ns before the deadline", m: stMonitor(), now: ws.Add(stWindow - 1),
			state: pending, status: cUnknown, reason: rAwait, message: msgAwait,
			deadline: timep(ws.Add(stWindow)), recheck: 1},
		{name: "never heard: Down at the deadline exactly", m: stMonitor(), now: ws.Add(stWindow),
			state: downState, status: cFalse, reason: rMissed,
			message:  "no heartbeat received in the 5m30s since pushmon began watching" + limits,
			deadline: timep(ws.Add(stWindow))},
		{name: "never heard: Down long after", m: stMonitor(), now: ws.Add(time.Hour),
			state: downState, status: cFalse, reason: rMissed,
			message:  "no heartbeat received in the 1h since pushmon began watching" + limits,
			deadline: timep(ws.Add(stWindow))},
		{name: "reported status without a heartbeat time is no heartbeat", m: stMonitor(func(m *monitoringv1alpha1.PushMonitor) {
			m.Status.LastReportedStatus = monitoringv1alpha1.ReportedDown
		}), now: ws,
			state: pending, status: cUnknown, reason: rAwait, message: msgAwait,
			deadline: timep(ws.Add(stWindow)), recheck: stWindow},

		// Up
		{name: "first heartbeat", m: stMonitor(upAt(ws.Add(time.Minute)), was(pending, cUnknown, rAwait, msgAwait)), now: ws.Add(time.Minute),
			state: upState, status: cTrue, reason: rRecv, message: msgReceived,
			deadline: timep(ws.Add(time.Minute + stWindow)), recheck: stWindow},
		{name: "up with a recent heartbeat", m: stMonitor(upAt(ws.Add(time.Minute))), now: ws.Add(2 * time.Minute),
			state: upState, status: cTrue, reason: rRecv, message: msgReceived,
			deadline: timep(ws.Add(time.Minute + stWindow)), recheck: stWindow - time.Minute},
		{name: "up 1ns before the deadline", m: stMonitor(upAt(ws.Add(time.Minute))), now: ws.Add(time.Minute + stWindow - 1),
			state: upState, status: cTrue, reason: rRecv, message: msgReceived,
			deadline: timep(ws.Add(time.Minute + stWindow)), recheck: 1},
		{name: "heartbeat missed at the deadline exactly", m: stMonitor(upAt(ws.Add(time.Minute)), was(upState, cTrue, rRecv, msgReceived)),
			now:   ws.Add(time.Minute + stWindow),
			state: downState, status: cFalse, reason: rMissed, message: "no heartbeat for 5m30s" + limits,
			deadline: timep(ws.Add(time.Minute + stWindow))},
		{name: "up keeps HeartbeatReceived", m: stMonitor(upAt(ws.Add(time.Minute)), was(upState, cTrue, rRecv, msgReceived)), now: ws.Add(2 * time.Minute),
			state: upState, status: cTrue, reason: rRecv, message: msgReceived,
			deadline: timep(ws.Add(time.Minute + stWindow)), recheck: stWindow - time.Minute},
		{name: "up keeps a previous Recovered reason", m: stMonitor(upAt(ws.Add(time.Minute)), was(upState, cTrue, rRecov, msgAgain)), now: ws.Add(2 * time.Minute),
			state: upState, status: cTrue, reason: rRecov, message: msgAgain,
			deadline: timep(ws.Add(time.Minute + stWindow)), recheck: stWindow - time.Minute},
		{name: "up does not keep the reason of a condition that is not True", m: stMonitor(upAt(ws.Add(time.Minute)), was(upState, cUnknown, "Odd", "odd")), now: ws.Add(2 * time.Minute),
			state: upState, status: cTrue, reason: rRecv, message: msgReceived,
			deadline: timep(ws.Add(time.Minute + stWindow)), recheck: stWindow - time.Minute},

		// anchor = max(last heartbeat, watchStart)
		{name: "heartbeat before watch start: anchor is watch start", m: stMonitor(upAt(ws.Add(-time.Minute))), now: ws.Add(time.Minute),
			state: upState, status: cTrue, reason: rRecv, message: msgReceived,
			deadline: timep(ws.Add(stWindow)), recheck: stWindow - time.Minute},
		{name: "heartbeat after watch start: anchor is the heartbeat", m: stMonitor(upAt(ws.Add(10 * time.Second))), now: ws.Add(time.Minute),
			state: upState, status: cTrue, reason: rRecv, message: msgReceived,
			deadline: timep(ws.Add(10*time.Second + stWindow)), recheck: stWindow - 50*time.Second},
		{name: "restart: old heartbeat, fresh watch start stays Up", m: stMonitor(upAt(ws.Add(-time.Hour)), was(upState, cTrue, rRecv, msgReceived)), now: ws.Add(time.Second),
			state: upState, status: cTrue, reason: rRecv, message: msgReceived,
			deadline: timep(ws.Add(stWindow)), recheck: stWindow - time.Second},
		{name: "restart: old heartbeat goes Down one window after watch start", m: stMonitor(upAt(ws.Add(-time.Hour)), was(upState, cTrue, rRecv, msgReceived)),
			now:   ws.Add(stWindow),
			state: downState, status: cFalse, reason: rMissed, message: "no heartbeat for 1h5m30s" + limits,
			deadline: timep(ws.Add(stWindow))},
		{name: "restart: pending monitor keeps waiting from watch start", m: stMonitor(was(pending, cUnknown, rAwait, msgAwait)), now: ws.Add(stWindow - time.Second),
			state: pending, status: cUnknown, reason: rAwait, message: msgAwait,
			deadline: timep(ws.Add(stWindow)), recheck: time.Second},

		// DownReported
		{name: "down reported with a message", m: stMonitor(heardAt(ws.Add(time.Minute), monitoringv1alpha1.ReportedDown, "disk full")), now: ws.Add(2 * time.Minute),
			state: downState, status: cFalse, reason: rReported, message: "the client reported status=down: disk full"},
		{name: "down reported without a message", m: stMonitor(heardAt(ws.Add(time.Minute), monitoringv1alpha1.ReportedDown, "")), now: ws.Add(2 * time.Minute),
			state: downState, status: cFalse, reason: rReported, message: "the client reported status=down"},
		{name: "down reported long past the deadline stays DownReported", m: stMonitor(heardAt(ws.Add(time.Minute), monitoringv1alpha1.ReportedDown, "disk full"), was(downState, cFalse, rReported, "x")),
			now:   ws.Add(10 * time.Hour),
			state: downState, status: cFalse, reason: rReported, message: "the client reported status=down: disk full"},
		{name: "down reported across a fresh watch start", m: stMonitor(heardAt(ws.Add(-time.Hour), monitoringv1alpha1.ReportedDown, "oom")), now: ws,
			state: downState, status: cFalse, reason: rReported, message: "the client reported status=down: oom"},
		{name: "down reported wins over a recorded missed Down", m: stMonitor(missed(ws.Add(-time.Hour), oldMissedMsg), heardAt(ws.Add(time.Second), monitoringv1alpha1.ReportedDown, "")),
			now:   ws.Add(2 * time.Second),
			state: downState, status: cFalse, reason: rReported, message: "the client reported status=down"},
		{name: "up push after down reported recovers", m: stMonitor(upAt(ws.Add(time.Minute)), was(downState, cFalse, rReported, "the client reported status=down")),
			now:   ws.Add(time.Minute),
			state: upState, status: cTrue, reason: rRecov, message: msgAgain,
			deadline: timep(ws.Add(time.Minute + stWindow)), recheck: stWindow},

		// HeartbeatMissed persists until a newer heartbeat
		{name: "missed Down persists across a fresh watch start", m: stMonitor(upAt(ws.Add(-time.Hour)), missed(ws.Add(-time.Hour+stWindow), oldMissedMsg)),
			now:   ws.Add(time.Second),
			state: downState, status: cFalse, reason: rMissed, message: oldMissedMsg,
			deadline: timep(ws.Add(-time.Hour + stWindow))},
		{name: "missed Down persists long after", m: stMonitor(upAt(ws.Add(-time.Hour)), missed(ws.Add(-time.Hour+stWindow), oldMissedMsg)),
			now:   ws.Add(100 * time.Hour),
			state: downState, status: cFalse, reason: rMissed, message: oldMissedMsg,
			deadline: timep(ws.Add(-time.Hour + stWindow))},
		{name: "never-heard missed Down persists across a fresh watch start", m: stMonitor(missed(ws.Add(-time.Hour), "no heartbeat received in the 5m30s since pushmon began watching"+limits)),
			now:   ws,
			state: downState, status: cFalse, reason: rMissed, message: "no heartbeat received in the 5m30s since pushmon began watching" + limits,
			deadline: timep(ws.Add(-time.Hour))},
		{name: "missed Down persists with a heartbeat older than the missed one", m: stMonitor(upAt(ws.Add(-2*time.Hour)), missed(ws.Add(-time.Hour+stWindow), oldMissedMsg)),
			now:   ws,
			state: downState, status: cFalse, reason: rMissed, message: oldMissedMsg,
			deadline: timep(ws.Add(-time.Hour + stWindow))},
		{name: "missed Down clears with a newer heartbeat", m: stMonitor(upAt(ws.Add(10*time.Second)), missed(ws.Add(-time.Hour+stWindow), oldMissedMsg)),
			now:   ws.Add(20 * time.Second),
			state: upState, status: cTrue, reason: rRecov, message: msgAgain,
			deadline: timep(ws.Add(10*time.Second + stWindow)), recheck: stWindow - 10*time.Second},
		{name: "missed Down clears with a heartbeat 1µs newer", m: stMonitor(upAt(ws.Add(-time.Hour+time.Microsecond)), missed(ws.Add(-time.Hour+stWindow), oldMissedMsg)),
			now:   ws.Add(time.Second),
			state: upState, status: cTrue, reason: rRecov, message: msgAgain,
			deadline: timep(ws.Add(stWindow)), recheck: stWindow - time.Second},
		{name: "never-heard missed Down clears with a first heartbeat", m: stMonitor(upAt(ws), missed(ws.Add(-time.Hour), "no heartbeat received")),
			now:   ws.Add(time.Second),
			state: upState, status: cTrue, reason: rRecov, message: msgAgain,
			deadline: timep(ws.Add(stWindow)), recheck: stWindow - time.Second},
		{name: "a newer heartbeat that is itself missed is a new missed Down", ws: ws.Add(-2 * time.Hour),
			m:     stMonitor(upAt(ws.Add(-30*time.Minute)), missed(ws.Add(-time.Hour+stWindow), oldMissedMsg)),
			now:   ws,
			state: downState, status: cFalse, reason: rMissed, message: "no heartbeat for 30m" + limits,
			deadline: timep(ws.Add(-30*time.Minute + stWindow))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			start := tc.ws
			if start.IsZero() {
				start = stBase
			}
			before := tc.m.DeepCopy()
			h := evaluate(tc.m, tc.now, start)
			g.Expect(tc.m).To(Equal(before), "evaluate must not change the monitor")

			g.Expect(h.State).To(Equal(tc.state))
			g.Expect(h.Status).To(Equal(tc.status))
			g.Expect(h.Reason).To(Equal(tc.reason))
			if tc.message != "" || tc.state != susp {
				g.Expect(h.Message).To(Equal(tc.message))
			} else {
				g.Expect(h.Message).To(ContainSubstring("suspend"))
			}
			if tc.deadline == nil {
				g.Expect(h.Deadline).To(BeNil())
			} else {
				g.Expect(h.Deadline).NotTo(BeNil())
				g.Expect(*h.Deadline).To(BeTemporally("==", *tc.deadline))
			}
			g.Expect(h.RecheckAfter).To(Equal(tc.recheck))
			if h.RecheckAfter > 0 {
				g.Expect(h.Deadline).NotTo(BeNil())
				g.Expect(h.RecheckAfter).To(Equal(h.Deadline.Sub(tc.now)), "RecheckAfter == deadline - now")
			}
			if h.State == downState {
				g.Expect(h.RecheckAfter).To(BeZero(), "a Down monitor waits for a heartbeat, not a timer")
			}
		})
	}
}

// TestEvaluateGrace checks the Down boundary for default and explicit grace
// periods: Down at watchStart + timeout + grace exactly, Pending 1ns before.
func TestEvaluateGrace(t *testing.T) {
	tests := []struct {
		name           string
		timeout, grace *time.Duration
		window         time.Duration // timeout + effective grace
		limits         string
	}{
		{name: "default timeout and grace", window: 66 * time.Second, limits: "(timeout 1m, grace 6s)"},
		{name: "default grace is timeout/10", timeout: durp(5 * time.Minute), window: 5*time.Minute + 30*time.Second, limits: "(timeout 5m, grace 30s)"},
		{name: "default grace is at least 1s", timeout: durp(5 * time.Second), window: 6 * time.Second, limits: "(timeout 5s, grace 1s)"},
		{name: "default grace with a 1s timeout", timeout: durp(time.Second), window: 2 * time.Second, limits: "(timeout 1s, grace 1s)"},
		{name: "default grace of a long timeout", timeout: durp(24 * time.Hour), window: 24*time.Hour + 144*time.Minute, limits: "(timeout 24h, grace 2h24m)"},
		{name: "explicit 0s grace", timeout: durp(time.Minute), grace: durp(0), window: time.Minute, limits: "(timeout 1m, grace 0s)"},
		{name: "explicit grace below the default", timeout: durp(time.Hour), grace: durp(time.Second), window: time.Hour + time.Second, limits: "(timeout 1h, grace 1s)"},
		{name: "explicit grace above the timeout", timeout: durp(time.Minute), grace: durp(time.Hour), window: time.Hour + time.Minute, limits: "(timeout 1m, grace 1h)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ws := stBase
			for _, c := range []struct {
				name string
				m    *monitoringv1alpha1.PushMonitor
				from time.Time // the anchor
			}{
				{"never heard", stMonitor(timing(tc.timeout, tc.grace)), ws},
				{"heard", stMonitor(timing(tc.timeout, tc.grace), upAt(ws.Add(time.Second))), ws.Add(time.Second)},
			} {
				t.Run(c.name, func(t *testing.T) {
					g := NewWithT(t)
					deadline := c.from.Add(tc.window)
					g.Expect(c.m.DeadlineFrom(c.from)).To(Equal(deadline))

					before := evaluate(c.m, deadline.Add(-1), ws)
					g.Expect(before.State).To(BeElementOf(monitoringv1alpha1.StatePending, monitoringv1alpha1.StateUp))
					g.Expect(*before.Deadline).To(BeTemporally("==", deadline))
					g.Expect(before.RecheckAfter).To(Equal(time.Duration(1)))

					at := evaluate(c.m, deadline, ws)
					g.Expect(at.State).To(Equal(monitoringv1alpha1.StateDown))
					g.Expect(at.Reason).To(Equal(monitoringv1alpha1.HeartbeatMissedReason))
					g.Expect(*at.Deadline).To(BeTemporally("==", deadline))
					g.Expect(at.Message).To(HaveSuffix(" " + tc.limits))
				})
			}
		})
	}
}

// TestEvaluateRestartNeverDownEarly: whatever the age of the last heartbeat,
// a leader that has just begun watching an Up monitor does not declare it
// Down before watchStart + timeout + grace.
func TestEvaluateRestartNeverDownEarly(t *testing.T) {
	g := NewWithT(t)
	ws := stBase
	for _, age := range []time.Duration{0, time.Second, stTimeout, stWindow - 1, stWindow, stWindow + 1, time.Hour, 1000 * time.Hour} {
		m := stMonitor(upAt(ws.Add(-age)), was(monitoringv1alpha1.StateUp, metav1.ConditionTrue, monitoringv1alpha1.HeartbeatReceivedReason, "x"))
		for _, since := range []time.Duration{0, time.Second, stWindow - 1} {
			h := evaluate(m, ws.Add(since), ws)
			g.Expect(h.State).To(Equal(monitoringv1alpha1.StateUp), "heartbeat age %s, %s after watch start", age, since)
			g.Expect(*h.Deadline).To(BeTemporally(">=", ws.Add(stWindow)))
		}
	}
}

func TestMissedMessage(t *testing.T) {
	now := stBase
	tests := []struct {
		name string
		m    *monitoringv1alpha1.PushMonitor
		last *time.Time
		ws   time.Time
		want string
	}{
		{name: "the documented example", m: stMonitor(), last: timep(now.Add(-(5*time.Minute + 12*time.Second))), ws: now.Add(-time.Hour),
			want: "no heartbeat for 5m12s (timeout 5m, grace 30s)"},
		{name: "rounds down below half a second", m: stMonitor(), last: timep(now.Add(-(5*time.Minute + 12*time.Second + 499*time.Millisecond))),
			want: "no heartbeat for 5m12s (timeout 5m, grace 30s)"},
		{name: "rounds up from half a second", m: stMonitor(), last: timep(now.Add(-(5*time.Minute + 12*time.Second + 500*time.Millisecond))),
			want: "no heartbeat for 5m13s (timeout 5m, grace 30s)"},
		{name: "hours", m: stMonitor(timing(durp(24*time.Hour), nil)), last: timep(now.Add(-26 * time.Hour)),
			want: "no heartbeat for 26h (timeout 24h, grace 2h24m)"},
		{name: "default timeout and grace", m: stMonitor(timing(nil, nil)), last: timep(now.Add(-66 * time.Second)),
			want: "no heartbeat for 1m6s (timeout 1m, grace 6s)"},
		{name: "no grace", m: stMonitor(timing(durp(time.Minute), durp(0))), last: timep(now.Add(-time.Minute)),
			want: "no heartbeat for 1m (timeout 1m, grace 0s)"},
		{name: "never heard", m: stMonitor(), ws: now.Add(-6 * time.Minute),
			want: "no heartbeat received in the 6m since pushmon began watching (timeout 5m, grace 30s)"},
		{name: "never heard, rounded", m: stMonitor(), ws: now.Add(-(5*time.Minute + 30*time.Second + 200*time.Millisecond)),
			want: "no heartbeat received in the 5m30s since pushmon began watching (timeout 5m, grace 30s)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			NewWithT(t).Expect(missedMessage(tc.m, tc.last, tc.ws, now, time.Time{})).To(Equal(tc.want))
		})
	}
}

// TestEvaluateMissedDownSurvivesTimeoutRaise: raising the timeout of a
// monitor that is Down for a missed heartbeat does not recover it without a
// heartbeat, also after a leader restart; a real heartbeat still does.
func TestEvaluateMissedDownSurvivesTimeoutRaise(t *testing.T) {
	g := NewWithT(t)
	base := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	last := base.Add(-3 * time.Hour)
	missedAt := last.Add(5*time.Minute + 30*time.Second) // timeout 5m, grace 30s
	m := &monitoringv1alpha1.PushMonitor{}
	m.Generation = 2 // the spec changed after the Down (generation 1)
	m.Spec.Timeout = &metav1.Duration{Duration: 10 * time.Minute}
	lastMT, missedMT := metav1.NewMicroTime(last), metav1.NewMicroTime(missedAt)
	m.Status = monitoringv1alpha1.PushMonitorStatus{
		State: monitoringv1alpha1.StateDown, LastHeartbeatTime: &lastMT,
		LastReportedStatus: monitoringv1alpha1.ReportedUp, Deadline: &missedMT,
		Conditions: []metav1.Condition{{
			Type: monitoringv1alpha1.HealthyCondition, Status: metav1.ConditionFalse,
			Reason: monitoringv1alpha1.HeartbeatMissedReason, Message: "no heartbeat for 5m30s",
			ObservedGeneration: 1, LastTransitionTime: metav1.NewTime(missedAt.Add(20 * time.Millisecond)),
		}},
	}
	watchStart := base.Add(-time.Minute)
	h := evaluate(m, base, watchStart)
	g.Expect(h.State).To(Equal(monitoringv1alpha1.StateDown))
	g.Expect(h.Reason).To(Equal(monitoringv1alpha1.HeartbeatMissedReason))

	// The reconciler stores that (the condition now at generation 2, the
	// deadline kept consistent); evaluating again still says Down.
	m.Status.Deadline = &metav1.MicroTime{Time: *h.Deadline}
	m.Status.Conditions[0].ObservedGeneration = 2
	h = evaluate(m, base.Add(time.Second), base)
	g.Expect(h.State).To(Equal(monitoringv1alpha1.StateDown))

	// A heartbeat recovers it.
	fresh := metav1.NewMicroTime(base.Add(2 * time.Second))
	m.Status.LastHeartbeatTime = &fresh
	h = evaluate(m, base.Add(3*time.Second), base)
	g.Expect(h.State).To(Equal(monitoringv1alpha1.StateUp))
	g.Expect(h.Reason).To(Equal(monitoringv1alpha1.RecoveredReason))
}

// TestEvaluateHeartbeatRacingTheDown: a heartbeat received just after the
// Down was decided, whose write (carrying its own deadline, as the push
// endpoint writes it while it still sees the monitor Up) landed after the
// Down, recovers the monitor.
func TestEvaluateHeartbeatRacingTheDown(t *testing.T) {
	g := NewWithT(t)
	old := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	m := &monitoringv1alpha1.PushMonitor{}
	m.Generation = 1
	m.Spec.Timeout = &metav1.Duration{Duration: 2 * time.Second}
	m.Spec.GracePeriod = &metav1.Duration{}
	downAt := old.Add(2*time.Second + 300*time.Millisecond)
	fresh := downAt.Add(100 * time.Millisecond)
	lastMT, deadlineMT := metav1.NewMicroTime(fresh), metav1.NewMicroTime(fresh.Add(2*time.Second))
	m.Status = monitoringv1alpha1.PushMonitorStatus{
		State: monitoringv1alpha1.StateDown, LastHeartbeatTime: &lastMT, Deadline: &deadlineMT,
		LastReportedStatus: monitoringv1alpha1.ReportedUp,
		Conditions: []metav1.Condition{{
			Type: monitoringv1alpha1.HealthyCondition, Status: metav1.ConditionFalse,
			Reason: monitoringv1alpha1.HeartbeatMissedReason, ObservedGeneration: 1,
			LastTransitionTime: metav1.NewTime(downAt.Truncate(time.Second)),
		}},
	}
	h := evaluate(m, fresh.Add(50*time.Millisecond), old.Add(-time.Hour))
	g.Expect(h.State).To(Equal(monitoringv1alpha1.StateUp))
	g.Expect(h.Reason).To(Equal(monitoringv1alpha1.RecoveredReason))
}

// TestShortDuration: durations in notes read as a spec writes them.
func TestShortDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0s", 500 * time.Millisecond: "500ms", 30 * time.Second: "30s",
		5 * time.Minute: "5m", 5*time.Minute + 12*time.Second: "5m12s", 90 * time.Minute: "1h30m",
		time.Hour: "1h", time.Hour + time.Second: "1h0m1s", 26 * time.Hour: "26h",
	} {
		if got := shortDuration(d); got != want {
			t.Errorf("shortDuration(%v) = %q, want %q", d, got, want)
		}
	}
}
