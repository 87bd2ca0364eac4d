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
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
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
	defer env.Stop() //nolint:errcheck
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
	defer bare.Process.Kill() //nolint:errcheck
	waitHTTP("http://" + bareAddr + "/")

	pushAddr := freeAddr()
	args := []string{"--kubeconfig=" + kcPath, "--push-bind-address=" + pushAddr,
		"--push-base-url=http://" + pushAddr, "--health-probe-bind-address=0", "--metrics-bind-address=0", "--zap-log-level=error"}
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
	defer mgr.Process.Kill() //nolint:errcheck
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
	// A watch, not repeated Lists: listing thousands of monitors every
	// few hundred milliseconds would load the API server being measured.
	var list monitoringv1alpha1.PushMonitorList
	w, err := c.Watch(ctx, &list, client.InNamespace(ns.Name))
	if err != nil {
		return nil, err
	}
	defer w.Stop()
	ready := map[types.UID]bool{}
	giveUp := time.After(10 * time.Minute)
	for len(ready) < n {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				return nil, fmt.Errorf("watch of %s ended with %d of %d monitors Ready", ns.Name, len(ready), n)
			}
			if m, isMonitor := ev.Object.(*monitoringv1alpha1.PushMonitor); isMonitor &&
				meta.IsStatusConditionTrue(m.Status.Conditions, monitoringv1alpha1.ReadyCondition) {
				ready[m.UID] = true
			}
		case <-giveUp:
			return nil, fmt.Errorf("only %d of %d monitors in %s became Ready", len(ready), n, ns.Name)
		}
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
// writes (POST, PUT, PATCH, DELETE of any resource) the API server served
// meanwhile and while held heartbeats land afterwards.
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
						sent.Add(1)
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
