package history

import (
	"sort"
	"strconv"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
)

// EnterState updates st.Uptime for a transition to state at now (the
// leader calls it in the write that stores the transition; a change of
// reason within a state is no change here). The period that ends is kept
// as an outage when it was Down or Suspended; outages that ended before the
// 30-day window, and past MaxOutages the oldest, are dropped.
func EnterState(st *monitoringv1alpha1.PushMonitorStatus, prev, state monitoringv1alpha1.MonitorState, now time.Time) {
	if prev == state && st.Uptime != nil && st.Uptime.StateSince != nil {
		return
	}
	u := st.Uptime.DeepCopy()
	if u == nil {
		u = &monitoringv1alpha1.UptimeStatus{}
	}
	at := metav1.NewMicroTime(now)
	if u.StateSince != nil && (prev == monitoringv1alpha1.StateDown || prev == monitoringv1alpha1.StateSuspended) && u.Since != nil {
		u.Outages = append(u.Outages, monitoringv1alpha1.Outage{State: prev, Start: *u.StateSince, End: at})
	}
	cutoff := now.Add(-monitoringv1alpha1.UptimeWindow)
	keep := u.Outages[:0]
	for _, o := range u.Outages {
		if o.End.After(cutoff) {
			keep = append(keep, o)
		}
	}
	if n := len(keep) - monitoringv1alpha1.MaxOutages; n > 0 {
		// What is known is complete from the end of the last dropped one.
		complete := keep[n-1].End
		u.CompleteSince = &complete
		keep = keep[n:]
	}
	if u.CompleteSince != nil && !u.CompleteSince.After(cutoff) {
		u.CompleteSince = nil
	}
	u.Outages = keep
	if len(u.Outages) == 0 {
		u.Outages = nil
	}
	u.StateSince = &at
	if u.Since == nil && (state == monitoringv1alpha1.StateUp || state == monitoringv1alpha1.StateDown) {
		u.Since = &at
	}
	st.Uptime = u
}

// Figure is an uptime over a window.
type Figure struct {
	// Window is the window asked for.
	Window time.Duration
	// Ratio is the time Up over the time counted, 0..1; valid only if
	// Counted > 0.
	Ratio float64
	// Counted is the time counted: the window, cut to when the monitor first
	// turned Up or Down (and to uptime.completeSince), without the time
	// Suspended.
	Counted time.Duration
	// Down is the time Down within it.
	Down time.Duration
}

// Known reports whether the figure counts any time at all.
func (f Figure) Known() bool { return f.Counted > 0 }

// Windows are the windows uptime is reported for.
var Windows = []time.Duration{24 * time.Hour, 7 * 24 * time.Hour, monitoringv1alpha1.UptimeWindow}

// WindowName names a window as the dashboard and the metrics' window label
// do: 24h, 7d, 30d.
func WindowName(w time.Duration) string {
	if w < 48*time.Hour {
		return strconv.Itoa(int(w.Hours())) + "h"
	}
	return strconv.Itoa(int(w.Hours()/24)) + "d"
}

// Uptime is the monitor's uptime over the window ending at now, from
// st.Uptime and the current state (which counts up to now).
func Uptime(st *monitoringv1alpha1.PushMonitorStatus, window time.Duration, now time.Time) Figure {
	f := Figure{Window: window}
	u := st.Uptime
	if u == nil || u.Since == nil {
		return f
	}
	from := now.Add(-window)
	if u.Since.After(from) {
		from = u.Since.Time
	}
	if u.CompleteSince != nil && u.CompleteSince.After(from) {
		from = u.CompleteSince.Time
	}
	if !now.After(from) {
		return f
	}
	periods := append([]monitoringv1alpha1.Outage(nil), u.Outages...)
	if u.StateSince != nil && (st.State == monitoringv1alpha1.StateDown || st.State == monitoringv1alpha1.StateSuspended) {
		periods = append(periods, monitoringv1alpha1.Outage{State: st.State, Start: *u.StateSince, End: metav1.NewMicroTime(now)})
	}
	var down, suspended time.Duration
	for _, p := range periods {
		d := overlap(p.Start.Time, p.End.Time, from, now)
		if p.State == monitoringv1alpha1.StateDown {
			down += d
		} else {
			suspended += d
		}
	}
	f.Counted = now.Sub(from) - suspended
	f.Down = min(down, f.Counted)
	if f.Counted > 0 {
		f.Ratio = 1 - float64(f.Down)/float64(f.Counted)
	}
	return f
}

func overlap(start, end, from, to time.Time) time.Duration {
	if start.Before(from) {
		start = from
	}
	if end.After(to) {
		end = to
	}
	return max(end.Sub(start), 0)
}

// RunStats are figures over the runs status keeps (status.recentRuns).
type RunStats struct {
	// Runs is how many runs they are over; Succeeded how many succeeded.
	Runs, Succeeded int
	// P50 and P95 are the nearest-rank percentiles of the durations of the
	// runs that had a start; Timed counts those.
	P50, P95 time.Duration
	Timed    int
}

// SuccessRate is Succeeded / Runs, 0..1; valid only if Runs > 0.
func (s RunStats) SuccessRate() float64 {
	if s.Runs == 0 {
		return 0
	}
	return float64(s.Succeeded) / float64(s.Runs)
}

// Runs computes RunStats over runs.
func Runs(runs []monitoringv1alpha1.RunRecord) RunStats {
	s := RunStats{Runs: len(runs)}
	var ds []time.Duration
	for _, r := range runs {
		if r.Result == monitoringv1alpha1.RunSucceeded {
			s.Succeeded++
		}
		if r.Duration != nil {
			ds = append(ds, r.Duration.Duration)
		}
	}
	s.Timed = len(ds)
	if len(ds) > 0 {
		sort.Slice(ds, func(a, b int) bool { return ds[a] < ds[b] })
		s.P50, s.P95 = rank(ds, 50), rank(ds, 95)
	}
	return s
}

// rank is the nearest-rank percentile p of sorted ds.
func rank(ds []time.Duration, p int) time.Duration {
	i := (p*len(ds) + 99) / 100 // ceil(p/100 * n)
	return ds[max(i, 1)-1]
}
