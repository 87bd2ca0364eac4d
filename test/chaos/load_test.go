package chaos

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
	"github.com/pushmon/pushmon/internal/token"
)

// What every monitor is given: timeout, grace and the clients' period.
const (
	monTimeout = 8 * time.Second
	monGrace   = 2 * time.Second
	pushPeriod = time.Second
	// downReports is how many down reports (one a second, each with its own
	// message) a flapping client sends before it reports up again.
	downReports = 3
)

type class int

const (
	steady  class = iota // pushes up all along
	flapper              // pushes up, then down for a few seconds, then up again, over and over
	stopper              // pushes up, then stops on purpose: must go Down
)

func (c class) String() string { return [...]string{"steady", "flapper", "stopper"}[c] }

// monitor is one PushMonitor and its client.
type monitor struct {
	idx   int
	name  string
	class class
	// quiet clients push up with the same message every time, as most
	// clients do (msg=OK): their pushes only say alive, so the leader holds
	// them in memory instead of having them written (the relay), and status
	// shows the last heartbeat only as of the last refresh.
	quiet  bool
	token  string
	stopAt atomic.Int64 // stopper: unix nanos after which it pushes no more (0: not yet known)
	// pushes is written by the client goroutine only, and read after it
	// returned.
	pushes []pushRec
}

// pushRec is one push and its answer.
type pushRec struct {
	seq      int
	msg      string
	down     bool
	episode  int // the flapper's down episode, 0 for up pushes
	sent     time.Time
	answered time.Time
	code     int // HTTP status; 0 transport error; -1 no replica to send to
	replica  string
}

// msgOf is the unique message of one push: monitor, sequence number,
// status and, for a down report, its episode. Unique messages let the
// analysis tell every report apart in status and in event notes (and keep
// the event recorder from folding two notes into one series).
func msgOf(name string, seq int, down bool, episode int) string {
	if down {
		return fmt.Sprintf("%s.%06d.down.e%d", name, seq, episode)
	}
	return fmt.Sprintf("%s.%06d.up", name, seq)
}

// quietMsg is what quiet clients send every time.
const quietMsg = "OK"

// parseMsg returns the monitor name, sequence number and episode of a
// message msgOf made; ok false for anything else.
func parseMsg(msg string) (name string, seq, episode int, ok bool) {
	f := strings.Split(msg, ".")
	if len(f) < 3 {
		return "", 0, 0, false
	}
	seq, err := strconv.Atoi(f[1])
	if err != nil {
		return "", 0, 0, false
	}
	if len(f) == 4 && f[2] == "down" {
		if episode, err = strconv.Atoi(strings.TrimPrefix(f[3], "e")); err != nil {
			return "", 0, 0, false
		}
	}
	return f[0], seq, episode, true
}

