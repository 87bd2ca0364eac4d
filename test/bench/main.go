// Command bench measures pushmon against a real kube-apiserver and etcd and
// prints one table (make bench). It starts the control plane from bin/k8s,
// the manager as the default install runs it (two replicas with leader
// election, default limits) behind a round-robin TCP balancer that stands
// in for the push Service, and the same number of bare Go HTTP servers
// behind a balancer of their own as the ceiling the push endpoint is
// compared with. The load comes from this process over loopback, each
// simulated client from its own address in 127.0.0.0/8.
//
// Files: main.go runs the steps and prints the table; procs.go starts the
// processes and the balancer and reads their memory; traffic.go drives the
// realistic and burst loads and counts their answers; steps.go has the
// monitor, expiry and API-counter helpers; cronjob.go the CronJob memory
// step.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
)

var (
	bareMode     = flag.String("bare", "", "internal: serve the bare handler on this address")
	managerBin   = flag.String("manager", filepath.Join("bin", "manager"), "the manager binary (make build writes bin/manager)")
	replicas     = flag.Int("replicas", 2, "manager replicas (with --leader-elect) behind the balancer; the default install runs 2. The bare handler runs as the same number of processes")
	rMonitors    = flag.Int("realistic-monitors", 1000, "monitors of the realistic mode, each pushed once per -realistic-interval (0 skips the mode)")
	rInterval    = flag.Duration("realistic-interval", 10*time.Second, "spec.interval and spec.timeout of the realistic monitors (gracePeriod: half of it), and how often each is pushed; also the unmeasured warm-up")
	rDuration    = flag.Duration("realistic-duration", 60*time.Second, "measured steady state of the realistic mode, after one interval of warm-up")
	loadFor      = flag.Duration("load", 5*time.Second, "measured duration of each burst run (after 1 s of the same load, unmeasured)")
	wideConns    = flag.Int("wide-c", 512, "connections of the burst over the -big monitors, each from its own address (0 skips it): a burst that the default limits do not throttle")
	conns        = flag.Int("c", 32, "connections of the burst load, each from its own address")
	monitors     = flag.Int("monitors", 1000, "monitors of the burst mode and of the expiry steps")
	bigMonitors  = flag.Int("big", 10000, "monitors for the readiness and memory step (0 skips it)")
	downRuns     = flag.Int("down-runs", 7, "repetitions of the one-monitor Down delay")
	apiQPS       = flag.Int("kube-api-qps", 0, "--kube-api-qps given to the managers (0: the manager's default)")
	cronJobs     = flag.Int("cronjobs", 1000, "CronJobs (each followed by a monitor) for the CronJob memory step (0 skips it)")
	jobs         = flag.Int("jobs", 10000, "Jobs owned by those CronJobs for the CronJob memory step (0 skips it)")
	huge         = flag.Int("huge", 100000, "monitors for the scale step (0 skips it): all Ready, then each pushed once a minute for -huge-warmup + -huge-measure, steady-state writes/s and memory")
	hugeWarmup   = flag.Duration("huge-warmup", time.Minute, "pushes before the scale step measures its steady state (after every monitor's first push)")
	hugeExpiring = flag.Int("huge-expiring", 10000, "monitors of the scale step that stop pushing together at its end (the Down delay at scale)")
	hugeMeasure  = flag.Duration("huge-measure", 6*time.Minute, "the scale step's measurement; longer than --status-refresh (5m) so that refresh writes fall in it")
)

var scheme = runtime.NewScheme()

func init() {
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(monitoringv1alpha1.AddToScheme(scheme))
}

