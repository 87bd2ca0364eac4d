package push

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
	"github.com/pushmon/pushmon/internal/heartbeat"
)

// stuckRecorder never finishes a write on its own, as an API server that
// accepted the connection and does not answer: Record returns only when
// its context ends.
type stuckRecorder struct{ deadline chan time.Time }

func (s *stuckRecorder) Record(ctx context.Context, _ *monitoringv1alpha1.PushMonitor, _ heartbeat.Heartbeat) error {
	d, _ := ctx.Deadline()
	s.deadline <- d
	<-ctx.Done()
	return ctx.Err()
}

// A push whose heartbeat cannot be written is answered 503 (with
// Retry-After) once the 5 s record bound has passed: not 200, not after the
// client gave up, and not after the longer server timeouts.
func TestRecordIsBounded(t *testing.T) {
	g := NewWithT(t)
	rec := &stuckRecorder{deadline: make(chan time.Time, 1)}
	srv := New(Options{}, &fakeLookup{}, rec, logr.Discard())
	start := time.Now()
	w := httptest.NewRecorder()
	srv.Handler().ServeHTTP(w, httptest.NewRequest(http.MethodPost, "http://push.example/api/push/"+testToken, nil))
	took := time.Since(start)

	g.Expect(w.Code).To(Equal(http.StatusServiceUnavailable))
	g.Expect(w.Header().Get("Retry-After")).To(Equal("1"))
	var deadline time.Time
	g.Expect(rec.deadline).To(Receive(&deadline))
	g.Expect(deadline).To(BeTemporally("~", start.Add(recordTimeout), 500*time.Millisecond), "Record gets the record bound as its deadline")
	g.Expect(took).To(BeNumerically(">=", recordTimeout), "the answer waited for the bound")
	g.Expect(took).To(BeNumerically("<", recordTimeout+2*time.Second), "and not much longer")
}
