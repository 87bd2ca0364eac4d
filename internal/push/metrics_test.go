package push

import (
	"errors"
	"net/http/httptest"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/pushmon/pushmon/internal/metrics"
)

// TestPushMetrics: every answer is counted by code and timed; only accepted
// heartbeats count as heartbeats, by reported status; no series carries
// the token.
func TestPushMetrics(t *testing.T) {
	g := NewWithT(t)
	type counts struct{ requests, heartbeats map[string]float64 }
	read := func() counts {
		c := counts{requests: map[string]float64{}, heartbeats: map[string]float64{}}
		mfs, err := ctrlmetrics.Registry.Gather()
		g.Expect(err).NotTo(HaveOccurred())
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				switch mf.GetName() {
				case metrics.PushRequestsName:
					c.requests[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
				case metrics.HeartbeatsName:
					c.heartbeats[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
				case metrics.PushDurationName:
					c.requests["observed"] = float64(m.GetHistogram().GetSampleCount())
				}
			}
		}
		return c
	}
	ok, failing := newFixture(nil, nil), newFixture(nil, errors.New("etcdserver: request timed out"))
	before := read()
	for _, req := range []struct {
		f      *fixture
		method string
		target string
	}{
		{ok, "POST", "/api/push/" + testToken},
		{ok, "GET", "/api/push/" + testToken + "?status=up"},
		{ok, "POST", "/api/push/" + testToken + "?status=down&msg=x"},
		{ok, "POST", "/api/push/" + otherToken},
		{ok, "POST", "/api/push/" + testToken + "?status=sideways"},
		{ok, "PUT", "/api/push/" + testToken},
		{failing, "POST", "/api/push/" + testToken},
	} {
		w := httptest.NewRecorder()
		req.f.srv.Handler().ServeHTTP(w, httptest.NewRequest(req.method, req.target, nil))
	}
	after := read()
	g.Expect(after.requests["200"] - before.requests["200"]).To(Equal(3.0))
	g.Expect(after.requests["404"] - before.requests["404"]).To(Equal(1.0))
	g.Expect(after.requests["400"] - before.requests["400"]).To(Equal(1.0))
	g.Expect(after.requests["405"] - before.requests["405"]).To(Equal(1.0))
	g.Expect(after.requests["503"] - before.requests["503"]).To(Equal(1.0))
	g.Expect(after.requests["observed"] - before.requests["observed"]).To(Equal(7.0))
	g.Expect(after.heartbeats["up"] - before.heartbeats["up"]).To(Equal(2.0))
	g.Expect(after.heartbeats["down"] - before.heartbeats["down"]).To(Equal(1.0))

	// Every code the endpoint answers is pre-created (a series exists before
	// its first answer); no series names a token.
	var text strings.Builder
	var codes []string
	mfs, err := ctrlmetrics.Registry.Gather()
	g.Expect(err).NotTo(HaveOccurred())
	for _, mf := range mfs {
		text.WriteString(mf.String())
		if mf.GetName() == metrics.PushRequestsName {
			for _, m := range mf.GetMetric() {
				codes = append(codes, m.GetLabel()[0].GetValue())
			}
		}
	}
	g.Expect(codes).To(ContainElements("200", "400", "404", "405", "413", "415", "429", "503"))
	g.Expect(text.String()).NotTo(ContainSubstring(testToken))
	g.Expect(text.String()).NotTo(ContainSubstring(otherToken))
}
