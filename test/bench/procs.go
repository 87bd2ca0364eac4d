package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// leaseName is the manager's leader election Lease.
const leaseName = "pushmon.monitoring.pushmon.dev"

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

// replica is one process behind a balancer: a manager or a bare server.
type replica struct {
	name        string
	pushAddr    string
	metricsAddr string // managers only

	mu  sync.Mutex
	cmd *exec.Cmd
	// For managers: restarts counts the exits supervise restarted, stopping
	// is set by stopAll, and supervised is closed once supervise returned.
	restarts   int
	stopping   bool
	supervised chan struct{}
}

func (r *replica) pid() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cmd.Process.Pid
}

// supervise restarts r's manager with the same arguments whenever it exits
// before stopAll, as the Deployment's kubelet would: a manager that loses
// its Lease (an API server too busy to renew it in time) exits by design.
func (r *replica) supervise(bin string, args []string) {
	defer close(r.supervised)
	for {
		r.mu.Lock()
		cmd := r.cmd
		r.mu.Unlock()
		err := cmd.Wait()
		r.mu.Lock()
		if r.stopping {
			r.mu.Unlock()
			return
		}
		r.restarts++
		fmt.Fprintf(os.Stderr, "  (manager %s exited: %v; restarting it, as a Deployment would)\n", r.name, err)
		next := exec.Command(bin, args...)
		next.Stderr = os.Stderr
		if err := next.Start(); err != nil {
			fmt.Fprintf(os.Stderr, "  (restarting manager %s: %v)\n", r.name, err)
			r.mu.Unlock()
			return
		}
		r.cmd = next
		r.mu.Unlock()
	}
}

// restarts is how often the managers were restarted, by name.
func restarts(rs []*replica) string {
	var parts []string
	for _, r := range rs {
		r.mu.Lock()
		parts = append(parts, fmt.Sprintf("%s %d", r.name, r.restarts))
		r.mu.Unlock()
	}
	return strings.Join(parts, ", ")
}

// startBare starts n bare servers, each in its own process like a manager.
func startBare(n int) ([]*replica, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	var out []*replica
	for i := 0; i < n; i++ {
		addr := freeAddr()
		cmd := exec.Command(self, "-bare", addr)
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			stopAll(out)
			return nil, err
		}
		out = append(out, &replica{name: fmt.Sprintf("bare-%d", i), cmd: cmd, pushAddr: addr})
		waitHTTP("http://" + addr + "/")
	}
	return out, nil
}

// startManagers starts n managers with leader election, as the default
// install runs them (config/manager: 2 replicas, --leader-elect), with
// every other flag at its default but the addresses, the log level and
// -kube-api-qps when given.
func startManagers(bin, kubeconfig string, n int) ([]*replica, error) {
	var out []*replica
	for i := 0; i < n; i++ {
		r := &replica{name: string(rune('a' + i)), pushAddr: freeAddr(), metricsAddr: freeAddr()}
		relayAddr := freeAddr() // in a cluster: $POD_IP:8083
		args := []string{"--kubeconfig=" + kubeconfig,
			"--leader-elect", "--leader-elect-namespace=default",
			"--push-bind-address=" + r.pushAddr, "--push-base-url=http://" + r.pushAddr,
			"--relay-bind-address=" + relayAddr, "--relay-advertise-address=" + relayAddr,
			"--health-probe-bind-address=0", "--metrics-bind-address=" + r.metricsAddr, "--metrics-secure=false",
			// Each replica serves its dashboard, as each pod does on its own
			// loopback; on one host they need an address each.
			"--dashboard-bind-address=" + freeAddr(),
			"--zap-log-level=error"}
		if a := pprofAddr(i); a != "" {
			args = append(args, "--pprof-bind-address="+a)
		}
		if *apiQPS > 0 {
			args = append(args, "--kube-api-qps="+strconv.Itoa(*apiQPS), "--kube-api-burst="+strconv.Itoa(2**apiQPS))
		}
		r.cmd = exec.Command(bin, args...)
		r.cmd.Stderr = os.Stderr
		if err := r.cmd.Start(); err != nil {
			stopAll(out)
			return nil, fmt.Errorf("starting %s (make build, or -manager): %w", bin, err)
		}
		r.supervised = make(chan struct{})
		go r.supervise(bin, args)
		out = append(out, r)
	}
	for _, r := range out {
		waitHTTP("http://" + r.pushAddr + "/")
	}
	return out, nil
}

