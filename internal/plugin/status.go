package plugin

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/duration"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
	"github.com/pushmon/pushmon/internal/history"
)

// maxMessage cuts messages in the wide table; -o yaml has them whole.
const maxMessage = 48

func newStatusCommand(o *Options) *cobra.Command {
	var allNamespaces bool
	var output string
	cmd := &cobra.Command{
		Use:               "status [NAME...]",
		ValidArgsFunction: o.completeNames(0),
		Short:             "Show PushMonitors: state, last heartbeat, next expected, last run",
		Example: `  kubectl pushmon status
  kubectl pushmon status -A
  kubectl pushmon status nightly-backup -o yaml`,
		RunE: func(cmd *cobra.Command, args []string) error {
			switch output {
			case "", "wide", "json", "yaml":
			default:
				return fmt.Errorf("unknown output format %q: use wide, json or yaml", output)
			}
			if allNamespaces && len(args) > 0 {
				return fmt.Errorf("NAME and --all-namespaces exclude each other")
			}
			monitors, ns, err := o.listMonitors(cmd, allNamespaces, args)
			if err != nil {
				return err
			}
			rows := make([]StatusRow, 0, len(monitors))
			for i := range monitors {
				rows = append(rows, statusRow(&monitors[i]))
				rows[i].Uptime = uptimeOf(&monitors[i], o.Now())
			}
			switch output {
			case "json":
				b, err := json.MarshalIndent(StatusList{Items: rows}, "", "  ")
				if err != nil {
					return err
				}
				_, err = fmt.Fprintf(o.Out, "%s\n", b)
				return err
			case "yaml":
				b, err := yaml.Marshal(StatusList{Items: rows})
				if err != nil {
					return err
				}
				_, err = o.Out.Write(b)
				return err
			}
			if len(rows) == 0 {
				// As kubectl get says it, on stderr so that scripts see no rows.
				if allNamespaces {
					fmt.Fprintln(o.ErrOut, "No PushMonitors found.")
				} else {
					fmt.Fprintf(o.ErrOut, "No PushMonitors found in %s namespace.\n", ns)
				}
				return nil
			}
			return printStatusTable(o.Out, rows, allNamespaces, output == "wide", o.Now())
		},
	}
	cmd.Flags().BoolVarP(&allNamespaces, "all-namespaces", "A", false, "list PushMonitors in every namespace")
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: wide, json or yaml")
	return cmd
}

// listMonitors reads the monitors asked for, sorted by namespace and name.
func (o *Options) listMonitors(cmd *cobra.Command, all bool, names []string) ([]monitoringv1alpha1.PushMonitor, string, error) {
	ctx := cmd.Context()
	c, err := o.Client()
	if err != nil {
		return nil, "", err
	}
	ns, err := o.Namespace()
	if err != nil {
		return nil, "", err
	}
	var out []monitoringv1alpha1.PushMonitor
	if len(names) > 0 {
		for _, n := range names {
			m, err := o.getMonitor(ctx, n)
			if err != nil {
				return nil, ns, err
			}
			out = append(out, *m)
		}
		return out, ns, nil
	}
	var list monitoringv1alpha1.PushMonitorList
	var opts []client.ListOption
	if !all {
		opts = append(opts, client.InNamespace(ns))
	}
	if err := c.List(ctx, &list, opts...); err != nil {
		return nil, ns, friendly(err)
	}
	out = list.Items
	sort.Slice(out, func(i, j int) bool {
		if out[i].Namespace != out[j].Namespace {
			return out[i].Namespace < out[j].Namespace
		}
		return out[i].Name < out[j].Name
	})
	return out, ns, nil
}

// StatusList is status's -o json|yaml: one summary per monitor, the table's
// fields with times in full (the objects themselves are kubectl get's).
type StatusList struct {
	Items []StatusRow `json:"items"`
}

