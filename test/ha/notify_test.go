package ha

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
	"github.com/pushmon/pushmon/internal/notify"
)

// inbox counts what one receiver got, by event. The payloads' schemas are
// checked per type in internal/notify; here what counts is how many of each.
type inbox struct {
	mu     sync.Mutex
	bodies []string
	times  []time.Time
}

func (b *inbox) add(s string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.bodies, b.times = append(b.bodies, s), append(b.times, time.Now())
}

var reminderN = regexp.MustCompile(`reminder (\d+)`)

// events classifies the messages: Down, Recovered, Test, and reminders by
// their number ("Reminder1", ...).
func (b *inbox) events() map[string]int {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := map[string]int{}
	for _, s := range b.bodies {
		switch {
		case strings.Contains(s, "STILL DOWN"):
			m := reminderN.FindStringSubmatch(s)
			if m == nil {
				out["Reminder?"]++
				continue
			}
			out["Reminder"+m[1]]++
		case strings.Contains(s, "DOWN:"):
			out["Down"]++
		case strings.Contains(s, "RECOVERED") || strings.Contains(s, "Recovered after") || strings.Contains(s, `"event_action":"resolve"`):
			out["Recovered"]++
		case strings.Contains(s, "test notification"):
			out["Test"]++
		default:
			out["?"]++
		}
	}
	return out
}

func (b *inbox) all() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Join(b.bodies, "\n")
}

// httpInbox is a local HTTP receiver answering as the service would.
func httpInbox(t *testing.T, status int, answer string) (*inbox, string) {
	b := &inbox{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		b.add(r.Header.Get("Title") + " " + r.URL.Path + " " + string(body))
		w.WriteHeader(status)
		_, _ = io.WriteString(w, answer)
	}))
	t.Cleanup(srv.Close)
	return b, srv.URL
}

// smtpInbox runs internal/notify's real SMTP server (python3-aiosmtpd).
func smtpInbox(t *testing.T) (*inbox, string, []byte) {
	t.Helper()
	py := "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import aiosmtpd").Run(); err != nil {
		t.Skip("python3-aiosmtpd is not installed (.ci/run installs it)")
	}
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	if out, err := exec.Command("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
		"-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-days", "1").CombinedOutput(); err != nil {
		t.Fatalf("openssl: %v: %s", err, out)
	}
	addr := freeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command(py, filepath.Join("..", "..", "internal", "notify", "testdata", "smtpd.py"), cert, key, "alerts", "pw", port)
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	b, ready := &inbox{}, make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			if sc.Text() == "READY" {
				close(ready)
				continue
			}
			var m struct {
				Data string `json:"data"`
			}
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				b.add(m.Data)
			}
		}
	}()
	select {
	case <-ready:
	case <-time.After(30 * time.Second):
		t.Fatal("smtpd did not start")
	}
	ca, _ := os.ReadFile(cert)
	return b, addr, ca
}

func createSecret(t *testing.T, ns, name string, data map[string]string) {
	t.Helper()
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, StringData: data}
	if err := k8sClient.Create(context.Background(), s); err != nil {
		t.Fatal(err)
	}
}

func createChannel(t *testing.T, ns, name string, spec monitoringv1alpha1.AlertChannelSpec) *monitoringv1alpha1.AlertChannel {
	t.Helper()
	c := &monitoringv1alpha1.AlertChannel{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: spec}
	if err := k8sClient.Create(context.Background(), c); err != nil {
		t.Fatalf("creating channel %s: %v", name, err)
	}
	return c
}

func channelReady(g Gomega, c client.Object) *metav1.Condition {
	g.Expect(k8sClient.Get(context.Background(), client.ObjectKeyFromObject(c), c)).To(Succeed())
	var conds []metav1.Condition
	switch c := c.(type) {
	case *monitoringv1alpha1.AlertChannel:
		conds = c.Status.Conditions
	case *monitoringv1alpha1.ClusterAlertChannel:
		conds = c.Status.Conditions
	}
	cond := meta.FindStatusCondition(conds, monitoringv1alpha1.ReadyCondition)
	g.Expect(cond).NotTo(BeNil())
	return cond
}

