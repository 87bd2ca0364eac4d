package relay

import (
	"context"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
	"github.com/pushmon/pushmon/internal/heartbeat"
	"github.com/pushmon/pushmon/internal/token"
)

const (
	tokUp      = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	tokDown    = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	tokUnknown = "ccccccccccccccccccccccccccccccccccccccccccc"
)

// monitors is the leader's view: one monitor Up, one Down.
type monitors map[string]*monitoringv1alpha1.PushMonitor

func (ms monitors) Lookup(_ context.Context, tok string) (*monitoringv1alpha1.PushMonitor, error) {
	if m, ok := ms[tok]; ok {
		return m, nil
	}
	return nil, token.ErrUnknown
}

func monitorIn(name string, state monitoringv1alpha1.MonitorState) *monitoringv1alpha1.PushMonitor {
	at := metav1.NewMicroTime(time.Now().Add(-time.Second))
	return &monitoringv1alpha1.PushMonitor{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, UID: types.UID("uid-" + name)},
		Status: monitoringv1alpha1.PushMonitorStatus{State: state, LastHeartbeatTime: &at,
			LastReportedStatus: monitoringv1alpha1.ReportedUp, LastMessage: "ok"},
	}
}

// leaderAndReplica runs a leader's relay endpoint and a replica's
// forwarder posting to it.
func leaderAndReplica(t *testing.T) (leaderLive *heartbeat.Live, fwd *Forwarder, ms monitors) {
	t.Helper()
	ms = monitors{tokUp: monitorIn("up", monitoringv1alpha1.StateUp), tokDown: monitorIn("down", monitoringv1alpha1.StateDown)}
	leaderLive = heartbeat.NewLive()
	leaderLive.Lead(true)
	srv := &Server{Live: leaderLive, Monitors: ms, Log: logr.Discard()}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	fwd = &Forwarder{Live: heartbeat.NewLive(), Leader: func() string { return strings.TrimPrefix(ts.URL, "http://") }, Log: logr.Discard()}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = fwd.Start(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return leaderLive, fwd, ms
}

func up(msg string) heartbeat.Heartbeat {
	return heartbeat.Heartbeat{Time: heartbeat.Now(), Status: monitoringv1alpha1.ReportedUp, Message: msg}
}

// TestRelayHoldsOnlyWhatChangesNothing: the leader holds a beat of a monitor
// it sees Up, refuses one of a monitor it sees Down (the replica writes it
// instead) and one whose token it does not know.
func TestRelayHoldsOnlyWhatChangesNothing(t *testing.T) {
	g := NewWithT(t)
	live, fwd, ms := leaderAndReplica(t)
	ctx := context.Background()

	g.Expect(fwd.Relay(ctx, tokUp, ms[tokUp], up("ok"))).To(BeTrue())
	b, ok := live.Newer(ms[tokUp])
	g.Expect(ok).To(BeTrue())
	g.Expect(b.UID).To(Equal(ms[tokUp].UID))

	// The replica's cache said Up; the leader's says Down: not held.
	g.Expect(fwd.Relay(ctx, tokDown, monitorIn("down", monitoringv1alpha1.StateUp), up("ok"))).To(BeFalse())
	_, ok = live.Newer(ms[tokDown])
	g.Expect(ok).To(BeFalse())
	g.Expect(fwd.Relay(ctx, tokUnknown, monitorIn("x", monitoringv1alpha1.StateUp), up("ok"))).To(BeFalse())
	// A new message says more than status: the leader refuses it too.
	g.Expect(fwd.Relay(ctx, tokUp, ms[tokUp], up("something new"))).To(BeFalse())
}

// TestRelayBatchesConcurrentPushes: many pushes at once all get their answer
// (through batches), each held.
func TestRelayBatchesConcurrentPushes(t *testing.T) {
	g := NewWithT(t)
	live, fwd, ms := leaderAndReplica(t)
	// What is tested is that every push of a batch gets its answer, not
	// how fast: under -race on a loaded machine 2,000 pushes outlast the
	// default budget of 250 ms (and fall back, which is correct too).
	fwd.Budget = time.Minute
	var wg sync.WaitGroup
	var mu sync.Mutex
	refused := 0
	for range 2000 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if !fwd.Relay(context.Background(), tokUp, ms[tokUp], up("ok")) {
				mu.Lock()
				refused++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	g.Expect(refused).To(BeZero())
	g.Expect(live.Len()).To(Equal(1))
}

// TestRelayFallsBackWhenTheLeaderIsGone: no leader known, a leader that does
// not answer, or one that no longer leads: not held, at once or within the
// budget, so the push is written instead.
func TestRelayFallsBackWhenTheLeaderIsGone(t *testing.T) {
	g := NewWithT(t)
	live, fwd, ms := leaderAndReplica(t)
	ctx := context.Background()

	live.Lead(false) // deposed: answers 503
	g.Expect(fwd.Relay(ctx, tokUp, ms[tokUp], up("ok"))).To(BeFalse())
	// Backing off: refused at once, without a request.
	start := time.Now()
	g.Expect(fwd.Relay(ctx, tokUp, ms[tokUp], up("ok"))).To(BeFalse())
	g.Expect(time.Since(start)).To(BeNumerically("<", 50*time.Millisecond))

	fwd.Leader = func() string { return "" }
	g.Expect(fwd.Relay(ctx, tokUp, ms[tokUp], up("ok"))).To(BeFalse())

	// A replica that leads holds beats itself.
	fwd.Live.Lead(true)
	g.Expect(fwd.Relay(ctx, tokUp, ms[tokUp], up("ok"))).To(BeTrue())
	_, ok := fwd.Live.Newer(ms[tokUp])
	g.Expect(ok).To(BeTrue())
}

func TestBackoffDoublesToItsCap(t *testing.T) {
	g := NewWithT(t)
	g.Expect(backoffAfter(1)).To(Equal(time.Second))
	g.Expect(backoffAfter(2)).To(Equal(2 * time.Second))
	g.Expect(backoffAfter(5)).To(Equal(16 * time.Second))
	g.Expect(backoffAfter(6)).To(Equal(30 * time.Second))
	g.Expect(backoffAfter(100)).To(Equal(30 * time.Second))
}
