package chaos

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pushmon/pushmon/internal/testutil"
)

// Short lease timings, so that failovers happen many times within a run;
// twice test/ha's, since with test/ha's 2s a leader on two loaded cores
// lost its Lease by itself (a renewal's 1s request timed out) before any
// kill.
const (
	leaseDuration = 4 * time.Second
	renewDeadline = 3 * time.Second
	retryPeriod   = 500 * time.Millisecond
	leaseName     = "pushmon.monitoring.pushmon.dev"
	leaseNS       = "default"
	// restartDelay stands in for the kubelet restarting a crashed pod.
	restartDelay = time.Second
)

// process is one run of a manager binary.
type process struct {
	name     string // slot and generation, e.g. r1.3
	pushAddr string
	cmd      *exec.Cmd
	log      *leaseLog
	exited   chan struct{}
	killed   atomic.Bool // by the harness, as opposed to exiting by itself
	ready    time.Time
}

func (p *process) alive() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// isLeader: this process logged that it acquired the Lease. A manager that
// loses the Lease exits, so an alive process that ever acquired it holds it.
func (p *process) isLeader() bool { return p.alive() && p.log.acquired.Load() }

// leaseLog writes a manager's output to its log file and notices the
// leader election's "successfully acquired lease" line as it streams by,
// so that nobody has to search a growing buffer.
type leaseLog struct {
	mu       sync.Mutex
	f        *os.File
	carry    []byte
	tail     []byte
	acquired atomic.Bool
}

// "Successfully acquired lease" (logr) or "successfully acquired lease" (klog).
var acquiredLine = []byte("uccessfully acquired lease")

func (l *leaseLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.acquired.Load() {
		buf := append(l.carry, p...)
		if bytes.Contains(buf, acquiredLine) {
			l.acquired.Store(true)
		}
		if len(buf) > len(acquiredLine) {
			buf = buf[len(buf)-len(acquiredLine):]
		}
		l.carry = append([]byte(nil), buf...)
	}
	l.tail = append(l.tail, p...)
	if len(l.tail) > 32<<10 {
		l.tail = append([]byte(nil), l.tail[len(l.tail)-16<<10:]...)
	}
	if l.f != nil {
		_, _ = l.f.Write(p)
	}
	return len(p), nil
}

func (l *leaseLog) Tail() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.tail)
}

// cluster keeps three replicas running: a slot whose process is killed or
// exits is started again after restartDelay, as a Deployment's pods are.
type cluster struct {
	mu        sync.Mutex
	slots     []*process // the current process of each slot (nil while restarting)
	gens      []int
	stopping  atomic.Bool
	wg        sync.WaitGroup
	selfExits []selfExit // processes that exited without being killed
	starts    atomic.Int64
	logf      func(format string, args ...any)
}

func newCluster(n int, logf func(string, ...any)) *cluster {
	c := &cluster{slots: make([]*process, n), gens: make([]int, n), logf: logf}
	for i := range n {
		c.wg.Add(1)
		go c.supervise(i)
	}
	return c
}

func (c *cluster) supervise(slot int) {
	defer c.wg.Done()
	for !c.stopping.Load() {
		c.mu.Lock()
		c.gens[slot]++
		name := fmt.Sprintf("r%d.%d", slot, c.gens[slot])
		c.mu.Unlock()
		p, err := startManager(name)
		if err != nil {
			c.logf("chaos: starting %s: %v", name, err)
			time.Sleep(restartDelay)
			continue
		}
		c.starts.Add(1)
		c.mu.Lock()
		c.slots[slot] = p
		c.mu.Unlock()
		if c.stopping.Load() { // stop ran while this one was starting
			c.kill(p)
		}
		<-p.exited
		c.mu.Lock()
		c.slots[slot] = nil
		if !p.killed.Load() && !c.stopping.Load() {
			c.selfExits = append(c.selfExits, selfExit{name: name, at: time.Now(), leader: p.log.acquired.Load(), tail: lastLines(p.log.Tail(), 15)})
		}
		c.mu.Unlock()
		if !c.stopping.Load() {
			time.Sleep(restartDelay)
		}
	}
}

// live is the processes a Service would route to: started, serving pushes.
func (c *cluster) live() []*process {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*process
	for _, p := range c.slots {
		if p != nil && p.alive() && !p.killed.Load() {
			out = append(out, p)
		}
	}
	return out
}

func (c *cluster) leader() *process {
	for _, p := range c.live() {
		if p.isLeader() {
			return p
		}
	}
	return nil
}

// kill ends p at once, as a crashed pod or a lost node would. It leaves the
// Service's rotation first, as the endpoint of a dead pod does, so only
// requests already in flight see the connection drop.
func (c *cluster) kill(p *process) {
	p.killed.Store(true)
	if p.cmd.Process != nil {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
	}
	<-p.exited
}

// stop ends every replica and the supervisors.
func (c *cluster) stop() {
	c.stopping.Store(true)
	c.mu.Lock()
	ps := append([]*process(nil), c.slots...)
	c.mu.Unlock()
	for _, p := range ps {
		if p != nil {
			c.kill(p)
		}
	}
	c.wg.Wait()
}

type selfExit struct {
	name   string
	at     time.Time
	leader bool // it had acquired the Lease
	tail   string
}

func (c *cluster) selfExitLog() []selfExit {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]selfExit(nil), c.selfExits...)
}

// startManager runs one manager with leader election and short lease
// timings, and returns once its push endpoint accepts connections (the
// readiness that puts a pod behind the Service).
func startManager(name string) (*process, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	relayAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	f, err := os.Create(filepath.Join(workDir, "logs", name+".log"))
	if err != nil {
		return nil, err
	}
	p := &process{name: name, pushAddr: addr, log: &leaseLog{f: f}, exited: make(chan struct{})}
	p.cmd = exec.Command(managerBin,
		"--kubeconfig="+kubeconfigPath,
		"--leader-elect", "--leader-elect-namespace="+leaseNS,
		"--leader-elect-lease-duration="+leaseDuration.String(),
		"--leader-elect-renew-deadline="+renewDeadline.String(),
		"--leader-elect-retry-period="+retryPeriod.String(),
		"--push-bind-address="+addr, "--push-base-url=http://"+addr,
		"--relay-bind-address="+relayAddr, "--relay-advertise-address="+relayAddr,
		"--health-probe-bind-address=0", "--metrics-bind-address=0",
	)
	p.cmd.Env = append(os.Environ(), "ENABLE_WEBHOOKS=false")
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		f.Close()
		return nil, err
	}
	go func() { _ = p.cmd.Wait(); f.Close(); close(p.exited) }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/api/push/x")
		if err == nil {
			resp.Body.Close()
			p.ready = time.Now()
			return p, nil
		}
		select {
		case <-p.exited:
			return nil, fmt.Errorf("%s exited before serving: %s", name, lastLines(p.log.Tail(), 15))
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = p.cmd.Process.Kill()
			<-p.exited
			return nil, fmt.Errorf("%s did not serve within 60s: %s", name, lastLines(p.log.Tail(), 15))
		}
	}
}

func freeAddr() (string, error) { return testutil.FreeAddr() }

func lastLines(s string, n int) string {
	lines := bytes.Split([]byte(s), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}
