package chaos

import (
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"time"

	eventsv1 "k8s.io/api/events/v1"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
)

// missedDownBound is how much later than the timing rules allow a stopped
// monitor may be seen Down: the new leader's cache sync after it takes the
// Lease, the watch's delivery, and two loaded cores.
const missedDownBound = 3 * time.Second

// kill is one SIGKILL the harness sent.
type kill struct {
	at           time.Time
	name         string
	leader       bool
	holderBefore string // the Lease's holder just before, for a leader
}

// apiRestart is the one stop and start of etcd and the API server.
type apiRestart struct {
	begin, stopped, serving time.Time
	err                     error
}

// leadership is one leader's term: from its acquisition of the Lease until
// the next acquisition or its loss (zero: until the end).
type leadership struct{ from, to time.Time }

// runData is everything a run collected, for analyze.
type runData struct {
	mons       []*monitor
	obs        map[string][]observation
	watchGaps  []time.Time
	leaseCh    []leaseChange
	renews     []time.Time
	kills      []kill
	restart    *apiRestart
	final      map[string]monitoringv1alpha1.PushMonitorStatus
	events     []eventsv1.Event
	t0, end    time.Time // chaos start; pushes stop
	selfExits  []selfExit
	starts     int64
	duration   time.Duration
	killEvery  time.Duration
	leaderKill int
}

// result is the table's figures and, per row, a few examples of what went wrong.
type result struct {
	steadyN, flapN, stopN, quietN       int
	falseDowns, missedDowns             int
	downOK, downRequired, notReflected  int
	stale, duplicates, backwards        int
	codes                               map[int]int
	pushes                              int
	failovers                           []time.Duration
	noFailover                          int
	restartLine                         string
	restartOK                           bool
	examples                            map[string][]string
	worstLate                           time.Duration
	episodesWithout200, observations    int
	leaderless                          int
	selfExitsOutage, selfExitsElsewhere int
	// status versions watched of the steady monitors, quiet or not: how
	// much of the quiet ones' traffic the relay kept off the API.
	quietSteadyN, quietVersions, loudSteadyN, loudVersions int
}

func (r *result) example(row, format string, args ...any) {
	if len(r.examples[row]) < 8 {
		r.examples[row] = append(r.examples[row], fmt.Sprintf(format, args...))
	}
}

