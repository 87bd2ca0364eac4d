package relay

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/types"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
	"github.com/pushmon/pushmon/internal/heartbeat"
)

// MonitorLookup finds the monitor a token belongs to (token.Index).
type MonitorLookup interface {
	Lookup(ctx context.Context, tok string) (*monitoringv1alpha1.PushMonitor, error)
}

// Server is the leader's relay endpoint. It runs on every replica (a
// replica that does not lead answers 503) so that a new leader needs no new
// listener.
type Server struct {
	Addr     string
	Live     *heartbeat.Live
	Monitors MonitorLookup
	Log      logr.Logger

	mu       sync.Mutex
	listener net.Addr
}

// NeedLeaderElection is false: every replica listens.
func (s *Server) NeedLeaderElection() bool { return false }

// ListenAddr is where the server listens once started ("" before).
func (s *Server) ListenAddr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.listener == nil {
		return ""
	}
	return s.listener.String()
}

// Start serves until ctx ends.
func (s *Server) Start(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.Addr)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.listener = ln.Addr()
	s.mu.Unlock()
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(shutdown); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		return nil
	}
}

// Handler serves the relay endpoint.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+Path, s.serveBeats)
	return mux
}

// serveBeats takes a batch: each beat whose token leads to a monitor that
// may hold it (heartbeat.Relayable, as this leader's cache shows it) is kept
// in Live; the answer says which were.
func (s *Server) serveBeats(w http.ResponseWriter, r *http.Request) {
	if !s.Live.Leading() {
		http.Error(w, "not the leader", http.StatusServiceUnavailable)
		return
	}
	var req wireRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxRequestBytes)).Decode(&req); err != nil || len(req.Beats) > MaxBatch {
		http.Error(w, "malformed batch", http.StatusBadRequest)
		return
	}
	ans := wireAnswer{Held: make([]bool, len(req.Beats))}
	for i, b := range req.Beats {
		m, err := s.Monitors.Lookup(r.Context(), b.Token)
		if err != nil {
			continue // unknown, or not looked up: the replica records it
		}
		hb := heartbeat.Heartbeat{Time: b.Time, Status: monitoringv1alpha1.ReportedUp, Message: b.Message, Value: b.Value}
		if !heartbeat.Relayable(m, hb) {
			continue
		}
		ans.Held[i] = s.Live.Put(types.NamespacedName{Namespace: m.Namespace, Name: m.Name},
			heartbeat.Beat{UID: m.UID, Time: b.Time, Message: b.Message, Value: b.Value, Ends: heartbeat.Ends(m)})
	}
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(ans); err != nil {
		s.Log.V(1).Info("answering a relay batch", "error", err.Error())
	}
}