// createMonitors creates n monitors (a tenth stoppers, a fifth flappers,
// the rest steady) and returns them with their tokens once every Secret is
// issued.
func createMonitors(ctx context.Context, ns string, n int) ([]*monitor, error) {
	nStop, nFlap := max(3, n/10), max(5, n/5)
	mons := make([]*monitor, n)
	for i := range mons {
		m := &monitor{idx: i, name: fmt.Sprintf("m%04d", i), class: steady}
		switch {
		case i%10 == 9 && nStop > 0:
			m.class, nStop = stopper, nStop-1
		case i%5 == 2 && nFlap > 0:
			m.class, nFlap = flapper, nFlap-1
		}
		// A quarter of the steady clients and half of the stoppers push
		// quietly.
		m.quiet = m.class == steady && i%4 == 1 || m.class == stopper && i%20 == 19
		mons[i] = m
		pm := &monitoringv1alpha1.PushMonitor{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: m.name},
			Spec: monitoringv1alpha1.PushMonitorSpec{
				Timeout:     &metav1.Duration{Duration: monTimeout},
				GracePeriod: &metav1.Duration{Duration: monGrace},
				Interval:    &metav1.Duration{Duration: pushPeriod},
			},
		}
		if err := k8sClient.Create(ctx, pm); err != nil {
			return nil, fmt.Errorf("creating %s: %w", m.name, err)
		}
	}
	// The few stoppers a small run's spacing left out.
	for i := len(mons) - 1; i >= 0 && nStop > 0; i-- {
		if mons[i].class == steady {
			mons[i].class, nStop = stopper, nStop-1
		}
	}
	byName := map[string]*monitor{}
	for _, m := range mons {
		byName[m.name] = m
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var secrets corev1.SecretList
		if err := k8sClient.List(ctx, &secrets, client.InNamespace(ns)); err == nil {
			found := 0
			for _, s := range secrets.Items {
				if m := byName[s.Labels["monitoring.pushmon.dev/monitor"]]; m != nil && len(s.Data[token.SecretKeyToken]) > 0 {
					m.token = string(s.Data[token.SecretKeyToken])
					found++
				}
			}
			if found == n {
				return mons, nil
			}
			if time.Now().After(deadline) {
				return nil, fmt.Errorf("only %d of %d push tokens issued after 2m", found, n)
			}
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// newHosts returns HTTP clients with keep-alive, each dialing from its own
// loopback address: a few monitors share a host, as jobs on one node do, so
// the per-address rate limit sees what it would see in a cluster rather
// than every client behind 127.0.0.1.
func newHosts(monitors int) []*http.Client {
	n := min(250, max(1, (monitors+7)/8))
	hosts := make([]*http.Client, n)
	for i := range hosts {
		d := &net.Dialer{Timeout: 3 * time.Second, LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 1, byte(i+1))}}
		hosts[i] = &http.Client{
			Timeout: 5 * time.Second,
			Transport: &http.Transport{
				DialContext:         d.DialContext,
				MaxIdleConnsPerHost: 16,
				IdleConnTimeout:     30 * time.Second,
			},
		}
	}
	return hosts
}

// run is the monitor's client: a push every period, each to the next live
// replica (round robin, as a Service spreads connections), until ctx ends
// or, for a stopper, its stop time.
func (m *monitor) run(ctx context.Context, hc *http.Client, c *cluster) {
	rng := rand.New(rand.NewPCG(uint64(m.idx), 42))
	// Spread the clients over the period instead of pushing all at once.
	select {
	case <-ctx.Done():
		return
	case <-time.After(time.Duration(rng.Int64N(int64(pushPeriod)))):
	}
	tick := time.NewTicker(pushPeriod)
	defer tick.Stop()
	upLeft, downLeft, episode, rr := 3+rng.IntN(4), 0, 0, m.idx
	for seq := 1; ; seq++ {
		if at := m.stopAt.Load(); m.class == stopper && at != 0 && time.Now().UnixNano() >= at {
			return
		}
		down := false
		if m.class == flapper {
			switch {
			case downLeft > 0:
				down, downLeft = true, downLeft-1
				if downLeft == 0 {
					upLeft = 3 + rng.IntN(4)
				}
			case upLeft > 1:
				upLeft--
			default: // the last up push before the next down episode
				upLeft, episode, downLeft = 0, episode+1, downReports
			}
		}
		ep := 0
		if down {
			ep = episode
		}
		rec := pushRec{seq: seq, msg: msgOf(m.name, seq, down, ep), down: down, episode: ep, sent: time.Now(), code: -1}
		if m.quiet {
			rec.msg = quietMsg
		}
		if live := c.live(); len(live) > 0 {
			r := live[rr%len(live)]
			rr++
			rec.replica = r.name
			rec.code = push(ctx, hc, r.pushAddr, m.token, down, rec.msg)
		}
		rec.answered = time.Now()
		if ctx.Err() != nil && rec.code <= 0 {
			return // cancelled mid-request: not an answer
		}
		m.pushes = append(m.pushes, rec)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// push sends one heartbeat and returns the answer's status code, 0 when
// none came (connection refused or reset by a killed replica, timeout).
func push(ctx context.Context, hc *http.Client, addr, tok string, down bool, msg string) int {
	q := url.Values{"msg": {msg}}
	if down {
		q.Set("status", "down")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+token.PushPathPrefix+tok+"?"+q.Encode(), nil)
	if err != nil {
		return 0
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}
