package dashboard

import (
	"fmt"
	"html/template"
	"math"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
	"github.com/pushmon/pushmon/internal/history"
)

// Cell is one cell of a monitor's bar: a finished run, or (for a monitor
// without runs) a state it entered; the newest on the right.
type Cell struct {
	// Class is the colour: up (green), down (red), or none (grey: Pending,
	// Suspended, or no entry yet).
	Class string
	// Title is the cell's tooltip.
	Title string
}

// Uptime is one uptime figure as shown.
type Uptime struct {
	Window string
	Text   string // "99.95%", or "–" when nothing is counted yet
	Title  string
}

// Run is one row of the recent runs table.
type Run struct {
	End, Start, Duration, Result, Exit, Message, Job string
	Failed                                           bool
}

// Transition is one row of the transitions table.
type Transition struct {
	Time, State, Reason, Message string
}

// Monitor is what the pages show of one PushMonitor.
type Monitor struct {
	Namespace, Name string
	State           string
	StateClass      string
	Reason, Message string
	LastHeartbeat   string
	Schedule        string
	Bar             []Cell
	BarOf           string // "runs" or "transitions"
	Uptimes         []Uptime
	Runs            []Run // newest first
	Transitions     []Transition
	RunStats        *RunStats
}

// RunStats are the run figures as shown.
type RunStats struct {
	Runs, SuccessRate, P50, P95 string
}

// States are the states a filter can ask for.
var States = []string{string(monitoringv1alpha1.StatePending), string(monitoringv1alpha1.StateUp),
	string(monitoringv1alpha1.StateDown), string(monitoringv1alpha1.StateSuspended)}

type listPage struct {
	Monitors   []Monitor
	Namespaces []string
	States     []string
	Namespace  string
	State      string
	Counts     map[string]int
	Total      int
	Now        string
}

func (s *Server) list(w http.ResponseWriter, r *http.Request) {
	var all monitoringv1alpha1.PushMonitorList
	// Read only (sorting reorders this list's own slice): no copy of
	// every monitor per page view.
	if err := s.Reader.List(r.Context(), &all, client.UnsafeDisableDeepCopy); err != nil {
		s.fail(w, err)
		return
	}
	now := s.now()
	p := listPage{Namespace: r.URL.Query().Get("namespace"), State: r.URL.Query().Get("state"),
		States: States, Counts: map[string]int{}, Now: now.UTC().Format(time.RFC3339)}
	nss := map[string]bool{}
	sortMonitors(all.Items)
	for i := range all.Items {
		m := &all.Items[i]
		nss[m.Namespace] = true
		if p.Namespace != "" && m.Namespace != p.Namespace {
			continue
		}
		state := stateOf(m)
		p.Counts[state]++
		if p.State != "" && state != p.State {
			continue
		}
		p.Monitors = append(p.Monitors, view(m, now, false))
	}
	for ns := range nss {
		p.Namespaces = append(p.Namespaces, ns)
	}
	sort.Strings(p.Namespaces)
	for _, n := range p.Counts {
		p.Total += n
	}
	s.render(w, "list.html", p)
}

func (s *Server) detail(w http.ResponseWriter, r *http.Request) {
	var m monitoringv1alpha1.PushMonitor
	key := client.ObjectKey{Namespace: r.PathValue("namespace"), Name: r.PathValue("name")}
	if err := s.Reader.Get(r.Context(), key, &m); err != nil {
		if client.IgnoreNotFound(err) == nil {
			http.Error(w, "no such monitor", http.StatusNotFound)
			return
		}
		s.fail(w, err)
		return
	}
	s.render(w, "detail.html", view(&m, s.now(), true))
}