func analyze(d *runData) *result {
	r := &result{codes: map[int]int{}, examples: map[string][]string{}}
	seqOf := func(name, msg string) int {
		if n, seq, _, ok := parseMsg(msg); ok && n == name {
			return seq
		}
		return -1
	}
	// Leaderships: from a new holder's acquisition until the next one or
	// until that leader was lost (killed, exited, or the API server went
	// away), whichever came first.
	var losses []time.Time
	for _, k := range d.kills {
		if k.leader {
			losses = append(losses, k.at)
		}
	}
	for _, e := range d.selfExits {
		if e.leader {
			losses = append(losses, e.at)
		}
	}
	if d.restart != nil {
		losses = append(losses, d.restart.begin)
	}
	slices.SortFunc(losses, func(a, b time.Time) int { return a.Compare(b) })
	var terms []leadership
	for i, c := range d.leaseCh {
		if c.holder == "" {
			continue
		}
		to := time.Time{} // still leading at the end
		if i+1 < len(d.leaseCh) {
			to = d.leaseCh[i+1].at
		}
		for _, l := range losses {
			if l.After(c.at) {
				if to.IsZero() || l.Before(to) {
					to = l
				}
				break
			}
		}
		terms = append(terms, leadership{c.at, to})
	}
	// dueDown is when a monitor silent since lastOK must be Down by the
	// timing rules: timeout + grace after the later of its last heartbeat
	// and the moment the leader in office then began watching it.
	dueDown := func(lastOK time.Time) time.Time {
		for _, t := range terms {
			if !t.to.IsZero() && !t.to.After(lastOK) {
				continue
			}
			anchor := lastOK
			if t.from.After(anchor) {
				anchor = t.from
			}
			if due := anchor.Add(monTimeout + monGrace); t.to.IsZero() || due.Before(t.to) {
				return due
			}
		}
		return time.Time{}
	}
	// Events per monitor and reason, with their occurrences (a series
	// counts each time the recorder folded an identical note into it).
	type evKey struct{ name, reason, msg string }
	evCount := map[evKey]int{}
	evWhen := map[evKey][]string{}
	evByReason := map[[2]string]int{}
	evTimes := map[[2]string][]time.Time{}
	for _, e := range d.events {
		if e.Regarding.Kind != "PushMonitor" {
			continue
		}
		n := 1
		if e.Series != nil && int(e.Series.Count) > n {
			n = int(e.Series.Count)
		}
		if int(e.DeprecatedCount) > n {
			n = int(e.DeprecatedCount)
		}
		msg := e.Note
		if i := strings.LastIndex(msg, ": "); i >= 0 {
			msg = msg[i+2:]
		}
		// A failure shown after a success superseded it: "... (reported at
		// <time>, a success since)".
		if i := strings.Index(msg, " (reported at "); i >= 0 {
			msg = msg[:i]
		}
		evCount[evKey{e.Regarding.Name, e.Reason, msg}] += n
		evWhen[evKey{e.Regarding.Name, e.Reason, msg}] = append(evWhen[evKey{e.Regarding.Name, e.Reason, msg}],
			fmt.Sprintf("+%.1fs×%d", e.EventTime.Sub(d.t0).Seconds(), n))
		evByReason[[2]string{e.Regarding.Name, e.Reason}] += n
		evTimes[[2]string{e.Regarding.Name, e.Reason}] = append(evTimes[[2]string{e.Regarding.Name, e.Reason}], e.EventTime.Time)
	}
	for _, os := range d.obs {
		r.observations += len(os)
	}

	for _, m := range d.mons {
		obs := d.obs[m.name]
		for _, p := range m.pushes {
			r.pushes++
			r.codes[p.code]++
		}
		if m.quiet {
			r.quietN++
		}
		if m.class == steady && m.quiet {
			r.quietSteadyN, r.quietVersions = r.quietSteadyN+1, r.quietVersions+len(obs)
		} else if m.class == steady {
			r.loudSteadyN, r.loudVersions = r.loudSteadyN+1, r.loudVersions+len(obs)
		}
		switch m.class {
		case steady:
			r.steadyN++
		case flapper:
			r.flapN++
		case stopper:
			r.stopN++
		}

		// False Down: a monitor seen Down (a flapper: other than by its
		// own report) less than timeout + grace after a push that was
		// answered 200 was sent, so the end of the run, when the pushes
		// stop, counts only once it is really due.
		if m.class != stopper {
			for _, o := range obs {
				if o.state != monitoringv1alpha1.StateDown {
					continue
				}
				if m.class == flapper && o.reason == monitoringv1alpha1.DownReportedReason {
					continue
				}
				var lastOK *pushRec
				for i := range m.pushes {
					if p := &m.pushes[i]; p.code == 200 && p.answered.Before(o.at) {
						lastOK = p
					}
				}
				if lastOK == nil || o.at.Sub(lastOK.sent) >= monTimeout+monGrace {
					continue
				}
				r.falseDowns++
				r.example("false", "%s (%s) Down/%s at +%.1fs, %.1fs after %s was sent and answered 200 by %s; stored %s",
					m.name, m.class, o.reason, o.at.Sub(d.t0).Seconds(), o.at.Sub(lastOK.sent).Seconds(), lastOK.msg, lastOK.replica, o.msg)
				break
			}
		}

		// Missed Down: a stopper must be seen Down (HeartbeatMissed) by
		// anchor + timeout + grace + bound, anchor the later of its last
		// push answered 200 and the latest Lease acquisition before the
		// deadline so computed (the restart rule of the design).
		if m.class == stopper {
			var lastOK time.Time
			for _, p := range m.pushes {
				if p.code == 200 {
					lastOK = p.answered
				}
			}
			if lastOK.IsZero() {
				r.missedDowns++
				r.example("missed", "%s: no push was ever answered 200", m.name)
			} else {
				due := dueDown(lastOK)
				var downAt time.Time
				for _, o := range obs {
					if o.at.After(lastOK) && o.state == monitoringv1alpha1.StateDown && o.reason == monitoringv1alpha1.HeartbeatMissedReason {
						downAt = o.at
						break
					}
				}
				late := downAt.Sub(due)
				switch {
				case due.IsZero():
					r.missedDowns++
					r.example("missed", "%s stopped at +%.1fs (last 200), never seen Down; no leader lasted long enough to be due", m.name, lastOK.Sub(d.t0).Seconds())
				case downAt.IsZero():
					r.missedDowns++
					r.example("missed", "%s stopped at +%.1fs (last 200), never seen Down (due by +%.1fs)", m.name, lastOK.Sub(d.t0).Seconds(), due.Sub(d.t0).Seconds())
				case late > missedDownBound:
					r.missedDowns++
					before := "nothing stored"
					for _, o := range obs {
						if o.at.After(due) {
							break
						}
						before = fmt.Sprintf("%s/%s, deadline +%.1fs, stored at +%.1fs", o.state, o.reason, o.deadline.Sub(d.t0).Seconds(), o.at.Sub(d.t0).Seconds())
					}
					r.example("missed", "%s (last 200 at +%.1fs) seen Down %.1fs after it was due (+%.1fs); when due: %s",
						m.name, lastOK.Sub(d.t0).Seconds(), late.Seconds(), due.Sub(d.t0).Seconds(), before)
				}
				if !downAt.IsZero() && late > r.worstLate {
					r.worstLate = late
				}
			}
		}

		// Down reports: the first down report of each episode answered 200
		// must show as Down/DownReported with its own message, in status
		// (the watch) or in a DownReported event's note; or, when no leader
		// acted before the client's next down report was stored, it must be
		// seen stored and the episode then seen Down/DownReported. Later
		// reports of an episode are held and replaced by newer ones (the
		// coalescing window), so only the final heartbeat check holds them.
		if m.class == flapper {
			eps := map[int]*pushRec{}
			var order []int
			for i := range m.pushes {
				p := &m.pushes[i]
				if !p.down {
					continue
				}
				if p.code == 200 {
					r.downOK++
				}
				if _, seen := eps[p.episode]; !seen {
					eps[p.episode] = nil
					order = append(order, p.episode)
				}
				if eps[p.episode] == nil && p.code == 200 {
					eps[p.episode] = p
				}
			}
			for _, ep := range order {
				p := eps[ep]
				if p == nil {
					r.episodesWithout200++
					continue
				}
				r.downRequired++
				// A DownReported event carrying any down report of the episode
				// shows it (a later report of the episode may have replaced
				// the first within a window).
				reflected := false
				for _, q := range m.pushes {
					if q.down && q.episode == ep && evCount[evKey{m.name, monitoringv1alpha1.DownReportedReason, q.msg}] > 0 {
						reflected = true
					}
				}
				stored := false
				for _, o := range obs {
					if reflected {
						break
					}
					if o.msg == p.msg && o.reported == monitoringv1alpha1.ReportedDown {
						stored = true
					}
					isDown := o.state == monitoringv1alpha1.StateDown && o.reason == monitoringv1alpha1.DownReportedReason
					if isDown && o.msg == p.msg {
						reflected = true
					}
					// A later report of the same episode, shown Down: within a
					// window the newest report replaces older ones (on any
					// replica), so the first need not be stored itself.
					if _, _, oep, ok := parseMsg(o.msg); isDown && ok && oep == ep && seqOf(m.name, o.msg) > p.seq &&
						o.reported == monitoringv1alpha1.ReportedDown {
						reflected = true
					}
				}
				// Or seen Down/DownReported (in a version or an event) while
				// the episode lasted, until the client's next up push was
				// accepted (+ the leader's reaction): a later report of the
				// episode, or an earlier one whose recovery was never
				// accepted, kept it Down, and the watch may have missed the
				// version that carried this episode's message (a re-list
				// after the API server restart).
				if !reflected {
					until := upAccepted(m.pushes, p).Add(10 * time.Second)
					for _, o := range obs {
						if o.state == monitoringv1alpha1.StateDown && o.reason == monitoringv1alpha1.DownReportedReason &&
							!o.at.Before(p.answered) && o.at.Before(until) {
							reflected = true
							break
						}
					}
					for _, at := range evTimes[[2]string{m.name, monitoringv1alpha1.DownReportedReason}] {
						if !at.Before(p.answered.Add(-time.Second)) && at.Before(until) {
							reflected = true
						}
					}
				}
				if !reflected && stored && !ledDuring(terms, p.answered, episodeEnd(m.pushes, p)) {
					// No leader held the Lease from this report until the
					// client reported up again: nobody could decide Down.
					r.leaderless++
					continue
				}
				if !reflected {
					r.notReflected++
					what := "never stored"
					if stored {
						what = "stored, never Down/DownReported"
					}
					r.example("reflected", "%s %s (answered 200 by %s at +%.1fs): %s", m.name, p.msg, p.replica, p.answered.Sub(d.t0).Seconds(), what)
				}
			}
		}

		// Backwards: the stored heartbeat must only move forward.
		maxSeq, prevMsg := -1, ""
		for _, o := range obs {
			s := seqOf(m.name, o.msg)
			if s < 0 {
				continue
			}
			if s < maxSeq {
				r.backwards++
				r.example("backwards", "%s: stored %s after %s (at +%.1fs, state %s/%s)", m.name, o.msg, prevMsg, o.at.Sub(d.t0).Seconds(), o.state, o.reason)
				break
			}
			if s > maxSeq {
				maxSeq, prevMsg = s, o.msg
			}
		}

		// Stale final heartbeat: stored older than the newest answered 200.
		newest := pushRec{seq: -1}
		for _, p := range m.pushes {
			if p.code == 200 && p.seq > newest.seq {
				newest = p
			}
		}
		if newest.seq >= 0 && !m.quiet { // a quiet client's heartbeats are alike; the refresh bounds how old the stored one is
			st := d.final[m.name]
			if seqOf(m.name, st.LastMessage) < newest.seq {
				r.stale++
				r.example("stale", "%s: stored %q, newest answered 200 %s (by %s at +%.1fs)", m.name, st.LastMessage, newest.msg, newest.replica, newest.answered.Sub(d.t0).Seconds())
			}
		}

		// Duplicate events: a DownReported or Recovered note carries the
		// unique message of the push that caused the transition, so two
		// with the same message are one transition told twice; a
		// HeartbeatMissed is compared with the transitions the watch saw.
		for k, n := range evCount {
			if k.name != m.name || n <= 1 {
				continue
			}
			if k.reason == monitoringv1alpha1.DownReportedReason || k.reason == monitoringv1alpha1.RecoveredReason {
				r.duplicates += n - 1
				r.example("dup", "%s: %d %s events for %s (%s)", m.name, n, k.reason, k.msg, strings.Join(evWhen[k], ", "))
			}
		}
		missedTransitions, prevMissed := 0, false
		for _, o := range obs {
			isMissed := o.state == monitoringv1alpha1.StateDown && o.reason == monitoringv1alpha1.HeartbeatMissedReason
			if isMissed && !prevMissed {
				missedTransitions++
			}
			prevMissed = isMissed
		}
		if n := evByReason[[2]string{m.name, monitoringv1alpha1.HeartbeatMissedReason}]; n > missedTransitions {
			r.duplicates += n - missedTransitions
			r.example("dup", "%s: %d HeartbeatMissed events for %d transitions", m.name, n, missedTransitions)
		}
		if n := evByReason[[2]string{m.name, monitoringv1alpha1.TokenIssuedReason}]; n > 1 {
			r.duplicates += n - 1
			r.example("dup", "%s: %d TokenIssued events", m.name, n)
		}
	}

	// Failover: a leader's SIGKILL until a new holder is seen on the Lease.
	for _, k := range d.kills {
		if !k.leader {
			continue
		}
		if rs := d.restart; rs != nil && rs.begin.After(k.at) && rs.begin.Sub(k.at) < 2*leaseDuration {
			r.example("failover", "leader %s killed at +%.1fs: not measured, the API server restart began %.1fs later", k.name, k.at.Sub(d.t0).Seconds(), rs.begin.Sub(k.at).Seconds())
			continue
		}
		var took time.Duration = -1
		for _, c := range d.leaseCh {
			if c.at.After(k.at) && c.holder != "" && c.holder != k.holderBefore {
				took = c.at.Sub(k.at)
				break
			}
		}
		if took < 0 {
			r.noFailover++
			r.example("failover", "leader %s killed at +%.1fs: no new holder seen", k.name, k.at.Sub(d.t0).Seconds())
			continue
		}
		r.failovers = append(r.failovers, took)
		if took > 2*leaseDuration {
			r.example("failover", "leader %s killed at +%.1fs: new holder after %.2fs", k.name, k.at.Sub(d.t0).Seconds(), took.Seconds())
		}
	}
	slices.Sort(r.failovers)

	// The API server restart: the managers must reconnect — a leader
	// renews the Lease again and pushes are answered 200 again.
	if rs := d.restart; rs != nil {
		switch {
		case rs.err != nil:
			r.restartLine = "failed: " + rs.err.Error()
		default:
			var renewed, first200 time.Time
			for _, t := range d.renews {
				if t.After(rs.serving) {
					renewed = t
					break
				}
			}
			okBy := map[string]bool{}
			for _, m := range d.mons {
				for _, p := range m.pushes {
					if p.code == 200 && p.sent.After(rs.serving) {
						if first200.IsZero() || p.answered.Before(first200) {
							first200 = p.answered
						}
						okBy[p.replica] = true
					}
				}
			}
			for _, e := range d.selfExits {
				if !e.at.Before(rs.begin) && e.at.Before(rs.serving.Add(5*time.Second)) {
					r.selfExitsOutage++
				}
			}
			r.restartOK = !renewed.IsZero() && !first200.IsZero()
			r.restartLine = fmt.Sprintf("at +%.1fs; stop took %.1fs, start %.1fs (no API for %.1fs); Lease renewed %s after, first 200 %s after; %d replica(s) exited and were restarted",
				rs.begin.Sub(d.t0).Seconds(), rs.stopped.Sub(rs.begin).Seconds(), rs.serving.Sub(rs.stopped).Seconds(), rs.serving.Sub(rs.begin).Seconds(),
				since(rs.serving, renewed), since(rs.serving, first200), r.selfExitsOutage)
		}
	}
	r.selfExitsElsewhere = len(d.selfExits) - r.selfExitsOutage
	return r
}