func main() {
	flag.Parse()
	if *bareMode != "" {
		serveBare(*bareMode)
		return
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type row struct{ what, value string }

var table []row

func report(what, format string, args ...any) {
	v := fmt.Sprintf(format, args...)
	table = append(table, row{what, v})
	fmt.Fprintf(os.Stderr, "  %-62s %s\n", what, v)
}

// loadAvg is the machine's 1-minute load average (other work on the same
// cores moves every figure).
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	return strings.Fields(string(b))[0]
}

func run() error {
	root, _ := filepath.Abs(".")
	mgrPath, err := filepath.Abs(*managerBin)
	if err != nil {
		return err
	}
	if *replicas < 1 {
		return fmt.Errorf("-replicas must be at least 1")
	}
	loads := []string{"start " + loadAvg()}
	start := time.Now()
	env := &envtest.Environment{
		CRDDirectoryPaths: []string{filepath.Join(root, "config", "crd", "bases")}, ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: filepath.Join(root, "bin", "k8s"),
	}
	cfg, err := env.Start()
	if err != nil {
		_ = env.Stop()
		return fmt.Errorf("starting the control plane (make controlplane): %w", err)
	}
	defer env.Stop() //nolint:errcheck // teardown at exit: nothing to do about a failure
	cfg.QPS, cfg.Burst = 5000, 10000
	c, err := client.NewWithWatch(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return err
	}
	user, err := env.ControlPlane.AddUser(envtest.User{Name: "bench", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return err
	}
	kc, _ := user.KubeConfig()
	kcPath := filepath.Join(os.TempDir(), "pushmon-bench.kubeconfig")
	if err := os.WriteFile(kcPath, kc, 0o600); err != nil {
		return err
	}

	// The ceiling and the managers, each in its own process, each set
	// behind its own balancer.
	bares, err := startBare(*replicas)
	if err != nil {
		return err
	}
	defer stopAll(bares)
	bareLB, err := startBalancer(bares)
	if err != nil {
		return err
	}
	defer bareLB.close()
	mgrs, err := startManagers(mgrPath, kcPath, *replicas)
	if err != nil {
		return err
	}
	defer stopAll(mgrs)
	pushLB, err := startBalancer(mgrs)
	if err != nil {
		return err
	}
	defer pushLB.close()
	pushAddr := pushLB.addr()

	ctx := context.Background()
	apiReads := func() map[string]float64 { return apiRequests(ctx, cfg) }
	setup := fmt.Sprintf("%d manager replica(s) (%s, --leader-elect, default push limits) behind a round-robin TCP balancer (a new connection goes to the next replica); "+
		"the bare handler as %d process(es) behind another", *replicas, filepath.Base(mgrPath), *replicas)
	fmt.Fprintln(os.Stderr, "pushmon bench: "+setup)
	report("setup", "%s", setup)

	// 1. Realistic traffic: each monitor pushed once per interval,
	// staggered, each client from its own address over a new connection.
	if n := *rMonitors; n > 0 {
		iv := *rInterval
		fmt.Fprintf(os.Stderr, "realistic mode: %d clients, each pushing once per %v (%.0f pushes/s), %v warm-up, %v measured\n",
			n, iv, float64(n)/iv.Seconds(), 3*iv, *rDuration)
		fake := make([]string, n) // the bare handler ignores the path; same length as a token
		for i := range fake {
			fake[i] = fmt.Sprintf("%043d", i)
		}
		bareRes := realistic(bareLB.addr(), fake, iv, 3*iv, *rDuration, func(bool) {})
		ns, toks, err := createMonitors(ctx, c, "realistic", n, monitoringv1alpha1.PushMonitorSpec{
			Interval: &metav1.Duration{Duration: iv}, Timeout: &metav1.Duration{Duration: iv},
			GracePeriod: &metav1.Duration{Duration: iv / 2}})
		if err != nil {
			return err
		}
		// Three intervals of warm-up: every monitor's first push is a
		// change (Pending to Up) the leader writes, and on a loaded machine
		// those writes outlast one interval.
		wc := &writeCounter{read: apiReads}
		pmRes := realistic(pushAddr, toks, iv, 3*iv, *rDuration, wc.mark)
		mem := memory(mgrs)
		printRequests("the realistic mode's measurement", wc.before, wc.after, 10)
		what := fmt.Sprintf("%d monitors, interval %v, timeout %v, grace %v; one push per monitor per interval (%.0f/s)", n, iv, iv, iv/2, float64(n)/iv.Seconds())
		report("realistic, bare handler: "+what, "%s", bareRes)
		report("realistic, pushmon: "+what, "%s", pmRes)
		report("realistic, ratio pushmon / bare", "p99 %s, 200s/s %.2f", ratio(pmRes.p99, bareRes.p99), pmRes.okPerSec()/bareRes.okPerSec())
		w := wc.writes()
		report("realistic, API writes (mutating requests, all clients) during the measurement", "%.0f: %.1f per monitor-minute, %.2f per 200",
			w, w/(float64(n)*pmRes.elapsed.Minutes()), w/float64(max(1, pmRes.ok)))
		report("realistic, manager memory after the mode", "%s", mem)
		loads = append(loads, "after realistic "+loadAvg())
		// The monitors go Down once their pushes stop; let that happen
		// before the next steps rather than during them.
		down := func(m *monitoringv1alpha1.PushMonitor) bool { return m.Status.State == monitoringv1alpha1.StateDown }
		if err := waitMonitors(ctx, c, n, 2*time.Minute+3*iv, down, client.InNamespace(ns)); err != nil {
			return fmt.Errorf("waiting for the realistic monitors to go Down after their pushes stopped: %w", err)
		}
	}

	// 2. Burst: conns connections pushing as fast as answers come back.
	burstNS, toks, err := createMonitors(ctx, c, "burst", *monitors, monitoringv1alpha1.PushMonitorSpec{Timeout: &metav1.Duration{Duration: time.Hour}})
	if err != nil {
		return err
	}
	// Every monitor's first push ends Pending and is written at once; the
	// burst measures once the leader has made every monitor Up.
	if err := parallel(len(toks), 32, func(i int) error {
		_, err := pushOnce(pushAddr, toks[i], i)
		return err
	}); err != nil {
		return err
	}
	if err := waitMonitors(ctx, c, len(toks), 5*time.Minute, isUp, client.InNamespace(burstNS)); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "burst mode: %d connections, each from its own address, over %d monitors, 1s warm-up, %v measured\n", *conns, *monitors, *loadFor)
	bareRes := burst(bareLB.addr(), toks, *conns, time.Second, *loadFor, func(bool) {})
	wc := &writeCounter{read: apiReads}
	pmRes := burst(pushAddr, toks, *conns, time.Second, *loadFor, wc.mark)
	mem := memory(mgrs)
	printRequests("the burst mode's measurement", wc.before, wc.after, 10)
	what := fmt.Sprintf("%d connections, %d monitors", *conns, *monitors)
	report("burst, bare handler: "+what, "%s", bareRes)
	report("burst, pushmon: "+what, "%s", pmRes)
	report("burst, ratio pushmon / bare", "p99 %s, 200s/s %.2f", ratio(pmRes.p99, bareRes.p99), pmRes.okPerSec()/bareRes.okPerSec())
	w := wc.writes()
	report("burst, API writes (mutating requests, all clients) during the measurement", "%.0f: %.1f per monitor-minute, %.3f per 200",
		w, w/(float64(*monitors)*pmRes.elapsed.Minutes()), w/float64(max(1, pmRes.ok)))
	report("burst, manager memory after the mode", "%s", mem)
	loads = append(loads, "after burst "+loadAvg())

	// 3. Down delay of one monitor, p50 over runs.
	var single []time.Duration
	for i := 0; i < *downRuns; i++ {
		d, err := expiry(ctx, c, pushAddr, fmt.Sprintf("single-%d", i), 1, 2*time.Second)
		if err != nil {
			return err
		}
		single = append(single, d...)
	}
	report(fmt.Sprintf("Down after deadline, one monitor, p50 of %d (target <= 100ms)", len(single)), "%v", pct(single, 50))

	// 4. N monitors expiring together vs N plain merge patches.
	// A timeout long enough that no monitor expires before it is pushed.
	many, err := expiry(ctx, c, pushAddr, "together", *monitors, 20*time.Second)
	if err != nil {
		return err
	}
	base, err := baselinePatches(ctx, c, *monitors, 32)
	if err != nil {
		return err
	}
	report(fmt.Sprintf("Down after deadline, %d together: p50, p99", *monitors), "%v, %v", pct(many, 50), pct(many, 99))
	report(fmt.Sprintf("baseline: %d merge patches from 32 clients take", *monitors), "%v (target p99 <= %v)", base, time.Duration(1.5*float64(base)).Round(time.Millisecond))

	// The memory targets name their monitors (10,000, then 11,000 with the
	// CronJob step's): the earlier steps' monitors go first.
	if err := deleteAllMonitors(ctx, c); err != nil {
		return err
	}

	// 5. Many monitors: time until every Secret is issued, and memory.
	var bigNS string
	var bigToks []string
	if *bigMonitors > 0 {
		before := apiRequests(ctx, cfg)
		start := time.Now()
		var err error
		bigNS, bigToks, err = createMonitors(ctx, c, "big", *bigMonitors, monitoringv1alpha1.PushMonitorSpec{Timeout: &metav1.Duration{Duration: time.Hour}})
		if err != nil {
			return err
		}
		took := time.Since(start)
		printRequests(fmt.Sprintf("the %d-monitor step", *bigMonitors), before, apiRequests(ctx, cfg), float64(*bigMonitors)/10)
		report(fmt.Sprintf("%d monitors: created to all Ready (target <= 60s)", *bigMonitors), "%v", took.Round(100*time.Millisecond))
		time.Sleep(5 * time.Second) // settle: steady state, not the creation burst
		report(fmt.Sprintf("manager memory with %d monitors (target RSS <= 300MB)", *bigMonitors), "%s", memory(mgrs))
	}

	// 6. Memory with many CronJobs and Jobs: the manager caches every
	// CronJob and Job of the cluster and the Pods of Jobs (trimmed).
	if *cronJobs > 0 && *jobs > 0 {
		if err := cronJobPhase(ctx, c, cfg, mgrs); err != nil {
			return err
		}
	}

	// 7. The burst over the -big monitors, after the memory steps: a Go
	// process keeps the pages a burst's garbage took, so the memory
	// figures above would measure the burst, not the monitors.
	if *wideConns > 0 && len(bigToks) > 0 {
		if err := wideBurst(ctx, c, bigNS, pushAddr, bareLB.addr(), bigToks, *wideConns, apiReads, mgrs); err != nil {
			return err
		}
	}
	// 8. Scale: -huge monitors in one cluster, each pushed once a minute
	// by its own client through the balancer.
	if n := *huge; n > 0 {
		if err := scaleStep(ctx, c, apiReads, pushAddr, mgrs, n); err != nil {
			return err
		}
	}
	loads = append(loads, "end "+loadAvg())
	report("machine 1-minute load average (2 cores: other work moves every figure)", "%s", strings.Join(loads, ", "))
	report("manager restarts (a manager that exits, e.g. after losing its Lease, is restarted as a Deployment would)", "%s", restarts(mgrs))
	report("bench wall time", "%v", time.Since(start).Round(time.Second))

	fmt.Println()
	fmt.Println("| measure | result |")
	fmt.Println("|---|---|")
	for _, r := range table {
		fmt.Printf("| %s | %s |\n", r.what, r.value)
	}
	return nil
}

// ratio is a/b as "12.3×", or "n/a" without a b.
func ratio(a, b time.Duration) string {
	if b <= 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.1f×", float64(a)/float64(b))
}