func (s *Server) render(w http.ResponseWriter, name string, data any) {
	var b strings.Builder
	if err := s.tmpl.ExecuteTemplate(&b, name, data); err != nil {
		s.fail(w, err)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write([]byte(b.String()))
}

func (s *Server) fail(w http.ResponseWriter, err error) {
	s.Log.Error(err, "dashboard page")
	http.Error(w, "the dashboard could not read its cache", http.StatusServiceUnavailable)
}

func sortMonitors(ms []monitoringv1alpha1.PushMonitor) {
	slices.SortFunc(ms, func(a, b monitoringv1alpha1.PushMonitor) int {
		if c := strings.Compare(a.Namespace, b.Namespace); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
}

func stateOf(m *monitoringv1alpha1.PushMonitor) string {
	if m.Status.State == "" {
		return string(monitoringv1alpha1.StatePending)
	}
	return string(m.Status.State)
}

func stateClass(s string) string {
	switch monitoringv1alpha1.MonitorState(s) {
	case monitoringv1alpha1.StateUp:
		return "up"
	case monitoringv1alpha1.StateDown:
		return "down"
	default:
		return "none"
	}
}

// view is what the pages show of m at now; full adds the tables.
func view(m *monitoringv1alpha1.PushMonitor, now time.Time, full bool) Monitor {
	st := &m.Status
	v := Monitor{Namespace: m.Namespace, Name: m.Name, State: stateOf(m), Schedule: m.Spec.Schedule}
	v.StateClass = stateClass(v.State)
	if c := meta.FindStatusCondition(st.Conditions, monitoringv1alpha1.HealthyCondition); c != nil {
		v.Reason, v.Message = c.Reason, c.Message
	}
	if m.Spec.CronJobRef != nil {
		v.Schedule = "CronJob " + m.Spec.CronJobRef.Name
	}
	if t := st.LastHeartbeatTime; t != nil {
		v.LastHeartbeat = ago(now, t.Time)
	}
	v.Bar, v.BarOf = bar(m)
	v.Uptimes = uptimes(st, now)
	if len(st.RecentRuns) > 0 {
		rs := history.Runs(st.RecentRuns)
		v.RunStats = &RunStats{Runs: fmt.Sprint(rs.Runs), SuccessRate: percent(rs.SuccessRate()), P50: "–", P95: "–"}
		if rs.Timed > 0 {
			v.RunStats.P50, v.RunStats.P95 = shortDuration(rs.P50), shortDuration(rs.P95)
		}
	}
	if !full {
		return v
	}
	for i := len(st.RecentRuns) - 1; i >= 0; i-- {
		r := st.RecentRuns[i]
		row := Run{End: stamp(r.EndTime.Time), Result: string(r.Result), Message: r.Message, Job: r.JobName,
			Failed: r.Result == monitoringv1alpha1.RunFailed, Start: "–", Duration: "–", Exit: "–"}
		if r.StartTime != nil {
			row.Start = stamp(r.StartTime.Time)
		}
		if r.Duration != nil {
			row.Duration = shortDuration(r.Duration.Duration)
		}
		if r.ExitCode != nil {
			row.Exit = fmt.Sprint(*r.ExitCode)
		}
		v.Runs = append(v.Runs, row)
	}
	for i := len(st.RecentTransitions) - 1; i >= 0; i-- {
		t := st.RecentTransitions[i]
		v.Transitions = append(v.Transitions, Transition{Time: stamp(t.Time.Time), State: string(t.State), Reason: t.Reason, Message: t.Message})
	}
	return v
}

// bar is the monitor's bar: its recent runs when it has any (scheduled
// jobs, CronJobs), else the states it entered; padded on the left with
// grey cells to historyLimit, as Uptime Kuma pads its heartbeat bar.
func bar(m *monitoringv1alpha1.PushMonitor) ([]Cell, string) {
	var cells []Cell
	of := "transitions"
	if runs := m.Status.RecentRuns; len(runs) > 0 {
		of = "runs"
		for _, r := range runs {
			c := Cell{Class: "up", Title: fmt.Sprintf("%s %s", stamp(r.EndTime.Time), r.Result)}
			if r.Result == monitoringv1alpha1.RunFailed {
				c.Class = "down"
			}
			if r.Duration != nil {
				c.Title += " in " + shortDuration(r.Duration.Duration)
			}
			if r.ExitCode != nil {
				c.Title += fmt.Sprintf(" (exit %d)", *r.ExitCode)
			}
			if r.Message != "" {
				c.Title += ": " + r.Message
			}
			cells = append(cells, c)
		}
	} else {
		for _, t := range m.Status.RecentTransitions {
			cells = append(cells, Cell{Class: stateClass(string(t.State)), Title: fmt.Sprintf("%s %s (%s)", stamp(t.Time.Time), t.State, t.Reason)})
		}
	}
	pad := make([]Cell, max(m.HistoryLen()-len(cells), 0))
	for i := range pad {
		pad[i] = Cell{Class: "empty", Title: "no entry yet"}
	}
	return append(pad, cells...), of
}

func uptimes(st *monitoringv1alpha1.PushMonitorStatus, now time.Time) []Uptime {
	var out []Uptime
	for _, w := range history.Windows {
		f := history.Uptime(st, w, now)
		u := Uptime{Window: history.WindowName(w), Text: "–", Title: "nothing counted yet (Pending)"}
		if f.Known() {
			u.Text = percent(f.Ratio)
			u.Title = fmt.Sprintf("Down %s of %s counted", shortDuration(f.Down), shortDuration(f.Counted))
		}
		out = append(out, u)
	}
	return out
}

// percent writes r as a percentage with two decimals, rounded down, so that
// any downtime at all never shows as 100%.
func percent(r float64) string {
	return fmt.Sprintf("%.2f%%", math.Floor(r*10000)/100)
}

func stamp(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05Z") }

func ago(now, t time.Time) string {
	d := now.Sub(t)
	if d < 0 {
		d = 0
	}
	return shortDuration(d.Round(time.Second)) + " ago"
}

// shortDuration writes d as a spec does: 5m rather than 5m0s.
func shortDuration(d time.Duration) string {
	if d > time.Second {
		d = d.Round(100 * time.Millisecond)
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

var funcs = template.FuncMap{
	"stateClass": stateClass,
	"add":        func(a, b int) int { return a + b },
	"half":       func(a int) int { return a / 2 },
	"query": func(ns, state string) template.URL {
		var q []string
		if ns != "" {
			q = append(q, "namespace="+template.URLQueryEscaper(ns))
		}
		if state != "" {
			q = append(q, "state="+template.URLQueryEscaper(state))
		}
		if len(q) == 0 {
			return "/"
		}
		return template.URL("/?" + strings.Join(q, "&"))
	},
}
