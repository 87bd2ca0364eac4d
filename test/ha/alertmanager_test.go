package ha

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
)

// amWebhook is what Alertmanager's webhook receiver posts (version 4).
type amWebhook struct {
	Status string `json:"status"`
	Alerts []struct {
		Status string            `json:"status"`
		Labels map[string]string `json:"labels"`
	} `json:"alerts"`
}

// amInbox records Alertmanager's notifications: alertname/namespace/name
// -> the statuses in order.
type amInbox struct {
	mu   sync.Mutex
	seen map[string][]string
}

func (b *amInbox) statuses(key string) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.seen[key]...)
}

func lookBin(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s not installed (Debian package %s; .ci/run installs it)", name, pkg)
	}
	return p
}

// startAlertmanager runs Debian's Alertmanager, routing everything to a
// local webhook receiver at once (group_wait 0) and sending resolutions.
func startAlertmanager(t *testing.T) (string, *amInbox) {
	t.Helper()
	bin := lookBin(t, "prometheus-alertmanager", "prometheus-alertmanager")
	box := &amInbox{seen: map[string][]string{}}
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p amWebhook
		body, _ := io.ReadAll(r.Body)
		if json.Unmarshal(body, &p) == nil {
			box.mu.Lock()
			for _, a := range p.Alerts {
				k := a.Labels["alertname"] + "/" + a.Labels["namespace"] + "/" + a.Labels["name"] + a.Labels["pushmonitor"]
				if s := box.seen[k]; len(s) == 0 || s[len(s)-1] != a.Status {
					box.seen[k] = append(s, a.Status)
				}
			}
			box.mu.Unlock()
		}
	}))
	t.Cleanup(recv.Close)
	dir := t.TempDir()
	cfg := fmt.Sprintf(`route:
  receiver: hook
  group_by: [alertname, namespace, name, pushmonitor]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
- name: hook
  webhook_configs:
  - url: %s
    send_resolved: true
`, recv.URL)
	if err := os.WriteFile(filepath.Join(dir, "am.yml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	runDaemon(t, "alertmanager", addr, bin, "--config.file="+filepath.Join(dir, "am.yml"), "--storage.path="+dir,
		"--web.listen-address="+addr, "--cluster.listen-address=")
	return addr, box
}

// TestAlertmanagerChannel: pushmon's Alertmanager channel posts to a real
// Alertmanager, which routes the alert to a webhook, and the recovery
// resolves it.
func TestAlertmanagerChannel(t *testing.T) {
	g := NewWithT(t)
	amAddr, box := startAlertmanager(t)
	r := startReplica(t, "am", "", "--notify-retry-timeout=3s")
	waitForLeader(t, []*replica{r})
	ns := newNamespace(t, "am")
	createChannel(t, ns, "am", monitoringv1alpha1.AlertChannelSpec{Type: monitoringv1alpha1.ChannelAlertmanager,
		Address: "http://" + amAddr, MonitorSelector: &metav1.LabelSelector{}, RepeatInterval: &metav1.Duration{Duration: time.Minute}})
	m, tok := createMonitor(t, ns, "job", 2*time.Second, 0)
	firstPush(t, r, tok, "msg=hi")
	key := "PushMonitorDown/" + ns + "/job"
	g.Eventually(func() []string { return box.statuses(key) }).WithTimeout(20 * time.Second).Should(Equal([]string{"firing"}))
	mustPush(t, r, tok, "msg=back")
	p := startPusher(tok, []*replica{r}, 500*time.Millisecond)
	defer p.halt()
	g.Eventually(func(g Gomega) { g.Expect(get(g, m).Status.State).To(Equal(monitoringv1alpha1.StateUp)) }).Should(Succeed())
	g.Eventually(func() []string { return box.statuses(key) }).WithTimeout(20 * time.Second).Should(Equal([]string{"firing", "resolved"}))
}

// TestPrometheusRulesThroughAlertmanager: Debian's Prometheus scrapes a
// running manager, evaluates the shipped rules (config/prometheus/rules)
// and fires PushMonitorDown through Alertmanager to a receiver; after the
// recovery (and the rule's keep_firing_for) it resolves.
func TestPrometheusRulesThroughAlertmanager(t *testing.T) {
	if testing.Short() {
		t.Skip("waits out the rule's keep_firing_for (2m)")
	}
	g := NewWithT(t)
	amAddr, box := startAlertmanager(t)
	r := startReplica(t, "prom", "")
	waitForLeader(t, []*replica{r})

	rules, _ := filepath.Abs(filepath.Join("..", "..", "config", "prometheus", "rules", "pushmon.rules.yaml"))
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [%q]
alerting:
  alertmanagers:
  - static_configs:
    - targets: [%q]
scrape_configs:
- job_name: pushmon
  static_configs:
  - targets: [%q]
`, rules, amAddr, r.metricsAddr)
	startPrometheus(t, cfg)

	ns := newNamespace(t, "prom")
	m, tok := createMonitor(t, ns, "job", 2*time.Second, 0)
	firstPush(t, r, tok, "msg=hi")
	key := "PushMonitorDown/" + ns + "/job"
	g.Eventually(func() []string { return box.statuses(key) }).WithTimeout(60 * time.Second).Should(Equal([]string{"firing"}))
	mustPush(t, r, tok, "msg=back")
	p := startPusher(tok, []*replica{r}, 500*time.Millisecond)
	defer p.halt()
	g.Eventually(func(g Gomega) { g.Expect(get(g, m).Status.State).To(Equal(monitoringv1alpha1.StateUp)) }).Should(Succeed())
	recovered := time.Now()
	g.Eventually(func() []string { return box.statuses(key) }).WithTimeout(4 * time.Minute).WithPolling(time.Second).
		Should(Equal([]string{"firing", "resolved"}))
	t.Logf("resolved %v after the recovery (the rule keeps firing for 2m)", time.Since(recovered).Round(time.Second))
}
