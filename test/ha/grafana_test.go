package ha

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	dto "github.com/prometheus/client_model/go"

	"github.com/pushmon/pushmon/internal/metrics"
	pushserver "github.com/pushmon/pushmon/internal/push"
)

// grafanaDashboard is the part of config/grafana/pushmon.json the test
// reads.
type grafanaDashboard struct {
	Time struct {
		From string `json:"from"`
	} `json:"time"`
	Templating struct {
		List []grafanaVariable `json:"list"`
	} `json:"templating"`
	Panels []grafanaPanel `json:"panels"`
}

type grafanaVariable struct {
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	Query      json.RawMessage `json:"query"` // a string, or {"query": "..."}
	Definition string          `json:"definition"`
	Datasource *grafanaDS      `json:"datasource"`
	Multi      bool            `json:"multi"`
	IncludeAll bool            `json:"includeAll"`
	AllValue   string          `json:"allValue"`
}

type grafanaDS struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type grafanaPanel struct {
	Title      string         `json:"title"`
	Type       string         `json:"type"`
	Datasource *grafanaDS     `json:"datasource"`
	Panels     []grafanaPanel `json:"panels"` // a row's, when it is collapsed
	Targets    []struct {
		RefID      string     `json:"refId"`
		Expr       string     `json:"expr"`
		Datasource *grafanaDS `json:"datasource"`
	} `json:"targets"`
}

// grafanaQuery is one PromQL expression of the dashboard and where it is.
type grafanaQuery struct {
	where string // panel "title" query A, or variable namespace
	expr  string
}

// grafanaLoad parses the dashboard and collects every panel query, failing
// on invalid JSON, a panel without a query, or a query that does not use
// the dashboard's data source variable (the file has no __inputs: the
// importing user picks the data source in the variable).
func grafanaLoad(t *testing.T, path string) (*grafanaDashboard, []grafanaQuery) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var d grafanaDashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("%s is not valid dashboard JSON: %v", path, err)
	}
	var queries []grafanaQuery
	var walk func([]grafanaPanel)
	walk = func(ps []grafanaPanel) {
		for _, p := range ps {
			if p.Type == "row" {
				walk(p.Panels)
				continue
			}
			if ds := p.Datasource; ds != nil && ds.UID != "${datasource}" {
				t.Errorf("panel %q: datasource %+v, want the ${datasource} variable", p.Title, ds)
			}
			n := 0
			for _, tg := range p.Targets {
				where := fmt.Sprintf("panel %q query %s", p.Title, tg.RefID)
				if strings.TrimSpace(tg.Expr) == "" {
					t.Errorf("%s has no expr", where)
					continue
				}
				if ds := tg.Datasource; ds == nil || ds.UID != "${datasource}" || ds.Type != "prometheus" {
					t.Errorf("%s: datasource %+v, want the prometheus ${datasource} variable", where, ds)
				}
				queries = append(queries, grafanaQuery{where: where, expr: tg.Expr})
				n++
			}
			if n == 0 {
				t.Errorf("panel %q (%s) has no query", p.Title, p.Type)
			}
		}
	}
	walk(d.Panels)
	if len(queries) == 0 {
		t.Fatalf("%s: no panel queries found", path)
	}
	return &d, queries
}

// grafanaVarQuery is a query variable's label_values(...) text.
func grafanaVarQuery(t *testing.T, v grafanaVariable) string {
	t.Helper()
	var s string
	if json.Unmarshal(v.Query, &s) == nil {
		return s
	}
	var o struct {
		Query string `json:"query"`
	}
	if err := json.Unmarshal(v.Query, &o); err != nil {
		t.Fatalf("variable %s: query %s: %v", v.Name, v.Query, err)
	}
	return o.Query
}

