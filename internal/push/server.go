// Package push serves the push endpoint: POST or GET /api/push/{token}.
//
// A request is checked (method, body size, parameters), its token is looked
// up, and the heartbeat is handed to a Recorder, which writes it through the
// API. The answer is 200 only once that write succeeded. Every replica of the
// manager serves this endpoint; none of it needs leadership.
package push

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
	"github.com/pushmon/pushmon/internal/heartbeat"
	"github.com/pushmon/pushmon/internal/metrics"
	"github.com/pushmon/pushmon/internal/token"
)

// Defaults for Options.
const (
	DefaultMaxBodyBytes    = 16 << 10
	DefaultMaxMessageBytes = 1024
	DefaultShutdownTimeout = 10 * time.Second
)

// recordTimeout bounds how long a push waits for its heartbeat to be
// written before it answers 503.
const recordTimeout = 5 * time.Second

// MonitorLookup finds the monitor a token belongs to; token.ErrUnknown for
// any token that does not lead to one.
type MonitorLookup interface {
	Lookup(ctx context.Context, tok string) (*monitoringv1alpha1.PushMonitor, error)
}

// Recorder stores a heartbeat so that the leader sees it.
type Recorder interface {
	Record(ctx context.Context, m *monitoringv1alpha1.PushMonitor, hb heartbeat.Heartbeat) error
}

// Options configure a Server.
type Options struct {
	// Addr is the listen address, e.g. ":8082".
	Addr string
	// MaxBodyBytes caps request bodies; larger ones get 413.
	MaxBodyBytes int64
	// MaxMessageBytes caps msg; longer messages are truncated, not refused.
	MaxMessageBytes int
	// ShutdownTimeout bounds how long in-flight requests may finish.
	ShutdownTimeout time.Duration
}

// Server is the push endpoint. It implements manager.Runnable and
// manager.LeaderElectionRunnable (it runs on every replica).
type Server struct {
	opts     Options
	monitors MonitorLookup
	recorder Recorder
	log      logr.Logger
	now      func() time.Time

	mu       sync.Mutex
	listener net.Addr
}

// New returns a push Server.
func New(opts Options, monitors MonitorLookup, recorder Recorder, log logr.Logger) *Server {
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if opts.MaxMessageBytes <= 0 {
		opts.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if opts.ShutdownTimeout <= 0 {
		opts.ShutdownTimeout = DefaultShutdownTimeout
	}
	return &Server{opts: opts, monitors: monitors, recorder: recorder, log: log, now: heartbeat.Now}
}

// NeedLeaderElection is false: every replica serves pushes.
func (s *Server) NeedLeaderElection() bool { return false }

// Handler is the HTTP handler of the push endpoint.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc(token.PushPathPrefix+"{token}", s.servePush)
	mux.HandleFunc(PingPathPrefix+"{token}", s.servePing)
	mux.HandleFunc(PingPathPrefix+"{token}/{signal}", s.servePing)
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusNotFound, "not found")
	})
	return mux
}

// Start serves until ctx is cancelled, then shuts down gracefully.
func (s *Server) Start(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.opts.Addr)
	if err != nil {
		return fmt.Errorf("push endpoint: listening on %s: %w", s.opts.Addr, err)
	}
	s.mu.Lock()
	s.listener = ln.Addr()
	s.mu.Unlock()

	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      15 * time.Second,
		IdleTimeout:       90 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          nil,
	}
	s.log.Info("serving push endpoint", "address", ln.Addr().String())

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("push endpoint: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), s.opts.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("push endpoint: shutting down: %w", err)
	}
	return nil
}

// Addr is the address the server listens on, or "" before it does.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.listener == nil {
		return ""
	}
	return s.listener.String()
}

// ReadyCheck is a healthz.Checker: ready once the endpoint listens.
func (s *Server) ReadyCheck(_ *http.Request) error {
	if s.Addr() == "" {
		return errors.New("push endpoint not listening yet")
	}
	return nil
}

// servePush handles one push and reports its answer and duration. The token
// is in the URL: nothing here logs the URL or the token, and no metric label
// carries it.
func (s *Server) servePush(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	code := s.handlePush(w, r)
	metrics.ObservePush(code, time.Since(start))
}

