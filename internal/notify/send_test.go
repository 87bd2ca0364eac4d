package notify

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
	"github.com/pushmon/pushmon/internal/token"
)

// request is what a receiver got.
type request struct {
	Path   string
	Header http.Header
	Body   []byte
}

// receiver is a local HTTP server standing in for a service: it checks
// each request against the service's documented schema (check) and answers
// as the service does.
type receiver struct {
	*httptest.Server
	mu   sync.Mutex
	got  []request
	errs []error
}

func newReceiver(t *testing.T, status int, answer string, check func(r *http.Request, body []byte) error) *receiver {
	rc := &receiver{}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		err := check(r, body)
		if r.Method != http.MethodPost {
			err = errors.Join(err, fmt.Errorf("method %s", r.Method))
		}
		rc.mu.Lock()
		rc.got = append(rc.got, request{Path: r.URL.RequestURI(), Header: r.Header.Clone(), Body: body})
		if err != nil {
			rc.errs = append(rc.errs, fmt.Errorf("%s: %w (body %s)", r.URL.Path, err, body))
		}
		rc.mu.Unlock()
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, answer)
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) requests() []request {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]request(nil), rc.got...)
}

// strict decodes body into v refusing unknown fields: the schema is closed.
func strict(body []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(body))
	d.DisallowUnknownFields()
	return d.Decode(v)
}

func need(ok bool, f string, a ...any) error {
	if ok {
		return nil
	}
	return fmt.Errorf(f, a...)
}

func jsonType(r *http.Request) error {
	return need(strings.HasPrefix(r.Header.Get("Content-Type"), "application/json"), "content type %q", r.Header.Get("Content-Type"))
}

// https://api.slack.com/messaging/webhooks: text, the message and its
// notification fallback.
func checkSlack(r *http.Request, body []byte) error {
	var p struct {
		Text string `json:"text"`
	}
	return errors.Join(jsonType(r), strict(body, &p), need(p.Text != "", "no text"))
}

// A Teams workflow webhook wants a message with Adaptive Card attachments
// (learn.microsoft.com, "Create incoming webhooks with Workflows").
func checkTeams(r *http.Request, body []byte) error {
	var p struct {
		Type        string `json:"type"`
		Attachments []struct {
			ContentType string `json:"contentType"`
			Content     struct {
				Schema  string `json:"$schema"`
				Type    string `json:"type"`
				Version string `json:"version"`
				Body    []struct {
					Type   string `json:"type"`
					Text   string `json:"text"`
					Weight string `json:"weight"`
					Size   string `json:"size"`
					Wrap   bool   `json:"wrap"`
				} `json:"body"`
				Actions []struct {
					Type, Title, URL string
				} `json:"actions"`
			} `json:"content"`
		} `json:"attachments"`
	}
	if err := errors.Join(jsonType(r), strict(body, &p)); err != nil {
		return err
	}
	if err := need(p.Type == "message" && len(p.Attachments) == 1, "type %q, %d attachments", p.Type, len(p.Attachments)); err != nil {
		return err
	}
	a := p.Attachments[0]
	return errors.Join(
		need(a.ContentType == "application/vnd.microsoft.card.adaptive", "contentType %q", a.ContentType),
		need(a.Content.Type == "AdaptiveCard" && a.Content.Version != "" && len(a.Content.Body) > 0, "not an Adaptive Card"),
	)
}

// https://discord.com/developers/docs/resources/webhook#execute-webhook and
// the embed limits.
func checkDiscord(r *http.Request, body []byte) error {
	var p struct {
		Content  string `json:"content"`
		Username string `json:"username"`
		Embeds   []struct {
			Title       string `json:"title"`
			Description string `json:"description"`
			Color       int    `json:"color"`
			URL         string `json:"url"`
		} `json:"embeds"`
	}
	if err := errors.Join(jsonType(r), strict(body, &p)); err != nil {
		return err
	}
	errs := []error{need(len(p.Content) <= 2000, "content over 2000"), need(len(p.Embeds) <= 10, "over 10 embeds"),
		need(p.Content != "" || len(p.Embeds) > 0, "neither content nor embeds")}
	for _, e := range p.Embeds {
		errs = append(errs, need(len(e.Title) <= 256 && len(e.Description) <= 4096 && e.Color >= 0 && e.Color <= 0xFFFFFF, "embed out of limits"))
	}
	return errors.Join(errs...)
}

const routingKey = "R0123456789abcdef0123456789abcde"

