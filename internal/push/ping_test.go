package push

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
	"github.com/pushmon/pushmon/internal/heartbeat"
)

// ping is the heartbeat a ping must be recorded as.
func ping(kind heartbeat.Kind, status monitoringv1alpha1.ReportedStatus, msg, rid string, exit ...int32) *heartbeat.Heartbeat {
	hb := &heartbeat.Heartbeat{Time: testNow, Kind: kind, Status: status, Message: msg, RunID: rid}
	if len(exit) > 0 {
		hb.ExitCode = &exit[0]
	}
	return hb
}

// TestServePing checks the Healthchecks-compatible routes one request at a
// time against the fake lookup and recorder: which signal each path is,
// rid, the body as the message (capped and cleaned), exit statuses in their
// canonical form only, and every answer's code and plain-text body.
func TestServePing(t *testing.T) {
	const (
		up     = monitoringv1alpha1.ReportedUp
		down   = monitoringv1alpha1.ReportedDown
		ok     = heartbeat.KindSuccess
		start  = heartbeat.KindStart
		failed = heartbeat.KindFail
		logged = heartbeat.KindLog
	)
	genericErr := errors.New("etcdserver: request timed out")
	capMsg := DefaultMaxMessageBytes
	rid64 := strings.Repeat("r", 64)

	tests := []struct {
		name      string
		method    string // default POST
		tok       string // default testToken
		suffix    string // after /ping/{token}
		query     string
		body      string
		recordErr error

		wantCode int
		wantBody string // exact, when set
		wantHas  string // a part of the body, when set
		// wantHB is the heartbeat the Recorder must get; nil: not called.
		wantHB *heartbeat.Heartbeat
	}{
		// The signals.
		{name: "success", wantCode: 200, wantBody: "OK", wantHB: ping(ok, up, "", "")},
		{name: "success with GET", method: "GET", wantCode: 200, wantBody: "OK", wantHB: ping(ok, up, "", "")},
		{name: "success with HEAD", method: "HEAD", wantCode: 200, wantBody: "OK", wantHB: ping(ok, up, "", "")},
		{name: "success keeps its body as the message", body: "all good\n", wantCode: 200, wantBody: "OK", wantHB: ping(ok, up, "all good", "")},
		{name: "start", suffix: "/start", wantCode: 200, wantBody: "OK", wantHB: ping(start, up, "", "")},
		{name: "start with HEAD", method: "HEAD", suffix: "/start", wantCode: 200, wantBody: "OK", wantHB: ping(start, up, "", "")},
		{name: "start ignores its body", suffix: "/start", body: "starting", wantCode: 200, wantHB: ping(start, up, "", "")},
		{name: "fail", suffix: "/fail", wantCode: 200, wantBody: "OK", wantHB: ping(failed, down, "", "")},
		{name: "fail with GET", method: "GET", suffix: "/fail", wantCode: 200, wantHB: ping(failed, down, "", "")},
		{name: "log", suffix: "/log", body: "halfway", wantCode: 200, wantBody: "OK", wantHB: ping(logged, up, "halfway", "")},

		// Exit statuses: 0-255, written as Healthchecks' clients write them.
		{name: "exit 0 is a success", suffix: "/0", wantCode: 200, wantBody: "OK", wantHB: ping(ok, up, "", "", 0)},
		{name: "exit 1 is a failure", suffix: "/1", wantCode: 200, wantHB: ping(failed, down, "", "", 1)},
		{name: "exit 255 is a failure", suffix: "/255", wantCode: 200, wantHB: ping(failed, down, "", "", 255)},
		{name: "exit 256 refused", suffix: "/256", wantCode: 400, wantHas: `unknown ping "256"`},
		{name: "exit -1 refused", suffix: "/-1", wantCode: 400, wantHas: `unknown ping "-1"`},
		{name: "exit 007 refused as not canonical", suffix: "/007", wantCode: 400, wantHas: `unknown ping "007"`},
		{name: "exit 00 refused", suffix: "/00", wantCode: 400, wantHas: "unknown ping"},
		{name: "exit +1 refused", suffix: "/+1", wantCode: 400, wantHas: "unknown ping"},
		{name: "exit 1e2 refused", suffix: "/1e2", wantCode: 400, wantHas: "unknown ping"},
		{name: "exit huge refused", suffix: "/99999999999999999999", wantCode: 400, wantHas: "unknown ping"},
		{name: "slug refused", suffix: "/nightly-backup", wantCode: 400, wantHas: `unknown ping "nightly-backup": use start, fail, log or an exit status 0-255`},
		{name: "unknown signal quoted and cut", suffix: "/" + strings.Repeat("z", 100), wantCode: 400,
			wantHas: strconv.Quote(strings.Repeat("z", 32))},
		{name: "a path under a signal", suffix: "/fail/now", wantCode: 404},

		// rid.
		{name: "rid on start", suffix: "/start", query: "rid=a", wantCode: 200, wantHB: ping(start, up, "", "a")},
		{name: "rid UUID", query: "rid=0b7ec8e3-4b2c-4c69-9b2e-6a1f8e0f3c2d", wantCode: 200,
			wantHB: ping(ok, up, "", "0b7ec8e3-4b2c-4c69-9b2e-6a1f8e0f3c2d")},
		{name: "rid with dot and underscore", suffix: "/fail", query: "rid=job_1.v2", wantCode: 200, wantHB: ping(failed, down, "", "job_1.v2")},
		{name: "rid of 64 characters", suffix: "/0", query: "rid=" + rid64, wantCode: 200, wantHB: ping(ok, up, "", rid64, 0)},
		{name: "rid empty is none", query: "rid=", wantCode: 200, wantHB: ping(ok, up, "", "")},
		{name: "rid of 65 characters refused", query: "rid=" + rid64 + "r", wantCode: 400, wantHas: "invalid rid"},
		{name: "rid with a space refused", suffix: "/start", query: "rid=a%20b", wantCode: 400, wantHas: "invalid rid"},
		{name: "rid with a slash refused", query: "rid=a%2Fb", wantCode: 400, wantHas: "invalid rid"},
		{name: "rid non-ASCII refused", query: "rid=%C3%A9", wantCode: 400, wantHas: "invalid rid"},
		{name: "rid with NUL refused", suffix: "/log", query: "rid=a%00", body: "x", wantCode: 400, wantHas: "invalid rid"},

		// The body as the message: trimmed, cleaned, capped.
		{name: "fail body is the message", suffix: "/fail", body: "no space left\n", wantCode: 200,
			wantHB: ping(failed, down, "no space left", "")},
		{name: "exit status body is the message", suffix: "/3", body: "  disk full  ", wantCode: 200,
			wantHB: ping(failed, down, "disk full", "", 3)},
		{name: "exit 0 body is the message", suffix: "/0", body: "done", wantCode: 200, wantHB: ping(ok, up, "done", "", 0)},
		{name: "body control characters replaced", suffix: "/log", body: "\x1b[31mred\x00 end", wantCode: 200,
			wantHB: ping(logged, up, "\uFFFD[31mred\uFFFD end", "")},
		{name: "body line breaks and tabs become spaces", suffix: "/fail", body: "line 1\nline 2\tcol", wantCode: 200,
			wantHB: ping(failed, down, "line 1 line 2 col", "")},
		{name: "body invalid UTF-8 replaced", suffix: "/log", body: "a\xff\xfeb", wantCode: 200, wantHB: ping(logged, up, "a\uFFFDb", "")},
		{name: "body over the message cap cut", suffix: "/fail", body: strings.Repeat("é", capMsg), wantCode: 200,
			wantHB: ping(failed, down, strings.Repeat("é", capMsg/2), "")},
		{name: "body at the body cap", suffix: "/log", body: strings.Repeat("x", DefaultMaxBodyBytes), wantCode: 200,
			wantHB: ping(logged, up, strings.Repeat("x", capMsg), "")},
		{name: "body over the body cap", suffix: "/fail", body: strings.Repeat("x", DefaultMaxBodyBytes+1), wantCode: 413,
			wantBody: "request body larger than " + strconv.Itoa(DefaultMaxBodyBytes) + " bytes"},
		{name: "body over the body cap on a success", body: strings.Repeat("x", DefaultMaxBodyBytes+1), wantCode: 413},
		{name: "body over the body cap on a bad signal", suffix: "/007", body: strings.Repeat("x", DefaultMaxBodyBytes+1), wantCode: 413},

		// Tokens, methods and failures.
		{name: "unknown token", tok: otherToken, suffix: "/fail", wantCode: 404, wantBody: "not found"},
		{name: "malformed token", tok: "short", wantCode: 404, wantBody: "not found"},
		{name: "bad signal with unknown token", tok: otherToken, suffix: "/007", wantCode: 400, wantHas: "unknown ping"},
		{name: "PUT", method: "PUT", wantCode: 405, wantBody: "method not allowed: use POST, GET or HEAD"},
		{name: "DELETE on a signal", method: "DELETE", suffix: "/start", wantCode: 405},
		{name: "recorder fails", suffix: "/fail", recordErr: genericErr, wantCode: 503, wantBody: "ping could not be recorded; retry",
			wantHB: ping(failed, down, "", "")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			f := newFixture(nil, tc.recordErr)
			method := tc.method
			if method == "" {
				method = http.MethodPost
			}
			tok := tc.tok
			if tok == "" {
				tok = testToken
			}
			target := "http://push.example" + PingPathPrefix + tok + tc.suffix
			if tc.query != "" {
				target += "?" + tc.query
			}
			var body io.Reader
			if tc.body != "" {
				body = strings.NewReader(tc.body)
			}
			w := httptest.NewRecorder()
			f.srv.Handler().ServeHTTP(w, httptest.NewRequest(method, target, body))

			g.Expect(w.Code).To(Equal(tc.wantCode), w.Body.String())
			if tc.wantCode != 404 || tc.wantBody != "" { // the mux's own 404 is JSON
				g.Expect(w.Header().Get("Content-Type")).To(Equal("text/plain; charset=utf-8"))
				g.Expect(w.Header().Get("Cache-Control")).To(Equal("no-store"))
			}
			if tc.wantBody != "" { // (for HEAD, net/http drops what the handler wrote)
				g.Expect(w.Body.String()).To(Equal(tc.wantBody))
			}
			if tc.wantHas != "" {
				g.Expect(w.Body.String()).To(ContainSubstring(tc.wantHas))
			}
			g.Expect(w.Body.String()).NotTo(ContainSubstring(tok), "answers never echo the token")
			switch tc.wantCode {
			case 405:
				g.Expect(w.Header().Get("Allow")).To(Equal("GET, HEAD, POST"))
			case 503:
				g.Expect(w.Header().Get("Retry-After")).To(Equal("1"))
			}

			calls := f.rec.Calls()
			if tc.wantHB == nil {
				g.Expect(calls).To(BeEmpty(), "the recorder must not be called")
			} else {
				g.Expect(calls).To(HaveLen(1))
				g.Expect(calls[0].m).To(BeIdenticalTo(testMonitor))
				g.Expect(calls[0].hb).To(Equal(*tc.wantHB))
			}
			g.Expect(f.logs.String()).NotTo(ContainSubstring(testToken), "the token is never logged")
		})
	}
}

