// Command bench measures pushmon against a real kube-apiserver and etcd and
// prints one table (make bench). It starts the control plane from bin/k8s,
// the manager (bin/manager) as its own process, and a bare Go HTTP server as
// the ceiling the push endpoint is compared with; the load comes from this
// process over loopback.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
	"github.com/pushmon/pushmon/internal/token"
)

var (
	bareMode    = flag.String("bare", "", "internal: serve the bare handler on this address")
	loadFor     = flag.Duration("load", 5*time.Second, "duration of each throughput run")
	conns       = flag.Int("c", 32, "concurrent connections of the load driver")
	monitors    = flag.Int("monitors", 1000, "monitors for throughput, write and expiry runs")
	bigMonitors = flag.Int("big", 10000, "monitors for the readiness and memory run (0 skips it)")
	downRuns    = flag.Int("down-runs", 7, "repetitions of the one-monitor Down delay")
	apiQPS      = flag.Int("kube-api-qps", 0, "--kube-api-qps given to the manager (0: the manager's default)")
	cronJobs    = flag.Int("cronjobs", 1000, "CronJobs (each followed by a monitor) for the CronJob memory run (0 skips it)")
	jobs        = flag.Int("jobs", 10000, "Jobs owned by those CronJobs for the CronJob memory run (0 skips it)")
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

// serveBare is the ceiling: a plain net/http handler that answers 200.
func serveBare(addr string) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"ok":true}` + "\n"))
	})
	fmt.Fprintln(os.Stderr, http.ListenAndServe(addr, h))
	os.Exit(1)
}

type row struct{ what, value string }

var table []row

func report(what, format string, args ...any) {
	v := fmt.Sprintf(format, args...)
	table = append(table, row{what, v})
	fmt.Fprintf(os.Stderr, "  %-62s %s\n", what, v)
}

func run() error {
	root, _ := filepath.Abs(".")
	assets := filepath.Join(root, "bin", "k8s")
	managerBin := filepath.Join(root, "bin", "manager")
	env := &envtest.Environment{
		CRDDirectoryPaths: []string{filepath.Join(root, "config", "crd", "bases")}, ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: assets,
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

	// The ceiling, in its own process like the manager.
	bareAddr := freeAddr()
	self, _ := os.Executable()
	bare := exec.Command(self, "-bare", bareAddr)
	bare.Stderr = os.Stderr
	if err := bare.Start(); err != nil {
		return err
	}
	defer bare.Process.Kill() //nolint:errcheck // it may have exited already
	waitHTTP("http://" + bareAddr + "/")

	pushAddr := freeAddr()
	args := []string{"--kubeconfig=" + kcPath, "--push-bind-address=" + pushAddr,
		"--push-base-url=http://" + pushAddr, "--health-probe-bind-address=0", "--metrics-bind-address=0", "--zap-log-level=error",
		// The load comes from one address and pushes each token up to
		// thousands of times a second: the default limits (2/s per token,
		// 50/s per address) would answer almost all of it 429. Limits this
		// high refuse nothing but keep the limiter in the measured path.
		"--push-token-rate=1000000", "--push-token-burst=1000000", "--push-ip-rate=1000000", "--push-ip-burst=1000000"}
	if a := os.Getenv("BENCH_PPROF"); a != "" {
		args = append(args, "--pprof-bind-address="+a)
	}
	if *apiQPS > 0 {
		args = append(args, "--kube-api-qps="+strconv.Itoa(*apiQPS), "--kube-api-burst="+strconv.Itoa(2**apiQPS))
	}
	mgr := exec.Command(managerBin, args...)
	mgr.Stderr = os.Stderr
	if err := mgr.Start(); err != nil {
		return fmt.Errorf("starting bin/manager (make build): %w", err)
	}
	defer mgr.Process.Kill() //nolint:errcheck // it may have exited already
	waitHTTP("http://" + pushAddr + "/")

	ctx := context.Background()
	fmt.Fprintf(os.Stderr, "pushmon bench: %d connections, %v per throughput run, %d monitors\n", *conns, *loadFor, *monitors)

	// 1. Throughput: bare handler vs push endpoint with N monitors.
	toks, err := createMonitors(ctx, c, "load", *monitors, time.Hour)
	if err != nil {
		return err
	}
	// Warm up: every monitor's first push ends Pending and is written at
	// once; the throughput run measures the steady state after that.
	if err := parallel(len(toks), 32, func(i int) error {
		resp, err := http.Post("http://"+pushAddr+token.PushPathPrefix+toks[i], "", nil)
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	}); err != nil {
		return err
	}
	time.Sleep(2 * time.Second)
	// Each throughput run is measured after a second of the same load: the
	// steady state, not the first push of each monitor's window, which is
	// written before it is answered (about one API write per monitor).
	bareURL := func(i int) string { return "http://" + bareAddr + "/api/push/x" }
	load(time.Second, *conns, bareURL)
	bareRes := load(*loadFor, *conns, bareURL)
	report("bare Go handler: requests/s, p50, p99", "%s", bareRes)
	pushURL := func(i int) string {
		return "http://" + pushAddr + token.PushPathPrefix + toks[i%len(toks)] + "?msg=bench"
	}
	load(time.Second, *conns, pushURL)
	before := apiRequests(ctx, cfg)
	pushRes := load(*loadFor, *conns, pushURL)
	printRequests(fmt.Sprintf("the %v push run", *loadFor), before, apiRequests(ctx, cfg), 10)
	report(fmt.Sprintf("pushmon push endpoint, %d monitors: requests/s, p50, p99", *monitors), "%s", pushRes)
	report("ratio pushmon / bare (target >= 0.7)", "%.2f", pushRes.rps/bareRes.rps)
	if pushRes.non200 > 0 {
		report("non-200 answers during the push run", "%d", pushRes.non200)
	}

	// 2. API writes per 1,000 pushes at 1/s and 10/s per monitor.
	for _, rate := range []int{1, 10} {
		w, p := writesPer(ctx, cfg, pushAddr, toks, rate, 12*time.Second)
		report(fmt.Sprintf("API writes per 1,000 pushes at %d push/s per monitor", rate), "%.0f (%d writes, %d pushes)", 1000*float64(w)/float64(p), w, p)
	}

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

	// 5. Many monitors: time until every Secret is issued, and RSS.
	if *bigMonitors > 0 {
		before = apiRequests(ctx, cfg)
		start := time.Now()
		if _, err := createMonitors(ctx, c, "big", *bigMonitors, time.Hour); err != nil {
			return err
		}
		took := time.Since(start)
		printRequests(fmt.Sprintf("the %d-monitor run", *bigMonitors), before, apiRequests(ctx, cfg), float64(*bigMonitors)/10)
		report(fmt.Sprintf("%d monitors: created to all Ready (target <= 60s)", *bigMonitors), "%v", took.Round(100*time.Millisecond))
		time.Sleep(5 * time.Second) // settle: steady state, not the creation burst
		report(fmt.Sprintf("manager RSS with %d+%d monitors (target <= 300MB)", *bigMonitors, *monitors), "%s", rss(mgr.Process.Pid))
	}

	// 6. Memory with many CronJobs and Jobs: the manager caches every
	// CronJob and Job of the cluster and the Pods of Jobs (trimmed).
	if *cronJobs > 0 && *jobs > 0 {
		if err := cronJobPhase(ctx, c, cfg, mgr.Process.Pid); err != nil {
			return err
		}
	}

	fmt.Println()
	fmt.Println("| measure | result |")
	fmt.Println("|---|---|")
	for _, r := range table {
		fmt.Printf("| %s | %s |\n", r.what, r.value)
	}
	return nil
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func waitHTTP(url string) {
	for i := 0; i < 600; i++ {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	panic("server did not start: " + url)
}

// createNamespaceOfMonitors creates a namespace with n monitors of spec.
func createNamespaceOfMonitors(ctx context.Context, c client.Client, prefix string, n int, spec monitoringv1alpha1.PushMonitorSpec) (*corev1.Namespace, error) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-"}}
	if err := c.Create(ctx, ns); err != nil {
		return nil, err
	}
	return ns, parallel(n, 32, func(i int) error {
		m := &monitoringv1alpha1.PushMonitor{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: fmt.Sprintf("m%05d", i)}, Spec: spec}
		return c.Create(ctx, m)
	})
}

// createMonitors creates n monitors in a new namespace and returns their
// tokens once every one is Ready.
func createMonitors(ctx context.Context, c client.WithWatch, prefix string, n int, timeout time.Duration) ([]string, error) {
	ns, err := createNamespaceOfMonitors(ctx, c, prefix, n, monitoringv1alpha1.PushMonitorSpec{Timeout: &metav1.Duration{Duration: timeout}})
	if err != nil {
		return nil, err
	}
	ready := func(m *monitoringv1alpha1.PushMonitor) bool {
		return meta.IsStatusConditionTrue(m.Status.Conditions, monitoringv1alpha1.ReadyCondition)
	}
	if err := waitMonitors(ctx, c, n, 10*time.Minute, ready, client.InNamespace(ns.Name)); err != nil {
		return nil, err
	}
	var secrets corev1.SecretList
	if err := c.List(ctx, &secrets, client.InNamespace(ns.Name)); err != nil {
		return nil, err
	}
	var toks []string
	for _, s := range secrets.Items {
		toks = append(toks, string(s.Data[token.SecretKeyToken]))
	}
	return toks, nil
}

// waitMonitors waits until n monitors selected by opts are done. It
// watches them rather than listing them again and again: listing thousands
// of monitors every few hundred milliseconds would load the API server
// being measured. A watch from no resourceVersion starts with the current
// state of every monitor (as ADDED events), then follows their writes; the
// API server may end a watch (under load it does), and the wait then
// watches again the same way.
func waitMonitors(ctx context.Context, c client.WithWatch, n int, timeout time.Duration, done func(*monitoringv1alpha1.PushMonitor) bool, opts ...client.ListOption) error {
	seen := map[types.UID]bool{}
	giveUp := time.After(timeout)
	for {
		var list monitoringv1alpha1.PushMonitorList
		w, err := c.Watch(ctx, &list, opts...)
		if err != nil {
			return err
		}
		ended := false
		for !ended && len(seen) < n {
			select {
			case ev, ok := <-w.ResultChan():
				if !ok || ev.Type == watch.Error {
					if st, isStatus := ev.Object.(*metav1.Status); isStatus {
						fmt.Fprintf(os.Stderr, "  (watch error: %s)\n", st.Message)
					}
					ended = true
					continue
				}
				if m, isMonitor := ev.Object.(*monitoringv1alpha1.PushMonitor); isMonitor && done(m) {
					seen[m.UID] = true
				}
			case <-giveUp:
				w.Stop()
				return fmt.Errorf("only %d of %d monitors done after %v", len(seen), n, timeout)
			}
		}
		w.Stop()
		if len(seen) >= n {
			return nil
		}
		fmt.Fprintf(os.Stderr, "  (the API server ended the watch with %d of %d monitors done; watching again)\n", len(seen), n)
	}
}

func parallel(n, workers int, f func(i int) error) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	var firstErr atomic.Value
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := f(i); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err, ok := firstErr.Load().(error); ok {
		return err
	}
	return nil
}

type loadResult struct {
	rps      float64
	p50, p99 time.Duration
	non200   int64
}

func (r loadResult) String() string {
	return fmt.Sprintf("%.0f req/s, p50 %v, p99 %v", r.rps, r.p50.Round(time.Microsecond), r.p99.Round(time.Microsecond))
}

// load drives POSTs over keep-alive connections for d and measures them.
func load(d time.Duration, conns int, url func(i int) string) loadResult {
	tr := &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns}
	hc := &http.Client{Transport: tr}
	defer tr.CloseIdleConnections()
	stop := time.Now().Add(d)
	lat := make([][]time.Duration, conns)
	var non200, n atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < conns; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; time.Now().Before(stop); i += conns {
				t0 := time.Now()
				resp, err := hc.Post(url(i), "", nil)
				if err != nil {
					non200.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				lat[w] = append(lat[w], time.Since(t0))
				if resp.StatusCode != 200 {
					non200.Add(1)
				}
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	return loadResult{rps: float64(n.Load()) / d.Seconds(), p50: pct(all, 50), p99: pct(all, 99), non200: non200.Load()}
}

func pct(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[min(len(s)-1, len(s)*p/100)]
}

// writesPer pushes every monitor rate times a second for d and counts the
// pushes answered 200 and the writes (POST, PUT, PATCH, DELETE of any
// resource) the API server served meanwhile and while held heartbeats land
// afterwards.
func writesPer(ctx context.Context, cfg *rest.Config, pushAddr string, toks []string, rate int, d time.Duration) (writes, pushes int64) {
	before := apiRequests(ctx, cfg)
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	hc := &http.Client{Transport: tr}
	var sent atomic.Int64
	stop := time.Now().Add(d)
	var wg sync.WaitGroup
	// Each monitor gets its own ticker-driven schedule, spread over 64 workers.
	for wkr := 0; wkr < 64; wkr++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(time.Second / time.Duration(rate))
			defer tick.Stop()
			for time.Now().Before(stop) {
				for i := wkr; i < len(toks); i += 64 {
					resp, err := hc.Post("http://"+pushAddr+token.PushPathPrefix+toks[i], "", nil)
					if err == nil {
						_, _ = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						if resp.StatusCode == http.StatusOK { // a refused push is no push
							sent.Add(1)
						}
					}
				}
				<-tick.C
			}
		}()
	}
	wg.Wait()
	time.Sleep(6 * time.Second) // let held heartbeats and deadline writes land
	after := apiRequests(ctx, cfg)
	var n float64
	for k, v := range after {
		if verb, _, _ := strings.Cut(k, " "); verb == "POST" || verb == "PUT" || verb == "PATCH" || verb == "DELETE" {
			n += v - before[k]
		}
	}
	return int64(n), sent.Load()
}

// expiry creates n monitors (grace 0s), pushes each once, stops, and
// returns for each how long after its deadline the API showed it Down.
func expiry(ctx context.Context, c client.WithWatch, pushAddr, prefix string, n int, timeout time.Duration) ([]time.Duration, error) {
	ns, err := createNamespaceOfMonitors(ctx, c, prefix, n,
		monitoringv1alpha1.PushMonitorSpec{Timeout: &metav1.Duration{Duration: timeout}, GracePeriod: &metav1.Duration{}})
	if err != nil {
		return nil, err
	}
	var toks []string
	for len(toks) < n {
		var secrets corev1.SecretList
		if err := c.List(ctx, &secrets, client.InNamespace(ns.Name)); err != nil {
			return nil, err
		}
		toks = toks[:0]
		for _, s := range secrets.Items {
			toks = append(toks, string(s.Data[token.SecretKeyToken]))
		}
		time.Sleep(100 * time.Millisecond)
	}
	var list monitoringv1alpha1.PushMonitorList
	w, err := c.Watch(ctx, &list, client.InNamespace(ns.Name))
	if err != nil {
		return nil, err
	}
	defer w.Stop()
	if err := parallel(n, 32, func(i int) error {
		resp, err := http.Post("http://"+pushAddr+token.PushPathPrefix+toks[i], "", nil)
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	}); err != nil {
		return nil, err
	}
	delays := map[types.UID]time.Duration{}
	giveUp := time.After(timeout + 60*time.Second)
	for len(delays) < n {
		select {
		case ev := <-w.ResultChan():
			m, ok := ev.Object.(*monitoringv1alpha1.PushMonitor)
			// Only the Down after the push counts (not one of a monitor that
			// expired before it was pushed).
			if !ok || m.Status.State != monitoringv1alpha1.StateDown || m.Status.Deadline == nil || m.Status.LastHeartbeatTime == nil {
				continue
			}
			if _, seen := delays[m.UID]; !seen {
				delays[m.UID] = time.Since(m.Status.Deadline.Time)
			}
		case <-giveUp:
			return nil, fmt.Errorf("only %d of %d monitors went Down", len(delays), n)
		}
	}
	out := make([]time.Duration, 0, n)
	for _, d := range delays {
		out = append(out, d.Round(time.Millisecond))
	}
	return out, nil
}

// baselinePatches is how long the API server takes for n merge patches of
// ConfigMaps from the given number of clients: the floor for n monitors
// turning Down together.
func baselinePatches(ctx context.Context, c client.Client, n, clients int) (time.Duration, error) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "baseline-"}}
	if err := c.Create(ctx, ns); err != nil {
		return 0, err
	}
	if err := parallel(n, clients, func(i int) error {
		return c.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: fmt.Sprintf("c%05d", i)}})
	}); err != nil {
		return 0, err
	}
	start := time.Now()
	err := parallel(n, clients, func(i int) error {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: fmt.Sprintf("c%05d", i)}}
		return c.Patch(ctx, cm, client.RawPatch(types.MergePatchType, []byte(`{"data":{"k":"v"}}`)))
	})
	return time.Since(start).Round(time.Millisecond), err
}

func rss(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "unknown"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			kb, _ := strconv.Atoi(strings.Fields(line)[1])
			return fmt.Sprintf("%d MB", kb/1024)
		}
	}
	return "unknown"
}

// printRequests prints, to stderr, the API requests between two readings of
// apiRequests that number at least min.
func printRequests(during string, before, after map[string]float64, min float64) {
	fmt.Fprintf(os.Stderr, "API requests during %s (all clients), by verb and resource:\n", during)
	for _, k := range slices.Sorted(maps.Keys(after)) {
		if d := after[k] - before[k]; d >= min {
			fmt.Fprintf(os.Stderr, "  %-40s %8.0f\n", k, d)
		}
	}
}

// apiRequests reads the API server's apiserver_request_total counters,
// summed by verb and resource (subresource appended), for every client.
// The bench cannot go on without them, so a failure panics.
func apiRequests(ctx context.Context, cfg *rest.Config) map[string]float64 {
	out := map[string]float64{}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		panic(err)
	}
	body, err := cs.RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		panic(fmt.Sprintf("reading the API server's metrics: %v", err))
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		panic(fmt.Sprintf("parsing the API server's metrics: %v", err))
	}
	f, ok := families["apiserver_request_total"]
	if !ok {
		panic("the API server's metrics lack apiserver_request_total")
	}
	for _, m := range f.GetMetric() {
		l := map[string]string{}
		for _, lp := range m.GetLabel() {
			l[lp.GetName()] = lp.GetValue()
		}
		key := l["verb"] + " " + l["resource"]
		if l["subresource"] != "" {
			key += "/" + l["subresource"]
		}
		out[key] += m.GetCounter().GetValue()
	}
	return out
}

// The CronJob memory run: CronJobs in a few namespaces, each followed by a
// monitor, Jobs owned by them as the CronJob controller makes them, and a
// Pod for some Jobs. No controllers or kubelet run: the bench writes the
// Jobs' status itself, and the Pods stay Pending.
const (
	cronNamespaces = 10
	cronLabel      = "pushmon-bench/phase"
)

func cronJobPhase(ctx context.Context, c client.WithWatch, cfg *rest.Config, pid int) error {
	nCron, nJobs := *cronJobs, *jobs
	fmt.Fprintf(os.Stderr, "CronJob run: %d CronJobs, %d Jobs, %d namespaces\n", nCron, nJobs, cronNamespaces)
	rssBefore := rss(pid)
	before := apiRequests(ctx, cfg)
	start := time.Now()
	nss := make([]string, min(cronNamespaces, nCron))
	for i := range nss {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "cron-"}}
		if err := c.Create(ctx, ns); err != nil {
			return err
		}
		nss[i] = ns.Name
	}
	// CronJob i is in namespace i % len(nss); its Jobs are i, i+nCron, ...
	// (run k of CronJob i is Job i + k*nCron), an hour apart, the newest an
	// hour ago at most.
	cjs := make([]*batchv1.CronJob, nCron)
	if err := parallel(nCron, 32, func(i int) error {
		cj := benchCronJob(nss[i%len(nss)], i)
		if err := c.Create(ctx, cj); err != nil {
			return fmt.Errorf("creating CronJob %d: %w", i, err)
		}
		cjs[i] = cj
		return nil
	}); err != nil {
		return err
	}
	runs := func(i int) int { // Jobs of CronJob i
		n := nJobs / nCron
		if i < nJobs%nCron {
			n++
		}
		return n
	}
	hour := time.Now().Truncate(time.Hour)
	var active, pods atomic.Int64
	if err := parallel(nJobs, 32, func(j int) error {
		i, k := j%nCron, j/nCron
		cj := cjs[i]
		scheduled := hour.Add(-time.Duration(runs(i)-k) * time.Hour).Add(time.Duration(i%60) * time.Minute)
		// Every fifth CronJob's newest run is still running, with a Pending
		// Pod; the other runs completed.
		running := k == runs(i)-1 && i%5 == 0
		job := benchJob(cj, scheduled)
		if err := c.Create(ctx, job); err != nil {
			return fmt.Errorf("creating Job %s/%s: %w", job.Namespace, job.Name, err)
		}
		started := metav1.NewTime(scheduled.Add(time.Duration(1+j%5) * time.Second))
		job.Status = batchv1.JobStatus{StartTime: &started, Ready: ptr.To[int32](0), Terminating: ptr.To[int32](0)}
		if running {
			job.Status.Active = 1
			active.Add(1)
		} else {
			done := metav1.NewTime(started.Add(time.Duration(20+j%100) * time.Second))
			job.Status.Succeeded = 1
			job.Status.CompletionTime = &done
			job.Status.Conditions = []batchv1.JobCondition{
				{Type: batchv1.JobSuccessCriteriaMet, Status: corev1.ConditionTrue, Reason: batchv1.JobReasonCompletionsReached,
					Message: "Reached expected number of succeeded pods", LastProbeTime: done, LastTransitionTime: done},
				{Type: batchv1.JobComplete, Status: corev1.ConditionTrue, Reason: batchv1.JobReasonCompletionsReached,
					Message: "Reached expected number of succeeded pods", LastProbeTime: done, LastTransitionTime: done},
			}
		}
		if err := c.Status().Update(ctx, job); err != nil {
			return fmt.Errorf("writing the status of Job %s/%s: %w", job.Namespace, job.Name, err)
		}
		// A Pod for every running Job and for every tenth Job.
		if running || j%10 == 0 {
			if err := c.Create(ctx, benchPod(job)); err != nil {
				return fmt.Errorf("creating a Pod of Job %s/%s: %w", job.Namespace, job.Name, err)
			}
			pods.Add(1)
		}
		return nil
	}); err != nil {
		return err
	}
	created := time.Since(start)
	fmt.Fprintf(os.Stderr, "  created %d CronJobs, %d Jobs (%d running), %d Pods in %v\n",
		nCron, nJobs, active.Load(), pods.Load(), created.Round(100*time.Millisecond))

	// A monitor follows each CronJob; waited for until every one is Ready
	// and, where its CronJob has a completed Job, has counted it as a run.
	monStart := time.Now()
	if err := parallel(nCron, 32, func(i int) error {
		m := &monitoringv1alpha1.PushMonitor{
			ObjectMeta: metav1.ObjectMeta{Namespace: cjs[i].Namespace, Name: cjs[i].Name, Labels: map[string]string{cronLabel: "cron"}},
			Spec: monitoringv1alpha1.PushMonitorSpec{CronJobRef: &monitoringv1alpha1.CronJobReference{Name: cjs[i].Name},
				GracePeriod: &metav1.Duration{Duration: 15 * time.Minute}},
		}
		return c.Create(ctx, m)
	}); err != nil {
		return err
	}
	wantRun := map[string]bool{} // namespace/name of monitors whose CronJob has a completed Job
	for i, cj := range cjs {
		if runs(i) > 1 || (runs(i) == 1 && i%5 != 0) {
			wantRun[cj.Namespace+"/"+cj.Name] = true
		}
	}
	followed := func(m *monitoringv1alpha1.PushMonitor) bool {
		return meta.IsStatusConditionTrue(m.Status.Conditions, monitoringv1alpha1.ReadyCondition) &&
			(!wantRun[m.Namespace+"/"+m.Name] || m.Status.LastRunJob != "")
	}
	if err := waitMonitors(ctx, c, nCron, 10*time.Minute, followed, client.MatchingLabels{cronLabel: "cron"}); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "  %d monitors following them: created to all Ready with runs counted in %v\n",
		nCron, time.Since(monStart).Round(100*time.Millisecond))
	time.Sleep(5 * time.Second) // settle
	printRequests("the CronJob run", before, apiRequests(ctx, cfg), 100)
	fmt.Fprintf(os.Stderr, "  CronJob run took %v in all (creating, Ready, 5s settling)\n", time.Since(start).Round(100*time.Millisecond))
	report(fmt.Sprintf("manager RSS with %d CronJobs + %d Jobs (+ %d Job Pods, %d monitors following the CronJobs, the monitors above) (target <= 300MB)",
		nCron, nJobs, pods.Load(), nCron), "%s (%s before this run)", rss(pid), rssBefore)
	return nil
}

// benchPodSpec is a small, realistic pod spec of a batch job.
func benchPodSpec(name string) corev1.PodSpec {
	return corev1.PodSpec{
		RestartPolicy: corev1.RestartPolicyOnFailure,
		Containers: []corev1.Container{{
			Name:    name,
			Image:   "registry.example.com/ops/" + name + ":1.8.3",
			Command: []string{"/bin/sh", "-c"},
			Args:    []string{"/app/run --target=s3://backups/" + name + " --retain=14d && curl -fsS -X POST \"$PUSH_URL?status=up\""},
			Env: []corev1.EnvVar{
				{Name: "LOG_LEVEL", Value: "info"},
				{Name: "TARGET_BUCKET", Value: "backups"},
				{Name: "PUSH_URL", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
					LocalObjectReference: corev1.LocalObjectReference{Name: name + "-push"}, Key: "url"}}},
			},
			Resources: corev1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("128Mi")},
				Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("256Mi")},
			},
			VolumeMounts: []corev1.VolumeMount{{Name: "scratch", MountPath: "/scratch"}},
		}},
		Volumes: []corev1.Volume{{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
	}
}

func benchCronJob(ns string, i int) *batchv1.CronJob {
	name := fmt.Sprintf("job%04d", i)
	return &batchv1.CronJob{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"app": name}},
		Spec: batchv1.CronJobSpec{
			Schedule:          fmt.Sprintf("%d * * * *", i%60),
			Suspend:           ptr.To(true), // nothing runs them; the monitors are Suspended
			ConcurrencyPolicy: batchv1.ForbidConcurrent,
			JobTemplate: batchv1.JobTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}},
				Spec: batchv1.JobSpec{
					BackoffLimit: ptr.To[int32](2),
					Template: corev1.PodTemplateSpec{
						ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}},
						Spec:       benchPodSpec(name),
					},
				},
			},
		},
	}
}

// benchJob is the Job cj's controller would make for the scheduled time.
func benchJob(cj *batchv1.CronJob, scheduled time.Time) *batchv1.Job {
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{
			Namespace:   cj.Namespace,
			Name:        fmt.Sprintf("%s-%d", cj.Name, scheduled.Unix()/60),
			Labels:      cj.Spec.JobTemplate.Labels,
			Annotations: map[string]string{"batch.kubernetes.io/cronjob-scheduled-timestamp": scheduled.UTC().Format(time.RFC3339)},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "batch/v1", Kind: "CronJob", Name: cj.Name, UID: cj.UID,
				Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true)}},
		},
		Spec: *cj.Spec.JobTemplate.Spec.DeepCopy(),
	}
}

// benchPod is a Pod of job as the Job controller makes it (no node, no
// kubelet: it stays Pending).
func benchPod(job *batchv1.Job) *corev1.Pod {
	labels := map[string]string{"batch.kubernetes.io/job-name": job.Name}
	maps.Copy(labels, job.Spec.Template.Labels) // with the job-name and controller-uid labels the API server added
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: job.Namespace,
			Name:      job.Name + "-" + string(job.UID)[:5],
			Labels:    labels,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "batch/v1", Kind: "Job", Name: job.Name, UID: job.UID,
				Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true)}},
		},
		Spec: *job.Spec.Template.Spec.DeepCopy(),
	}
}
