package main

import (
	"net/netip"
	"testing"

	. "github.com/onsi/gomega"

	"github.com/pushmon/pushmon/internal/push"
)

func TestCheckLimits(t *testing.T) {
	proxies := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	tests := []struct {
		name            string
		limits          push.Limits
		maxConnsPerAddr int
		wantErr         string
	}{
		{name: "defaults", limits: push.Limits{TokenRate: 2, TokenBurst: 20}, maxConnsPerAddr: push.DefaultMaxConnsPerAddr},
		{name: "header with trusted proxies", limits: push.Limits{ClientIPHeader: "X-Forwarded-For", TrustedProxies: proxies}},
		// Before, this started and believed every peer's header.
		{name: "header without trusted proxies", limits: push.Limits{ClientIPHeader: "X-Forwarded-For"},
			wantErr: "--push-client-ip-header needs --push-trusted-proxies"},
		{name: "trusted proxies without header", limits: push.Limits{TrustedProxies: proxies},
			wantErr: "--push-trusted-proxies needs --push-client-ip-header"},
		{name: "negative per-address cap", maxConnsPerAddr: -1, wantErr: "--push-max-connections-per-address must be >= 0"},
		{name: "per-address cap off", maxConnsPerAddr: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			err := checkLimits(tc.limits, push.DefaultMaxConns, tc.maxConnsPerAddr)
			if tc.wantErr == "" {
				g.Expect(err).NotTo(HaveOccurred())
				return
			}
			g.Expect(err).To(MatchError(ContainSubstring(tc.wantErr)))
		})
	}
}