// pprofAddr is BENCH_PPROF (host:port) for the first manager, the next
// port for the second, and so on; empty without BENCH_PPROF.
func pprofAddr(i int) string {
	a := os.Getenv("BENCH_PPROF")
	if a == "" {
		return ""
	}
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		panic("BENCH_PPROF: " + err.Error())
	}
	p, _ := strconv.Atoi(port)
	return net.JoinHostPort(host, strconv.Itoa(p+i))
}

func stopAll(rs []*replica) {
	for _, r := range rs {
		r.mu.Lock()
		r.stopping = true
		_ = r.cmd.Process.Kill()
		r.mu.Unlock()
		if r.supervised != nil {
			<-r.supervised // its Wait reaps the process
		} else {
			_ = r.cmd.Wait()
		}
	}
}

// isLeader reads r's leader_election_master_status for pushmon's Lease.
func isLeader(r *replica) bool {
	resp, err := http.Get("http://" + r.metricsAddr + "/metrics")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return false
	}
	for _, m := range mfs["leader_election_master_status"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "name" && l.GetValue() == leaseName {
				return m.GetGauge().GetValue() == 1
			}
		}
	}
	return false
}

// memory is each manager's peak resident memory since it started (VmHWM)
// and its resident memory now (VmRSS), from /proc/PID/status.
func memory(rs []*replica) string {
	var parts []string
	for _, r := range rs {
		role := "follower"
		if isLeader(r) {
			role = "leader"
		}
		hwm, rss := procStatus(r.pid(), "VmHWM:"), procStatus(r.pid(), "VmRSS:")
		parts = append(parts, fmt.Sprintf("%s (%s): peak %s, RSS %s", r.name, role, hwm, rss))
	}
	return strings.Join(parts, "; ")
}

func procStatus(pid int, field string) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "unknown"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, field) {
			kb, _ := strconv.Atoi(strings.Fields(line)[1])
			return fmt.Sprintf("%d MB", kb/1024)
		}
	}
	return "unknown"
}

// balancer is a round-robin TCP load balancer in front of replicas, as a
// ClusterIP Service is: each connection goes to the next replica, and the
// replica sees the client's own address (the balancer dials it from the
// address the connection came from, as kube-proxy's DNAT keeps the
// source).
type balancer struct {
	ln       net.Listener
	backends []string
	next     atomic.Uint64
	wg       sync.WaitGroup
}

func startBalancer(rs []*replica) (*balancer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	b := &balancer{ln: ln}
	for _, r := range rs {
		b.backends = append(b.backends, r.pushAddr)
	}
	b.wg.Add(1)
	go b.serve()
	return b, nil
}

func (b *balancer) addr() string { return b.ln.Addr().String() }

func (b *balancer) close() { _ = b.ln.Close(); b.wg.Wait() }

func (b *balancer) serve() {
	defer b.wg.Done()
	var said time.Time
	for {
		c, err := b.ln.Accept()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			// Out of file descriptors with thousands of pushes in flight
			// (each holds three here): wait for some to end, as a real
			// balancer would, instead of ending the balancer. Returning
			// here once left the 100,000-monitor step with no way in.
			if time.Since(said) > 10*time.Second {
				fmt.Fprintf(os.Stderr, "  (balancer: %v; accepting again shortly)\n", err)
				said = time.Now()
			}
			time.Sleep(50 * time.Millisecond)
			continue
		}
		go b.proxy(c)
	}
}

func (b *balancer) proxy(c net.Conn) {
	defer c.Close()
	be := b.backends[(b.next.Add(1)-1)%uint64(len(b.backends))]
	src := c.RemoteAddr().(*net.TCPAddr).IP
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: src}, Timeout: 10 * time.Second}
	u, err := d.Dial("tcp", be)
	if err != nil {
		return // the client sees its connection closed, as with no endpoint
	}
	defer u.Close()
	// HTTP/1.1 clients and servers do not half-close: when either side
	// is done (it has written everything it had), both ends close.
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(u, c); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, u); done <- struct{}{} }()
	<-done
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