// episodeEnd is when the client of p's episode sent its next up push (zero
// if it never did).
// upAccepted is when the first up push after p was answered 200; the end of
// the run when none was.
func upAccepted(pushes []pushRec, p *pushRec) time.Time {
	last := p.answered
	for _, q := range pushes {
		if q.seq > p.seq && !q.down && q.code == 200 {
			return q.answered
		}
		if q.answered.After(last) {
			last = q.answered
		}
	}
	return last
}

func episodeEnd(pushes []pushRec, p *pushRec) time.Time {
	for _, q := range pushes {
		if q.seq > p.seq && !q.down {
			return q.sent
		}
	}
	return time.Time{}
}

// ledDuring reports whether some leader held the Lease during [from, to]
// (to zero: until the end).
func ledDuring(terms []leadership, from, to time.Time) bool {
	for _, t := range terms {
		if (t.to.IsZero() || t.to.After(from)) && (to.IsZero() || t.from.Before(to)) {
			return true
		}
	}
	return false
}

func since(from, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return fmt.Sprintf("%.1fs", t.Sub(from).Seconds())
}

// failed lists the targets the run missed.
func (r *result) failed(d *runData) []string {
	var out []string
	check := func(ok bool, what string) {
		if !ok {
			out = append(out, what)
		}
	}
	check(r.falseDowns == 0, "false Downs")
	check(r.missedDowns == 0, "missed Downs")
	check(r.notReflected == 0, "down reports not reflected")
	check(r.stale == 0, "stale final heartbeats")
	check(r.duplicates == 0, "duplicate events")
	check(r.backwards == 0, "stored heartbeats moved backwards")
	check(r.noFailover == 0 && (len(r.failovers) == 0 || r.failovers[len(r.failovers)-1] <= 2*leaseDuration), "failover ≤ 2 lease durations")
	check(d.leaderKill == 0 || len(r.failovers) > 0, "at least one leader failover measured")
	if d.restart != nil {
		check(r.restartOK, "managers reconnect after the API server restart")
	}
	return out
}