var (
	// Grafana's variable syntaxes: $var, ${var}, ${var:format}, [[var]].
	grafanaVarRef = regexp.MustCompile(`\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]`)
	// PromQL string literals, removed before looking for metric names.
	grafanaStringLit = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'`)
	// The manager's metric prefixes: pushmon's own, and controller-runtime's
	// and client-go's on the same registry.
	grafanaPrefixed = regexp.MustCompile(`\b(?:pushmon|rest_client|controller_runtime|leader_election|workqueue|certwatcher)_[a-zA-Z0-9_:]*`)
	// Whatever its prefix, a name in front of a label matcher is a metric.
	grafanaSelector = regexp.MustCompile(`\b([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{`)
	grafanaLabelVal = regexp.MustCompile(`^label_values\(\s*(?:(.*?)\s*,\s*)?(\w+)\s*\)$`)
)

// grafanaMetricNames lists the metric names expr refers to.
func grafanaMetricNames(expr string) []string {
	bare := grafanaStringLit.ReplaceAllString(expr, `""`)
	seen := map[string]bool{}
	for _, n := range grafanaPrefixed.FindAllString(bare, -1) {
		seen[n] = true
	}
	for _, m := range grafanaSelector.FindAllStringSubmatch(bare, -1) {
		seen[m[1]] = true
	}
	var out []string
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// grafanaFamily is the family a sample name belongs to: a histogram's or
// summary's _bucket, _sum and _count series are its family's.
func grafanaFamily(mfs map[string]*dto.MetricFamily, name string) (*dto.MetricFamily, bool) {
	if mf, ok := mfs[name]; ok {
		return mf, true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		base, ok := strings.CutSuffix(name, suffix)
		if !ok {
			continue
		}
		if mf, ok := mfs[base]; ok {
			switch mf.GetType() {
			case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
				return mf, true
			case dto.MetricType_SUMMARY:
				return mf, suffix != "_bucket"
			}
		}
	}
	return nil, false
}

func grafanaHasLabel(mf *dto.MetricFamily, label string) bool {
	for _, m := range mf.GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == label {
				return true
			}
		}
	}
	return false
}

// grafanaExpand replaces Grafana's variables as Grafana does with every
// variable at "All" (allValue .*) and the dashboard's default time range;
// an unknown variable is an error.
func grafanaExpand(expr string, values map[string]string) (string, error) {
	var unknown []string
	out := grafanaVarRef.ReplaceAllStringFunc(expr, func(ref string) string {
		m := grafanaVarRef.FindStringSubmatch(ref)
		name := m[1] + m[2] + m[3]
		if v, ok := values[name]; ok {
			return v
		}
		unknown = append(unknown, ref)
		return ref
	})
	if unknown != nil {
		return "", fmt.Errorf("unknown variable(s) %v", unknown)
	}
	return out, nil
}

// grafanaRegexUse checks that every use of a multi-value variable is a
// regex matcher: Grafana writes several values, and All, as a regex
// (a|b, .*), which = would compare literally.
func grafanaRegexUse(expr, name string) error {
	uses := regexp.MustCompile(`\$(?:\{`+name+`(?::\w+)?\}|`+name+`\b)|\[\[`+name+`\]\]`).FindAllStringIndex(expr, -1)
	inRegex := regexp.MustCompile(`=~\s*"(?:\$\{?`+name+`(?::\w+)?\}?|\[\[`+name+`\]\])"`).FindAllStringIndex(expr, -1)
	if len(uses) != len(inRegex) {
		return fmt.Errorf("$%s is used %d time(s), only %d in a =~\"$%s\" matcher", name, len(uses), len(inRegex), name)
	}
	return nil
}

