package integration

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/yaml"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
	"github.com/pushmon/pushmon/internal/metrics"
)

// scrape reads the metrics as Prometheus would: through controller-runtime's
// registry and the promhttp handler its metrics server serves (the suite's
// manager runs with the metrics server off, so the test serves the handler).
func scrape(g Gomega) (map[string]*dto.MetricFamily, string) {
	srv := httptest.NewServer(promhttp.HandlerFor(ctrlmetrics.Registry, promhttp.HandlerOpts{}))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	g.Expect(err).NotTo(HaveOccurred())
	defer resp.Body.Close()
	g.Expect(resp.StatusCode).To(Equal(http.StatusOK))
	b, err := io.ReadAll(resp.Body)
	g.Expect(err).NotTo(HaveOccurred())
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(string(b)))
	g.Expect(err).NotTo(HaveOccurred())
	return mfs, string(b)
}

// sample finds the value of the series of family name whose labels include
// want; ok is false when there is none.
func sample(mfs map[string]*dto.MetricFamily, name string, want map[string]string) (v float64, ok bool) {
	mf := mfs[name]
	if mf == nil {
		return 0, false
	}
	for _, m := range mf.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		match := true
		for k, v := range want {
			if labels[k] != v {
				match = false
			}
		}
		if !match {
			continue
		}
		switch {
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		}
	}
	return 0, false
}

// pushesObserved is how many pushes the duration histogram has timed.
func pushesObserved(mfs map[string]*dto.MetricFamily) uint64 {
	var n uint64
	for _, m := range mfs[metrics.PushDurationName].GetMetric() {
		n += m.GetHistogram().GetSampleCount()
	}
	return n
}

// value is sample's value, 0 for a series that does not exist.
func value(mfs map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	v, _ := sample(mfs, name, want)
	return v
}

// monitorSeries is how many series of the per-monitor families name m.
func monitorSeries(mfs map[string]*dto.MetricFamily, m *monitoringv1alpha1.PushMonitor) int {
	n := 0
	for _, name := range []string{metrics.MonitorUpName, metrics.MonitorStateName, metrics.MonitorLastHeartbeatName,
		metrics.MonitorDeadlineName, metrics.MonitorLastValueName, metrics.MonitorTransitionsName} {
		for _, s := range mfs[name].GetMetric() {
			var ns, nm string
			for _, l := range s.GetLabel() {
				switch l.GetName() {
				case "namespace":
					ns = l.GetValue()
				case "name":
					nm = l.GetValue()
				}
			}
			if ns == m.Namespace && nm == m.Name {
				n++
			}
		}
	}
	return n
}

// expectMonitorMetrics waits until the scrape shows m in state (up absent
// unless Up or Down) with the given transition count for state and reason,
// and the last heartbeat and deadline of its stored status.
func expectMonitorMetrics(t *testing.T, m *monitoringv1alpha1.PushMonitor, state monitoringv1alpha1.MonitorState, reason string, transitions float64) {
	t.Helper()
	id := map[string]string{"namespace": m.Namespace, "name": m.Name}
	with := func(k, v string) map[string]string {
		l := map[string]string{k: v}
		for k, v := range id {
			l[k] = v
		}
		return l
	}
	NewWithT(t).Eventually(func(g Gomega) {
		got := getMonitor(g, m)
		g.Expect(got.Status.State).To(Equal(state))
		mfs, _ := scrape(g)
		up, ok := sample(mfs, metrics.MonitorUpName, id)
		switch state {
		case monitoringv1alpha1.StateUp:
			g.Expect(ok).To(BeTrue())
			g.Expect(up).To(Equal(1.0))
		case monitoringv1alpha1.StateDown:
			g.Expect(ok).To(BeTrue())
			g.Expect(up).To(Equal(0.0))
		default:
			g.Expect(ok).To(BeFalse(), "no up series while %s", state)
		}
		for _, s := range metrics.States {
			v, ok := sample(mfs, metrics.MonitorStateName, with("state", string(s)))
			if s == state {
				g.Expect(ok).To(BeTrue(), string(s))
				g.Expect(v).To(Equal(1.0), string(s))
			} else {
				g.Expect(ok).To(BeFalse(), "a series for %s while %s", s, state)
			}
		}
		g.Expect(value(mfs, metrics.MonitorTransitionsName, map[string]string{
			"namespace": m.Namespace, "name": m.Name, "to": string(state), "reason": reason})).To(Equal(transitions), "transitions to %s/%s", state, reason)
		last, ok := sample(mfs, metrics.MonitorLastHeartbeatName, id)
		if got.Status.LastHeartbeatTime == nil {
			g.Expect(ok).To(BeFalse())
		} else {
			g.Expect(ok).To(BeTrue())
			g.Expect(last).To(BeNumerically("~", float64(got.Status.LastHeartbeatTime.UnixMicro())/1e6, 1e-3))
		}
		deadline, ok := sample(mfs, metrics.MonitorDeadlineName, id)
		if got.Status.Deadline == nil {
			g.Expect(ok).To(BeFalse())
		} else {
			g.Expect(ok).To(BeTrue())
			g.Expect(deadline).To(BeNumerically("~", float64(got.Status.Deadline.UnixMicro())/1e6, 1e-3))
		}
	}).WithPolling(20 * time.Millisecond).Should(Succeed())
}