func (r *result) print(w io.Writer, d *runData) {
	mark := func(ok bool) string {
		if ok {
			return "ok"
		}
		return "MISSED"
	}
	fo := "none measured"
	if n := len(r.failovers); n > 0 {
		fo = fmt.Sprintf("min %.2fs · median %.2fs · max %.2fs (n=%d)", r.failovers[0].Seconds(), r.failovers[n/2].Seconds(), r.failovers[n-1].Seconds(), n)
	}
	if r.noFailover > 0 {
		fo += fmt.Sprintf(", %d without a new holder", r.noFailover)
	}
	var codes []int
	for c := range r.codes {
		codes = append(codes, c)
	}
	sort.Ints(codes)
	var cs []string
	for _, c := range codes {
		name := fmt.Sprint(c)
		switch c {
		case 0:
			name = "no answer"
		case -1:
			name = "no live replica"
		}
		cs = append(cs, fmt.Sprintf("%s: %d", name, r.codes[c]))
	}
	leaderKills := 0
	for _, k := range d.kills {
		if k.leader {
			leaderKills++
		}
	}
	fmt.Fprintf(w, "\nchaos run: %d monitors (%d steady, %d flapping, %d stopping; %d of them quiet, pushing %q every time; timeout %s, grace %s, a push every %s), %s, a SIGKILL every %s (%d: %d leaders, %d standbys), %d manager starts\n\n",
		len(d.mons), r.steadyN, r.flapN, r.stopN, r.quietN, quietMsg, monTimeout, monGrace, pushPeriod, d.duration, d.killEvery, len(d.kills), leaderKills, len(d.kills)-leaderKills, d.starts)
	fmt.Fprintf(w, "| measure | figure | target | |\n|---|---|---|---|\n")
	fmt.Fprintf(w, "| false Downs (monitors pushed all along that showed Down) | %d of %d | 0 | %s |\n", r.falseDowns, r.steadyN+r.flapN, mark(r.falseDowns == 0))
	fmt.Fprintf(w, "| missed Downs (stopped monitors not Down by timeout+grace+%s) | %d of %d | 0 | %s |\n", missedDownBound, r.missedDowns, r.stopN, mark(r.missedDowns == 0))
	fmt.Fprintf(w, "| down reports answered 200 not reflected in status | %d of %d episodes' first (%d down reports answered 200; %d episodes without one; %d stored while no leader held the Lease until the client reported up, not counted) | 0 | %s |\n",
		r.notReflected, r.downRequired, r.downOK, r.episodesWithout200, r.leaderless, mark(r.notReflected == 0))
	fmt.Fprintf(w, "| stale final heartbeats | %d of %d | 0 | %s |\n", r.stale, len(d.mons), mark(r.stale == 0))
	fmt.Fprintf(w, "| duplicate events | %d | 0 | %s |\n", r.duplicates, mark(r.duplicates == 0))
	fmt.Fprintf(w, "| stored heartbeat moved backwards (monitors) | %d of %d | 0 | %s |\n", r.backwards, len(d.mons), mark(r.backwards == 0))
	fmt.Fprintf(w, "| answers by status code | %s (%d pushes) | | |\n", strings.Join(cs, " · "), r.pushes)
	perMin := func(versions, n int) float64 {
		if n == 0 || d.duration <= 0 {
			return 0
		}
		return float64(versions) / float64(n) / d.duration.Minutes()
	}
	fmt.Fprintf(w, "| status writes per monitor-minute, steady clients (a push a second) | quiet %.1f (%d monitors) · each push its own message %.1f (%d) | | |\n",
		perMin(r.quietVersions, r.quietSteadyN), r.quietSteadyN, perMin(r.loudVersions, r.loudSteadyN), r.loudSteadyN)
	foOK := r.noFailover == 0 && (len(r.failovers) == 0 || r.failovers[len(r.failovers)-1] <= 2*leaseDuration)
	fmt.Fprintf(w, "| failover (leader SIGKILL → new Lease holder) | %s | ≤ %s | %s |\n", fo, 2*leaseDuration, mark(foOK))
	if d.restart != nil {
		fmt.Fprintf(w, "| API server + etcd restart with data | %s | reconnect | %s |\n", r.restartLine, mark(r.restartOK))
	}
	var gaps []string
	for _, g := range d.watchGaps {
		gaps = append(gaps, fmt.Sprintf("+%.1fs", g.Sub(d.t0).Seconds()))
	}
	fmt.Fprintf(w, "\n%d status versions watched (re-lists, where versions may be missed: %d %v); %d replica exits not caused by a kill outside the restart; latest Down of a stopped monitor %.1fs after due\n",
		r.observations, len(gaps), gaps, r.selfExitsElsewhere, r.worstLate.Seconds())
	for _, row := range []string{"false", "missed", "reflected", "stale", "dup", "backwards", "failover"} {
		if ex := r.examples[row]; len(ex) > 0 {
			fmt.Fprintf(w, "\n%s, e.g.:\n  %s\n", row, strings.Join(ex, "\n  "))
		}
	}
}
