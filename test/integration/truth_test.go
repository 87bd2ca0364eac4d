package integration

// Tests of the heartbeat truth rules (issue "A monitor that never lies"):
// what a client sent is what status and events say, whatever the message
// length, the order in which the API sees writes, or how stale a cache is.

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
	"github.com/pushmon/pushmon/controllers"
	"github.com/pushmon/pushmon/internal/heartbeat"
	pushsrv "github.com/pushmon/pushmon/internal/push"
)

// A down report whose message is at the cap still raises its Warning event:
// events.k8s.io refuses notes over 1 KiB, so the note is shortened, with a
// marker, instead of the event being lost. Through /api/push and /ping/fail.
func TestEventNoteAtTheMessageCap(t *testing.T) {
	msg := strings.Repeat("m", pushsrv.DefaultMaxMessageBytes)
	for _, c := range []struct {
		name, reason string
		send         func(t *testing.T, tok string) int
	}{
		{name: "api-push", reason: monitoringv1alpha1.DownReportedReason, send: func(t *testing.T, tok string) int {
			code, _ := push(t, http.MethodPost, tok, "status=down&msg="+msg)
			return code
		}},
		{name: "ping-fail", reason: monitoringv1alpha1.RunFailedReason, send: func(t *testing.T, tok string) int {
			resp, err := http.Post("http://"+pushAddr+pushsrv.PingPathPrefix+tok+"/fail", "text/plain", strings.NewReader(msg))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp.StatusCode
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			g := NewWithT(t)
			m := monitor(newNamespace(t), c.name, monitoringv1alpha1.PushMonitorSpec{Timeout: dur(time.Hour)})
			tok := createMonitor(t, m)
			g.Expect(c.send(t, tok)).To(Equal(http.StatusOK))

			got := expectState(t, m, monitoringv1alpha1.StateDown, c.reason, 10*time.Second)
			g.Expect(got.Status.LastMessage).To(Equal(msg), "the message is stored whole")
			cond := meta.FindStatusCondition(got.Status.Conditions, monitoringv1alpha1.HealthyCondition)
			g.Expect(cond.Message).To(HaveSuffix(msg), "the condition message fits whole")

			evs := expectEvents(t, m, c.reason, 1)
			note := evs[0].Note
			g.Expect(len(note)).To(BeNumerically("<=", controllers.MaxEventNote))
			g.Expect(note).To(HaveSuffix("…[truncated]"))
			g.Expect(note).To(ContainSubstring(msg[:200]), "the note starts with the report")
			g.Expect(evs[0].Type).To(Equal(corev1.EventTypeWarning))
		})
	}
}

// A heartbeat received just before a missed-heartbeat deadline, but stored
// just after the leader declared HeartbeatMissed (the replica's cache still
// showed the monitor Up), brings the monitor back at once: it must not leave
// the monitor Down with no timer until some later push.
func TestHeartbeatStoredJustAfterMissedDownRecovers(t *testing.T) {
	g := NewWithT(t)
	m := monitor(newNamespace(t), "late", monitoringv1alpha1.PushMonitorSpec{Timeout: dur(2 * time.Second), GracePeriod: dur(time.Second)})
	tok := createMonitor(t, m)
	mustPush(t, tok, "msg=first")
	upCopy := expectState(t, m, monitoringv1alpha1.StateUp, monitoringv1alpha1.HeartbeatReceivedReason, 10*time.Second)

	down := expectState(t, m, monitoringv1alpha1.StateDown, monitoringv1alpha1.HeartbeatMissedReason, 10*time.Second)
	since := meta.FindStatusCondition(down.Status.Conditions, monitoringv1alpha1.HealthyCondition).LastTransitionTime.Time
	// Received before the transition's second (so not newer by that test)
	// and after the heartbeat the Down was declared on; written by a
	// replica whose cache still shows the monitor Up.
	received := since.Add(-100 * time.Millisecond)
	g.Expect(received).To(BeTemporally(">", upCopy.Status.LastHeartbeatTime.Time))
	w := &heartbeat.Writer{Client: k8sClient}
	g.Expect(w.Record(context.Background(), upCopy, heartbeat.Heartbeat{
		Time: received.Truncate(time.Microsecond), Status: monitoringv1alpha1.ReportedUp, Message: "just-in-time",
	})).To(Succeed())

	got := expectState(t, m, monitoringv1alpha1.StateUp, monitoringv1alpha1.RecoveredReason, 3*time.Second)
	g.Expect(got.Status.LastMessage).To(Equal("just-in-time"))
	g.Expect(got.Status.Deadline.Time).To(BeTemporally("~", received.Add(3*time.Second), time.Millisecond))
	expectEvents(t, m, monitoringv1alpha1.RecoveredReason, 1)
}

