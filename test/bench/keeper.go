package main

import (
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pushmon/pushmon/internal/token"
)

// keeper is the scale step's clients: each pushes its monitor once per
// interval from its first push on, as a job does from the minute it was
// deployed. The first pushes go a few at a time (first): each moves a
// monitor from Pending to Up, a transition the leader writes, so at
// 100,000 monitors they take many minutes, and a client that stopped after
// its first push would see its monitor Down long before the last one got
// its turn. A first push that was not answered 200 is retried at the
// client's next turn, as the job's next run would.
type keeper struct {
	addr     string
	toks     []string
	interval time.Duration
	clients  []*http.Client
	quiet    []atomic.Bool // stopped pushing (the expiring ones)
	steady   []bool        // past its first push; each client's own goroutine reads and writes it
	base     time.Time     // the clients' phases count from it
	done     atomic.Bool

	mu       sync.Mutex
	answered *sync.Cond
	t        *tally // the measurement's, nil between them
	from, to time.Time
	inFlight int // measured pushes not yet answered
}

func newKeeper(addr string, toks []string, interval time.Duration) *keeper {
	k := &keeper{addr: addr, toks: toks, interval: interval,
		clients: make([]*http.Client, len(toks)), quiet: make([]atomic.Bool, len(toks)),
		steady: make([]bool, len(toks)), base: time.Now()}
	k.answered = sync.NewCond(&k.mu)
	for i := range toks {
		k.clients[i] = clientFrom(clientIP(i), false)
	}
	return k
}

// start makes every monitor's first push, first at a time, and returns
// when all were made, with how many were not answered 200. Each client
// goes on pushing once per interval from its first push.
func (k *keeper) start(first int) int64 {
	var notOK atomic.Int64
	_ = parallel(len(k.toks), first, func(i int) error {
		at := time.Now()
		if code, err := k.post(i, at); err != nil || code != http.StatusOK {
			notOK.Add(1)
		}
		k.next(i, at)
		return nil
	})
	return notOK.Load()
}

// next schedules client i's next push after the one due at. Once past its
// first push, client i pushes at base + i/n of an interval + k intervals,
// as realistic() spreads its clients: however bunched the first pushes
// were, the steady state is n pushes per interval, evenly. The push after
// the first comes between a quarter and one and a quarter intervals later,
// well within timeout + grace.
func (k *keeper) next(i int, at time.Time) {
	due := at.Add(k.interval)
	if !k.steady[i] {
		k.steady[i] = true
		phase := k.base.Add(time.Duration(i) * k.interval / time.Duration(len(k.toks)))
		turns := at.Add(k.interval/4).Sub(phase) / k.interval
		if due = phase.Add(turns * k.interval); due.Before(at.Add(k.interval / 4)) {
			due = due.Add(k.interval)
		}
	}
	time.AfterFunc(time.Until(due), func() {
		if k.done.Load() || k.quiet[i].Load() {
			return
		}
		_, _ = k.post(i, due)
		k.next(i, due)
	})
}

// post pushes client i's token; one due (at) inside a measurement is
// counted in it, its latency from at.
func (k *keeper) post(i int, at time.Time) (int, error) {
	k.mu.Lock()
	t := k.t
	measured := t != nil && !at.Before(k.from) && at.Before(k.to)
	if measured {
		k.inFlight++
	}
	k.mu.Unlock()
	code, err := post(k.clients[i], "http://"+k.addr+token.PushPathPrefix+k.toks[i]+benchQuery)
	if measured {
		now := time.Now()
		t.add(code, err, now.Sub(at), now)
		k.mu.Lock()
		k.inFlight--
		k.answered.Broadcast()
		k.mu.Unlock()
	}
	return code, err
}

// measure counts the pushes due in [now+warmup, now+warmup+d) and returns
// once all of them were answered. mark is called at the measurement's
// start and after its last answer.
func (k *keeper) measure(warmup, d time.Duration, mark func(start bool)) result {
	t := newTally()
	from := time.Now().Add(warmup)
	k.mu.Lock()
	k.t, k.from, k.to = t, from, from.Add(d)
	k.mu.Unlock()
	time.Sleep(time.Until(from))
	mark(true)
	// A push due just before the end may start a moment after it: a
	// second's slack before waiting for the answers in flight.
	time.Sleep(time.Until(from.Add(d + time.Second)))
	k.mu.Lock()
	for k.inFlight > 0 {
		k.answered.Wait()
	}
	k.t = nil
	k.mu.Unlock()
	mark(false)
	return t.result(from)
}

// silence stops clients [lo, hi) for good.
func (k *keeper) silence(lo, hi int) {
	for i := lo; i < hi; i++ {
		k.quiet[i].Store(true)
	}
}

// stop ends every client; pushes in flight still finish.
func (k *keeper) stop() { k.done.Store(true) }
