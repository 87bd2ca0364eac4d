package push

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/go-logr/logr"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
	"github.com/pushmon/pushmon/internal/heartbeat"
)

type benchLookup struct {
	m *monitoringv1alpha1.PushMonitor
}

func (b benchLookup) Lookup(context.Context, string) (*monitoringv1alpha1.PushMonitor, error) {
	return b.m, nil
}

type benchRecorder struct{}

func (benchRecorder) Record(context.Context, *monitoringv1alpha1.PushMonitor, heartbeat.Heartbeat) error {
	return nil
}

// BenchmarkServePush is the handler's own cost per push (parsing, answer),
// without the network, the token index or the API.
func BenchmarkServePush(b *testing.B) {
	s := New(Options{}, benchLookup{m: &monitoringv1alpha1.PushMonitor{}}, benchRecorder{}, logr.Discard())
	h := s.Handler()
	req := httptest.NewRequest(http.MethodPost, "/api/push/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA?status=up&msg=ok&value=1.5", nil)
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatal(w.Code)
		}
	}
}
