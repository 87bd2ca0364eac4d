// Package dashboard serves pushmon's read-only web dashboard: every monitor
// the manager caches, with its run and transition history and uptime. It
// reads the manager's cache only, so every replica serves it and it never
// writes to the API. It is off the push port, bound by default for
// kubectl port-forward (docs/dashboard.md).
package dashboard

import (
	"context"
	"embed"
	"errors"
	"html/template"
	"net"
	"net/http"
	"time"

	"github.com/go-logr/logr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// DefaultAddr is where the dashboard listens by default: the pod's
// loopback, which kubectl port-forward reaches and nothing else does.
const DefaultAddr = "127.0.0.1:8084"

//go:embed assets templates
var files embed.FS

// Server is the dashboard, a manager runnable on every replica.
type Server struct {
	// Addr is the listen address.
	Addr string
	// Reader lists PushMonitors: the manager's cache.
	Reader client.Reader
	// Log is the dashboard's logger.
	Log logr.Logger
	// Now is the clock; time.Now when nil.
	Now func() time.Time

	tmpl *template.Template
	// addr is where it listens once started.
	addr chan net.Addr
}

// New makes a Server.
func New(addr string, reader client.Reader, log logr.Logger) *Server {
	return &Server{Addr: addr, Reader: reader, Log: log, addr: make(chan net.Addr, 1)}
}

// NeedLeaderElection is false: every replica serves the dashboard from its
// own cache.
func (s *Server) NeedLeaderElection() bool { return false }

// ListenAddr is where the server listens, once Start bound it.
func (s *Server) ListenAddr(ctx context.Context) (net.Addr, error) {
	select {
	case a := <-s.addr:
		s.addr <- a
		return a, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Start serves until ctx ends.
func (s *Server) Start(ctx context.Context) error {
	h, err := s.Handler()
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", s.Addr)
	if err != nil {
		// Not fatal: the push endpoint and the reconciler must not stop for
		// a read-only page, e.g. when replicas share a host and so the
		// default loopback port (make bench, test/ha, make chaos).
		s.Log.Error(err, "the dashboard is off: cannot listen", "address", s.Addr)
		<-ctx.Done()
		return nil
	}
	s.addr <- ln.Addr()
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       time.Minute,
		MaxHeaderBytes:    16 << 10,
	}
	s.Log.Info("serving the dashboard", "address", ln.Addr().String())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil {
		return err
	}
	if err := <-done; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func (s *Server) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Handler is the dashboard's HTTP handler.
func (s *Server) Handler() (http.Handler, error) {
	if s.tmpl == nil {
		t, err := template.New("").Funcs(funcs).ParseFS(files, "templates/*.html", "templates/*.svg")
		if err != nil {
			return nil, err
		}
		s.tmpl = t
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.list)
	mux.HandleFunc("GET /monitors/{namespace}/{name}", s.detail)
	mux.Handle("GET /assets/", http.FileServerFS(files))
	// The public part: what a monitor that opts in shows to anyone.
	mux.HandleFunc("GET /status", s.status)
	mux.HandleFunc("GET /badge/{file}", s.badge)
	// No icon: an empty answer keeps browsers from logging a 404.
	mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	return secureHeaders(mux), nil
}

// secureHeaders: the pages load nothing from elsewhere and run no script,
// and say so to the browser; nor may another site frame them.
func secureHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; frame-ancestors 'none'")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Referrer-Policy", "no-referrer")
		h.ServeHTTP(w, r)
	})
}
