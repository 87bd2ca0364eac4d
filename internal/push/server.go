// Package push serves the push endpoint: POST or GET /api/push/{token}.
//
// A request is checked (method, body size, parameters), its token is looked
// up, and the heartbeat is handed to a Recorder, which writes it through the
// API. The answer is 200 only once that write succeeded. Every replica of the
// manager serves this endpoint; none of it needs leadership.
//
// The endpoint faces untrusted networks: every route sits behind the rate
// limits of limit.go, the listener caps concurrent connections, and the
// server bounds header size, body size and every phase of a request in time
// (docs/security.md).
package push

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"math"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/go-logr/logr"
	"golang.org/x/net/netutil"
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
	// MaxHeaderBytes caps request headers (the request line included, so
	// a URL too); larger ones get net/http's 431.
	MaxHeaderBytes = 16 << 10
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

// Relayer hands a heartbeat that changes nothing in status but its time
// (heartbeat.Relayable) to the leader, which holds it in memory; false: it
// was not taken and is recorded through the Recorder.
type Relayer interface {
	Relay(ctx context.Context, tok string, m *monitoringv1alpha1.PushMonitor, hb heartbeat.Heartbeat) bool
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
	// Limits are the per-token and per-address rate limits; zero: none.
	Limits Limits
	// MaxConns caps concurrent connections; 0: no cap.
	MaxConns int
	// MaxConnsPerAddr caps concurrent connections from one client address
	// (the connection's peer), so that one host cannot hold every slot of
	// MaxConns; over it a connection is closed at once. Peers in
	// Limits.TrustedProxies are exempt (they carry many clients). 0: no cap.
	MaxConnsPerAddr int
	// Relay, when set, takes relayable heartbeats before the Recorder.
	Relay Relayer
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
	limiter  *limiter
	handler  http.Handler // limiter, instrumented
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

// Handler is the HTTP handler of the push endpoint: every route behind the
// rate limits, every answer counted and timed in the push metrics. All
// handlers it returns share one set of buckets.
func (s *Server) Handler() http.Handler {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.handler == nil {
		s.limiter = newLimiter(s.opts.Limits, s.routes(), func() time.Time { return s.now() })
		s.handler = metrics.InstrumentPush(s.limiter)
	}
	return s.handler
}

func (s *Server) routes() http.Handler {
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
	opts := s.opts
	s.mu.Unlock()

	if opts.MaxConnsPerAddr > 0 {
		// Inside the global cap, so that refused connections never hold
		// one of its slots.
		ln = limitPerAddr(ln, opts.MaxConnsPerAddr, func(ip netip.Addr) bool {
			return inPrefixes(ip, opts.Limits.TrustedProxies)
		})
	}
	if opts.MaxConns > 0 {
		// Over the cap, connections wait in the kernel's backlog instead of
		// costing goroutines and memory here.
		ln = netutil.LimitListener(ln, opts.MaxConns)
	}
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		// Above recordTimeout, so that a 503 still reaches the client.
		WriteTimeout: 15 * time.Second,
		// Short, so that idle keep-alive connections do not hold slots of
		// the connection cap for long.
		IdleTimeout:    30 * time.Second,
		MaxHeaderBytes: MaxHeaderBytes,
		// net/http's own messages (TLS junk, bad requests) carry no token
		// but are noise from untrusted peers: dropped.
		ErrorLog: log.New(io.Discard, "", 0),
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

// servePush answers one push. The token is in the URL: nothing here logs
// the URL or the token, and no metric label carries it.
func (s *Server) servePush(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost && r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET, POST")
		writeJSON(w, http.StatusMethodNotAllowed, "method not allowed: use POST or GET")
		return
	}
	n, ok := s.drainBody(w, r)
	if !ok {
		return
	}
	if n > 0 && formBody(r) {
		// Pushes carry their data in the query; a form body (curl -d
		// status=down) would otherwise be answered 200 as an up push.
		writeJSON(w, http.StatusUnsupportedMediaType, "form bodies are not read: put status, msg and value in the query string")
		return
	}
	hb, err := s.parse(r)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, err.Error())
		return
	}

	switch out, allowed := s.deliver(r, hb); out {
	case outcomeUnknown:
		writeJSON(w, http.StatusNotFound, "unknown push token")
		return
	case outcomeMethod:
		w.Header().Set("Allow", allowHeader(allowed, http.MethodGet, http.MethodPost))
		writeJSON(w, http.StatusMethodNotAllowed, "method not allowed for this monitor (spec.allowedMethods)")
		return
	case outcomeUnavailable:
		unavailable(w)
		return
	}
	writeJSON(w, http.StatusOK, "")
}

// outcome is how a parsed push or ping ended; each route words its answer.
type outcome int

const (
	outcomeRecorded outcome = iota
	// outcomeUnknown: no monitor has the token (or it was deleted since).
	outcomeUnknown
	// outcomeMethod: the monitor's spec.allowedMethods exclude the method.
	outcomeMethod
	// outcomeUnavailable: the token could not be looked up or the
	// heartbeat not recorded; the client should retry.
	outcomeUnavailable
)