// https://developer.pagerduty.com/docs/events-api-v2/trigger-events/ and
// resolve-events.
func checkPagerDuty(r *http.Request, body []byte) error {
	var p struct {
		RoutingKey  string `json:"routing_key"`
		EventAction string `json:"event_action"`
		DedupKey    string `json:"dedup_key"`
		Client      string `json:"client"`
		Payload     *struct {
			Summary       string         `json:"summary"`
			Source        string         `json:"source"`
			Severity      string         `json:"severity"`
			Timestamp     string         `json:"timestamp"`
			Component     string         `json:"component"`
			Group         string         `json:"group"`
			Class         string         `json:"class"`
			CustomDetails map[string]any `json:"custom_details"`
		} `json:"payload"`
		Links []struct {
			Href string `json:"href"`
			Text string `json:"text"`
		} `json:"links"`
	}
	if err := errors.Join(jsonType(r), strict(body, &p), need(r.URL.Path == "/v2/enqueue", "path %s", r.URL.Path)); err != nil {
		return err
	}
	errs := []error{need(p.RoutingKey == routingKey, "routing_key %q", p.RoutingKey), need(p.DedupKey != "" && len(p.DedupKey) <= 255, "dedup_key")}
	switch p.EventAction {
	case "trigger":
		if p.Payload == nil {
			return errors.New("trigger without payload")
		}
		_, terr := time.Parse(time.RFC3339, p.Payload.Timestamp)
		errs = append(errs, need(p.Payload.Summary != "" && len(p.Payload.Summary) <= 1024, "summary"), need(p.Payload.Source != "", "source"),
			need(regexp.MustCompile(`^(critical|error|warning|info)$`).MatchString(p.Payload.Severity), "severity %q", p.Payload.Severity), terr)
	case "resolve":
		errs = append(errs, need(p.Payload == nil, "resolve with a payload"))
	default:
		errs = append(errs, fmt.Errorf("event_action %q", p.EventAction))
	}
	return errors.Join(errs...)
}

const genieKey = "eb243592-faa2-4ba2-a551q-1afdf565c889"

// https://docs.opsgenie.com/docs/alert-api: create and close by alias.
func checkOpsgenie(r *http.Request, body []byte) error {
	errs := []error{jsonType(r), need(r.Header.Get("Authorization") == "GenieKey "+genieKey, "authorization %q", r.Header.Get("Authorization"))}
	if strings.HasSuffix(r.URL.Path, "/close") {
		var p struct {
			User, Source, Note string
		}
		return errors.Join(append(errs, strict(body, &p), need(r.URL.Query().Get("identifierType") == "alias", "identifierType"),
			need(strings.HasPrefix(r.URL.Path, "/v2/alerts/"), "path %s", r.URL.Path))...)
	}
	var p struct {
		Message     string            `json:"message"`
		Alias       string            `json:"alias"`
		Description string            `json:"description"`
		Source      string            `json:"source"`
		Priority    string            `json:"priority"`
		Tags        []string          `json:"tags"`
		Details     map[string]string `json:"details"`
	}
	return errors.Join(append(errs, strict(body, &p), need(r.URL.Path == "/v2/alerts", "path %s", r.URL.Path),
		need(p.Message != "" && len(p.Message) <= 130, "message"), need(len(p.Alias) <= 512, "alias"),
		need(len(p.Description) <= 15000, "description"), need(regexp.MustCompile(`^P[1-5]$`).MatchString(p.Priority), "priority"))...)
}

// https://docs.ntfy.sh/publish/: the body is the message, headers the rest.
func checkNtfy(r *http.Request, body []byte) error {
	return errors.Join(need(r.URL.Path == "/alerts", "topic path %s", r.URL.Path), need(len(body) > 0, "empty message"),
		need(r.Header.Get("Title") != "", "no Title"), need(regexp.MustCompile(`^[1-5]$`).MatchString(r.Header.Get("Priority")), "priority"),
		need(r.Header.Get("Authorization") == "Bearer tk_ntfy", "authorization %q", r.Header.Get("Authorization")))
}

const botToken = "123456:ABC-DEF1234ghIkl-zyx57W2v1u123ew11"

// https://core.telegram.org/bots/api#sendmessage
func checkTelegram(r *http.Request, body []byte) error {
	var p struct {
		ChatID string `json:"chat_id"`
		Text   string `json:"text"`
	}
	return errors.Join(jsonType(r), strict(body, &p), need(r.URL.Path == "/bot"+botToken+"/sendMessage", "path %s", r.URL.Path),
		need(p.ChatID == "-100123", "chat_id %q", p.ChatID), need(p.Text != "" && len(p.Text) <= 4096, "text"))
}