// TestPingBodyCapFollowsOptions: the body cap is the server's MaxBodyBytes
// and the message cap its MaxMessageBytes, on the ping routes as on
// /api/push.
func TestPingBodyCapFollowsOptions(t *testing.T) {
	g := NewWithT(t)
	rec := &fakeRecorder{}
	s := New(Options{MaxBodyBytes: 10, MaxMessageBytes: 5}, &fakeLookup{}, rec, (&logBuffer{}).logger())
	s.now = func() time.Time { return testNow }
	send := func(body string) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		s.Handler().ServeHTTP(w, httptest.NewRequest("POST", "http://push.example"+PingPathPrefix+testToken+"/fail", strings.NewReader(body)))
		return w
	}
	w := send("abcdé6789") // 10 bytes
	g.Expect(w.Code).To(Equal(200))
	g.Expect(rec.Calls()).To(HaveLen(1))
	g.Expect(rec.Calls()[0].hb.Message).To(Equal("abcd"), "the message cap falls inside é")
	w = send("abcdé67890") // 11 bytes
	g.Expect(w.Code).To(Equal(413))
	g.Expect(w.Body.String()).To(Equal("request body larger than 10 bytes"))
	g.Expect(rec.Calls()).To(HaveLen(1), "nothing recorded for a body over the cap")
}