// handlePush answers one push and returns the status code it answered.
func (s *Server) handlePush(w http.ResponseWriter, r *http.Request) int {
	if r.Method != http.MethodPost && r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET, POST")
		return writeJSON(w, http.StatusMethodNotAllowed, "method not allowed: use POST or GET")
	}
	if code := s.drainBody(w, r); code != 0 {
		return code
	}
	hb, err := s.parse(r)
	if err != nil {
		return writeJSON(w, http.StatusBadRequest, err.Error())
	}

	m, err := s.monitors.Lookup(r.Context(), r.PathValue("token"))
	if errors.Is(err, token.ErrUnknown) {
		return writeJSON(w, http.StatusNotFound, "unknown push token")
	}
	if err != nil {
		s.log.Error(err, "looking up push token")
		return unavailable(w)
	}
	ctx, cancel := context.WithTimeout(r.Context(), recordTimeout)
	defer cancel()
	if err := s.recorder.Record(ctx, m, hb); err != nil {
		if apierrors.IsNotFound(err) || errors.Is(err, heartbeat.ErrMonitorReplaced) {
			// Deleted since the lookup: the same answer as any unknown token.
			return writeJSON(w, http.StatusNotFound, "unknown push token")
		}
		s.log.Error(err, "recording heartbeat", "namespace", m.Namespace, "name", m.Name)
		return unavailable(w)
	}
	metrics.CountHeartbeat(hb.Status)
	return writeJSON(w, http.StatusOK, "")
}

// drainBody reads and discards the body (pushes carry their data in the
// query). It returns 0 when the body was fine, else the code it answered
// (413 when the body exceeds the cap).
func (s *Server) drainBody(w http.ResponseWriter, r *http.Request) int {
	if r.ContentLength > s.opts.MaxBodyBytes {
		return writeJSON(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes", s.opts.MaxBodyBytes))
	}
	_, err := io.Copy(io.Discard, http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return writeJSON(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes", s.opts.MaxBodyBytes))
	}
	if err != nil {
		return writeJSON(w, http.StatusBadRequest, "could not read request body")
	}
	return 0
}

// parse reads status, msg and value (or ping, Uptime Kuma's name for it).
func (s *Server) parse(r *http.Request) (heartbeat.Heartbeat, error) {
	hb := heartbeat.Heartbeat{Time: s.now(), Status: monitoringv1alpha1.ReportedUp}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return hb, errors.New("malformed query string")
	}
	switch st := strings.ToLower(q.Get("status")); st {
	case "", "up":
	case "down":
		hb.Status = monitoringv1alpha1.ReportedDown
	default:
		return hb, fmt.Errorf("invalid status %s: must be up or down", strconv.Quote(truncate(st, 32)))
	}
	hb.Message = truncate(strings.ToValidUTF8(q.Get("msg"), "\uFFFD"), s.opts.MaxMessageBytes)

	raw, name := q.Get("value"), "value"
	if raw == "" {
		// Uptime Kuma clients send ping= (often empty) for the same thing.
		raw, name = q.Get("ping"), "ping"
	}
	if raw != "" {
		f, err := strconv.ParseFloat(raw, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return hb, fmt.Errorf("invalid %s %s: must be a finite number", name, strconv.Quote(truncate(raw, 32)))
		}
		hb.Value = strconv.FormatFloat(f, 'g', -1, 64)
	}
	return hb, nil
}

// truncate cuts s to at most n bytes without splitting a UTF-8 sequence.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

type answer struct {
	OK  bool   `json:"ok"`
	Msg string `json:"msg,omitempty"`
}

// okBody is the answer to every accepted push, encoded once.
var okBody = []byte(`{"ok":true}` + "\n")

// writeJSON answers code with msg and returns code.
func writeJSON(w http.ResponseWriter, code int, msg string) int {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	if code == http.StatusOK {
		_, _ = w.Write(okBody)
		return code
	}
	_ = json.NewEncoder(w).Encode(answer{OK: false, Msg: msg})
	return code
}

func unavailable(w http.ResponseWriter) int {
	w.Header().Set("Retry-After", "1")
	return writeJSON(w, http.StatusServiceUnavailable, "heartbeat could not be recorded; retry")
}
