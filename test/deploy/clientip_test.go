package deploy

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
	"github.com/pushmon/pushmon/internal/push"
	"github.com/pushmon/pushmon/internal/token"
)

// unknownTokens answers every token as unknown: the limits come first.
type unknownTokens struct{}

func (unknownTokens) Lookup(context.Context, string) (*monitoringv1alpha1.PushMonitor, error) {
	return nil, token.ErrUnknown
}

// TestChartProxySettings: with the proxy settings the chart passes when it
// exposes the push endpoint (Ingress, HTTPRoute), clients arriving through
// one ingress pod get a rate-limit bucket each; without them (the chart's
// defaults, no route) they all share the ingress pod's bucket. A client that
// connects directly cannot choose its bucket by sending the header.
//
// The push server is built from the flags of the chart's rendered
// Deployment (header and trusted proxies), with the manager's default
// per-address burst; the refill rate is lowered so that no bucket refills
// while the test runs.
func TestChartProxySettings(t *testing.T) {
	const ingressPod = "10.244.1.7:41000" // in the default trusted ranges and in httproute.yaml's
	for _, c := range []struct {
		name     string
		args     []string
		separate bool
	}{
		{"ingress", []string{"-f", valuesFile("ingress-tls")}, true},
		{"httproute", []string{"-f", valuesFile("httproute")}, true},
		{"no route", nil, false},
		{"ingress with clientIP off", []string{"-f", valuesFile("ingress-tls"), "--set", "push.clientIP.enabled=false"}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			g := NewWithT(t)
			_, objs := renderChart(t, chartRelease, chartNamespace, c.args...)
			_, mgr := controller(t, objs)
			limits := push.Limits{IPRate: 1e-6, IPBurst: push.DefaultIPBurst}
			header, hasHeader := flagValue(mgr.Args, "push-client-ip-header")
			proxies, hasProxies := flagValue(mgr.Args, "push-trusted-proxies")
			g.Expect(hasHeader).To(Equal(c.separate))
			g.Expect(hasProxies).To(Equal(c.separate))
			limits.ClientIPHeader = header
			for _, p := range strings.Split(proxies, ",") {
				if p != "" {
					prefix, err := netip.ParsePrefix(p)
					g.Expect(err).NotTo(HaveOccurred())
					limits.TrustedProxies = append(limits.TrustedProxies, prefix)
				}
			}
			h := push.New(push.Options{Limits: limits}, unknownTokens{}, nil, logr.Discard()).Handler()
			do := func(peer, forwardedFor string) int {
				r := httptest.NewRequest(http.MethodPost, "/api/push/not-a-token", nil)
				r.RemoteAddr = peer
				if forwardedFor != "" {
					r.Header.Set("X-Forwarded-For", forwardedFor)
				}
				w := httptest.NewRecorder()
				h.ServeHTTP(w, r)
				return w.Code
			}

			// Client A, through the ingress, spends its burst.
			for i := range push.DefaultIPBurst {
				g.Expect(do(ingressPod, "203.0.113.10")).To(Equal(http.StatusNotFound), "request %d", i)
			}
			g.Expect(do(ingressPod, "203.0.113.10")).To(Equal(http.StatusTooManyRequests))
			// Client B, through the same ingress pod: its own bucket, or A's.
			want := http.StatusTooManyRequests
			if c.separate {
				want = http.StatusNotFound
			}
			g.Expect(do(ingressPod, "198.51.100.20")).To(Equal(want))
			// A proxy chain: the client's address is the rightmost one the
			// trusted proxies did not add; what the client put left of it
			// is ignored.
			if c.separate {
				g.Expect(do(ingressPod, "203.0.113.10, 10.244.3.3")).To(Equal(http.StatusTooManyRequests), "A behind a second proxy")
				g.Expect(do(ingressPod, "203.0.113.10, 198.51.100.30")).To(Equal(http.StatusNotFound), "a new client; its left entry is not believed")
			}

			// A client connecting directly is limited by its own address,
			// whatever header it sends.
			const direct = "198.51.100.99:5000"
			for range push.DefaultIPBurst {
				g.Expect(do(direct, "")).To(Equal(http.StatusNotFound))
			}
			g.Expect(do(direct, "192.0.2.1")).To(Equal(http.StatusTooManyRequests))
		})
	}
}
