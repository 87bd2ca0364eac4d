package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
	pushsrv "github.com/pushmon/pushmon/internal/push"
	"github.com/pushmon/pushmon/internal/token"
)

// rawRequest sends request bytes as they are (no client cleans the path or
// refuses odd bytes) and returns the status code.
func rawRequest(t *testing.T, req string) int {
	t.Helper()
	c, err := net.DialTimeout("tcp", pushAddr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(15 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestHostileInput sends hostile requests to the real push endpoint for a
// real monitor: each gets a clear 4xx, or 200 where the input is documented
// to be cut or cleaned (docs/security.md), and what is stored stays valid.
func TestHostileInput(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	m := monitor(ns, "hostile", monitoringv1alpha1.PushMonitorSpec{Timeout: dur(time.Hour)})
	tok := createMonitor(t, m)
	mustPush(t, tok, "msg=before")
	up := expectState(t, m, monitoringv1alpha1.StateUp, monitoringv1alpha1.HeartbeatReceivedReason, 10*time.Second)
	upSince := meta.FindStatusCondition(up.Status.Conditions, monitoringv1alpha1.HealthyCondition).LastTransitionTime
	base := "http://" + pushAddr
	at := base + token.PushPathPrefix + tok
	capMsg := pushsrv.DefaultMaxMessageBytes

	tests := []struct {
		name   string
		method string
		url    string
		ctype  string
		body   string
		hdr    http.Header
		raw    string // a raw request instead
		want   int
	}{
		{name: "long msg is cut", url: at + "?msg=" + strings.Repeat("a", 8000), want: 200},
		{name: "huge msg over the header cap", url: at + "?msg=" + strings.Repeat("a", 64<<10), want: 431},
		{name: "NUL bytes in msg are replaced", url: at + "?msg=a%00b%00", want: 200},
		{name: "invalid UTF-8 in msg is replaced", url: at + "?msg=a%FF%FEb%C3", want: 200},
		{name: "terminal escapes in msg are replaced", url: at + "?msg=%1B%5B2J%1B%5D0%3Bowned%07", want: 200},
		{name: "value=NaN", url: at + "?value=NaN", want: 400},
		{name: "value=Inf", url: at + "?value=Inf", want: 400},
		{name: "value=-Infinity", url: at + "?value=-Infinity", want: 400},
		{name: "value overflows", url: at + "?value=1e999", want: 400},
		{name: "ping=NaN", url: at + "?ping=nan", want: 400},
		{name: "status with NUL", url: at + "?status=up%00", want: 400},
		{name: "repeated status", url: at + "?status=up&status=down", want: 400},
		{name: "repeated msg", url: at + "?msg=a&msg=b", want: 400},
		{name: "malformed escape", url: at + "?msg=%zz", want: 400},
		{name: "10 KB token", url: base + token.PushPathPrefix + strings.Repeat("A", 10<<10), want: 404},
		{name: "token with NUL", url: base + token.PushPathPrefix + tok[:20] + "%00" + tok[21:], want: 404},
		{name: "token with an escaped slash", url: base + token.PushPathPrefix + tok[:20] + "%2F" + tok[21:], want: 404},
		{name: "path traversal", raw: "GET /api/push/../../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n", want: 404},
		{name: "path traversal after the token", raw: "GET /api/push/" + tok + "/../" + tok + " HTTP/1.1\r\nHost: x\r\n\r\n", want: 404},
		{name: "escaped path traversal", url: base + token.PushPathPrefix + "%2e%2e%2f%2e%2e%2fetc%2fpasswd", want: 404},
		{name: "dot segment before the token", raw: "GET /api/push/./" + tok + " HTTP/1.1\r\nHost: x\r\n\r\n", want: 404},
		{name: "double slash", raw: "GET //api/push/" + tok + " HTTP/1.1\r\nHost: x\r\n\r\n", want: 404},
		{name: "form body", method: "POST", url: at, ctype: "application/x-www-form-urlencoded", body: "status=down", want: 415},
		{name: "multipart body", method: "POST", url: at, ctype: "multipart/form-data; boundary=x", body: "--x\r\n\r\nstatus=down\r\n--x--", want: 415},
		{name: "JSON body is ignored", method: "POST", url: at, ctype: "application/json", body: `{"status":"down"}`, want: 200},
		{name: "binary body is ignored", method: "POST", url: at, ctype: "application/octet-stream", body: "\x00\xff\x00", want: 200},
		{name: "oversized body", method: "POST", url: at, ctype: "text/plain", body: strings.Repeat("x", pushsrv.DefaultMaxBodyBytes+1), want: 413},
		{name: "oversized headers", url: at, hdr: header("X-Junk", strings.Repeat("j", 32<<10)), want: 431},
		{name: "many headers", url: at, hdr: func() http.Header {
			h := http.Header{}
			for i := range 2000 {
				h.Set(fmt.Sprintf("X-H%d", i), "v")
			}
			return h
		}(), want: 431},
		{name: "method PUT", method: "PUT", url: at, want: 405},
		{name: "method TRACE", method: "TRACE", url: at, want: 405},
		{name: "bad HTTP version", raw: "GET /api/push/" + tok + " HTTP/9.9\r\nHost: x\r\n\r\n", want: 505},
		{name: "NUL in the request line", raw: "GET /api/push/" + tok + "\x00 HTTP/1.1\r\nHost: x\r\n\r\n", want: 400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			var code int
			var body string
			if tc.raw != "" {
				code = rawRequest(t, tc.raw)
			} else {
				method := tc.method
				if method == "" {
					method = "GET"
				}
				hdr := tc.hdr
				if tc.ctype != "" {
					hdr = header("Content-Type", tc.ctype)
				}
				var rd io.Reader
				if tc.body != "" {
					rd = strings.NewReader(tc.body)
				}
				code, _, body = send(t, method, tc.url, hdr, rd)
			}
			g.Expect(code).To(Equal(tc.want), "%s", body)
			if code >= 400 && code < 500 && body != "" && code != 431 && code != 505 {
				var ans map[string]any
				g.Expect(json.Unmarshal([]byte(body), &ans)).To(Succeed(), body)
				g.Expect(ans).To(HaveLen(2), "the endpoint's JSON shape: %s", body)
				g.Expect(ans).To(HaveKeyWithValue("ok", false))
				g.Expect(ans).To(HaveKeyWithValue("msg", Not(BeEmpty())))
			}
			g.Expect(body).NotTo(ContainSubstring(tok))
		})
	}

	// No hostile request turned the monitor Down, checked before the up push
	// below (which would hide a Down behind a Recovered): still Up for the
	// first heartbeat's reason, Healthy never moved since, no client ever
	// reported down, and no event of a Down or a recovery from one. Watched
	// for a while, since a Down is written and its event emitted
	// asynchronously.
	g.Consistently(func(g Gomega) {
		got := getMonitor(g, m)
		g.Expect(got.Status.State).To(Equal(monitoringv1alpha1.StateUp), "no hostile request reported Down")
		c := meta.FindStatusCondition(got.Status.Conditions, monitoringv1alpha1.HealthyCondition)
		g.Expect(c.Reason).To(Equal(monitoringv1alpha1.HeartbeatReceivedReason))
		g.Expect(c.LastTransitionTime).To(Equal(upSince), "Healthy has not changed since the first push")
		g.Expect(got.Status.LastReportedStatus).To(Equal(monitoringv1alpha1.ReportedUp))
		for _, reason := range []string{monitoringv1alpha1.DownReportedReason, monitoringv1alpha1.HeartbeatMissedReason, monitoringv1alpha1.RecoveredReason} {
			g.Expect(events(g, m, reason)).To(BeEmpty(), "a %s event", reason)
		}
	}).WithTimeout(2 * time.Second).WithPolling(50 * time.Millisecond).Should(Succeed())

	// The cleaned message was stored cleaned, and nothing stored is invalid.
	mustPush(t, tok, "msg="+url.QueryEscape("last\x00\x1b[31m\xff"+strings.Repeat("é", capMsg)))
	g.Eventually(func(g Gomega) {
		got := getMonitor(g, m)
		g.Expect(got.Status.LastMessage).To(HavePrefix("last\uFFFD\uFFFD[31m\uFFFDé"))
	}).WithTimeout(15 * time.Second).Should(Succeed())
	got := getMonitor(g, m)
	g.Expect(utf8.ValidString(got.Status.LastMessage)).To(BeTrue())
	g.Expect(len(got.Status.LastMessage)).To(BeNumerically("<=", capMsg))
	g.Expect(strings.IndexFunc(got.Status.LastMessage, unicode.IsControl)).To(Equal(-1))
	if got.Status.LastValue != "" {
		v, err := strconv.ParseFloat(got.Status.LastValue, 64)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(math.IsNaN(v) || math.IsInf(v, 0)).To(BeFalse())
	}
	// The API server still takes the object as it is (a round trip through
	// validation): a status write of the stored values succeeds.
	g.Expect(k8sClient.Status().Update(t.Context(), got)).To(Succeed())
	assertTokenNowhere(t, tok, got)
}