// TestMetricsLifecycle scrapes one monitor's series across Pending → Up →
// Down (missed) → Up (Recovered) → Down (reported), checks the push
// counters and the event notes, and that deleting the monitor removes its
// series. `kubectl wait --for=condition=Healthy=false` sees the missed Down.
func TestMetricsLifecycle(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	m := monitor(ns, "scraped", monitoringv1alpha1.PushMonitorSpec{Timeout: dur(2 * time.Second), GracePeriod: dur(500 * time.Millisecond)})
	tok := createMonitor(t, m)
	expectMonitorMetrics(t, m, monitoringv1alpha1.StatePending, monitoringv1alpha1.AwaitingFirstHeartbeatReason, 1)

	// Before its first Down the monitor's Down counters exist at 0, so that
	// increase() counts the first one (a series born at 1 shows no increase).
	// RunTooLong needs maxRunDuration, ScheduleMissed a schedule: not here.
	g.Eventually(func(g Gomega) {
		mfs, _ := scrape(g)
		for _, reason := range []string{monitoringv1alpha1.HeartbeatMissedReason, monitoringv1alpha1.DownReportedReason, monitoringv1alpha1.RunFailedReason} {
			v, ok := sample(mfs, metrics.MonitorTransitionsName, map[string]string{
				"namespace": ns, "name": m.Name, "to": string(monitoringv1alpha1.StateDown), "reason": reason})
			g.Expect(ok).To(BeTrue(), "a Down/%s series before the first Down", reason)
			g.Expect(v).To(BeZero(), reason)
		}
		for _, reason := range []string{monitoringv1alpha1.ScheduleMissedReason, monitoringv1alpha1.RunTooLongReason} {
			_, ok := sample(mfs, metrics.MonitorTransitionsName, map[string]string{
				"namespace": ns, "name": m.Name, "to": string(monitoringv1alpha1.StateDown), "reason": reason})
			g.Expect(ok).To(BeFalse(), "no Down/%s series for a monitor that cannot go Down so", reason)
		}
	}).Should(Succeed())

	mfs, _ := scrape(g)
	ok200 := value(mfs, metrics.PushRequestsName, map[string]string{"code": "200"})
	hbUp := value(mfs, metrics.HeartbeatsName, map[string]string{"status": "up"})
	hbDown := value(mfs, metrics.HeartbeatsName, map[string]string{"status": "down"})
	bad := value(mfs, metrics.PushRequestsName, map[string]string{"code": "400"})
	observed := pushesObserved(mfs)

	mustPush(t, tok, "msg=first")
	expectMonitorMetrics(t, m, monitoringv1alpha1.StateUp, monitoringv1alpha1.HeartbeatReceivedReason, 1)

	// kubectl waits for the missed Down the silence brings.
	wait := exec.Command(kubectl, "--kubeconfig", kubecfg, "wait", "-n", ns, "--for=condition=Healthy=false", "pm/scraped", "--timeout=30s")
	var waitOut strings.Builder
	wait.Stdout, wait.Stderr = &waitOut, &waitOut
	g.Expect(wait.Start()).To(Succeed())
	expectMonitorMetrics(t, m, monitoringv1alpha1.StateDown, monitoringv1alpha1.HeartbeatMissedReason, 1)
	g.Expect(wait.Wait()).To(Succeed(), waitOut.String())
	g.Expect(waitOut.String()).To(ContainSubstring("pushmonitor.monitoring.pushmon.dev/scraped condition met"))
	ev := expectEvents(t, m, monitoringv1alpha1.HeartbeatMissedReason, 1)
	g.Expect(ev[0].Note).To(MatchRegexp(`^no heartbeat for \d+s \(timeout 2s, grace 500ms\)$`))
	// docs/alerting.md's query for the events of one reason.
	out, err := runKubectl(t, "get", "events", "-n", ns, "--field-selector", "reason=HeartbeatMissed")
	g.Expect(err).NotTo(HaveOccurred(), out)
	g.Expect(out).To(MatchRegexp(`Warning\s+HeartbeatMissed\s+pushmonitor/scraped\s+no heartbeat for`))
	out, err = runKubectl(t, "get", "events", "-A", "--field-selector", "reason=HeartbeatMissed")
	g.Expect(err).NotTo(HaveOccurred(), out)
	g.Expect(out).To(MatchRegexp(ns + `\s+\S+\s+Warning\s+HeartbeatMissed\s+pushmonitor/scraped`))

	mustPush(t, tok, "msg=back&value=42.50")
	expectMonitorMetrics(t, m, monitoringv1alpha1.StateUp, monitoringv1alpha1.RecoveredReason, 1)
	g.Eventually(func(g Gomega) {
		mfs, _ := scrape(g)
		g.Expect(value(mfs, metrics.MonitorLastValueName, map[string]string{"namespace": ns, "name": "scraped"})).To(Equal(42.5))
	}).Should(Succeed())
	ev = expectEvents(t, m, monitoringv1alpha1.RecoveredReason, 1)
	g.Expect(ev[0].Note).To(MatchRegexp(`^heartbeats arrive again after \d+s Down: back$`))

	mustPush(t, tok, "status=down&msg=disk-full")
	expectMonitorMetrics(t, m, monitoringv1alpha1.StateDown, monitoringv1alpha1.DownReportedReason, 1)
	code, _ := push(t, http.MethodPost, tok, "status=sideways")
	g.Expect(code).To(Equal(http.StatusBadRequest))

	// Every replica counts its pushes (here the only one answered them all),
	// each exactly once: 3 answered 200 (2 up, 1 down), 1 answered 400, all
	// 4 timed. Tests run one at a time, so nothing else pushes meanwhile. A
	// push is counted just after its answer is written, hence Eventually;
	// then held, since a second count of the same push may come later.
	pushCounts := func(g Gomega) {
		mfs, _ := scrape(g)
		g.Expect(value(mfs, metrics.PushRequestsName, map[string]string{"code": "200"})-ok200).To(Equal(3.0), "pushes answered 200")
		g.Expect(value(mfs, metrics.PushRequestsName, map[string]string{"code": "400"})-bad).To(Equal(1.0), "pushes answered 400")
		g.Expect(value(mfs, metrics.HeartbeatsName, map[string]string{"status": "up"})-hbUp).To(Equal(2.0), "up heartbeats")
		g.Expect(value(mfs, metrics.HeartbeatsName, map[string]string{"status": "down"})-hbDown).To(Equal(1.0), "down heartbeats")
		g.Expect(pushesObserved(mfs)-observed).To(Equal(uint64(4)), "pushes timed")
	}
	g.Eventually(pushCounts).Should(Succeed())
	g.Consistently(pushCounts).WithPolling(50 * time.Millisecond).Should(Succeed())
	// Each transition counted once: the five this monitor went through.
	g.Consistently(func(g Gomega) {
		mfs, _ := scrape(g)
		for _, tr := range []struct {
			to     monitoringv1alpha1.MonitorState
			reason string
		}{
			{monitoringv1alpha1.StatePending, monitoringv1alpha1.AwaitingFirstHeartbeatReason},
			{monitoringv1alpha1.StateUp, monitoringv1alpha1.HeartbeatReceivedReason},
			{monitoringv1alpha1.StateDown, monitoringv1alpha1.HeartbeatMissedReason},
			{monitoringv1alpha1.StateUp, monitoringv1alpha1.RecoveredReason},
			{monitoringv1alpha1.StateDown, monitoringv1alpha1.DownReportedReason},
		} {
			g.Expect(value(mfs, metrics.MonitorTransitionsName, map[string]string{
				"namespace": ns, "name": m.Name, "to": string(tr.to), "reason": tr.reason})).To(Equal(1.0), "transitions to %s/%s", tr.to, tr.reason)
		}
	}).WithPolling(50 * time.Millisecond).Should(Succeed())
	mfs, text := scrape(g)
	g.Expect(text).NotTo(ContainSubstring(tok))
	g.Expect(logs.String()).NotTo(ContainSubstring(tok))

	// Deleting the monitor removes its series.
	g.Expect(monitorSeries(mfs, m)).To(BeNumerically(">", 0))
	g.Expect(k8sClient.Delete(context.Background(), m)).To(Succeed())
	g.Eventually(func(g Gomega) {
		mfs, _ := scrape(g)
		g.Expect(monitorSeries(mfs, m)).To(BeZero())
	}).Should(Succeed())
}

