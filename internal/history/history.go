// Package history keeps the bounded run and transition history in
// PushMonitor status (status.recentRuns, status.recentTransitions). It only
// edits a status in memory: callers add the records to the status write
// that records the run or the transition itself, so history costs no write
// of its own (docs/design.md, write budget).
package history

import (
	"sort"
	"unicode/utf8"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
)

// AddRun inserts run into st.RecentRuns in endTime order (a run signal
// received by another replica may be written after a newer one) and keeps
// the newest limit.
func AddRun(st *monitoringv1alpha1.PushMonitorStatus, run monitoringv1alpha1.RunRecord, limit int) {
	run.Message = Short(run.Message)
	runs := st.RecentRuns
	// After every run that ended at or before it: equal times keep the
	// order they were written in.
	i := sort.Search(len(runs), func(i int) bool { return runs[i].EndTime.After(run.EndTime.Time) })
	runs = append(runs[:i:i], append([]monitoringv1alpha1.RunRecord{run}, runs[i:]...)...)
	st.RecentRuns = newest(runs, limit)
}

// AddTransition appends t to st.RecentTransitions (the leader makes them in
// order) and keeps the newest limit.
func AddTransition(st *monitoringv1alpha1.PushMonitorStatus, t monitoringv1alpha1.TransitionRecord, limit int) {
	t.Message = Short(t.Message)
	st.RecentTransitions = newest(append(st.RecentTransitions, t), limit)
}

func newest[T any](s []T, limit int) []T {
	limit = max(min(limit, monitoringv1alpha1.MaxHistoryLimit), 1)
	if n := len(s) - limit; n > 0 {
		return append([]T(nil), s[n:]...)
	}
	return s
}

// Short cuts msg to MaxHistoryMessage bytes on a rune boundary, marking the
// cut with an ellipsis.
func Short(msg string) string {
	const limit = monitoringv1alpha1.MaxHistoryMessage
	if len(msg) <= limit {
		return msg
	}
	const ellipsis = "…"
	cut := limit - len(ellipsis)
	for cut > 0 && !utf8.RuneStart(msg[cut]) {
		cut--
	}
	return msg[:cut] + ellipsis
}