// deliver looks up the monitor of the request's token, checks its allowed
// methods and records hb. With outcomeMethod it returns the methods the
// monitor allows. Nothing here logs the token.
func (s *Server) deliver(r *http.Request, hb heartbeat.Heartbeat) (outcome, []string) {
	m, err := s.monitors.Lookup(r.Context(), r.PathValue("token"))
	if errors.Is(err, token.ErrUnknown) {
		return outcomeUnknown, nil
	}
	if err != nil {
		s.log.Error(err, "looking up push token")
		return outcomeUnavailable, nil
	}
	if allowed := m.Spec.AllowedMethods; len(allowed) > 0 && !slices.Contains(allowed, r.Method) {
		// Only now that the token is known valid: an unknown token is 404
		// whatever the method, so 405 cannot be used to probe for tokens.
		return outcomeMethod, allowed
	}
	ctx, cancel := context.WithTimeout(r.Context(), recordTimeout)
	defer cancel()
	if s.opts.Relay != nil && heartbeat.Relayable(m, hb) && s.opts.Relay.Relay(ctx, r.PathValue("token"), m, hb) {
		metrics.CountHeartbeat(hb.Status)
		return outcomeRecorded, nil
	}
	if err := s.recorder.Record(ctx, m, hb); err != nil {
		if apierrors.IsNotFound(err) || errors.Is(err, heartbeat.ErrMonitorReplaced) {
			// Deleted since the lookup: the same answer as any unknown token.
			return outcomeUnknown, nil
		}
		s.log.Error(err, "recording heartbeat", "namespace", m.Namespace, "name", m.Name)
		return outcomeUnavailable, nil
	}
	metrics.CountHeartbeat(hb.Status)
	return outcomeRecorded, nil
}

// allowHeader lists the monitor's allowed methods that the route serves,
// in the order served names them.
func allowHeader(allowed []string, served ...string) string {
	var out []string
	for _, m := range served {
		if slices.Contains(allowed, m) {
			out = append(out, m)
		}
	}
	return strings.Join(out, ", ")
}

// formBody reports whether the body is declared as an HTML form.
func formBody(r *http.Request) bool {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return err == nil && (mt == "application/x-www-form-urlencoded" || mt == "multipart/form-data")
}

// drainBody reads and discards the body (pushes carry their data in the
// query). It returns the body's length and whether the body was fine; when
// not, it has answered (413 when the body exceeds the cap).
func (s *Server) drainBody(w http.ResponseWriter, r *http.Request) (int64, bool) {
	if r.ContentLength > s.opts.MaxBodyBytes {
		writeJSON(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes", s.opts.MaxBodyBytes))
		return 0, false
	}
	n, err := io.Copy(io.Discard, http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		writeJSON(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes", s.opts.MaxBodyBytes))
		return n, false
	case err != nil:
		writeJSON(w, http.StatusBadRequest, "could not read request body")
		return n, false
	}
	return n, true
}

// parse reads status, msg and value (or ping, Uptime Kuma's name for it).
func (s *Server) parse(r *http.Request) (heartbeat.Heartbeat, error) {
	hb := heartbeat.Heartbeat{Time: s.now(), Status: monitoringv1alpha1.ReportedUp}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return hb, errors.New("malformed query string")
	}
	for _, k := range []string{"status", "msg", "value", "ping"} {
		// Which of two values counts would be a guess (proxies and
		// frameworks disagree): refused rather than guessed.
		if len(q[k]) > 1 {
			return hb, fmt.Errorf("parameter %s given more than once", k)
		}
	}
	switch st := strings.ToLower(q.Get("status")); st {
	case "", "up":
	case "down":
		hb.Status = monitoringv1alpha1.ReportedDown
	default:
		return hb, fmt.Errorf("invalid status %s: must be up or down", strconv.Quote(truncate(st, 32)))
	}
	hb.Message = CleanMessage(q.Get("msg"), s.opts.MaxMessageBytes)

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

// CleanMessage makes a client's message safe to store and to show: invalid
// UTF-8 and control characters (NUL, escape sequences that would drive the
// terminal of whoever runs kubectl) become U+FFFD, tabs and line breaks a
// space, and the result is cut to at most n bytes on a rune boundary.
func CleanMessage(msg string, n int) string {
	msg = strings.ToValidUTF8(msg, "\uFFFD")
	clean := strings.IndexFunc(msg, unicode.IsControl) < 0
	if !clean {
		msg = strings.Map(func(r rune) rune {
			switch {
			case r == '\t' || r == '\n' || r == '\r':
				return ' '
			case unicode.IsControl(r):
				return '\uFFFD'
			}
			return r
		}, msg)
	}
	return truncate(msg, n)
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

// writeJSON answers code with msg.
func writeJSON(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	if code == http.StatusOK {
		_, _ = w.Write(okBody)
		return
	}
	_ = json.NewEncoder(w).Encode(answer{OK: false, Msg: msg})
}

func unavailable(w http.ResponseWriter) {
	w.Header().Set("Retry-After", "1")
	writeJSON(w, http.StatusServiceUnavailable, "heartbeat could not be recorded; retry")
}