// A down report superseded by an up report before any leader evaluated it
// (here: both stored while no manager ran, as during a failover) is still
// shown: the new leader turns the monitor Down for it (DownReported, with
// its message) and then back Up (Recovered), one event each.
func TestFailureSupersededBeforeAnyLeaderSawIt(t *testing.T) {
	g := NewWithT(t)
	m := monitor(newNamespace(t), "flap", monitoringv1alpha1.PushMonitorSpec{Timeout: dur(time.Hour)})
	tok := createMonitor(t, m)
	mustPush(t, tok, "msg=fine")
	expectState(t, m, monitoringv1alpha1.StateUp, monitoringv1alpha1.HeartbeatReceivedReason, 10*time.Second)

	stopManager()
	restarted := false
	t.Cleanup(func() {
		if !restarted {
			_ = startManager()
		}
	})
	w := &heartbeat.Writer{Client: k8sClient}
	cur := getMonitor(g, m)
	g.Expect(w.Record(context.Background(), cur, heartbeat.Heartbeat{
		Time: heartbeat.Now(), Status: monitoringv1alpha1.ReportedDown, Message: "disk-full"})).To(Succeed())
	cur = getMonitor(g, m)
	g.Expect(w.Record(context.Background(), cur, heartbeat.Heartbeat{
		Time: heartbeat.Now(), Status: monitoringv1alpha1.ReportedUp, Message: "fixed"})).To(Succeed())
	restarted = true
	g.Expect(startManager()).To(Succeed())

	evs := expectEvents(t, m, monitoringv1alpha1.DownReportedReason, 1)
	g.Expect(evs[0].Note).To(ContainSubstring("disk-full"))
	expectEvents(t, m, monitoringv1alpha1.RecoveredReason, 1)
	got := expectState(t, m, monitoringv1alpha1.StateUp, monitoringv1alpha1.RecoveredReason, 10*time.Second)
	g.Expect(got.Status.LastMessage).To(Equal("fixed"))
	g.Expect(got.Status.LastFailure).NotTo(BeNil())
	g.Expect(got.Status.LastFailure.Message).To(Equal("disk-full"))
	g.Consistently(func(g Gomega) {
		g.Expect(occurrences(events(g, m, monitoringv1alpha1.DownReportedReason))).To(Equal(1))
		g.Expect(occurrences(events(g, m, monitoringv1alpha1.RecoveredReason))).To(Equal(1))
		g.Expect(getMonitor(g, m).Status.State).To(Equal(monitoringv1alpha1.StateUp))
	}).WithTimeout(2 * time.Second).WithPolling(100 * time.Millisecond).Should(Succeed())
}

// A down report answered 200 but written only after a newer up report was
// stored (held through an API outage by one replica while another stored
// the client's next push) does not move the heartbeat back, and is not lost
// either: the failure is kept and the leader shows it, Down then Recovered.
func TestSupersededDownReportIsStillShown(t *testing.T) {
	g := NewWithT(t)
	m := monitor(newNamespace(t), "late-down", monitoringv1alpha1.PushMonitorSpec{Timeout: dur(time.Hour)})
	tok := createMonitor(t, m)
	received := heartbeat.Now()   // the down report, taken first ...
	mustPush(t, tok, "msg=fixed") // ... and the up report stored before it
	expectState(t, m, monitoringv1alpha1.StateUp, monitoringv1alpha1.HeartbeatReceivedReason, 10*time.Second)

	w := &heartbeat.Writer{Client: k8sClient}
	g.Expect(w.Record(context.Background(), getMonitor(g, m), heartbeat.Heartbeat{
		Time: received, Status: monitoringv1alpha1.ReportedDown, Message: "disk-full"})).To(Succeed())

	evs := expectEvents(t, m, monitoringv1alpha1.DownReportedReason, 1)
	g.Expect(evs[0].Note).To(ContainSubstring("disk-full"))
	expectEvents(t, m, monitoringv1alpha1.RecoveredReason, 1)
	got := expectState(t, m, monitoringv1alpha1.StateUp, monitoringv1alpha1.RecoveredReason, 10*time.Second)
	g.Expect(got.Status.LastMessage).To(Equal("fixed"), "the heartbeat fields did not move back")
	g.Expect(got.Status.LastFailure.Message).To(Equal("disk-full"))
}

// lastFailure is the newest failure a client reported: a second down report
// within the window of the first (held by the coalescer while the monitor
// is Down) and then an up report leave the second one's message in
// lastFailure, with one DownReported and one Recovered event for the
// episode.
func TestNewestFailureOfAnEpisodeIsKept(t *testing.T) {
	g := NewWithT(t)
	m := monitor(newNamespace(t), "two-downs", monitoringv1alpha1.PushMonitorSpec{Timeout: dur(time.Hour)})
	tok := createMonitor(t, m)
	mustPush(t, tok, "status=down&msg=disk-full")
	expectState(t, m, monitoringv1alpha1.StateDown, monitoringv1alpha1.DownReportedReason, 10*time.Second)
	mustPush(t, tok, "status=down&msg=disk+full+on+%2Fvar")
	mustPush(t, tok, "status=up&msg=fixed")
	expectState(t, m, monitoringv1alpha1.StateUp, monitoringv1alpha1.RecoveredReason, 10*time.Second)

	g.Eventually(func(g Gomega) {
		f := getMonitor(g, m).Status.LastFailure
		g.Expect(f).NotTo(BeNil())
		g.Expect(f.Message).To(Equal("disk full on /var"))
	}).WithTimeout(15 * time.Second).Should(Succeed())
	g.Consistently(func(g Gomega) {
		g.Expect(occurrences(events(g, m, monitoringv1alpha1.DownReportedReason))).To(Equal(1))
		g.Expect(occurrences(events(g, m, monitoringv1alpha1.RecoveredReason))).To(Equal(1))
		g.Expect(getMonitor(g, m).Status.State).To(Equal(monitoringv1alpha1.StateUp))
		g.Expect(getMonitor(g, m).Status.LastMessage).To(Equal("fixed"))
	}).WithTimeout(2 * time.Second).WithPolling(100 * time.Millisecond).Should(Succeed())
}
