package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
)

// Secret keys a channel's secretRef may hold.
const (
	KeyAddress    = "address"
	KeyHMACSecret = "hmacSecret"
	KeyRoutingKey = "routingKey"
	KeyAPIKey     = "apiKey"
	KeyBotToken   = "botToken"
	KeyToken      = "token"
	KeyUsername   = "username"
	KeyPassword   = "password"
	KeyCA         = "ca.crt"
)

// Default addresses of the public services.
const (
	DefaultPagerDutyAddress = "https://events.pagerduty.com/v2/enqueue"
	DefaultOpsgenieAddress  = "https://api.opsgenie.com"
	DefaultTelegramAddress  = "https://api.telegram.org"
)

// Signature headers of the Webhook type.
const (
	SignatureHeader = "X-Pushmon-Signature"
	EventHeader     = "X-Pushmon-Event"
)

// Channel is a channel's spec with its Secret's data, ready to send through.
type Channel struct {
	// ID is kind/name, the key of status.notifications.
	ID     string
	Spec   monitoringv1alpha1.AlertChannelSpec
	Secret map[string][]byte
}

func (c *Channel) secret(key string) string { return strings.TrimSpace(string(c.Secret[key])) }

// Address is the Secret's address, else the spec's, else the type's default.
func (c *Channel) Address() string {
	if a := c.secret(KeyAddress); a != "" {
		return a
	}
	if c.Spec.Address != "" {
		return c.Spec.Address
	}
	switch c.Spec.Type {
	case monitoringv1alpha1.ChannelPagerDuty:
		return DefaultPagerDutyAddress
	case monitoringv1alpha1.ChannelOpsgenie:
		return DefaultOpsgenieAddress
	case monitoringv1alpha1.ChannelTelegram:
		return DefaultTelegramAddress
	}
	return ""
}

// Validate reports what keeps the channel from ever working (Ready=False,
// InvalidChannel) without sending anything.
func (c *Channel) Validate() error {
	addr := c.Address()
	if addr == "" {
		return errors.New("no address: set spec.address or the Secret's key address")
	}
	if c.Spec.Type != monitoringv1alpha1.ChannelEmail {
		u, err := url.Parse(addr)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return errors.New("address is not an http:// or https:// URL")
		}
	}
	need := map[monitoringv1alpha1.ChannelType]string{
		monitoringv1alpha1.ChannelPagerDuty: KeyRoutingKey,
		monitoringv1alpha1.ChannelOpsgenie:  KeyAPIKey,
		monitoringv1alpha1.ChannelTelegram:  KeyBotToken,
	}
	if key, ok := need[c.Spec.Type]; ok && c.secret(key) == "" {
		return fmt.Errorf("type %s needs the key %s in its secretRef's Secret", c.Spec.Type, key)
	}
	if _, err := c.rootCAs(); err != nil {
		return err
	}
	return nil
}

func (c *Channel) rootCAs() (*x509.CertPool, error) {
	pem := c.Secret[KeyCA]
	if len(pem) == 0 {
		return nil, nil
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("the Secret's key %s holds no PEM certificate", KeyCA)
	}
	return pool, nil
}

// Sender delivers notifications. Its HTTP client is shared by every channel
// without a CA of its own.
type Sender struct {
	HTTP *http.Client
}

// Send delivers n through c once (no retries; the caller retries).
func (s *Sender) Send(ctx context.Context, c *Channel, n *Notification) error {
	hc, err := s.client(c)
	if err != nil {
		return err
	}
	h := &httpSend{ctx: ctx, hc: hc}
	switch c.Spec.Type {
	case monitoringv1alpha1.ChannelWebhook:
		return sendWebhook(h, c, n)
	case monitoringv1alpha1.ChannelSlack:
		return h.postJSON(c.Address(), slackPayload(n), nil)
	case monitoringv1alpha1.ChannelMSTeams:
		return h.postJSON(c.Address(), teamsPayload(n), nil)
	case monitoringv1alpha1.ChannelDiscord:
		return h.postJSON(c.Address(), discordPayload(n), nil)
	case monitoringv1alpha1.ChannelPagerDuty:
		return sendPagerDuty(h, c, n)
	case monitoringv1alpha1.ChannelOpsgenie:
		return sendOpsgenie(h, c, n)
	case monitoringv1alpha1.ChannelNtfy:
		return sendNtfy(h, c, n)
	case monitoringv1alpha1.ChannelTelegram:
		return sendTelegram(h, c, n)
	case monitoringv1alpha1.ChannelAlertmanager:
		return sendAlertmanager(h, c, n)
	case monitoringv1alpha1.ChannelEmail:
		pool, err := c.rootCAs()
		if err != nil {
			return err
		}
		return sendMail(ctx, c, n, pool)
	}
	return fmt.Errorf("unknown channel type %q", c.Spec.Type)
}

