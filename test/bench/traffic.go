package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
	"github.com/pushmon/pushmon/internal/token"
)

// clientIP is the source address of simulated client i: 127.0.0.2,
// 127.0.0.3, ... (Linux routes all of 127.0.0.0/8 to loopback), skipping
// 127.0.0.1 and last octets 0 and 255. Each client having its own address
// is how the bench models many clients: the push endpoint limits requests
// per client address, and every load from 127.0.0.1 would be one client.
func clientIP(i int) net.IP {
	n := i + 1
	third, last := n/254, n%254+1
	return net.IPv4(127, byte(third/256), byte(third%256), byte(last))
}

// clientFrom is an HTTP client whose connections come from ip; with
// keepAlive false each request opens its own connection (as curl in a
// CronJob does), so a balancer in front of replicas sends a client's
// successive requests to successive replicas.
func clientFrom(ip net.IP, keepAlive bool) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: ip}, Timeout: 10 * time.Second}
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: !keepAlive,
			MaxIdleConnsPerHost: 1, MaxConnsPerHost: 1},
	}
}

// benchQuery is the query of every push the bench makes: one message, so
// that only a monitor's first push changes what status shows.
const benchQuery = "?msg=bench"

// pushOnce pushes tok once through addr from client i's address and returns
// the status code.
func pushOnce(addr, tok string, i int) (int, error) {
	resp, err := clientFrom(clientIP(i), false).Post("http://"+addr+token.PushPathPrefix+tok+benchQuery, "", nil)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// tally counts the answers of a measured run: latencies of the 200s,
// other answers by status code, and requests that got no answer.
type tally struct {
	mu      sync.Mutex
	okLat   []time.Duration
	codes   map[int]int64
	errs    map[string]int64
	lastEnd time.Time
}

func newTally() *tally { return &tally{codes: map[int]int64{}, errs: map[string]int64{}} }

func (t *tally) add(code int, err error, lat time.Duration, end time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if end.After(t.lastEnd) {
		t.lastEnd = end
	}
	switch {
	case err != nil:
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.errs["timeout (10s)"]++
		} else {
			t.errs["connection error"]++
		}
	case code == http.StatusOK:
		t.okLat = append(t.okLat, lat)
	default:
		t.codes[code]++
	}
}

// result is what a run measured; elapsed is measured, from the start of
// the measurement to the last measured answer.
type result struct {
	ok       int
	p50, p99 time.Duration
	codes    map[int]int64
	errs     map[string]int64
	elapsed  time.Duration
}

func (t *tally) result(start time.Time) result {
	t.mu.Lock()
	defer t.mu.Unlock()
	return result{ok: len(t.okLat), p50: pct(t.okLat, 50), p99: pct(t.okLat, 99),
		codes: maps.Clone(t.codes), errs: maps.Clone(t.errs), elapsed: t.lastEnd.Sub(start)}
}

func (r result) okPerSec() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.ok) / r.elapsed.Seconds()
}

func (r result) String() string {
	return fmt.Sprintf("%.0f 200s/s (%d in %v), 200s p50 %v, p99 %v; other answers: %s", r.okPerSec(), r.ok,
		r.elapsed.Round(time.Millisecond), r.p50.Round(time.Microsecond), r.p99.Round(time.Microsecond), r.others())
}

// others is the non-200 answers by code, then the requests without an
// answer, e.g. "429: 1234, 503: 5"; "none" when every answer was 200.
func (r result) others() string {
	var parts []string
	for _, c := range slices.Sorted(maps.Keys(r.codes)) {
		parts = append(parts, fmt.Sprintf("%d: %d", c, r.codes[c]))
	}
	for _, e := range slices.Sorted(maps.Keys(r.errs)) {
		parts = append(parts, fmt.Sprintf("%s: %d", e, r.errs[e]))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// realistic runs len(toks) clients, client i pushing toks[i] once per
// interval from its own address over a new connection, the clients'
// pushes spread evenly over the interval. Pushes are sent at their time
// whatever earlier ones are doing (open loop), and each latency is from
// that time to the answer. The first warmup is not measured; the pushes
// due in the measure after it are. mark is called (in its own goroutine)
// at the start of the measurement and, done, after the last measured push
// was answered.
func realistic(addr string, toks []string, interval, warmup, measure time.Duration, mark func(start bool)) result {
	clients := make([]*http.Client, len(toks))
	for i := range toks {
		clients[i] = clientFrom(clientIP(i), false)
	}
	t := newTally()
	start := time.Now()
	measStart, measEnd := start.Add(warmup), start.Add(warmup+measure)
	time.AfterFunc(time.Until(measStart), func() { mark(true) })
	var wg sync.WaitGroup
	n := time.Duration(len(toks))
loop:
	for k := time.Duration(0); ; k++ {
		for i := range toks {
			at := start.Add(k*interval + time.Duration(i)*interval/n)
			if !at.Before(measEnd) {
				break loop
			}
			time.Sleep(time.Until(at))
			measured := !at.Before(measStart)
			wg.Add(1)
			go func() {
				defer wg.Done()
				code, err := post(clients[i], "http://"+addr+token.PushPathPrefix+toks[i]+benchQuery)
				if measured {
					now := time.Now()
					t.add(code, err, now.Sub(at), now)
				}
			}()
		}
	}
	wg.Wait()
	mark(false)
	return t.result(measStart)
}

// burst drives conns keep-alive connections, each from its own address,
// pushing as fast as each answer comes back, connection w over toks[w],
// toks[w+conns], ...; for warmup unmeasured, then for d measured. mark is
// called before and after the measured part.
func burst(addr string, toks []string, conns int, warmup, d time.Duration, mark func(start bool)) result {
	clients := make([]*http.Client, conns)
	for w := range clients {
		clients[w] = clientFrom(clientIP(w), true)
	}
	defer func() {
		for _, c := range clients {
			c.CloseIdleConnections()
		}
	}()
	var t *tally
	drive := func(d time.Duration) time.Time {
		t = newTally()
		start := time.Now()
		stop := start.Add(d)
		var wg sync.WaitGroup
		for w := 0; w < conns; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; time.Now().Before(stop); i += conns {
					t0 := time.Now()
					code, err := post(clients[w], "http://"+addr+token.PushPathPrefix+toks[i%len(toks)]+benchQuery)
					now := time.Now()
					t.add(code, err, now.Sub(t0), now)
				}
			}()
		}
		wg.Wait()
		return start
	}
	drive(warmup)
	mark(true)
	start := drive(d)
	mark(false)
	return t.result(start)
}

