package main

import (
	"context"
	"fmt"
	"os"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
)

// scalePoll is how often the scale step lists its monitors while it waits
// for them (pollMonitors).
const scalePoll = 20 * time.Second

// firstPushClients push every monitor's first heartbeat (the leader holds
// it and writes it with the monitor's transition to Up; a push the leader
// cannot take is written before its answer). 128 were no faster than 32 at 3,000 monitors (67
// against 78 pushes a second on a loaded machine), and at 100,000 they kept
// the API server so busy that writes outlasted their deadline and both
// managers lost their leader Lease (docs/performance.md).
const firstPushClients = 32

// scaleStep is the 100,000 monitors in one cluster (interval 1m,
// timeout 1m, grace 30s), in five parts:
//
//  1. create them (the last -huge-expiring in a namespace of their own) and
//     report the time until all are Ready and each replica's memory;
//  2. push each once, firstPushClients at a time: a first heartbeat moves
//     a monitor from Pending to Up, a change the leader writes, so this part
//     runs at the API server's write rate and is reported apart;
//     each client goes on pushing once a minute from its first push (keeper);
//  3. with every client pushing once a minute, each from its own address
//     through the balancer, report the answers and the API writes per
//     second and per monitor-minute over -huge-measure (after
//     -huge-warmup), which spans a status refresh;
//  4. keep pushing all but the expiring ones, push those together once and
//     stop: the p99 of how long after its deadline each showed Down;
//  5. the API server's floor for as many writes: merge patches of as many
//     ConfigMaps from 32 clients, while the other monitors still push.
func scaleStep(ctx context.Context, c client.WithWatch, apiReads func() map[string]float64, pushAddr string, mgrs []*replica, n int) error {
	const interval = time.Minute
	spec := monitoringv1alpha1.PushMonitorSpec{
		Interval: &metav1.Duration{Duration: interval}, Timeout: &metav1.Duration{Duration: interval},
		GracePeriod: &metav1.Duration{Duration: interval / 2}}
	nExp := min(*hugeExpiring, n/2)
	fmt.Fprintf(os.Stderr, "scale step: %d monitors (%d of them expire together at the end)\n", n, nExp)

	// 1. Created to Ready.
	before := apiReads()
	start := time.Now()
	steadyNS, steady, err := createMonitors(ctx, c, "scale", n-nExp, spec, scalePoll)
	if err != nil {
		return err
	}
	expNS, expiring, err := createMonitors(ctx, c, "scale-exp", nExp, spec, scalePoll)
	if err != nil {
		return err
	}
	took := time.Since(start)
	report(fmt.Sprintf("scale: %d monitors created to all Ready (listed every %v)", n, scalePoll), "%v (%.0f API writes/s)", took.Round(time.Second),
		mutating(before, apiReads())/took.Seconds())
	report(fmt.Sprintf("scale: manager memory with %d more monitors, before pushes", n), "%s", memory(mgrs))
	all := append(append([]string(nil), steady...), expiring...)

	// 2. First heartbeats, each one written, while the clients pushed
	// before go on once a minute.
	before = apiReads()
	start = time.Now()
	k := newKeeper(pushAddr, all, interval)
	defer k.stop()
	notOK := k.start(firstPushClients)
	// The steady state starts once the leader has made every monitor Up
	// (until then a push says more than status and is written).
	if err := pollMonitors(ctx, c, n-nExp, 20*time.Minute, scalePoll, isUp, client.InNamespace(steadyNS)); err != nil {
		return err
	}
	if err := pollMonitors(ctx, c, nExp, 20*time.Minute, scalePoll, isUp, client.InNamespace(expNS)); err != nil {
		return err
	}
	took = time.Since(start)
	report(fmt.Sprintf("scale: every monitor's first push (Pending to Up: one write, the leader's), %d clients at a time, the others already pushing once a minute, until all are Up", firstPushClients),
		"%v, %.0f first pushes/s, %.0f API writes/s; first pushes not 200 (retried at the next minute): %d",
		took.Round(time.Second), float64(len(all))/took.Seconds(), mutating(before, apiReads())/took.Seconds(), notOK)

	// 3. Steady state.
	fmt.Fprintf(os.Stderr, "scale step: %d clients pushing once a minute (%.0f/s), %v warm-up, %v measured\n", n, float64(n)/interval.Seconds(), *hugeWarmup, *hugeMeasure)
	wc := &writeCounter{read: apiReads}
	res := k.measure(*hugeWarmup, *hugeMeasure, wc.mark)
	w := wc.writes()
	printRequests("the scale step's measurement", wc.before, wc.after, 10)
	report(fmt.Sprintf("scale: %d monitors each pushed once a minute (%.0f/s), steady state", n, float64(n)/interval.Seconds()), "%s", res)
	report("scale: API writes in the steady state (mutating requests, all clients)", "%.0f in %v: %.1f/s, %.3f per monitor-minute (refresh alone: %.0f/s, %.1f per monitor-minute)",
		w, res.elapsed.Round(time.Second), w/res.elapsed.Seconds(), w/(float64(n)*res.elapsed.Minutes()),
		float64(n)/(5*time.Minute).Seconds(), 1/5.0)
	report("scale: manager memory after the steady state", "%s", memory(mgrs))

	// 4 and 5. The others keep pushing while the expiring ones (the last
	// nExp of all) stop, are pushed together once, and go Down, and while
	// the API server's floor is measured.
	keepOn := interval + interval/2 + 90*time.Second
	k.silence(len(steady), len(all))
	others := make(chan result, 1)
	go func() { others <- k.measure(0, keepOn, func(bool) {}) }()
	delays, err := downDelays(ctx, c, pushAddr, expNS, expiring, keepOn)
	if err != nil {
		return err
	}
	base, err := baselinePatches(ctx, c, nExp, 32)
	if err != nil {
		return err
	}
	report(fmt.Sprintf("scale: Down after deadline, %d expiring together among %d pushing: p50, p99", nExp, n-nExp), "%v, %v", pct(delays, 50), pct(delays, 99))
	report(fmt.Sprintf("scale: the API server's floor, %d merge patches from 32 clients, meanwhile", nExp), "%v", base)
	report(fmt.Sprintf("scale: the other %d monitors' pushes meanwhile", n-nExp), "%s", <-others)
	report("scale: manager memory at the end", "%s", memory(mgrs))
	return nil
}