// TestGrafanaDashboardQueries: every query of config/grafana/pushmon.json
// (panels and variables) names only metrics a real manager serves, and
// Debian's Prometheus, scraping that manager, accepts each query and answers
// it with series once monitors are Up, Down (missed and reported), and have
// run.
func TestGrafanaDashboardQueries(t *testing.T) {
	path, _ := filepath.Abs(filepath.Join("..", "..", "config", "grafana", "pushmon.json"))
	dash, queries := grafanaLoad(t, path)

	// Variables: a data source variable of type prometheus, then query
	// variables that are multi-value with All.
	values := map[string]string{"datasource": "prometheus"}
	type labelValues struct{ where, selector, label string }
	var varQueries []labelValues
	for _, v := range dash.Templating.List {
		where := "variable " + v.Name
		switch v.Type {
		case "datasource":
			if q := grafanaVarQuery(t, v); q != "prometheus" {
				t.Errorf("%s: data source type %q, want prometheus", where, q)
			}
		case "query":
			if v.Datasource == nil || v.Datasource.UID != "${datasource}" {
				t.Errorf("%s: datasource %+v, want the ${datasource} variable", where, v.Datasource)
			}
			if !v.Multi || !v.IncludeAll || v.AllValue != ".*" {
				t.Errorf("%s: multi %v, includeAll %v, allValue %q: want multi-value with All as .*", where, v.Multi, v.IncludeAll, v.AllValue)
			}
			q := grafanaVarQuery(t, v)
			if v.Definition != "" && v.Definition != q {
				t.Errorf("%s: definition %q differs from its query %q", where, v.Definition, q)
			}
			m := grafanaLabelVal.FindStringSubmatch(strings.TrimSpace(q))
			if m == nil || m[1] == "" {
				t.Errorf("%s: query %q is not label_values(<metric>, <label>)", where, q)
				continue
			}
			varQueries = append(varQueries, labelValues{where, m[1], m[2]})
			queries = append(queries, grafanaQuery{where: where, expr: m[1]})
			values[v.Name] = v.AllValue
		default:
			t.Errorf("%s: type %q: only the data source and label_values query variables are expected", where, v.Type)
		}
	}
	// Grafana's built-in intervals: $__rate_interval is four scrape
	// intervals at least (1m at Prometheus's default 15s); $__range is the
	// dashboard's default time range.
	rng, err := time.ParseDuration(strings.TrimPrefix(dash.Time.From, "now-"))
	if err != nil {
		t.Fatalf("time.from %q: want now-<duration>: %v", dash.Time.From, err)
	}
	values["__rate_interval"], values["__interval"] = "1m", "15s"
	values["__range"] = fmt.Sprintf("%ds", int(rng.Seconds()))
	values["__range_s"] = fmt.Sprint(int(rng.Seconds()))

	expanded := make([]string, len(queries))
	for i, q := range queries {
		for _, v := range dash.Templating.List {
			if v.Type == "query" {
				if err := grafanaRegexUse(q.expr, v.Name); err != nil {
					t.Errorf("%s: %v", q.where, err)
				}
			}
		}
		if expanded[i], err = grafanaExpand(q.expr, values); err != nil {
			t.Errorf("%s: %v in %s", q.where, err, q.expr)
		}
		if len(grafanaMetricNames(q.expr)) == 0 {
			t.Errorf("%s: no metric name found in %s", q.where, q.expr)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	// A manager, scraped every second by Prometheus from the start, so
	// that counters are seen before and after they move.
	g := NewWithT(t)
	r := startReplica(t, "grafana", "", "--dashboard-bind-address=0")
	waitForLeader(t, []*replica{r})
	promAddr := startPrometheus(t, fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
- job_name: pushmon
  static_configs:
  - targets: [%q]
`, r.metricsAddr))

	// The scenario: one monitor pushed steadily, one that falls silent
	// (HeartbeatMissed), one whose client reports down twice
	// (DownReported), one that reports a run with a start and a success.
	ns := newNamespace(t, "grafana")
	_, steadyTok := createMonitor(t, ns, "steady", 30*time.Second, 0)
	_, silentTok := createMonitor(t, ns, "silent", 2*time.Second, 0)
	_, reportTok := createMonitor(t, ns, "reported", 30*time.Second, 0)
	_, runTok := createMonitor(t, ns, "runs", 30*time.Second, 0)
	firstPush(t, r, silentTok, "msg=last")
	firstPush(t, r, steadyTok, "value=42")
	p := startPusher(steadyTok, []*replica{r}, 250*time.Millisecond)
	defer p.halt()
	firstPush(t, r, runTok, "")
	grafanaPing(t, r, runTok, "/start")
	time.Sleep(200 * time.Millisecond)
	grafanaPing(t, r, runTok, "/0")
	firstPush(t, r, reportTok, "msg=ok")
	for _, q := range []string{"status=down&msg=disk+full", "status=up&msg=back", "status=down&msg=disk+full+again"} {
		time.Sleep(1500 * time.Millisecond) // a scrape between transitions
		mustPush(t, r, reportTok, q)
	}

	// The manager reports what the scenario did.
	g.Eventually(func(g Gomega) {
		mfs := scrapeReplica(g, r)
		g.Expect(grafanaSample(mfs, metrics.MonitorUpName, ns, "silent")).To(Equal(0.0), "silent is Down")
		g.Expect(grafanaSample(mfs, metrics.MonitorUpName, ns, "reported")).To(Equal(0.0), "reported is Down")
		g.Expect(grafanaSample(mfs, metrics.MonitorUpName, ns, "steady")).To(Equal(1.0), "steady is Up")
		g.Expect(grafanaSample(mfs, metrics.MonitorRunSuccessName, ns, "runs")).To(Equal(1.0), "runs has its run")
	}).WithTimeout(20 * time.Second).Should(Succeed())

	// Every metric name in every query is a family the manager serves,
	// and a variable's label is on its metric.
	mfs := scrapeReplica(g, r)
	for _, q := range queries {
		for _, name := range grafanaMetricNames(q.expr) {
			if _, ok := grafanaFamily(mfs, name); !ok {
				t.Errorf("%s: %s is not a metric the manager serves (query: %s)", q.where, name, q.expr)
			}
		}
	}
	for _, v := range varQueries {
		for _, name := range grafanaMetricNames(v.selector) {
			if mf, ok := grafanaFamily(mfs, name); ok && !grafanaHasLabel(mf, v.label) {
				t.Errorf("%s: no series of %s has the label %q", v.where, name, v.label)
			}
		}
	}
	if t.Failed() {
		served := make([]string, 0, len(mfs))
		for n := range mfs {
			if strings.HasPrefix(n, "pushmon_") {
				served = append(served, n)
			}
		}
		sort.Strings(served)
		t.Fatalf("the manager serves: %s", strings.Join(served, " "))
	}

	// Prometheus accepts every query (a parse error is final, so it is
	// not retried), and each answers with a series that is a number.
	var evals []grafanaQuery
	for i, q := range queries {
		if _, err := promQuery(promAddr, expanded[i]); err != nil {
			t.Errorf("%s: Prometheus refuses it: %v", q.where, err)
		}
		evals = append(evals, grafanaQuery{where: q.where, expr: expanded[i]})
	}
	for _, v := range varQueries {
		sel, _ := grafanaExpand(v.selector, values)
		evals = append(evals, grafanaQuery{where: v.where + " (its label)", expr: fmt.Sprintf("count by (%s) (%s)", v.label, sel)})
	}
	if t.Failed() {
		t.FailNow()
	}
	start := time.Now()
	g.Eventually(func() []string {
		var empty []string
		for _, q := range evals {
			res, err := promQuery(promAddr, q.expr)
			n := 0
			for _, s := range res {
				if !math.IsNaN(s.Value) {
					n++
				}
			}
			if err != nil || n == 0 {
				empty = append(empty, fmt.Sprintf("%s: %d series (%d not NaN), err %v: %s", q.where, len(res), n, err, q.expr))
			}
		}
		return empty
	}).WithTimeout(30*time.Second).WithPolling(time.Second).Should(BeEmpty(), "queries without a series")
	t.Logf("%d panel queries and %d variable queries (selector and label) accepted by Prometheus; all had a series %v after the scenario",
		len(queries)-len(varQueries), len(varQueries), time.Since(start).Round(time.Second))
}

// grafanaPing sends a Healthchecks-style ping (/ping/<token><suffix>).
func grafanaPing(t *testing.T, r *replica, tok, suffix string) {
	t.Helper()
	resp, err := http.Post("http://"+r.pushAddr+pushserver.PingPathPrefix+tok+suffix, "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("ping %s: %s", suffix, resp.Status)
	}
}

// grafanaSample is the value of the named metric's series for one monitor,
// NaN when there is none.
func grafanaSample(mfs map[string]*dto.MetricFamily, name, ns, monitor string) float64 {
	for _, m := range mfs[name].GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		if labels["namespace"] == ns && labels["name"] == monitor {
			return m.GetGauge().GetValue()
		}
	}
	return math.NaN()
}
