package chaos

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
)

// TestChaos is the run docs/reliability.md describes: it fails when a
// target is missed and prints the table either way.
func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("the chaos run takes a minute; -short skips it")
	}
	duration, killEvery := *flagDuration, *flagKillEvery
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "chaos-"}}
	if err := k8sClient.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	lease := pollLease(ctx)
	cl := newCluster(3, t.Logf)
	defer cl.stop()
	waitFor(t, time.Minute, "a leader is elected", func() bool { return cl.leader() != nil && len(cl.live()) == 3 })

	mons, err := createMonitors(ctx, ns.Name, *flagMonitors)
	if err != nil {
		t.Fatal(err)
	}
	w := watchMonitors(ctx, ns.Name)
	hosts := newHosts(len(mons))
	pushCtx, stopPushing := context.WithCancel(ctx)
	defer stopPushing()
	var clients sync.WaitGroup
	for i, m := range mons {
		clients.Add(1)
		go func() { defer clients.Done(); m.run(pushCtx, hosts[i%len(hosts)], cl) }()
	}
	states := map[monitoringv1alpha1.MonitorState]int{}
	// Heard from: no monitor Pending (flappers may be Down by report).
	waitFor(t, 2*time.Minute, "every monitor has a heartbeat", func() bool {
		var list monitoringv1alpha1.PushMonitorList
		if err := k8sClient.List(ctx, &list, client.InNamespace(ns.Name)); err != nil {
			return false
		}
		clear(states)
		for _, m := range list.Items {
			states[m.Status.State]++
		}
		return len(list.Items) == len(mons) && states[monitoringv1alpha1.StatePending]+states[""] == 0
	}, func() string { return fmt.Sprint("states: ", states) })

	// The chaos clock starts once every monitor has been heard from.
	t0 := time.Now()
	end := t0.Add(duration)
	// Stoppers stop between 15% and 55% of the run, so that their Down
	// falls inside the run, failovers included.
	nStop, si := 0, 0
	for _, m := range mons {
		if m.class == stopper {
			nStop++
		}
	}
	for _, m := range mons {
		if m.class == stopper {
			frac := 0.15 + 0.40*float64(si)/float64(max(1, nStop-1))
			m.stopAt.Store(t0.Add(time.Duration(frac * float64(duration))).UnixNano())
			si++
		}
	}

	// A failover that the restart interrupts measures the restart, not
	// the failover: no kill within two lease durations before it.
	restartAt := t0.Add(duration * 45 / 100)
	var (
		apiBusy atomic.Bool
		mu      sync.Mutex
		kills   []kill
		restart *apiRestart
		bg      sync.WaitGroup
	)
	if *flagAPIRestart {
		bg.Add(1)
		go func() {
			defer bg.Done()
			sleep(ctx, time.Until(restartAt))
			if ctx.Err() != nil {
				return
			}
			apiBusy.Store(true)
			defer apiBusy.Store(false)
			rs := &apiRestart{begin: time.Now()}
			rs.stopped, rs.serving, rs.err = restartControlPlane()
			t.Logf("chaos: API server and etcd restarted: stopped %.1fs after +%.1fs, serving again %.1fs later (err %v)",
				rs.stopped.Sub(rs.begin).Seconds(), rs.begin.Sub(t0).Seconds(), rs.serving.Sub(rs.stopped).Seconds(), rs.err)
			mu.Lock()
			restart = rs
			mu.Unlock()
			// Let the managers find the API server again before the next kill.
			sleep(ctx, 3*time.Second)
		}()
	}
	// Kills stop a few windows before the pushes do, so that the last
	// heartbeats are not ones a crash may lose by design (the crash bound).
	killsEnd := end.Add(-8 * time.Second)
	bg.Add(1)
	go func() {
		defer bg.Done()
		for k := 1; ; k++ {
			sleep(ctx, time.Until(t0.Add(time.Duration(k)*killEvery)))
			if ctx.Err() != nil || time.Now().After(killsEnd) {
				return
			}
			if apiBusy.Load() || *flagAPIRestart && time.Until(restartAt) > 0 && time.Until(restartAt) < 2*leaseDuration+time.Second {
				continue
			}
			// Mostly the leader; every third kill a standby.
			target, isLeader := cl.leader(), true
			if k%3 == 0 || target == nil {
				target, isLeader = nil, false
				for _, p := range cl.live() {
					if !p.isLeader() {
						target = p
						break
					}
				}
			}
			if target == nil {
				continue
			}
			kl := kill{at: time.Now(), name: target.name, leader: isLeader}
			if isLeader {
				kl.holderBefore = lease.holder()
			}
			cl.kill(target)
			t.Logf("chaos: +%.1fs SIGKILL %s (leader %v)", kl.at.Sub(t0).Seconds(), target.name, isLeader)
			mu.Lock()
			kills = append(kills, kl)
			mu.Unlock()
		}
	}()

	sleep(ctx, time.Until(end))
	stopPushing()
	clients.Wait()
	pushesStopped := time.Now()
	bg.Wait()

	// Held heartbeats are written within their window (min(5s, grace)):
	// read what is stored once that has passed, before the silence that
	// follows turns every monitor Down.
	sleep(ctx, monGrace+3*time.Second)
	final := map[string]monitoringv1alpha1.PushMonitorStatus{}
	var list monitoringv1alpha1.PushMonitorList
	if err := k8sClient.List(ctx, &list, client.InNamespace(ns.Name)); err != nil {
		t.Fatal(err)
	}
	for _, m := range list.Items {
		final[m.Name] = m.Status
	}
	// A stopper whose Down fell due after a failover or the restart may
	// still be on its way: wait for it (bounded), then for the events,
	// which are sent asynchronously.
	waitStoppers(ctx, w, mons, pushesStopped.Add(30*time.Second))
	sleep(ctx, time.Second)
	var evs eventsv1.EventList
	if err := k8sClient.List(ctx, &evs, client.InNamespace(ns.Name)); err != nil {
		t.Fatal(err)
	}
	cancel()
	<-w.done
	cl.stop()
	changes, renews := lease.snapshot()

	mu.Lock()
	d := &runData{
		mons: mons, obs: w.byMonitor(), watchGaps: w.relists(), leaseCh: changes, renews: renews,
		kills: kills, restart: restart, final: final, events: evs.Items,
		t0: t0, end: pushesStopped, selfExits: cl.selfExitLog(), starts: cl.starts.Load(),
		duration: duration, killEvery: killEvery,
	}
	for _, k := range kills {
		if k.leader {
			d.leaderKill++
		}
	}
	mu.Unlock()
	res := analyze(d)
	res.print(os.Stdout, d)
	for _, e := range d.selfExits {
		t.Logf("%s exited by itself at +%.1fs; log tail:\n%s", e.name, e.at.Sub(t0).Seconds(), e.tail)
	}
	for _, miss := range res.failed(d) {
		t.Errorf("target missed: %s", miss)
	}
}

func waitStoppers(ctx context.Context, w *watcher, mons []*monitor, deadline time.Time) {
	for time.Now().Before(deadline) && ctx.Err() == nil {
		obs, missing := w.byMonitor(), 0
		for _, m := range mons {
			if m.class != stopper {
				continue
			}
			down := false
			for _, o := range obs[m.name] {
				down = down || o.state == monitoringv1alpha1.StateDown && o.reason == monitoringv1alpha1.HeartbeatMissedReason
			}
			if !down {
				missing++
			}
		}
		if missing == 0 {
			return
		}
		sleep(ctx, 500*time.Millisecond)
	}
}

func waitFor(t *testing.T, within time.Duration, what string, cond func() bool, why ...func() string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			for _, w := range why {
				t.Log(w())
			}
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