// TestNotificationsAcrossLeaderKill: a monitor goes Down, is reminded, the
// leader is killed, the new leader reminds again and announces the
// recovery: each receiver of every type gets exactly one message per event.
func TestNotificationsAcrossLeaderKill(t *testing.T) {
	g := NewWithT(t)
	retry := "--notify-retry-timeout=3s"
	replicas := []*replica{startReplica(t, "na", "", retry), startReplica(t, "nb", "", retry)}
	leader := waitForLeader(t, replicas)
	ns := newNamespace(t, "notify")
	sel := &metav1.LabelSelector{MatchLabels: map[string]string{"team": "a"}}
	repeat := &metav1.Duration{Duration: 4 * time.Second}

	inboxes := map[string]*inbox{}
	add := func(name string, typ monitoringv1alpha1.ChannelType, status int, answer, path string, secret map[string]string, mod func(*monitoringv1alpha1.AlertChannelSpec)) {
		b, url := httpInbox(t, status, answer)
		inboxes[name] = b
		spec := monitoringv1alpha1.AlertChannelSpec{Type: typ, MonitorSelector: sel, RepeatInterval: repeat}
		if secret == nil {
			spec.Address = url + path
		} else {
			if _, ok := secret[notify.KeyAddress]; !ok {
				spec.Address = url + path
			} else {
				secret[notify.KeyAddress] = url + path
			}
			createSecret(t, ns, name, secret)
			spec.SecretRef = &monitoringv1alpha1.SecretReference{Name: name}
		}
		if mod != nil {
			mod(&spec)
		}
		createChannel(t, ns, name, spec)
	}
	add("webhook", monitoringv1alpha1.ChannelWebhook, 200, "", "/hook", map[string]string{notify.KeyHMACSecret: "k"}, nil)
	add("slack", monitoringv1alpha1.ChannelSlack, 200, "ok", "/services/T/B/X", map[string]string{notify.KeyAddress: ""}, nil)
	add("teams", monitoringv1alpha1.ChannelMSTeams, 202, "", "/workflows/x", map[string]string{notify.KeyAddress: ""}, nil)
	add("discord", monitoringv1alpha1.ChannelDiscord, 204, "", "/api/webhooks/1/x", map[string]string{notify.KeyAddress: ""}, nil)
	add("pagerduty", monitoringv1alpha1.ChannelPagerDuty, 202, `{"status":"success"}`, "/v2/enqueue", map[string]string{notify.KeyRoutingKey: "R0123456789abcdef0123456789abcde"}, nil)
	add("opsgenie", monitoringv1alpha1.ChannelOpsgenie, 202, `{}`, "", map[string]string{notify.KeyAPIKey: "key"}, nil)
	add("ntfy", monitoringv1alpha1.ChannelNtfy, 200, `{}`, "/alerts", nil, nil)
	add("telegram", monitoringv1alpha1.ChannelTelegram, 200, `{"ok":true}`, "", map[string]string{notify.KeyBotToken: "1:x"},
		func(s *monitoringv1alpha1.AlertChannelSpec) {
			s.Telegram = &monitoringv1alpha1.TelegramConfig{ChatID: "42"}
		})
	add("alertmanager", monitoringv1alpha1.ChannelAlertmanager, 200, "", "", nil, nil)
	add("suspended", monitoringv1alpha1.ChannelWebhook, 200, "", "/hook", nil, func(s *monitoringv1alpha1.AlertChannelSpec) { s.Suspend = true })
	mail, smtpAddr, ca := smtpInbox(t)
	inboxes["email"] = mail
	createSecret(t, ns, "email", map[string]string{notify.KeyUsername: "alerts", notify.KeyPassword: "pw", notify.KeyCA: string(ca)})
	createChannel(t, ns, "email", monitoringv1alpha1.AlertChannelSpec{Type: monitoringv1alpha1.ChannelEmail, Address: smtpAddr,
		MonitorSelector: sel, RepeatInterval: repeat, SecretRef: &monitoringv1alpha1.SecretReference{Name: "email"},
		Email: &monitoringv1alpha1.EmailConfig{From: "pushmon@example.com", To: []string{"oncall@example.com"}}})
	// A ClusterAlertChannel the monitor names.
	clusterBox, clusterURL := httpInbox(t, 200, "")
	inboxes["cluster"] = clusterBox
	cc := &monitoringv1alpha1.ClusterAlertChannel{ObjectMeta: metav1.ObjectMeta{Name: ns + "-platform"},
		Spec: monitoringv1alpha1.AlertChannelSpec{Type: monitoringv1alpha1.ChannelWebhook, Address: clusterURL, RepeatInterval: repeat}}
	g.Expect(k8sClient.Create(context.Background(), cc)).To(Succeed())
	t.Cleanup(func() { _ = k8sClient.Delete(context.Background(), cc) })
	channels := len(inboxes) - 1 // the suspended one records nothing

	m := &monitoringv1alpha1.PushMonitor{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "backup", Labels: map[string]string{"team": "a"}},
		Spec: monitoringv1alpha1.PushMonitorSpec{Timeout: &metav1.Duration{Duration: 2 * time.Second}, GracePeriod: &metav1.Duration{},
			AlertChannels: []monitoringv1alpha1.AlertChannelReference{{Kind: monitoringv1alpha1.AlertChannelKindCluster, Name: cc.Name}}},
	}
	g.Expect(k8sClient.Create(context.Background(), m)).To(Succeed())
	var tok string
	g.Eventually(func(g Gomega) {
		got := get(g, m)
		g.Expect(got.Status.SecretName).NotTo(BeEmpty())
		var s corev1.Secret
		g.Expect(k8sClient.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: got.Status.SecretName}, &s)).To(Succeed())
		tok = string(s.Data["token"])
	}).WithTimeout(20 * time.Second).Should(Succeed())
	for _, r := range replicas {
		firstPush(t, r, tok, "msg=started")
	}
	// Silent from here: Down after 2s, then a reminder every 4s.
	g.Eventually(func(g Gomega) {
		got := get(g, m)
		g.Expect(got.Status.Notifications).To(HaveLen(channels))
		for _, e := range got.Status.Notifications {
			g.Expect(e.LastEvent).To(Equal(monitoringv1alpha1.NotifyReminder), e.Channel)
		}
	}).WithTimeout(30 * time.Second).WithPolling(20 * time.Millisecond).Should(Succeed())
	leader.kill()
	t.Logf("killed leader %s after the first reminders", leader.name)
	var other *replica
	for _, r := range replicas {
		if r != leader {
			other = r
		}
	}
	waitForLeader(t, []*replica{other})
	// The new leader reminds once more, then the monitor recovers.
	g.Eventually(func(g Gomega) {
		got := get(g, m)
		for _, e := range got.Status.Notifications {
			g.Expect(e.Reminders).To(BeNumerically(">=", 2), e.Channel)
		}
	}).WithTimeout(30 * time.Second).Should(Succeed())
	mustPush(t, other, tok, "msg=back")
	p := startPusher(tok, []*replica{other}, 500*time.Millisecond)
	defer p.halt()
	g.Eventually(func(g Gomega) {
		got := get(g, m)
		g.Expect(got.Status.Notifications).To(HaveLen(channels))
		for _, e := range got.Status.Notifications {
			g.Expect(e.LastEvent).To(Equal(monitoringv1alpha1.NotifyRecovered), e.Channel)
		}
	}).WithTimeout(30 * time.Second).Should(Succeed())

	// Exactly one message per event in each receiver, none for the
	// suspended channel, and never the push token.
	got := get(g, m)
	reminders := map[string]int32{}
	for _, e := range got.Status.Notifications {
		reminders[e.Channel] = e.Reminders
	}
	g.Consistently(func(g Gomega) {
		for name, b := range inboxes {
			ev := b.events()
			if name == "suspended" {
				g.Expect(ev).To(BeEmpty(), name)
				continue
			}
			id := "AlertChannel/" + name
			if name == "cluster" {
				id = "ClusterAlertChannel/" + cc.Name
			}
			want := map[string]int{"Down": 1, "Recovered": 1}
			for i := int32(1); i <= reminders[id]; i++ {
				want["Reminder"+strconv.Itoa(int(i))] = 1
			}
			g.Expect(ev).To(Equal(want), "%s got:\n%s", name, b.all())
			g.Expect(b.all()).NotTo(ContainSubstring(tok), name)
		}
	}).WithTimeout(3 * time.Second).Should(Succeed())
}

