package ha

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
	"github.com/pushmon/pushmon/internal/metrics"
	"github.com/pushmon/pushmon/internal/plugin"
)

// uptimeDocQuery is docs/dashboard.md's PromQL for the dashboard's 24h
// figure; the test checks that the document still says exactly this.
const uptimeDocQuery = `max by (namespace, name) (pushmon_monitor_uptime_ratio{window="24h"})`

// uptimeJob is the Prometheus job scraping the replicas.
const uptimeJob = "pushmon-uptime"

// uptimeSlack widens the moment a scraped figure was computed beyond the
// scrape (from its timestamp to its end): Prometheus stores the timestamp
// in ms and aligns it to the scrape schedule by up to 2 ms.
const uptimeSlack = 10 * time.Millisecond

// uptimePush pushes to r until answered 200 (the first push to a replica
// whose cache does not know the token yet is a 404). Errors are reported
// with the token cut out: it is in the URL, which net/http's errors quote.
func uptimePush(t *testing.T, r *replica, tok, query string) {
	t.Helper()
	NewWithT(t).Eventually(func() (int, error) {
		code, err := push(r.pushAddr, tok, query)
		if err != nil {
			return 0, errors.New(strings.ReplaceAll(err.Error(), tok, "<token>"))
		}
		return code, nil
	}).WithPolling(20*time.Millisecond).Should(Equal(200), "push %q to %s", query, r.name)
}

// uptimePromFigure is the documented query's figure for one monitor, with
// the raw sample it came from.
type uptimePromFigure struct {
	value    float64       // the documented query's value for the monitor
	series   int           // series the documented query gives for the monitor
	instance string        // the scrape target whose sample that value is
	at       time.Time     // that sample's scrape timestamp
	scrape   time.Duration // that scrape's duration
	raw      map[string]float64
}

// errUptimeScrapeBetween: the answers of uptimeFromPrometheus's queries
// may belong to different scrapes.
var errUptimeScrapeBetween = errors.New("a scrape was ingested between the queries")

// uptimeFromPrometheus evaluates the documented query and, to know when
// its figure was computed, the raw series' timestamps and the scrapes'
// durations. Those are separate queries, so they are taken between two
// reads of the timestamps; if a scrape was ingested in between, the
// answers may belong to different scrapes and it is an error (try again).
func uptimeFromPrometheus(prom, ns, name string) (uptimePromFigure, error) {
	var f uptimePromFigure
	sel := fmt.Sprintf(`%s{window="24h",namespace=%q,name=%q}`, metrics.MonitorUptimeName, ns, name)
	stamps := func() (map[string]time.Time, error) {
		res, err := promQuery(prom, "timestamp("+sel+")")
		if err != nil {
			return nil, err
		}
		out := map[string]time.Time{}
		for _, s := range res {
			out[s.Labels["instance"]] = time.UnixMilli(int64(math.Round(s.Value * 1000)))
		}
		return out, nil
	}
	before, err := stamps()
	if err != nil {
		return f, err
	}
	doc, err := promQuery(prom, uptimeDocQuery)
	if err != nil {
		return f, err
	}
	raw, err := promQuery(prom, sel)
	if err != nil {
		return f, err
	}
	durs, err := promQuery(prom, fmt.Sprintf(`scrape_duration_seconds{job=%q}`, uptimeJob))
	if err != nil {
		return f, err
	}
	after, err := stamps()
	if err != nil {
		return f, err
	}
	f.raw = map[string]float64{}
	for _, s := range raw {
		f.raw[s.Labels["instance"]] = s.Value
	}
	for _, s := range doc {
		if s.Labels["namespace"] == ns && s.Labels["name"] == name {
			f.series++
			f.value = s.Value
		}
	}
	if !maps.EqualFunc(before, after, time.Time.Equal) {
		return f, fmt.Errorf("%w (%v, then %v)", errUptimeScrapeBetween, before, after)
	}
	if f.series == 0 {
		return f, fmt.Errorf("%s gives no series for %s/%s (raw series: %v)", uptimeDocQuery, ns, name, f.raw)
	}
	for inst, v := range f.raw {
		if v == f.value {
			f.instance, f.at = inst, before[inst]
		}
	}
	if f.instance == "" {
		return f, fmt.Errorf("the documented query's %v is none of the raw series' %v", f.value, f.raw)
	}
	for _, s := range durs {
		if s.Labels["instance"] == f.instance {
			f.scrape = time.Duration(s.Value * float64(time.Second))
		}
	}
	if f.scrape == 0 {
		return f, fmt.Errorf("no scrape_duration_seconds for %s", f.instance)
	}
	return f, nil
}

