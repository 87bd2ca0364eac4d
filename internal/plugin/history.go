package plugin

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
)

// historySection is one part of `history`: a title and a table. Sections
// read the monitor (and the API through o); one that has nothing says so
// with no rows. status.recentRuns and status.recentTransitions, when the
// API has them, are one more entry each in historySections.
type historySection struct {
	title string
	read  func(ctx context.Context, o *Options, m *monitoringv1alpha1.PushMonitor) (table, error)
}

// table is a section's content: a header and rows of the same width.
type table struct {
	header []string
	rows   [][]string
	// note replaces the rows when there are none ("no runs reported").
	note string
}

// historySections are printed in this order: what status holds first, the
// Events (which the API server keeps for an hour by default) last.
var historySections = []historySection{
	{title: "Last run", read: lastRunSection},
	{title: "Last failure", read: lastFailureSection},
	{title: "Events", read: eventsSection},
}

func newHistoryCommand(o *Options) *cobra.Command {
	return &cobra.Command{
		Use:               "history NAME",
		ValidArgsFunction: o.completeNames(1),
		Short:             "Show a monitor's last run, last failure and its Events, oldest first",
		Args:              cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			m, err := o.getMonitor(ctx, args[0])
			if err != nil {
				return err
			}
			r := statusRow(m)
			fmt.Fprintf(o.Out, "PushMonitor %s/%s: %s", m.Namespace, m.Name, r.State)
			if r.Reason != "" {
				fmt.Fprintf(o.Out, " (%s)", r.Reason)
			}
			fmt.Fprintf(o.Out, ", expects %s\n", r.Expects)
			for _, s := range historySections {
				t, err := s.read(ctx, o, m)
				if err != nil {
					return err
				}
				fmt.Fprintf(o.Out, "\n%s:\n", s.title)
				if err := t.print(o.Out); err != nil {
					return err
				}
			}
			return nil
		},
	}
}

func (t table) print(w io.Writer) error {
	if len(t.rows) == 0 {
		_, err := fmt.Fprintf(w, "  %s\n", t.note)
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	fmt.Fprintln(tw, "  "+strings.Join(t.header, "\t"))
	for _, r := range t.rows {
		fmt.Fprintln(tw, "  "+strings.Join(r, "\t"))
	}
	return tw.Flush()
}

func lastRunSection(_ context.Context, o *Options, m *monitoringv1alpha1.PushMonitor) (table, error) {
	t := table{header: []string{"RESULT", "STARTED", "DURATION", "EXIT", "JOB"}, note: "no run reported (no start, exit status or Job)"}
	r := lastRun(&m.Status)
	if r == nil {
		return t, nil
	}
	exit, dur := "-", "-"
	if r.ExitCode != nil {
		exit = strconv.Itoa(int(*r.ExitCode))
	}
	if r.Duration != nil {
		dur = shortDuration(r.Duration.Duration)
	}
	t.rows = append(t.rows, []string{r.Result, stamp(r.StartTime, o.Now()), dur, exit, dash(r.Job)})
	return t, nil
}

func lastFailureSection(_ context.Context, o *Options, m *monitoringv1alpha1.PushMonitor) (table, error) {
	t := table{header: []string{"TIME", "STATUS", "EXIT", "MESSAGE"}, note: "no failure reported"}
	f := m.Status.LastFailure
	if f == nil {
		return t, nil
	}
	exit := "-"
	if f.ExitCode != nil {
		exit = strconv.Itoa(int(*f.ExitCode))
	}
	t.rows = append(t.rows, []string{stamp(ptrTime(f.Time.Time), o.Now()), string(f.Status), exit, dash(truncate(oneLine(f.Message), 80))})
	return t, nil
}

// eventsSection lists the Events about this monitor (this UID: not a
// deleted namesake's), oldest first.
func eventsSection(ctx context.Context, o *Options, m *monitoringv1alpha1.PushMonitor) (table, error) {
	t := table{header: []string{"TIME", "TYPE", "REASON", "COUNT", "MESSAGE"}, note: "no events (the API server keeps them for an hour by default)"}
	c, err := o.Client()
	if err != nil {
		return t, err
	}
	var list eventsv1.EventList
	err = c.List(ctx, &list, client.InNamespace(m.Namespace),
		client.MatchingFields{"regarding.kind": "PushMonitor", "regarding.name": m.Name})
	if apierrors.IsForbidden(err) {
		// The rest of the history is still worth showing.
		t.note = friendly(err).Error()
		return t, nil
	}
	if err != nil {
		return t, friendly(err)
	}
	type ev struct {
		at time.Time
		e  *eventsv1.Event
	}
	var evs []ev
	for i := range list.Items {
		e := &list.Items[i]
		if e.Regarding.UID != "" && e.Regarding.UID != m.UID {
			continue
		}
		evs = append(evs, ev{eventTime(e), e})
	}
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].at.Before(evs[j].at) })
	for _, x := range evs {
		count := "1"
		if x.e.Series != nil {
			count = strconv.Itoa(int(x.e.Series.Count))
		} else if x.e.DeprecatedCount > 1 {
			count = strconv.Itoa(int(x.e.DeprecatedCount))
		}
		t.rows = append(t.rows, []string{stamp(&x.at, o.Now()), x.e.Type, x.e.Reason, count, oneLine(x.e.Note)})
	}
	return t, nil
}

// eventTime is when an event last happened: a series' last observation,
// else its eventTime, else the core/v1 timestamps of older recorders.
func eventTime(e *eventsv1.Event) time.Time {
	switch {
	case e.Series != nil && !e.Series.LastObservedTime.IsZero():
		return e.Series.LastObservedTime.Time
	case !e.EventTime.IsZero():
		return e.EventTime.Time
	case !e.DeprecatedLastTimestamp.IsZero():
		return e.DeprecatedLastTimestamp.Time
	}
	return e.CreationTimestamp.Time
}

// stamp is a time in UTC with its age, "2026-12-01T12:00:05Z (3m ago)".
func stamp(t *time.Time, now time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format(time.RFC3339) + " (" + ago(t, now) + ")"
}
