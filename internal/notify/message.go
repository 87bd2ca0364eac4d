// Package notify delivers a PushMonitor's Down, reminder and Recovered
// notifications through AlertChannels and ClusterAlertChannels. It runs on
// the leader only and records each delivery in the monitor's status
// (status.notifications), so that a new leader neither repeats nor skips one.
package notify

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
	"github.com/pushmon/pushmon/internal/token"
)

// Notification is one message about one monitor, whatever the channel.
type Notification struct {
	Event      monitoringv1alpha1.NotificationEvent
	Namespace  string
	Name       string
	UID        string
	State      monitoringv1alpha1.MonitorState
	Reason     string
	Message    string
	Since      time.Time  // the incident's start
	Ended      *time.Time // the incident's end (Recovered)
	LastBeat   *time.Time // the last heartbeat, if any
	Failure    *Failure   // the failed run's diagnosis, if any
	RunbookURL string
	Reminder   int32 // the reminder's number (Reminder)
	Time       time.Time
	Channel    string // kind/name of the channel (in test messages)
}

// Failure is the diagnosis of the last failure a client reported.
type Failure struct {
	Message  string
	ExitCode *int32
	Time     time.Time
}

// SilentFor is how long the monitor had been silent when it went Down (0
// without a heartbeat before it).
func (n *Notification) SilentFor() time.Duration {
	if n.LastBeat == nil || n.LastBeat.After(n.Since) {
		return 0
	}
	return n.Since.Sub(*n.LastBeat).Round(time.Second)
}

// DownFor is how long the incident lasted (so far, for Down and Reminder).
func (n *Notification) DownFor() time.Duration {
	end := n.Time
	if n.Ended != nil {
		end = *n.Ended
	}
	return end.Sub(n.Since).Round(time.Second)
}

// Key names the monitor, for dedup keys and aliases: one per monitor, so a
// resolve closes what the trigger opened.
func (n *Notification) Key() string {
	return "pushmon/" + n.Namespace + "/" + n.Name + "/" + n.UID
}

// Title is the one-line summary.
func (n *Notification) Title() string {
	who := n.Namespace + "/" + n.Name
	switch n.Event {
	case monitoringv1alpha1.NotifyDown:
		return fmt.Sprintf("DOWN: %s (%s)", who, n.Reason)
	case monitoringv1alpha1.NotifyReminder:
		return fmt.Sprintf("STILL DOWN: %s (%s, reminder %d)", who, n.Reason, n.Reminder)
	case monitoringv1alpha1.NotifyRecovered:
		return fmt.Sprintf("RECOVERED: %s", who)
	default:
		return "pushmon test notification from " + n.Channel
	}
}

// Text is the body: what happened, for how long, the diagnosis, the links.
func (n *Notification) Text() string {
	var b strings.Builder
	line := func(f string, a ...any) { fmt.Fprintf(&b, f+"\n", a...) }
	if n.Event == monitoringv1alpha1.NotifyTest {
		line("This is a test message from pushmon through %s.", n.Channel)
		return strings.TrimSuffix(b.String(), "\n")
	}
	line("PushMonitor %s in namespace %s", n.Name, n.Namespace)
	switch n.Event {
	case monitoringv1alpha1.NotifyRecovered:
		line("Recovered after %s Down (%s).", n.DownFor(), n.Reason)
	default:
		line("Down since %s (%s): %s", n.Since.UTC().Format(time.RFC3339), n.Reason, n.Message)
		if n.Event == monitoringv1alpha1.NotifyReminder {
			line("Down for %s.", n.DownFor())
		}
	}
	if s := n.SilentFor(); s > 0 {
		line("Silent for %s before going Down.", s)
	} else if n.LastBeat == nil {
		line("No heartbeat received yet.")
	}
	if f := n.Failure; f != nil {
		msg := f.Message
		if f.ExitCode != nil {
			msg = fmt.Sprintf("exit code %d: %s", *f.ExitCode, msg)
		}
		line("Last failure (%s): %s", f.Time.UTC().Format(time.RFC3339), strings.TrimSpace(msg))
	}
	if n.RunbookURL != "" {
		line("Runbook: %s", n.RunbookURL)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// FromMonitor builds the notification of event for m's incident.
func FromMonitor(m *monitoringv1alpha1.PushMonitor, event monitoringv1alpha1.NotificationEvent, reminder int32, now time.Time) Notification {
	in := m.Status.Incident
	n := Notification{
		Event: event, Namespace: m.Namespace, Name: m.Name, UID: string(m.UID), State: m.Status.State,
		Reminder: reminder, Time: now, RunbookURL: m.Annotations[monitoringv1alpha1.RunbookAnnotation],
	}
	if in != nil {
		n.Reason, n.Message, n.Since = in.Reason, in.Message, in.StartTime.Time
		if in.EndTime != nil {
			t := in.EndTime.Time
			n.Ended = &t
		}
	}
	if hb := m.Status.LastHeartbeatTime; hb != nil {
		t := hb.Time
		n.LastBeat = &t
	}
	if f := m.Status.LastFailure; f != nil && event != monitoringv1alpha1.NotifyRecovered {
		n.Failure = &Failure{Message: f.Message, ExitCode: f.ExitCode, Time: f.Time.Time}
	}
	if event == monitoringv1alpha1.NotifyRecovered {
		if c := meta.FindStatusCondition(m.Status.Conditions, monitoringv1alpha1.HealthyCondition); c != nil {
			n.Message = c.Message
		}
	}
	// A client may have put its own push URL into a message: never send a
	// token on. Tokens have a fixed form; each candidate is checked against
	// the digests status publishes.
	var digests []string
	if pt := m.Status.PushToken; pt != nil {
		digests = []string{pt.SHA256, pt.PreviousSHA256}
	}
	n.Message = redact(n.Message, digests)
	if n.Failure != nil {
		n.Failure.Message = redact(n.Failure.Message, digests)
	}
	return n
}

var tokenLike = regexp.MustCompile(fmt.Sprintf(`[A-Za-z0-9_-]{%d}`, token.Length))

// redact replaces every push token (by its digest) in s.
func redact(s string, digests []string) string {
	if len(digests) == 0 || len(s) < token.Length {
		return s
	}
	return tokenLike.ReplaceAllStringFunc(s, func(c string) string {
		d := token.Digest(c)
		for _, want := range digests {
			if want != "" && d == want {
				return "[redacted]"
			}
		}
		return c
	})
}