func post(c *http.Client, url string) (int, error) {
	resp, err := c.Post(url, "", nil)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

func pct(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[min(len(s)-1, len(s)*p/100)]
}

// writeCounter counts the API server's mutating requests (of every
// client) between start and stop.
type writeCounter struct {
	read          func() map[string]float64
	before, after map[string]float64
}

func (w *writeCounter) mark(start bool) {
	if start {
		w.before = w.read()
	} else {
		w.after = w.read()
	}
}

func (w *writeCounter) writes() float64 { return mutating(w.before, w.after) }

// mutating sums the mutating requests between two readings of apiRequests.
func mutating(before, after map[string]float64) float64 {
	var n float64
	for k, v := range after {
		switch verb, _, _ := strings.Cut(k, " "); verb {
		case "POST", "PUT", "PATCH", "DELETE", "DELETECOLLECTION", "APPLY":
			n += v - before[k]
		}
	}
	return n
}

// isUp is a monitor the leader has made Up.
func isUp(m *monitoringv1alpha1.PushMonitor) bool {
	return m.Status.State == monitoringv1alpha1.StateUp
}

// wideBurst is the burst mode spread over many monitors and client
// addresses, so that no token or address exceeds the default limits (2/s
// and a burst of 20 per token, 50/s and 100 per address): the handler's
// throughput for traffic that is not throttled by design. The bare handler
// runs the same load. Every monitor's first push is written (Pending to
// Up) and is made before, unmeasured, until every monitor is Up.
func wideBurst(ctx context.Context, c client.WithWatch, ns, pushAddr, bareAddr string, toks []string, conns int, apiReads func() map[string]float64, mgrs []*replica) error {
	if err := parallel(len(toks), firstPushClients, func(i int) error {
		_, err := pushOnce(pushAddr, toks[i], i)
		return err
	}); err != nil {
		return err
	}
	// Until the leader has made a monitor Up, its pushes say more than
	// status and are written: the burst starts once every one is Up.
	if err := waitMonitors(ctx, c, len(toks), 10*time.Minute, isUp, client.InNamespace(ns)); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "wide burst: %d connections, each from its own address, over %d monitors, 1s warm-up, %v measured\n", conns, len(toks), *loadFor)
	bareRes := burst(bareAddr, toks, conns, time.Second, *loadFor, func(bool) {})
	wc := &writeCounter{read: apiReads}
	pmRes := burst(pushAddr, toks, conns, time.Second, *loadFor, wc.mark)
	what := fmt.Sprintf("%d connections, %d monitors", conns, len(toks))
	report("wide burst, bare handler: "+what, "%s", bareRes)
	report("wide burst, pushmon: "+what, "%s", pmRes)
	report("wide burst, ratio pushmon / bare (target 200s/s >= 0.8)", "p99 %s, 200s/s %.2f", ratio(pmRes.p99, bareRes.p99), pmRes.okPerSec()/bareRes.okPerSec())
	w := wc.writes()
	report("wide burst, API writes (mutating requests, all clients) during the measurement", "%.0f: %.1f per monitor-minute, %.3f per 200",
		w, w/(float64(len(toks))*pmRes.elapsed.Minutes()), w/float64(max(1, pmRes.ok)))
	report("wide burst, manager memory after the mode", "%s", memory(mgrs))
	return nil
}