// TestBadChannel: a channel that cannot deliver turns Ready=False with a
// readable error, and delays neither another channel nor the reconciler.
func TestBadChannel(t *testing.T) {
	g := NewWithT(t)
	replicas := []*replica{startReplica(t, "nc", "", "--notify-retry-timeout=2s")}
	waitForLeader(t, replicas)
	ns := newNamespace(t, "badchannel")
	sel := &metav1.LabelSelector{}

	good, goodURL := httpInbox(t, 200, "")
	goodCh := createChannel(t, ns, "good", monitoringv1alpha1.AlertChannelSpec{Type: monitoringv1alpha1.ChannelWebhook, Address: goodURL, MonitorSelector: sel})
	// Nothing listens on port 1; the PagerDuty stand-in refuses the key;
	// a hanging server takes every attempt's whole timeout.
	refused := createChannel(t, ns, "refused", monitoringv1alpha1.AlertChannelSpec{Type: monitoringv1alpha1.ChannelSlack, Address: "http://127.0.0.1:1/services/T/B/X", MonitorSelector: sel})
	_, pdURL := httpInbox(t, 400, `{"status":"invalid event","message":"Event object is invalid","errors":["Invalid routing key"]}`)
	createSecret(t, ns, "pd", map[string]string{notify.KeyRoutingKey: "wrong"})
	badKey := createChannel(t, ns, "badkey", monitoringv1alpha1.AlertChannelSpec{Type: monitoringv1alpha1.ChannelPagerDuty, Address: pdURL + "/v2/enqueue",
		SecretRef: &monitoringv1alpha1.SecretReference{Name: "pd"}, MonitorSelector: sel})
	stop := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-stop:
		}
	}))
	t.Cleanup(func() { close(stop); hang.Close() })
	createChannel(t, ns, "hanging", monitoringv1alpha1.AlertChannelSpec{Type: monitoringv1alpha1.ChannelWebhook, Address: hang.URL, MonitorSelector: sel})
	noSecret := createChannel(t, ns, "nosecret", monitoringv1alpha1.AlertChannelSpec{Type: monitoringv1alpha1.ChannelOpsgenie,
		SecretRef: &monitoringv1alpha1.SecretReference{Name: "missing"}, MonitorSelector: sel})

	g.Eventually(func(g Gomega) {
		c := channelReady(g, noSecret)
		g.Expect(c.Status).To(Equal(metav1.ConditionFalse))
		g.Expect(c.Reason).To(Equal(monitoringv1alpha1.InvalidChannelReason))
		g.Expect(c.Message).To(ContainSubstring("secret " + ns + "/missing not found"))
		g.Expect(channelReady(g, goodCh).Status).To(Equal(metav1.ConditionTrue))
	}).Should(Succeed())

	// A test message on demand, through the good channel only.
	goodCh.Annotations = map[string]string{monitoringv1alpha1.TestNotificationAnnotation: "1"}
	g.Expect(k8sClient.Update(context.Background(), goodCh)).To(Succeed())
	g.Eventually(func() map[string]int { return good.events() }).Should(Equal(map[string]int{"Test": 1}))

	m, tok := createMonitor(t, ns, "job", 2*time.Second, 0)
	firstPush(t, replicas[0], tok, "msg=hi")
	var down time.Time
	g.Eventually(func(g Gomega) {
		got := get(g, m)
		g.Expect(got.Status.Incident).NotTo(BeNil())
		down = got.Status.Incident.StartTime.Time
	}).Should(Succeed())
	g.Eventually(func() map[string]int { return good.events() }).Should(Equal(map[string]int{"Test": 1, "Down": 1}))
	good.mu.Lock()
	delay := good.times[len(good.times)-1].Sub(down)
	good.mu.Unlock()
	t.Logf("Down reached the good channel %v after the transition", delay)
	g.Expect(delay).To(BeNumerically("<", 2*time.Second), "the bad channels did not delay the good one")

	g.Eventually(func(g Gomega) {
		c := channelReady(g, refused)
		g.Expect(c.Status).To(Equal(metav1.ConditionFalse))
		g.Expect(c.Reason).To(Equal(monitoringv1alpha1.DeliveryFailedReason))
		g.Expect(c.Message).To(ContainSubstring("POST to 127.0.0.1:1: dial tcp 127.0.0.1:1: connect: connection refused"))
		g.Expect(c.Message).NotTo(ContainSubstring("/services/"), "the webhook URL is a credential")
		c = channelReady(g, badKey)
		g.Expect(c.Status).To(Equal(metav1.ConditionFalse))
		g.Expect(c.Message).To(ContainSubstring("400 Bad Request"))
		g.Expect(c.Message).To(ContainSubstring("Invalid routing key"))
	}).WithTimeout(20 * time.Second).Should(Succeed())

	// The reconciler is not held up either: the recovery is seen at once.
	mustPush(t, replicas[0], tok, "msg=back")
	p := startPusher(tok, replicas, 500*time.Millisecond)
	defer p.halt()
	g.Eventually(func(g Gomega) {
		g.Expect(get(g, m).Status.State).To(Equal(monitoringv1alpha1.StateUp))
	}).WithTimeout(2 * time.Second).Should(Succeed())
	g.Eventually(func() map[string]int { return good.events() }).Should(Equal(map[string]int{"Test": 1, "Down": 1, "Recovered": 1}))
	g.Expect(fmt.Sprint(good.all())).NotTo(ContainSubstring(tok))
	g.Expect(channelReady(g, goodCh).Reason).To(Equal(monitoringv1alpha1.DeliveredReason))
}
