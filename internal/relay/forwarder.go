package relay

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/types"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
	"github.com/pushmon/pushmon/internal/heartbeat"
	"github.com/pushmon/pushmon/internal/metrics"
)

// senders is how many batches are in flight to the leader at once; pushes
// that arrive while they are busy queue up and leave in the next batches.
const senders = 4

// A replica stops relaying for a while after the leader failed to answer,
// so that pushes do not each wait out a dead or unreachable address: a
// second after the first failure, doubling with each failure in a row up to
// maxBackoff (a relay port a NetworkPolicy blocks costs one batch's wait per
// maxBackoff, not per push).
const (
	firstBackoff = time.Second
	maxBackoff   = 30 * time.Second
)

// Forwarder hands relayable pushes to the leader: into this process's own
// Live when it leads, else in batches to the address Leader returns. It
// implements push.Relayer and manager.Runnable (its senders).
type Forwarder struct {
	Live *heartbeat.Live
	// Leader returns the leader's relay address (host:port), "" when none
	// is known.
	Leader func() string
	// Budget bounds how long a push waits; DefaultBudget when 0.
	Budget time.Duration
	Log    logr.Logger

	once   sync.Once
	queue  chan *pending
	client *http.Client

	mu        sync.Mutex
	failedAt  time.Time
	failedFor string
	failures  int // in a row, for failedFor
}

type pending struct {
	addr string
	beat wireBeat
	done chan bool // buffered: a sender never blocks on a push that gave up
}

func (f *Forwarder) init() {
	f.once.Do(func() {
		f.queue = make(chan *pending, 4*MaxBatch)
		f.client = &http.Client{
			Timeout: 2 * time.Second,
			Transport: &http.Transport{
				DialContext:         (&net.Dialer{Timeout: time.Second, KeepAlive: 30 * time.Second}).DialContext,
				MaxIdleConnsPerHost: senders,
				IdleConnTimeout:     time.Minute,
			},
		}
	})
}

// NeedLeaderElection is false: every replica relays.
func (f *Forwarder) NeedLeaderElection() bool { return false }

// Start runs the senders until ctx ends.
func (f *Forwarder) Start(ctx context.Context) error {
	f.init()
	var wg sync.WaitGroup
	for range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f.send(ctx)
		}()
	}
	wg.Wait()
	return nil
}

// Relay reports whether the leader holds hb, a push to m with token tok;
// false means it was not taken and must be recorded otherwise.
func (f *Forwarder) Relay(ctx context.Context, tok string, m *monitoringv1alpha1.PushMonitor, hb heartbeat.Heartbeat) bool {
	held := f.relay(ctx, tok, m, hb)
	if held {
		metrics.CountRelayed(1, 0)
	} else {
		metrics.CountRelayed(0, 1)
	}
	return held
}

func (f *Forwarder) relay(ctx context.Context, tok string, m *monitoringv1alpha1.PushMonitor, hb heartbeat.Heartbeat) bool {
	f.init()
	if f.Live.Leading() {
		return f.Live.Put(types.NamespacedName{Namespace: m.Namespace, Name: m.Name},
			heartbeat.Beat{UID: m.UID, Time: hb.Time, Message: hb.Message, Value: hb.Value, Ends: heartbeat.Ends(m)})
	}
	addr := ""
	if f.Leader != nil {
		addr = f.Leader()
	}
	if addr == "" || f.backingOff(addr) {
		return false
	}
	p := &pending{addr: addr, beat: wireBeat{Token: tok, Time: hb.Time, Message: hb.Message, Value: hb.Value}, done: make(chan bool, 1)}
	budget := f.Budget
	if budget <= 0 {
		budget = DefaultBudget
	}
	timer := time.NewTimer(budget)
	defer timer.Stop()
	select {
	case f.queue <- p:
	default:
		return false // the leader does not keep up: write instead
	}
	select {
	case held := <-p.done:
		return held
	case <-timer.C:
		return false
	case <-ctx.Done():
		return false
	}
}

func (f *Forwarder) backingOff(addr string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.failedFor == addr && f.failures > 0 && time.Since(f.failedAt) < backoffAfter(f.failures)
}

// backoffAfter is how long to stop relaying after n failures in a row.
func backoffAfter(n int) time.Duration {
	d := firstBackoff
	for i := 1; i < n && d < maxBackoff; i++ {
		d *= 2
	}
	return min(d, maxBackoff)
}

// answered records how a post to addr went.
func (f *Forwarder) answered(addr string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case err == nil:
		if f.failedFor == addr {
			f.failures = 0
		}
	case f.failedFor == addr:
		f.failures++
		f.failedAt = time.Now()
	default:
		f.failedFor, f.failures, f.failedAt = addr, 1, time.Now()
	}
}

// send takes what is queued, up to MaxBatch beats for one address, posts it
// and answers each push.
func (f *Forwarder) send(ctx context.Context) {
	for {
		var first *pending
		select {
		case <-ctx.Done():
			return
		case first = <-f.queue:
		}
		batch := []*pending{first}
	fill:
		for len(batch) < MaxBatch {
			select {
			case p := <-f.queue:
				if p.addr != first.addr {
					p.done <- false // the leader changed meanwhile
					continue
				}
				batch = append(batch, p)
			default:
				break fill
			}
		}
		held, err := f.post(ctx, first.addr, batch)
		f.answered(first.addr, err)
		if err != nil {
			f.Log.V(1).Info("relaying to the leader failed; recording through the API", "leader", first.addr, "error", err.Error())
		}
		for i, p := range batch {
			p.done <- err == nil && i < len(held) && held[i]
		}
	}
}

func (f *Forwarder) post(ctx context.Context, addr string, batch []*pending) ([]bool, error) {
	req := wireRequest{Beats: make([]wireBeat, len(batch))}
	for i, p := range batch {
		req.Beats[i] = p.beat
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	r, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+Path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	r.Header.Set("Content-Type", "application/json")
	resp, err := f.client.Do(r)
	if err != nil {
		// The error names the address and the path only: the tokens are in
		// the body.
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("the leader answered %d", resp.StatusCode)
	}
	var ans wireAnswer
	if err := json.NewDecoder(resp.Body).Decode(&ans); err != nil {
		return nil, fmt.Errorf("reading the leader's answer: %w", err)
	}
	return ans.Held, nil
}