// TestMetricsSuspended: a Suspended monitor has a state series but neither
// an up series (it is neither healthy nor unhealthy) nor a deadline.
func TestMetricsSuspended(t *testing.T) {
	ns := newNamespace(t)
	m := monitor(ns, "paused", monitoringv1alpha1.PushMonitorSpec{Suspend: true})
	createMonitor(t, m)
	expectMonitorMetrics(t, m, monitoringv1alpha1.StateSuspended, monitoringv1alpha1.SuspendedReason, 1)
}

// TestPrometheusRuleMatchesRulesFile: the PrometheusRule that
// config/prometheus deploys holds the same groups as the plain rules file
// promtool checks and tests (make check-rules), so the tested rules are the
// deployed ones.
func TestPrometheusRuleMatchesRulesFile(t *testing.T) {
	g := NewWithT(t)
	out, err := runKubectl(t, "kustomize", filepath.Join("..", "..", "config", "prometheus"))
	g.Expect(err).NotTo(HaveOccurred(), out)
	var kinds []string
	var ruleGroups any
	for _, doc := range strings.Split(out, "\n---\n") {
		var obj map[string]any
		g.Expect(yaml.Unmarshal([]byte(doc), &obj)).To(Succeed())
		kinds = append(kinds, obj["kind"].(string))
		if obj["kind"] == "PrometheusRule" {
			ruleGroups = obj["spec"].(map[string]any)["groups"]
		}
	}
	g.Expect(kinds).To(ConsistOf("Service", "ServiceMonitor", "PrometheusRule"))

	b, err := os.ReadFile(filepath.Join("..", "..", "config", "prometheus", "rules", "pushmon.rules.yaml"))
	g.Expect(err).NotTo(HaveOccurred())
	var file map[string]any
	g.Expect(yaml.Unmarshal(b, &file)).To(Succeed())
	g.Expect(ruleGroups).NotTo(BeNil())
	g.Expect(ruleGroups).To(Equal(file["groups"]), "config/prometheus/prometheus_rule.yaml and rules/pushmon.rules.yaml differ")
}