// StatusRow summarizes one monitor from its status.
type StatusRow struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	State     string `json:"state"`
	// Reason is the Healthy condition's reason (why Down, why Unknown).
	Reason string `json:"reason,omitempty"`
	// Ready is "False: <reason>" while the monitor is not set up.
	NotReady string `json:"notReady,omitempty"`
	// Expects is the schedule, the followed CronJob or the timeout.
	Expects           string     `json:"expects"`
	LastHeartbeatTime *time.Time `json:"lastHeartbeatTime,omitempty"`
	// NextExpected is the next scheduled run, else the deadline after
	// which the monitor goes Down; absent while suspended.
	NextExpected *time.Time `json:"nextExpected,omitempty"`
	LastRun      *LastRun   `json:"lastRun,omitempty"`
	Message      string     `json:"message,omitempty"`
	// Uptime is the uptime by window ("24h", "7d", "30d"), 0..1, as the
	// dashboard and pushmon_monitor_uptime_ratio give it; absent while
	// nothing is counted.
	Uptime map[string]float64 `json:"uptime,omitempty"`
}

// uptimeOf is a monitor's uptime figures at now (internal/history, the
// dashboard's and the metric's code).
func uptimeOf(m *monitoringv1alpha1.PushMonitor, now time.Time) map[string]float64 {
	var u map[string]float64
	for _, w := range history.Windows {
		if f := history.Uptime(&m.Status, w, now); f.Known() {
			if u == nil {
				u = map[string]float64{}
			}
			u[history.WindowName(w)] = f.Ratio
		}
	}
	return u
}

// uptimeColumn is the UPTIME column: the 24h figure as the dashboard shows
// it (rounded down, so that any downtime shows below 100%).
func uptimeColumn(u map[string]float64) string {
	r, ok := u["24h"]
	if !ok {
		return "-"
	}
	return fmt.Sprintf("%.2f%%", math.Floor(r*10000)/100)
}

// LastRun is the last run a monitor knows of: one that reported a start, an
// exit status or a duration (plain heartbeats are not runs).
type LastRun struct {
	// Result is running, succeeded, failed or down.
	Result    string     `json:"result"`
	StartTime *time.Time `json:"startTime,omitempty"`
	// Duration is a Go duration string ("1m22.5s"), as in the API.
	Duration *metav1.Duration `json:"duration,omitempty"`
	ExitCode *int32           `json:"exitCode,omitempty"`
	Job      string           `json:"job,omitempty"`
}

func statusRow(m *monitoringv1alpha1.PushMonitor) StatusRow {
	st := &m.Status
	r := StatusRow{Namespace: m.Namespace, Name: m.Name, State: string(st.State), Message: st.LastMessage}
	if r.State == "" {
		r.State = "Unknown" // not reconciled yet
	}
	if c := meta.FindStatusCondition(st.Conditions, monitoringv1alpha1.HealthyCondition); c != nil {
		r.Reason = c.Reason
	}
	if c := meta.FindStatusCondition(st.Conditions, monitoringv1alpha1.ReadyCondition); c != nil && c.Status != "True" {
		r.NotReady = string(c.Status) + ": " + c.Reason
	}
	switch {
	case m.Spec.CronJobRef != nil:
		r.Expects = "cronjob/" + m.Spec.CronJobRef.Name
	case m.Spec.Schedule != "":
		r.Expects = m.Spec.Schedule
		if m.Spec.TimeZone != nil {
			r.Expects += " " + *m.Spec.TimeZone
		}
	default:
		r.Expects = "every " + shortDuration(m.TimeoutDuration())
	}
	if t := st.LastHeartbeatTime; t != nil {
		r.LastHeartbeatTime = ptrTime(t.Time)
	}
	if st.State != monitoringv1alpha1.StateSuspended {
		switch {
		case st.NextRunTime != nil:
			r.NextExpected = ptrTime(st.NextRunTime.Time)
		case st.Deadline != nil:
			r.NextExpected = ptrTime(st.Deadline.Time)
		}
	}
	r.LastRun = lastRun(st)
	return r
}