func (s *Sender) client(c *Channel) (*http.Client, error) {
	base := s.HTTP
	if base == nil {
		base = &http.Client{Timeout: 10 * time.Second}
	}
	pool, err := c.rootCAs()
	if err != nil || pool == nil {
		return base, err
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return &http.Client{Timeout: base.Timeout, Transport: t}, nil
}

type httpSend struct {
	ctx context.Context
	hc  *http.Client
}

// postJSON POSTs body as JSON and wants a 2xx. Its errors never carry the
// URL, which may itself be a credential (Slack, Discord, Teams, Telegram).
func (h *httpSend) postJSON(addr string, body any, header http.Header) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	if header == nil {
		header = http.Header{}
	}
	header.Set("Content-Type", "application/json")
	_, err = h.do(addr, b, header)
	return err
}

func (h *httpSend) do(addr string, body []byte, header http.Header) ([]byte, error) {
	u, err := url.Parse(addr)
	if err != nil {
		return nil, errors.New("address is not a URL")
	}
	req, err := http.NewRequestWithContext(h.ctx, http.MethodPost, addr, bytes.NewReader(body))
	if err != nil {
		return nil, errors.New("address is not a URL")
	}
	req.Header = header
	req.Header.Set("User-Agent", "pushmon")
	resp, err := h.hc.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("POST to %s: %w", u.Host, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return out, fmt.Errorf("POST to %s: %s: %s", u.Host, resp.Status, truncate(strings.TrimSpace(string(out)), 200))
	}
	return out, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// WebhookPayload is the Webhook type's JSON body (docs/notifications.md).
type WebhookPayload struct {
	Event             string         `json:"event"`
	Title             string         `json:"title"`
	Text              string         `json:"text"`
	Namespace         string         `json:"namespace"`
	Name              string         `json:"name"`
	UID               string         `json:"uid"`
	State             string         `json:"state"`
	Reason            string         `json:"reason,omitempty"`
	Message           string         `json:"message,omitempty"`
	IncidentStart     *time.Time     `json:"incidentStart,omitempty"`
	IncidentEnd       *time.Time     `json:"incidentEnd,omitempty"`
	LastHeartbeatTime *time.Time     `json:"lastHeartbeatTime,omitempty"`
	SilentForSeconds  int64          `json:"silentForSeconds,omitempty"`
	DownForSeconds    int64          `json:"downForSeconds,omitempty"`
	Reminder          int32          `json:"reminder,omitempty"`
	Failure           *WebhookFailed `json:"failure,omitempty"`
	RunbookURL        string         `json:"runbookURL,omitempty"`
	Time              time.Time      `json:"time"`
}

// WebhookFailed is the failed run's diagnosis in a WebhookPayload.
type WebhookFailed struct {
	Message  string    `json:"message,omitempty"`
	ExitCode *int32    `json:"exitCode,omitempty"`
	Time     time.Time `json:"time"`
}

func webhookPayload(n *Notification) WebhookPayload {
	p := WebhookPayload{
		Event: string(n.Event), Title: n.Title(), Text: n.Text(), Namespace: n.Namespace, Name: n.Name, UID: n.UID,
		State: string(n.State), Reason: n.Reason, Message: n.Message, LastHeartbeatTime: n.LastBeat,
		SilentForSeconds: int64(n.SilentFor() / time.Second), Reminder: n.Reminder, RunbookURL: n.RunbookURL, Time: n.Time.UTC(),
	}
	if n.Event != monitoringv1alpha1.NotifyTest {
		s := n.Since
		p.IncidentStart, p.IncidentEnd = &s, n.Ended
		p.DownForSeconds = int64(n.DownFor() / time.Second)
	}
	if f := n.Failure; f != nil {
		p.Failure = &WebhookFailed{Message: f.Message, ExitCode: f.ExitCode, Time: f.Time}
	}
	return p
}

// Sign is the Webhook type's signature of body: "sha256=" and the hex
// HMAC-SHA256 under the Secret's hmacSecret (GitHub's X-Hub-Signature-256).
func Sign(secret, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

func sendWebhook(h *httpSend, c *Channel, n *Notification) error {
	b, err := json.Marshal(webhookPayload(n))
	if err != nil {
		return err
	}
	header := http.Header{"Content-Type": {"application/json"}, EventHeader: {string(n.Event)}}
	if key := c.Secret[KeyHMACSecret]; len(key) > 0 {
		header.Set(SignatureHeader, Sign(key, b))
	}
	if tok := c.secret(KeyToken); tok != "" {
		header.Set("Authorization", "Bearer "+tok)
	}
	_, err = h.do(c.Address(), b, header)
	return err
}

// slackPayload is an incoming webhook message: text (mrkdwn), the fallback
// and the whole message (https://api.slack.com/messaging/webhooks).
func slackPayload(n *Notification) map[string]any {
	return map[string]any{"text": "*" + n.Title() + "*\n" + n.Text()}
}

// teamsPayload is the message a Teams workflow ("When a Teams webhook
// request is received") posts: one Adaptive Card attachment.
func teamsPayload(n *Notification) map[string]any {
	card := map[string]any{
		"$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
		"type":    "AdaptiveCard",
		"version": "1.4",
		"body": []map[string]any{
			{"type": "TextBlock", "text": n.Title(), "weight": "Bolder", "size": "Medium", "wrap": true},
			{"type": "TextBlock", "text": n.Text(), "wrap": true},
		},
	}
	if n.RunbookURL != "" {
		card["actions"] = []map[string]any{{"type": "Action.OpenUrl", "title": "Runbook", "url": n.RunbookURL}}
	}
	return map[string]any{
		"type":        "message",
		"attachments": []map[string]any{{"contentType": "application/vnd.microsoft.card.adaptive", "content": card}},
	}
}

// Discord embed colours.
const (
	colorDown      = 0xD32F2F
	colorRecovered = 0x388E3C
	colorInfo      = 0x1976D2
)

// discordPayload is an execute-webhook body with one embed
// (https://discord.com/developers/docs/resources/webhook#execute-webhook).
func discordPayload(n *Notification) map[string]any {
	color := colorDown
	switch n.Event {
	case monitoringv1alpha1.NotifyRecovered:
		color = colorRecovered
	case monitoringv1alpha1.NotifyTest:
		color = colorInfo
	}
	embed := map[string]any{"title": truncate(n.Title(), 256), "description": truncate(n.Text(), 4096), "color": color}
	if n.RunbookURL != "" {
		embed["url"] = n.RunbookURL
	}
	return map[string]any{"username": "pushmon", "content": truncate(n.Title(), 2000), "embeds": []any{embed}}
}

// sendPagerDuty sends an Events API v2 event: trigger on Down (and on each
// reminder, which PagerDuty folds into the open incident), resolve on
// Recovered, both with the monitor's one dedup key.
func sendPagerDuty(h *httpSend, c *Channel, n *Notification) error {
	key := n.Key()
	if n.Event == monitoringv1alpha1.NotifyTest {
		key += "/test"
	}
	ev := map[string]any{"routing_key": c.secret(KeyRoutingKey), "dedup_key": key}
	if n.Event == monitoringv1alpha1.NotifyRecovered {
		ev["event_action"] = "resolve"
		return h.postJSON(c.Address(), ev, nil)
	}
	severity := "critical"
	if n.Event == monitoringv1alpha1.NotifyTest {
		severity = "info"
	}
	ev["event_action"] = "trigger"
	ev["client"] = "pushmon"
	ev["payload"] = map[string]any{
		"summary": truncate(n.Title(), 1024), "source": n.Namespace + "/" + n.Name, "severity": severity,
		"timestamp": n.Time.UTC().Format(time.RFC3339), "component": n.Name, "group": n.Namespace, "class": n.Reason,
		"custom_details": map[string]any{"text": n.Text()},
	}
	if n.RunbookURL != "" {
		ev["links"] = []map[string]string{{"href": n.RunbookURL, "text": "Runbook"}}
	}
	if err := h.postJSON(c.Address(), ev, nil); err != nil || n.Event != monitoringv1alpha1.NotifyTest {
		return err
	}
	// A test opens nothing that stays open.
	return h.postJSON(c.Address(), map[string]any{"routing_key": c.secret(KeyRoutingKey), "dedup_key": key, "event_action": "resolve"}, nil)
}

// sendOpsgenie creates an alert (Alert API v2) on Down and reminders, with
// the monitor's key as alias (Opsgenie counts a repeat instead of opening
// another), and closes it by alias on Recovered.
func sendOpsgenie(h *httpSend, c *Channel, n *Notification) error {
	base := strings.TrimSuffix(c.Address(), "/")
	header := http.Header{"Authorization": {"GenieKey " + c.secret(KeyAPIKey)}}
	alias := n.Key()
	if n.Event == monitoringv1alpha1.NotifyRecovered {
		return h.postJSON(base+"/v2/alerts/"+url.PathEscape(alias)+"/close?identifierType=alias",
			map[string]any{"source": "pushmon", "note": truncate(n.Text(), 25000)}, header)
	}
	priority := "P1"
	if n.Event == monitoringv1alpha1.NotifyTest {
		priority, alias = "P5", alias+"/test"
	}
	details := map[string]string{"namespace": n.Namespace, "pushmonitor": n.Name, "reason": n.Reason}
	if n.RunbookURL != "" {
		details["runbook"] = n.RunbookURL
	}
	return h.postJSON(base+"/v2/alerts", map[string]any{
		"message": truncate(n.Title(), 130), "alias": truncate(alias, 512), "description": truncate(n.Text(), 15000),
		"source": "pushmon", "priority": priority, "tags": []string{"pushmon"}, "details": details,
	}, header)
}

// sendNtfy publishes the text to the topic URL with ntfy's headers
// (https://docs.ntfy.sh/publish/).
func sendNtfy(h *httpSend, c *Channel, n *Notification) error {
	header := http.Header{"Content-Type": {"text/plain; charset=utf-8"}, "Title": {n.Title()}}
	switch n.Event {
	case monitoringv1alpha1.NotifyRecovered:
		header.Set("Priority", "3")
		header.Set("Tags", "white_check_mark")
	case monitoringv1alpha1.NotifyTest:
		header.Set("Priority", "2")
		header.Set("Tags", "information_source")
	default:
		header.Set("Priority", "5")
		header.Set("Tags", "rotating_light")
	}
	if n.RunbookURL != "" {
		header.Set("Click", n.RunbookURL)
	}
	setAuth(header, c)
	_, err := h.do(c.Address(), []byte(n.Text()), header)
	return err
}

func setAuth(header http.Header, c *Channel) {
	if tok := c.secret(KeyToken); tok != "" {
		header.Set("Authorization", "Bearer "+tok)
	} else if u := c.secret(KeyUsername); u != "" {
		req := http.Request{Header: header}
		req.SetBasicAuth(u, c.secret(KeyPassword))
	}
}

// sendTelegram calls the Bot API's sendMessage (plain text, so that nothing
// in a message needs escaping).
func sendTelegram(h *httpSend, c *Channel, n *Notification) error {
	base := strings.TrimSuffix(c.Address(), "/")
	chat := ""
	if c.Spec.Telegram != nil {
		chat = c.Spec.Telegram.ChatID
	}
	b, err := json.Marshal(map[string]any{"chat_id": chat, "text": truncate(n.Title()+"\n"+n.Text(), 4096)})
	if err != nil {
		return err
	}
	out, err := h.do(base+"/bot"+c.secret(KeyBotToken)+"/sendMessage", b, http.Header{"Content-Type": {"application/json"}})
	if err != nil {
		return err
	}
	var ok struct {
		OK          bool   `json:"ok"`
		Description string `json:"description"`
	}
	if json.Unmarshal(out, &ok) != nil || !ok.OK {
		return fmt.Errorf("telegram: not ok: %s", truncate(ok.Description, 200))
	}
	return nil
}

// AlertmanagerAlertName is the alertname of the alerts the Alertmanager
// type posts (the shipped Prometheus rule's name, source=pushmon apart).
const AlertmanagerAlertName = "PushMonitorDown"

// sendAlertmanager posts one alert to /api/v2/alerts: startsAt at the
// incident's start; endsAt ahead while Down (three repeat intervals, else a
// day, so that it stays firing as Prometheus' resends keep an alert), and
// the recovery time on Recovered, which resolves it.
func sendAlertmanager(h *httpSend, c *Channel, n *Notification) error {
	labels := map[string]string{"alertname": AlertmanagerAlertName, "namespace": n.Namespace, "pushmonitor": n.Name,
		"severity": "critical", "source": "pushmon"}
	starts, ends := n.Since, n.Time.Add(24*time.Hour)
	if r := c.Spec.RepeatInterval; r != nil && r.Duration > 0 {
		ends = n.Time.Add(3 * r.Duration)
	}
	switch n.Event {
	case monitoringv1alpha1.NotifyRecovered:
		ends = *n.Ended
	case monitoringv1alpha1.NotifyTest:
		labels = map[string]string{"alertname": "PushmonTestNotification", "severity": "info", "source": "pushmon"}
		starts, ends = n.Time, n.Time.Add(5*time.Minute)
	}
	// The reason is an annotation, not a label: a label that changed
	// within an incident (HeartbeatMissed, then DownReported) would make
	// another alert, and the recovery would not resolve the first.
	ann := map[string]string{"summary": n.Title(), "description": n.Text(), "reason": n.Reason}
	if n.RunbookURL != "" {
		ann["runbook_url"] = n.RunbookURL
	}
	header := http.Header{}
	setAuth(header, c)
	alert := map[string]any{"labels": labels, "annotations": ann,
		"startsAt": starts.UTC().Format(time.RFC3339Nano), "endsAt": ends.UTC().Format(time.RFC3339Nano)}
	return h.postJSON(strings.TrimSuffix(c.Address(), "/")+"/api/v2/alerts", []any{alert}, header)
}