// downtime is the range of downtime f implies: the figure is 1 - down /
// (now - since) for the leader's clock at the moment it computed it, which
// was during the scrape, so between the scrape's timestamp and its end.
func (f uptimePromFigure) downtime(since time.Time) (lo, hi time.Duration) {
	lo = time.Duration((1 - f.value) * float64(f.at.Add(-uptimeSlack).Sub(since)))
	hi = time.Duration((1 - f.value) * float64(f.at.Add(f.scrape+uptimeSlack).Sub(since)))
	return lo, hi
}

// uptimeExpectDowntime checks that f implies the stored outage's length.
func uptimeExpectDowntime(g Gomega, f uptimePromFigure, since time.Time, down time.Duration) {
	lo, hi := f.downtime(since)
	g.Expect(down >= lo && down <= hi).To(BeTrue(),
		"%s = %v (sample of %s at %s, scrape %v) implies %v to %v down; the stored outage is %v",
		uptimeDocQuery, f.value, f.instance, f.at.Format("15:04:05.000"), f.scrape, lo, hi, down)
}

// uptimeShownRange is, in hundredths of a percent, the range of figures a
// display that rounds down to 0.01% (the dashboard, kubectl pushmon)
// shows at some moment between t0 and t1 for a downtime between lo and hi.
func uptimeShownRange(since, t0, t1 time.Time, lo, hi time.Duration) (int, int) {
	rlo := 1 - float64(hi)/float64(t0.Sub(since))
	rhi := 1 - float64(lo)/float64(t1.Sub(since))
	return int(math.Floor(rlo * 10000)), int(math.Floor(rhi * 10000))
}

// uptimeHundredths parses "81.23" (a figure shown to 0.01%) as 8123.
func uptimeHundredths(g Gomega, s string) int {
	v, err := strconv.ParseFloat(s, 64)
	g.Expect(err).NotTo(HaveOccurred())
	return int(math.Round(v * 100))
}

var uptimeSpan = regexp.MustCompile(`<span class="uptime" title="Down ([^ ]+) of ([^ ]+) counted"><span class="window">24h</span> <span class="figure">([0-9.]+)%</span>`)