// Alertmanager's OpenAPI v2 postableAlerts.
func checkAlertmanager(r *http.Request, body []byte) error {
	var p []struct {
		Labels       map[string]string `json:"labels"`
		Annotations  map[string]string `json:"annotations"`
		StartsAt     time.Time         `json:"startsAt"`
		EndsAt       time.Time         `json:"endsAt"`
		GeneratorURL string            `json:"generatorURL"`
	}
	if err := errors.Join(jsonType(r), strict(body, &p), need(r.URL.Path == "/api/v2/alerts", "path %s", r.URL.Path)); err != nil {
		return err
	}
	var errs []error
	for _, a := range p {
		errs = append(errs, need(a.Labels["alertname"] != "", "no alertname"), need(!a.EndsAt.Before(a.StartsAt), "endsAt before startsAt"))
		for k := range a.Labels {
			errs = append(errs, need(regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`).MatchString(k), "label name %q", k))
		}
	}
	return errors.Join(errs...)
}

const hmacKey = "s3cret"

func checkWebhook(r *http.Request, body []byte) error {
	var p WebhookPayload
	mac := r.Header.Get(SignatureHeader)
	return errors.Join(jsonType(r), strict(body, &p), need(hmac.Equal([]byte(mac), []byte(Sign([]byte(hmacKey), body))), "bad signature %q", mac),
		need(p.Event == r.Header.Get(EventHeader), "event header"), need(p.Namespace != "" && p.Name != "" && p.Title != "", "monitor"))
}

// downMonitor is a monitor Down for a missed heartbeat whose last message
// carries its own push URL (which must never be sent on).
func downMonitor(tok string) *monitoringv1alpha1.PushMonitor {
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	hb := metav1.NewMicroTime(start.Add(-95 * time.Second))
	exit := int32(3)
	return &monitoringv1alpha1.PushMonitor{
		ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "nightly-backup", UID: "u-1",
			Annotations: map[string]string{monitoringv1alpha1.RunbookAnnotation: "https://runbooks.example.com/backup"}},
		Status: monitoringv1alpha1.PushMonitorStatus{
			State: monitoringv1alpha1.StateDown, LastHeartbeatTime: &hb,
			LastMessage: "pushed to http://push/api/push/" + tok,
			LastFailure: &monitoringv1alpha1.FailureReport{Time: hb, Status: monitoringv1alpha1.ReportedFailed,
				Message: "disk full; retry with " + tok, ExitCode: &exit},
			PushToken: &monitoringv1alpha1.PushTokenStatus{SHA256: token.Digest(tok)},
			Incident: &monitoringv1alpha1.Incident{StartTime: metav1.NewMicroTime(start), Reason: monitoringv1alpha1.HeartbeatMissedReason,
				Message: "no heartbeat since http://push/api/push/" + tok},
		},
	}
}

func TestSendEveryType(t *testing.T) {
	tok, err := token.New()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		typ    monitoringv1alpha1.ChannelType
		status int
		answer string
		check  func(*http.Request, []byte) error
		path   string
		secret map[string]string
		spec   func(*monitoringv1alpha1.AlertChannelSpec)
	}{
		{typ: monitoringv1alpha1.ChannelWebhook, status: 200, check: checkWebhook, path: "/hook", secret: map[string]string{KeyHMACSecret: hmacKey}},
		{typ: monitoringv1alpha1.ChannelSlack, status: 200, answer: "ok", check: checkSlack, path: "/services/T0/B0/XX"},
		{typ: monitoringv1alpha1.ChannelMSTeams, status: 202, check: checkTeams, path: "/workflows/abc/triggers/manual/paths/invoke"},
		{typ: monitoringv1alpha1.ChannelDiscord, status: 204, check: checkDiscord, path: "/api/webhooks/1/x"},
		{typ: monitoringv1alpha1.ChannelPagerDuty, status: 202, answer: `{"status":"success"}`, check: checkPagerDuty, path: "/v2/enqueue", secret: map[string]string{KeyRoutingKey: routingKey}},
		{typ: monitoringv1alpha1.ChannelOpsgenie, status: 202, answer: `{"result":"Request will be processed"}`, check: checkOpsgenie, secret: map[string]string{KeyAPIKey: genieKey}},
		{typ: monitoringv1alpha1.ChannelNtfy, status: 200, answer: `{"id":"x"}`, check: checkNtfy, path: "/alerts", secret: map[string]string{KeyToken: "tk_ntfy"}},
		{typ: monitoringv1alpha1.ChannelTelegram, status: 200, answer: `{"ok":true,"result":{}}`, check: checkTelegram, secret: map[string]string{KeyBotToken: botToken},
			spec: func(s *monitoringv1alpha1.AlertChannelSpec) {
				s.Telegram = &monitoringv1alpha1.TelegramConfig{ChatID: "-100123"}
			}},
		{typ: monitoringv1alpha1.ChannelAlertmanager, status: 200, check: checkAlertmanager},
	} {
		t.Run(string(tc.typ), func(t *testing.T) {
			g := NewWithT(t)
			rc := newReceiver(t, tc.status, tc.answer, tc.check)
			ch := &Channel{ID: "AlertChannel/x", Spec: monitoringv1alpha1.AlertChannelSpec{Type: tc.typ, Address: rc.URL + tc.path}, Secret: map[string][]byte{}}
			for k, v := range tc.secret {
				ch.Secret[k] = []byte(v)
			}
			if tc.spec != nil {
				tc.spec(&ch.Spec)
			}
			g.Expect(ch.Validate()).To(Succeed())
			m := downMonitor(tok)
			now := m.Status.Incident.StartTime.Add(time.Second)
			s := &Sender{}
			for _, ev := range []monitoringv1alpha1.NotificationEvent{monitoringv1alpha1.NotifyDown, monitoringv1alpha1.NotifyReminder, monitoringv1alpha1.NotifyRecovered, monitoringv1alpha1.NotifyTest} {
				if ev == monitoringv1alpha1.NotifyRecovered {
					end := metav1.NewMicroTime(now.Add(time.Minute))
					m.Status.Incident.EndTime, m.Status.Incident.EndState, m.Status.State = &end, monitoringv1alpha1.StateUp, monitoringv1alpha1.StateUp
				}
				n := FromMonitor(m, ev, 1, now)
				if ev == monitoringv1alpha1.NotifyTest {
					n = Notification{Event: ev, Channel: ch.ID, Time: now, Namespace: "team-a", Name: "x"}
				}
				g.Expect(s.Send(context.Background(), ch, &n)).To(Succeed(), string(ev))
			}
			rc.mu.Lock()
			g.Expect(rc.errs).To(BeEmpty())
			rc.mu.Unlock()
			got := rc.requests()
			want := 4
			if tc.typ == monitoringv1alpha1.ChannelPagerDuty {
				want = 5 // the test message is a trigger and its resolve
			}
			g.Expect(got).To(HaveLen(want))
			for _, r := range got {
				g.Expect(string(r.Body)).NotTo(ContainSubstring(tok), "the push token in a notification")
				g.Expect(r.Path).NotTo(ContainSubstring(tok))
			}
			g.Expect(string(got[0].Body) + got[0].Header.Get("Title")).To(ContainSubstring("nightly-backup"))
			switch tc.typ {
			case monitoringv1alpha1.ChannelPagerDuty:
				var first, last map[string]any
				g.Expect(json.Unmarshal(got[0].Body, &first)).To(Succeed())
				g.Expect(json.Unmarshal(got[2].Body, &last)).To(Succeed())
				g.Expect(first["event_action"]).To(Equal("trigger"))
				g.Expect(last["event_action"]).To(Equal("resolve"))
				g.Expect(last["dedup_key"]).To(Equal(first["dedup_key"]), "one dedup key per monitor")
			case monitoringv1alpha1.ChannelOpsgenie:
				g.Expect(got[2].Path).To(Equal("/v2/alerts/" + strings.ReplaceAll("pushmon/team-a/nightly-backup/u-1", "/", "%2F") + "/close?identifierType=alias"))
			case monitoringv1alpha1.ChannelAlertmanager:
				var down, rec []map[string]any
				g.Expect(json.Unmarshal(got[0].Body, &down)).To(Succeed())
				g.Expect(json.Unmarshal(got[2].Body, &rec)).To(Succeed())
				g.Expect(rec[0]["startsAt"]).To(Equal(down[0]["startsAt"]), "the recovery resolves the same alert")
				g.Expect(rec[0]["endsAt"]).To(Equal(now.Add(time.Minute).UTC().Format(time.RFC3339Nano)))
			case monitoringv1alpha1.ChannelWebhook:
				var p WebhookPayload
				g.Expect(json.Unmarshal(got[0].Body, &p)).To(Succeed())
				g.Expect(p.SilentForSeconds).To(Equal(int64(95)))
				g.Expect(p.Failure).NotTo(BeNil())
				g.Expect(*p.Failure.ExitCode).To(Equal(int32(3)))
				g.Expect(p.RunbookURL).To(Equal("https://runbooks.example.com/backup"))
				g.Expect(p.Message).To(ContainSubstring("[redacted]"))
			}
		})
	}
}

func TestSendErrorsAreReadableAndHideTheURL(t *testing.T) {
	g := NewWithT(t)
	rc := newReceiver(t, 200, "", func(*http.Request, []byte) error { return errors.New("invalid_token") })
	ch := &Channel{Spec: monitoringv1alpha1.AlertChannelSpec{Type: monitoringv1alpha1.ChannelSlack, Address: rc.URL + "/services/T0/B0/SECRETPART"}}
	n := FromMonitor(downMonitor("x"), monitoringv1alpha1.NotifyDown, 0, time.Now())
	err := (&Sender{}).Send(context.Background(), ch, &n)
	g.Expect(err).To(MatchError(ContainSubstring("400 Bad Request: invalid_token")))
	g.Expect(err.Error()).NotTo(ContainSubstring("SECRETPART"))

	ch.Spec.Address = "http://127.0.0.1:1/services/T0/B0/SECRETPART"
	err = (&Sender{}).Send(context.Background(), ch, &n)
	g.Expect(err).To(MatchError(ContainSubstring("connection refused")))
	g.Expect(err.Error()).NotTo(ContainSubstring("SECRETPART"))
}

// smtpServer runs testdata/smtpd.py (Debian's python3-aiosmtpd): STARTTLS
// and AUTH required. It returns the address, the CA to trust and the mails.
func smtpServer(t *testing.T, user, password string) (string, []byte, func() []map[string]any) {
	t.Helper()
	py := "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import aiosmtpd").Run(); err != nil {
		t.Skip("python3-aiosmtpd is not installed (apt-get install python3-aiosmtpd; .ci/run installs it)")
	}
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	out, err := exec.Command("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
		"-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-days", "1").CombinedOutput()
	if err != nil {
		t.Fatalf("openssl: %v: %s", err, out)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	cmd := exec.Command(py, "testdata/smtpd.py", cert, key, user, password, fmt.Sprint(port))
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	var mu sync.Mutex
	var mails []map[string]any
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			if sc.Text() == "READY" {
				close(ready)
				continue
			}
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				mu.Lock()
				mails = append(mails, m)
				mu.Unlock()
			}
		}
	}()
	select {
	case <-ready:
	case <-time.After(30 * time.Second):
		t.Fatal("smtpd did not start")
	}
	ca, _ := os.ReadFile(cert)
	return fmt.Sprintf("127.0.0.1:%d", port), ca, func() []map[string]any {
		mu.Lock()
		defer mu.Unlock()
		return append([]map[string]any(nil), mails...)
	}
}

func TestSendEmail(t *testing.T) {
	g := NewWithT(t)
	addr, ca, mails := smtpServer(t, "alerts", "pw")
	ch := &Channel{Spec: monitoringv1alpha1.AlertChannelSpec{Type: monitoringv1alpha1.ChannelEmail, Address: addr,
		Email: &monitoringv1alpha1.EmailConfig{From: "pushmon@example.com", To: []string{"oncall@example.com"}}},
		Secret: map[string][]byte{KeyUsername: []byte("alerts"), KeyPassword: []byte("pw"), KeyCA: ca}}
	g.Expect(ch.Validate()).To(Succeed())
	tok, _ := token.New()
	n := FromMonitor(downMonitor(tok), monitoringv1alpha1.NotifyDown, 0, time.Now())
	g.Expect((&Sender{}).Send(context.Background(), ch, &n)).To(Succeed())
	g.Eventually(mails).Should(HaveLen(1))
	m := mails()[0]
	g.Expect(m["tls"]).To(BeTrue(), "sent after STARTTLS")
	g.Expect(m["to"]).To(ConsistOf("oncall@example.com"))
	g.Expect(m["data"]).To(ContainSubstring("Subject: DOWN: team-a/nightly-backup (HeartbeatMissed)"))
	g.Expect(m["data"]).To(ContainSubstring("Silent for 1m35s"))
	g.Expect(m["data"]).NotTo(ContainSubstring(tok))

	bad := *ch
	bad.Secret = map[string][]byte{KeyUsername: []byte("alerts"), KeyPassword: []byte("wrong"), KeyCA: ca}
	g.Expect((&Sender{}).Send(context.Background(), &bad, &n)).To(MatchError(ContainSubstring("AUTH")))
	untrusted := *ch
	untrusted.Secret = map[string][]byte{KeyUsername: []byte("alerts"), KeyPassword: []byte("pw")}
	g.Expect((&Sender{}).Send(context.Background(), &untrusted, &n)).To(MatchError(ContainSubstring("STARTTLS")))
}

func TestNext(t *testing.T) {
	start := metav1.NewMicroTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	end := metav1.NewMicroTime(start.Add(time.Hour))
	open := &monitoringv1alpha1.Incident{StartTime: start, Reason: "HeartbeatMissed"}
	recovered := &monitoringv1alpha1.Incident{StartTime: start, Reason: "HeartbeatMissed", EndTime: &end, EndState: monitoringv1alpha1.StateUp}
	suspended := &monitoringv1alpha1.Incident{StartTime: start, Reason: "HeartbeatMissed", EndTime: &end, EndState: monitoringv1alpha1.StateSuspended}
	sent := func(ev monitoringv1alpha1.NotificationEvent, n int32, at time.Time) *monitoringv1alpha1.ChannelNotification {
		return &monitoringv1alpha1.ChannelNotification{Channel: "c", IncidentStartTime: start, LastEvent: ev, Reminders: n, Time: metav1.NewTime(at)}
	}
	older := &monitoringv1alpha1.ChannelNotification{Channel: "c", IncidentStartTime: metav1.NewMicroTime(start.Add(-time.Hour)), LastEvent: monitoringv1alpha1.NotifyRecovered}
	ten := &metav1.Duration{Duration: 10 * time.Minute}
	early := target{created: start.Add(-time.Hour)}
	for _, tc := range []struct {
		name   string
		in     *monitoringv1alpha1.Incident
		e      *monitoringv1alpha1.ChannelNotification
		t      target
		now    time.Duration
		want   monitoringv1alpha1.NotificationEvent
		n      int32
		dueIn  time.Duration
		repeat *metav1.Duration
	}{
		{name: "new incident", in: open, t: early, want: monitoringv1alpha1.NotifyDown},
		{name: "after an older incident", in: open, e: older, t: early, want: monitoringv1alpha1.NotifyDown},
		{name: "down sent, no reminders", in: open, e: sent(monitoringv1alpha1.NotifyDown, 0, start.Time), t: early, now: time.Hour},
		{name: "reminder not due", in: open, e: sent(monitoringv1alpha1.NotifyDown, 0, start.Time), t: early, repeat: ten, now: time.Minute, dueIn: 10 * time.Minute},
		{name: "reminder due", in: open, e: sent(monitoringv1alpha1.NotifyDown, 0, start.Time), t: early, repeat: ten, now: 10 * time.Minute, want: monitoringv1alpha1.NotifyReminder, n: 1},
		{name: "one reminder after a long absence", in: open, e: sent(monitoringv1alpha1.NotifyReminder, 2, start.Add(20*time.Minute)), t: early, repeat: ten, now: 5 * time.Hour, want: monitoringv1alpha1.NotifyReminder, n: 3},
		{name: "recovered", in: recovered, e: sent(monitoringv1alpha1.NotifyReminder, 2, start.Time), t: early, want: monitoringv1alpha1.NotifyRecovered},
		{name: "recovered before down was sent: down first", in: recovered, t: early, want: monitoringv1alpha1.NotifyDown},
		{name: "all sent", in: recovered, e: sent(monitoringv1alpha1.NotifyRecovered, 0, end.Time), t: early},
		{name: "ended by suspend", in: suspended, e: sent(monitoringv1alpha1.NotifyDown, 0, start.Time), t: early},
		{name: "suspended before anything was sent", in: suspended, t: early},
		{name: "channel created after the incident ended", in: recovered, t: target{created: end.Add(time.Minute)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.t.spec.RepeatInterval = tc.repeat
			now := start.Add(tc.now)
			ev, n, due := next(tc.in, tc.e, tc.t, now)
			if ev != tc.want || n != tc.n {
				t.Fatalf("next = %q %d, want %q %d", ev, n, tc.want, tc.n)
			}
			if tc.dueIn != 0 && !due.Equal(start.Add(tc.dueIn)) {
				t.Fatalf("due %v, want %v", due, start.Add(tc.dueIn))
			}
		})
	}
}