// lastRun reads the last run from status, which keeps no per-run record:
// a failure reported after the last start is that run's result, whatever
// plain heartbeats came after it.
func lastRun(st *monitoringv1alpha1.PushMonitorStatus) *LastRun {
	if n := len(st.OpenRuns); n > 0 {
		run := st.OpenRuns[n-1]
		return &LastRun{Result: "running", StartTime: ptrTime(run.StartTime.Time), Job: st.LastRunJob}
	}
	r := &LastRun{Job: st.LastRunJob, Result: "succeeded"}
	f := st.LastFailure
	switch {
	case st.LastStartTime != nil:
		r.StartTime = ptrTime(st.LastStartTime.Time)
		if f != nil && !f.Time.Before(&metav1.MicroTime{Time: st.LastStartTime.Time}) {
			r.Result, r.ExitCode = failureResult(f), f.ExitCode
		} else if st.LastExitCode != nil && *st.LastExitCode == 0 {
			r.ExitCode = st.LastExitCode
		}
	case st.LastExitCode != nil:
		// Exit-status pings without a start: a result, no duration.
		r.ExitCode = st.LastExitCode
		if *st.LastExitCode != 0 {
			r.Result = "failed"
		}
		return r
	case st.LastRunJob != "":
		if st.LastReportedStatus != monitoringv1alpha1.ReportedUp && f != nil {
			r.Result, r.ExitCode = failureResult(f), f.ExitCode
		}
	default:
		return nil // plain heartbeats: no runs
	}
	if st.LastRunDuration != nil {
		r.Duration = st.LastRunDuration.DeepCopy()
	}
	return r
}

func failureResult(f *monitoringv1alpha1.FailureReport) string {
	if f.Status == monitoringv1alpha1.ReportedDown {
		return "down"
	}
	return "failed"
}

func printStatusTable(w io.Writer, rows []StatusRow, withNamespace, wide bool, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	var head []string
	if withNamespace {
		head = append(head, "NAMESPACE")
	}
	head = append(head, "NAME", "STATE", "REASON", "LAST HEARTBEAT", "NEXT EXPECTED", "LAST RUN")
	if wide {
		head = append(head, "UPTIME 24H", "EXPECTS", "READY", "MESSAGE")
	}
	fmt.Fprintln(tw, strings.Join(head, "\t"))
	for _, r := range rows {
		var cols []string
		if withNamespace {
			cols = append(cols, r.Namespace)
		}
		cols = append(cols, r.Name, r.State, dash(r.Reason), ago(r.LastHeartbeatTime, now),
			until(r.NextExpected, now), r.LastRun.String())
		if wide {
			ready := "True"
			if r.NotReady != "" {
				ready = r.NotReady
			}
			cols = append(cols, uptimeColumn(r.Uptime), r.Expects, ready, dash(truncate(oneLine(r.Message), maxMessage)))
		}
		fmt.Fprintln(tw, strings.Join(cols, "\t"))
	}
	return tw.Flush()
}

// String is the LAST RUN column: "succeeded in 12s", "failed (exit 3) in
// 4s", "running for 2m".
func (r *LastRun) String() string {
	if r == nil {
		return "-"
	}
	s := r.Result
	if r.ExitCode != nil && (*r.ExitCode != 0 || r.Result != "succeeded") {
		s += fmt.Sprintf(" (exit %d)", *r.ExitCode)
	}
	if r.Duration != nil {
		s += " in " + shortDuration(r.Duration.Duration)
	}
	return s
}

// ago is an age as kubectl prints one ("45s", "3m12s"), or "-".
func ago(t *time.Time, now time.Time) string {
	if t == nil {
		return "-"
	}
	// A clock a little ahead of ours must not print "<invalid>".
	return duration.HumanDuration(max(now.Sub(*t), 0)) + " ago"
}

// until is a time to come ("in 45s"), or one passed ("overdue 10s").
func until(t *time.Time, now time.Time) string {
	if t == nil {
		return "-"
	}
	if d := t.Sub(now); d > 0 {
		return "in " + duration.HumanDuration(d)
	}
	return "overdue " + duration.HumanDuration(now.Sub(*t))
}

// shortDuration prints sub-second durations in ms, others as Go does
// without zero units: 1.5s, 1m30s, 1h, 25h.
func shortDuration(d time.Duration) string {
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	}
	s := d.Round(time.Second).String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func ptrTime(t time.Time) *time.Time { return &t }