// TestUptimePromQLAcrossLeaderRestart: Debian's Prometheus scrapes two
// manager replicas; a monitor goes Up, Down for 2 s and Recovered; the
// documented PromQL gives a figure implying the stored outage's downtime
// before and after the leader is SIGKILLed (the new leader's series, one
// series only while the old leader is dead), and the new leader's
// dashboard and kubectl pushmon show the same figure. About 13 s under
// -race, so it runs in -short too.
func TestUptimePromQLAcrossLeaderRestart(t *testing.T) {
	lookBin(t, "prometheus", "prometheus") // skip before starting anything
	g := NewWithT(t)
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "dashboard.md"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(string(doc)).To(ContainSubstring("```promql\n"+uptimeDocQuery+"\n```"), "docs/dashboard.md documents the query evaluated here")

	replicas := make([]*replica, 2)
	dashboards := map[*replica]string{}
	for i, name := range []string{"uptime-a", "uptime-b"} {
		addr := freeAddr(t)
		replicas[i] = startReplica(t, name, "", "--dashboard-bind-address="+addr)
		dashboards[replicas[i]] = addr
	}
	leader := waitForLeader(t, replicas)
	prom := startPrometheus(t, fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
- job_name: %s
  static_configs:
  - targets: [%q, %q]
`, uptimeJob, replicas[0].metricsAddr, replicas[1].metricsAddr))

	ns := newNamespace(t, "uptime-promql")
	m, tok := createMonitor(t, ns, "api", time.Hour, 0)
	waitState := func(state monitoringv1alpha1.MonitorState, reason string) *monitoringv1alpha1.PushMonitor {
		var got *monitoringv1alpha1.PushMonitor
		g.Eventually(func(g Gomega) {
			got = get(g, m)
			g.Expect(got.Status.State).To(Equal(state))
			g.Expect(healthReason(got)).To(Equal(reason))
		}).Should(Succeed())
		return got
	}
	uptimePush(t, leader, tok, "msg=hi")
	waitState(monitoringv1alpha1.StateUp, monitoringv1alpha1.HeartbeatReceivedReason)
	uptimePush(t, leader, tok, "status=down")
	waitState(monitoringv1alpha1.StateDown, monitoringv1alpha1.DownReportedReason)
	time.Sleep(2 * time.Second) // the scenario: Down for 2 s at least
	uptimePush(t, leader, tok, "msg=back")
	recovered := waitState(monitoringv1alpha1.StateUp, monitoringv1alpha1.RecoveredReason)
	g.Expect(recovered.Status.Uptime).NotTo(BeNil())
	g.Expect(recovered.Status.Uptime.Outages).To(HaveLen(1))
	outage := recovered.Status.Uptime.Outages[0]
	down := outage.End.Sub(outage.Start.Time)
	g.Expect(down).To(BeNumerically(">=", 2*time.Second))
	since := recovered.Status.Uptime.Since.Time

	// The figure moves by the moment while a few seconds are counted, so
	// each is checked by the downtime it implies at the time it was
	// computed (its scrape).
	var first uptimePromFigure
	g.Eventually(func(g Gomega) {
		f, err := uptimeFromPrometheus(prom, ns, m.Name)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(f.series).To(Equal(1))
		g.Expect(f.instance).To(Equal(leader.metricsAddr), "the leader's series")
		uptimeExpectDowntime(g, f, since, down)
		first = f
	}).WithTimeout(20 * time.Second).Should(Succeed())

	leader.kill()
	next := waitForLeader(t, replicas)
	g.Expect(next).NotTo(BeIdenticalTo(leader))

	// While the old leader is dead, the documented query never gives the
	// monitor more than one series (the max joins the leaders'), and once
	// the new leader's sample is in, its figure implies the same downtime.
	var after uptimePromFigure
	g.Eventually(func(g Gomega) {
		f, err := uptimeFromPrometheus(prom, ns, m.Name)
		if f.series > 1 {
			StopTrying(fmt.Sprintf("%s gives %d series for the monitor (raw: %v)", uptimeDocQuery, f.series, f.raw)).Now()
		}
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(f.instance).To(Equal(next.metricsAddr), "the new leader's sample is in")
		uptimeExpectDowntime(g, f, since, down)
		after = f
	}).WithTimeout(20 * time.Second).Should(Succeed())
	g.Consistently(func(g Gomega) {
		f, err := uptimeFromPrometheus(prom, ns, m.Name)
		g.Expect(f.series).To(Equal(1), "one series for the monitor, raw series %v", f.raw)
		if errors.Is(err, errUptimeScrapeBetween) {
			return // the answers may be of different scrapes: nothing to compare
		}
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(f.raw).To(HaveLen(1), "only the new leader reports; the dead one's series is stale")
		g.Expect(f.instance).To(Equal(next.metricsAddr))
		uptimeExpectDowntime(g, f, since, down)
	}).WithTimeout(3 * time.Second).WithPolling(200 * time.Millisecond).Should(Succeed())
	lo, hi := after.downtime(since)

	// The new leader's dashboard: the figure, shown rounded down to 0.01%,
	// is the one Prometheus's figure gives at the moment the page was
	// made; the durations beside it are shown to 100 ms.
	t0 := time.Now()
	resp, err := http.Get("http://" + dashboards[next] + "/monitors/" + ns + "/" + m.Name)
	g.Expect(err).NotTo(HaveOccurred())
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	t1 := time.Now()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(resp.StatusCode).To(Equal(http.StatusOK))
	g.Expect(bytes.Contains(body, []byte(tok))).To(BeFalse(), "the token is on the page")
	fig := uptimeSpan.FindStringSubmatch(string(body))
	g.Expect(fig).To(HaveLen(4), "the 24h uptime on the page:\n%s", body)
	shownDown, err := time.ParseDuration(fig[1])
	g.Expect(err).NotTo(HaveOccurred())
	counted, err := time.ParseDuration(fig[2])
	g.Expect(err).NotTo(HaveOccurred())
	const shownTo = 50 * time.Millisecond // half of the 100 ms shown
	g.Expect(shownDown).To(And(BeNumerically(">=", lo-shownTo), BeNumerically("<=", hi+shownTo)),
		"the page's downtime against Prometheus's %v to %v", lo, hi)
	g.Expect(counted).To(And(BeNumerically(">=", t0.Sub(since)-shownTo), BeNumerically("<=", t1.Sub(since)+shownTo)),
		"the page's counted time")
	dashFig := uptimeHundredths(g, fig[3])
	wlo, whi := uptimeShownRange(since, t0, t1, lo, hi)
	g.Expect(dashFig).To(And(BeNumerically(">=", wlo), BeNumerically("<=", whi)),
		"the page shows %s%%; Prometheus's figure gives %.2f%% to %.2f%% then", fig[3], float64(wlo)/100, float64(whi)/100)

	// kubectl pushmon status -o wide, through the plugin's entry point as
	// cmd/kubectl-pushmon runs it: its UPTIME 24H column, the same way.
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	k0 := time.Now()
	code := plugin.Execute(ctx, []string{"--kubeconfig", writeKubeconfig(t, "uptime-kubectl", ""), "-n", ns, "status", m.Name, "-o", "wide"},
		genericiooptions.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut})
	k1 := time.Now()
	g.Expect(code).To(BeZero(), "kubectl pushmon status: %s", errOut.String())
	g.Expect(strings.Contains(out.String()+errOut.String(), tok)).To(BeFalse(), "the token in kubectl pushmon's output")
	lines := strings.Split(strings.TrimRight(out.String(), "\n"), "\n")
	g.Expect(lines).To(HaveLen(2), out.String())
	col := strings.Index(lines[0], "UPTIME 24H")
	g.Expect(col).To(BeNumerically(">", 0), out.String())
	g.Expect(len(lines[1])).To(BeNumerically(">", col), out.String())
	cells := strings.Fields(lines[1][col:])
	g.Expect(cells).NotTo(BeEmpty(), out.String())
	cell := cells[0]
	g.Expect(cell).To(MatchRegexp(`^[0-9]+\.[0-9]{2}%$`), out.String())
	kubectlFig := uptimeHundredths(g, strings.TrimSuffix(cell, "%"))
	klo, khi := uptimeShownRange(since, k0, k1, lo, hi)
	g.Expect(kubectlFig).To(And(BeNumerically(">=", klo), BeNumerically("<=", khi)),
		"kubectl shows %s; Prometheus's figure gives %.2f%% to %.2f%% then", cell, float64(klo)/100, float64(khi)/100)

	for _, r := range replicas {
		g.Expect(strings.Contains(r.out.String(), tok)).To(BeFalse(), "the token in %s's log", r.name)
	}
	t.Logf("outage %v; %s: %.4f from %s before the kill, %.4f from %s after (implies %v to %v down); page %s%% (Down %s of %s), kubectl %s",
		down, uptimeDocQuery, first.value, first.instance, after.value, after.instance, lo, hi, fig[3], shownDown, counted, cell)
}
