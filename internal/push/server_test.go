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
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	monitoringv1alpha1 "github.com/pushmon/pushmon/api/v1alpha1"
	"github.com/pushmon/pushmon/internal/heartbeat"
	"github.com/pushmon/pushmon/internal/token"
)

// testToken is the one token the fake lookup knows; otherToken is well formed
// but unknown.
const (
	testToken  = "Tok3n-with_every-kind0f-character-abcdefghi"
	otherToken = "UnknownUnknownUnknownUnknownUnknownUnknown0"
)

var testNow = time.Date(2026, 3, 4, 5, 6, 7, 123456000, time.UTC)

var testMonitor = &monitoringv1alpha1.PushMonitor{
	ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "nightly-backup", UID: "uid-1"},
}

// fakeLookup mirrors token.Index: malformed and unknown tokens alike are
// token.ErrUnknown.
type fakeLookup struct {
	err error // returned for every token when set

	mu    sync.Mutex
	calls []string
}

func (f *fakeLookup) Lookup(_ context.Context, tok string) (*monitoringv1alpha1.PushMonitor, error) {
	f.mu.Lock()
	f.calls = append(f.calls, tok)
	f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	if !token.WellFormed(tok) || tok != testToken {
		return nil, token.ErrUnknown
	}
	return testMonitor, nil
}

func (f *fakeLookup) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

type recorded struct {
	m  *monitoringv1alpha1.PushMonitor
	hb heartbeat.Heartbeat
	// deadline is the context's deadline; zero if none.
	deadline time.Time
}

type fakeRecorder struct {
	err error
	// entered, when set, is closed on the first call; release, when set,
	// blocks every call until it is closed.
	entered chan struct{}
	release chan struct{}

	mu    sync.Mutex
	calls []recorded
	once  sync.Once
}

func (f *fakeRecorder) Record(ctx context.Context, m *monitoringv1alpha1.PushMonitor, hb heartbeat.Heartbeat) error {
	deadline, _ := ctx.Deadline()
	f.mu.Lock()
	f.calls = append(f.calls, recorded{m, hb, deadline})
	entered, release := f.entered, f.release
	f.mu.Unlock()
	if entered != nil {
		f.once.Do(func() { close(entered) })
	}
	if release != nil {
		<-release
	}
	return f.err
}

// block makes the following calls wait until release is closed.
func (f *fakeRecorder) block() (entered, release chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.entered, f.release = make(chan struct{}), make(chan struct{})
	return f.entered, f.release
}

func (f *fakeRecorder) Calls() []recorded {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]recorded(nil), f.calls...)
}

// logBuffer collects what the Server logs.
type logBuffer struct {
	mu    sync.Mutex
	lines []string
}

func (b *logBuffer) logger() logr.Logger {
	return funcr.New(func(prefix, args string) {
		b.mu.Lock()
		defer b.mu.Unlock()
		b.lines = append(b.lines, prefix+" "+args)
	}, funcr.Options{Verbosity: 10})
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Join(b.lines, "\n")
}

type fixture struct {
	srv    *Server
	lookup *fakeLookup
	rec    *fakeRecorder
	logs   *logBuffer
}

func newFixture(lookupErr, recordErr error) *fixture {
	f := &fixture{lookup: &fakeLookup{err: lookupErr}, rec: &fakeRecorder{err: recordErr}, logs: &logBuffer{}}
	f.srv = New(Options{}, f.lookup, f.rec, f.logs.logger())
	f.srv.now = func() time.Time { return testNow }
	return f
}

// unknownBody is the one answer for every token that leads to no monitor.
const unknownBody = `{"ok":false,"msg":"unknown push token"}`

// bigReader is a body of n bytes whose length net/http cannot know in
// advance (sent chunked).
type bigReader struct{ n int }

func (r *bigReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, io.EOF
	}
	k := min(len(p), r.n)
	for i := range k {
		p[i] = 'x'
	}
	r.n -= k
	return k, nil
}

func hb(status monitoringv1alpha1.ReportedStatus, msg, value string) *heartbeat.Heartbeat {
	return &heartbeat.Heartbeat{Time: testNow, Status: status, Message: msg, Value: value}
}

func TestServePush(t *testing.T) {
	const (
		up   = monitoringv1alpha1.ReportedUp
		down = monitoringv1alpha1.ReportedDown
	)
	genericErr := errors.New("etcdserver: request timed out")
	notFound := apierrors.NewNotFound(schema.GroupResource{Group: monitoringv1alpha1.GroupVersion.Group, Resource: "pushmonitors"}, "nightly-backup")
	capMsg := DefaultMaxMessageBytes
	esc := url.QueryEscape

	type bodyKind int
	const (
		noBody    bodyKind = iota
		sized              // a body with Content-Length
		chunked            // a body of unknown length (Transfer-Encoding: chunked)
		liarSized          // Content-Length over the cap, small actual body
	)

	tests := []struct {
		name      string
		method    string // default POST
		tok       string // the path segment after /api/push/; default testToken
		path      string // a whole path, overriding tok
		query     string // raw query
		body      bodyKind
		bodyLen   int
		lookupErr error
		recordErr error

		wantCode int
		wantBody string // exact JSON body when set
		wantMsg  []string
		// wantHB is the heartbeat the Recorder must get; nil: not called.
		wantHB *heartbeat.Heartbeat
		// wantLookup: the lookup was asked (false: refused before it).
		wantLookup bool
	}{
		// 200
		{name: "POST without parameters", wantCode: 200, wantHB: hb(up, "", ""), wantLookup: true},
		{name: "GET without parameters", method: "GET", wantCode: 200, wantHB: hb(up, "", ""), wantLookup: true},
		{name: "status=up", query: "status=up", wantCode: 200, wantHB: hb(up, "", ""), wantLookup: true},
		{name: "status=UP", query: "status=UP", wantCode: 200, wantHB: hb(up, "", ""), wantLookup: true},
		{name: "status empty", query: "status=", wantCode: 200, wantHB: hb(up, "", ""), wantLookup: true},
		{name: "status=down", query: "status=down", wantCode: 200, wantHB: hb(down, "", ""), wantLookup: true},
		{name: "status=Down", method: "GET", query: "status=Down", wantCode: 200, wantHB: hb(down, "", ""), wantLookup: true},
		{name: "repeated status", query: "status=down&status=up", wantCode: 400, wantMsg: []string{"status", "more than once"}},
		{name: "repeated identical status", query: "status=up&status=up", wantCode: 400, wantMsg: []string{"status"}},
		{name: "repeated msg", query: "msg=a&msg=b", wantCode: 400, wantMsg: []string{"msg"}},
		{name: "repeated value", query: "value=1&value=2", wantCode: 400, wantMsg: []string{"value"}},
		{name: "repeated ping", method: "GET", query: "ping=1&ping=", wantCode: 400, wantMsg: []string{"ping"}},
		{name: "unknown parameters ignored", query: "foo=bar&rid=1", wantCode: 200, wantHB: hb(up, "", ""), wantLookup: true},
		{name: "all parameters", method: "GET", query: "status=down&msg=disk%20full&value=3",
			wantCode: 200, wantHB: hb(down, "disk full", "3"), wantLookup: true},
		{name: "msg with plus as space", query: "msg=backup+ok", wantCode: 200, wantHB: hb(up, "backup ok", ""), wantLookup: true},
		{name: "msg unicode", query: "msg=" + esc("späť ✓ 😀"), wantCode: 200, wantHB: hb(up, "späť ✓ 😀", ""), wantLookup: true},
		{name: "msg invalid UTF-8 replaced", query: "msg=a%FF%FEb", wantCode: 200, wantHB: hb(up, "a\uFFFDb", ""), wantLookup: true},
		{name: "msg at the cap kept", query: "msg=" + strings.Repeat("a", capMsg),
			wantCode: 200, wantHB: hb(up, strings.Repeat("a", capMsg), ""), wantLookup: true},
		{name: "msg over the cap truncated", query: "msg=" + strings.Repeat("a", capMsg+100),
			wantCode: 200, wantHB: hb(up, strings.Repeat("a", capMsg), ""), wantLookup: true},
		// é is 2 bytes: 513 of them are 1026 bytes; 512 fit exactly.
		{name: "msg 2-byte runes truncated", query: "msg=" + esc(strings.Repeat("é", 513)),
			wantCode: 200, wantHB: hb(up, strings.Repeat("é", 512), ""), wantLookup: true},
		// "a" + é…: the cap falls inside an é, which is dropped whole.
		{name: "msg 2-byte runes cut mid-rune", query: "msg=" + esc("a"+strings.Repeat("é", 600)),
			wantCode: 200, wantHB: hb(up, "a"+strings.Repeat("é", 511), ""), wantLookup: true},
		// € is 3 bytes: 341 of them are 1023 bytes.
		{name: "msg 3-byte runes truncated", query: "msg=" + esc(strings.Repeat("€", 400)),
			wantCode: 200, wantHB: hb(up, strings.Repeat("€", 341), ""), wantLookup: true},
		// 😀 is 4 bytes: "a" + 255 of them are 1021 bytes.
		{name: "msg 4-byte runes truncated", query: "msg=" + esc("a"+strings.Repeat("😀", 300)),
			wantCode: 200, wantHB: hb(up, "a"+strings.Repeat("😀", 255), ""), wantLookup: true},
		{name: "msg invalid UTF-8 over the cap", query: "msg=" + strings.Repeat("%FFa", capMsg),
			wantCode: 200, wantHB: hb(up, strings.Repeat("\uFFFDa", capMsg/4), ""), wantLookup: true},
		{name: "value integer", query: "value=42", wantCode: 200, wantHB: hb(up, "", "42"), wantLookup: true},
		{name: "value decimal", query: "value=3.14", wantCode: 200, wantHB: hb(up, "", "3.14"), wantLookup: true},
		{name: "value negative", query: "value=-2.5", wantCode: 200, wantHB: hb(up, "", "-2.5"), wantLookup: true},
		{name: "value plus sign", query: "value=%2B7", wantCode: 200, wantHB: hb(up, "", "7"), wantLookup: true},
		{name: "value exponent canonical", query: "value=1e3", wantCode: 200, wantHB: hb(up, "", "1000"), wantLookup: true},
		{name: "value trailing zeros canonical", query: "value=001.500", wantCode: 200, wantHB: hb(up, "", "1.5"), wantLookup: true},
		{name: "value hex float", query: "value=0x1p3", wantCode: 200, wantHB: hb(up, "", "8"), wantLookup: true},
		{name: "value large", query: "value=1e21", wantCode: 200, wantHB: hb(up, "", "1e+21"), wantLookup: true},
		{name: "value max float", query: "value=1.7976931348623157e308", wantCode: 200,
			wantHB: hb(up, "", "1.7976931348623157e+308"), wantLookup: true},
		{name: "ping alias", method: "GET", query: "status=up&msg=OK&ping=12", wantCode: 200, wantHB: hb(up, "OK", "12"), wantLookup: true},
		{name: "ping empty ignored", method: "GET", query: "status=up&msg=OK&ping=", wantCode: 200, wantHB: hb(up, "OK", ""), wantLookup: true},
		{name: "ping canonical", query: "ping=1e3", wantCode: 200, wantHB: hb(up, "", "1000"), wantLookup: true},
		{name: "value wins over ping", query: "value=5&ping=7", wantCode: 200, wantHB: hb(up, "", "5"), wantLookup: true},
		{name: "value wins over a bad ping", query: "value=5&ping=abc", wantCode: 200, wantHB: hb(up, "", "5"), wantLookup: true},
		{name: "empty value falls back to ping", query: "value=&ping=7", wantCode: 200, wantHB: hb(up, "", "7"), wantLookup: true},
		{name: "body at the cap", body: sized, bodyLen: DefaultMaxBodyBytes, wantCode: 200, wantHB: hb(up, "", ""), wantLookup: true},
		{name: "chunked body at the cap", body: chunked, bodyLen: DefaultMaxBodyBytes, wantCode: 200, wantHB: hb(up, "", ""), wantLookup: true},

		// 400
		{name: "bad status", query: "status=sideways", wantCode: 400, wantMsg: []string{"status", `"sideways"`}},
		{name: "bad status typo", method: "GET", query: "status=upp", wantCode: 400, wantMsg: []string{"status", `"upp"`}},
		{name: "bad status quoted and cut", query: "status=" + strings.Repeat("z", 500), wantCode: 400,
			wantMsg: []string{"status", strconv.Quote(strings.Repeat("z", 32))}},
		{name: "bad status with unknown token", tok: otherToken, query: "status=sideways", wantCode: 400, wantMsg: []string{"status"}},
		{name: "value not a number", query: "value=abc", wantCode: 400, wantMsg: []string{"value", `"abc"`, "number"}},
		{name: "value with unit", query: "value=12ms", wantCode: 400, wantMsg: []string{"value", `"12ms"`}},
		{name: "value with space", query: "value=%201", wantCode: 400, wantMsg: []string{"value"}},
		{name: "value hex without exponent", query: "value=0x10", wantCode: 400, wantMsg: []string{"value"}},
		{name: "value NaN", query: "value=NaN", wantCode: 400, wantMsg: []string{"value", "NaN", "finite"}},
		{name: "value nan", query: "value=nan", wantCode: 400, wantMsg: []string{"value"}},
		{name: "value Inf", query: "value=Inf", wantCode: 400, wantMsg: []string{"value", "finite"}},
		{name: "value -Inf", query: "value=-Inf", wantCode: 400, wantMsg: []string{"value"}},
		{name: "value +Infinity", query: "value=%2BInfinity", wantCode: 400, wantMsg: []string{"value"}},
		{name: "value overflows", query: "value=1e400", wantCode: 400, wantMsg: []string{"value", "1e400"}},
		{name: "ping not a number", method: "GET", query: "ping=abc", wantCode: 400, wantMsg: []string{"ping", `"abc"`}},
		{name: "ping NaN", method: "GET", query: "ping=NaN", wantCode: 400, wantMsg: []string{"ping"}},
		{name: "ping Inf", method: "GET", query: "ping=inf", wantCode: 400, wantMsg: []string{"ping"}},
		{name: "malformed query", query: "%zz", wantCode: 400, wantMsg: []string{"query"}},
		{name: "malformed escape in status", query: "status=%zz", wantCode: 400, wantMsg: []string{"query"}},
		{name: "malformed escape in msg", method: "GET", query: "msg=50%", wantCode: 400, wantMsg: []string{"query"}},
		{name: "semicolon separator", query: "status=up;msg=x", wantCode: 400, wantMsg: []string{"query"}},

		// 404: one answer for every token that leads nowhere.
		{name: "unknown token", tok: otherToken, wantCode: 404, wantBody: unknownBody, wantLookup: true},
		{name: "unknown token GET", method: "GET", tok: otherToken, query: "status=down", wantCode: 404, wantBody: unknownBody, wantLookup: true},
		{name: "malformed token short", tok: "abc", wantCode: 404, wantBody: unknownBody, wantLookup: true},
		{name: "malformed token long", tok: testToken + "A", wantCode: 404, wantBody: unknownBody, wantLookup: true},
		{name: "malformed token plus", tok: testToken[:42] + "+", wantCode: 404, wantBody: unknownBody, wantLookup: true},
		{name: "malformed token escaped slash", tok: testToken[:20] + "%2F" + testToken[21:], wantCode: 404, wantBody: unknownBody, wantLookup: true},
		{name: "malformed token non-ASCII", tok: testToken[:41] + "%C3%A9", wantCode: 404, wantBody: unknownBody, wantLookup: true},
		{name: "malformed token dot", tok: testToken[:42] + ".", wantCode: 404, wantBody: unknownBody, wantLookup: true},
		{name: "lookup wraps ErrUnknown", lookupErr: fmt.Errorf("no secret: %w", token.ErrUnknown), wantCode: 404, wantBody: unknownBody, wantLookup: true},
		{name: "monitor deleted before the write", recordErr: notFound, wantCode: 404, wantBody: unknownBody,
			wantHB: hb(up, "", ""), wantLookup: true},
		{name: "monitor deleted before the write, wrapped", recordErr: fmt.Errorf("writing heartbeat: %w", notFound),
			wantCode: 404, wantBody: unknownBody, wantHB: hb(up, "", ""), wantLookup: true},
		// Paths the token route does not match answer the mux's generic
		// 404 (a different msg from unknownBody; see the report).
		{name: "empty token", path: "/api/push/", wantCode: 404},
		{name: "token with a trailing slash", path: "/api/push/" + testToken + "/", wantCode: 404},
		{name: "token with a suffix path", method: "GET", path: "/api/push/" + testToken + "/start", wantCode: 404},
		{name: "monitor replaced before the write", recordErr: fmt.Errorf("writing heartbeat: %w", heartbeat.ErrMonitorReplaced),
			wantCode: 404, wantBody: unknownBody, wantHB: hb(up, "", ""), wantLookup: true},
		{name: "other path", path: "/api/other", wantCode: 404, wantMsg: []string{"not found"}},
		{name: "root", method: "GET", path: "/", wantCode: 404, wantMsg: []string{"not found"}},

		// 405
		{name: "PUT", method: "PUT", wantCode: 405, wantMsg: []string{"POST", "GET"}},
		{name: "DELETE", method: "DELETE", wantCode: 405, wantMsg: []string{"POST", "GET"}},
		{name: "PATCH", method: "PATCH", query: "status=down", wantCode: 405, wantMsg: []string{"POST", "GET"}},
		{name: "OPTIONS", method: "OPTIONS", wantCode: 405},
		{name: "HEAD", method: "HEAD", wantCode: 405},
		{name: "PUT unknown token", method: "PUT", tok: otherToken, wantCode: 405},

		// 413
		{name: "body over the cap, Content-Length", body: sized, bodyLen: DefaultMaxBodyBytes + 1, wantCode: 413,
			wantMsg: []string{strconv.Itoa(DefaultMaxBodyBytes)}},
		{name: "body over the cap, chunked", body: chunked, bodyLen: DefaultMaxBodyBytes + 1, wantCode: 413,
			wantMsg: []string{strconv.Itoa(DefaultMaxBodyBytes)}},
		{name: "body far over the cap, chunked", method: "GET", body: chunked, bodyLen: 10 * DefaultMaxBodyBytes, wantCode: 413},
		{name: "declared length over the cap", body: liarSized, bodyLen: DefaultMaxBodyBytes + 1, wantCode: 413},
		{name: "body over the cap with bad status", body: sized, bodyLen: DefaultMaxBodyBytes + 1, query: "status=x", wantCode: 413},

		// 503
		{name: "recorder fails", recordErr: genericErr, wantCode: 503, wantMsg: []string{"retry"},
			wantHB: hb(up, "", ""), wantLookup: true},
		{name: "recorder fails on down push", method: "GET", query: "status=down&msg=x", recordErr: genericErr, wantCode: 503,
			wantHB: hb(down, "x", ""), wantLookup: true},
		{name: "recorder conflict", recordErr: apierrors.NewConflict(schema.GroupResource{Resource: "pushmonitors"}, "x", genericErr),
			wantCode: 503, wantHB: hb(up, "", ""), wantLookup: true},
		{name: "lookup fails", lookupErr: genericErr, wantCode: 503, wantMsg: []string{"retry"}, wantLookup: true},
		{name: "lookup context cancelled", lookupErr: context.Canceled, wantCode: 503, wantLookup: true},
	}

	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			f := newFixture(tc.lookupErr, tc.recordErr)
			method := tc.method
			if method == "" {
				method = http.MethodPost
			}
			tok := tc.tok
			if tok == "" {
				tok = testToken
			}
			path := tc.path
			if path == "" {
				path = token.PushPathPrefix + tok
			}
			var body io.Reader
			switch tc.body {
			case sized, liarSized:
				body = strings.NewReader(strings.Repeat("x", tc.bodyLen))
			case chunked:
				body = &bigReader{n: tc.bodyLen}
			}
			req := httptest.NewRequest(method, "http://push.example"+path, body)
			req.URL.RawQuery = tc.query
			switch tc.body {
			case chunked:
				req.ContentLength = -1
				req.TransferEncoding = []string{"chunked"}
			case liarSized:
				req.Body = io.NopCloser(strings.NewReader("x"))
			}
			w := httptest.NewRecorder()
			f.srv.Handler().ServeHTTP(w, req)

			g.Expect(w.Code).To(Equal(tc.wantCode), w.Body.String())
			g.Expect(w.Header().Get("Content-Type")).To(Equal("application/json"))
			g.Expect(w.Header().Get("Cache-Control")).To(Equal("no-store"))

			var ans struct {
				OK  *bool  `json:"ok"`
				Msg string `json:"msg"`
			}
			g.Expect(json.Unmarshal(w.Body.Bytes(), &ans)).To(Succeed(), w.Body.String())
			g.Expect(ans.OK).NotTo(BeNil())
			g.Expect(*ans.OK).To(Equal(tc.wantCode == 200))
			if tc.wantCode == 200 {
				g.Expect(strings.TrimSpace(w.Body.String())).To(Equal(`{"ok":true}`))
			} else {
				g.Expect(ans.Msg).NotTo(BeEmpty())
				g.Expect(ans.Msg).NotTo(ContainSubstring(tok), "answers never echo the token")
			}
			if tc.wantBody != "" {
				g.Expect(strings.TrimSpace(w.Body.String())).To(Equal(tc.wantBody))
			}
			for _, s := range tc.wantMsg {
				g.Expect(ans.Msg).To(ContainSubstring(s))
			}
			if tc.wantCode == 405 {
				g.Expect(w.Header().Get("Allow")).To(Equal("GET, POST"))
			}
			if tc.wantCode == 503 {
				g.Expect(w.Header().Get("Retry-After")).To(Equal("1"))
			} else {
				g.Expect(w.Header().Get("Retry-After")).To(BeEmpty())
			}

			if tc.wantLookup {
				g.Expect(f.lookup.Calls()).To(Equal([]string{mustUnescape(t, tok)}))
			} else {
				g.Expect(f.lookup.Calls()).To(BeEmpty(), "refused before the lookup")
			}
			calls := f.rec.Calls()
			if tc.wantHB == nil {
				g.Expect(calls).To(BeEmpty(), "the recorder must not be called")
			} else {
				g.Expect(calls).To(HaveLen(1))
				g.Expect(calls[0].m).To(BeIdenticalTo(testMonitor))
				g.Expect(calls[0].hb).To(Equal(*tc.wantHB))
				g.Expect(utf8.ValidString(calls[0].hb.Message)).To(BeTrue())
				g.Expect(len(calls[0].hb.Message)).To(BeNumerically("<=", DefaultMaxMessageBytes))
			}

			logs := f.logs.String()
			g.Expect(logs).NotTo(ContainSubstring(tok), "the token is never logged")
			g.Expect(logs).NotTo(ContainSubstring(testToken), "the token is never logged")
			if tc.wantCode == 503 {
				g.Expect(logs).NotTo(BeEmpty(), "a 503 is logged")
				if tc.recordErr != nil {
					g.Expect(logs).To(ContainSubstring("recording heartbeat"))
					g.Expect(logs).To(ContainSubstring("nightly-backup"), "the log names the monitor instead")
				} else {
					g.Expect(logs).To(ContainSubstring("looking up push token"))
				}
			}
		})
	}
}

func mustUnescape(t *testing.T, s string) string {
	t.Helper()
	u, err := url.PathUnescape(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestUnknownAnswersAlike checks that no answer tells an unknown token from a
// malformed one or from a monitor deleted under the request: same code, same
// headers, same body.
func TestUnknownAnswersAlike(t *testing.T) {
	g := NewWithT(t)
	notFound := apierrors.NewNotFound(schema.GroupResource{Resource: "pushmonitors"}, "x")
	answer := func(tok string, recordErr error) (int, http.Header, string) {
		f := newFixture(nil, recordErr)
		w := httptest.NewRecorder()
		f.srv.Handler().ServeHTTP(w, httptest.NewRequest("GET", "http://push.example/api/push/"+tok+"?status=up&msg=hi", nil))
		return w.Code, w.Header(), w.Body.String()
	}
	code, hdr, body := answer(otherToken, nil)
	g.Expect(code).To(Equal(404))
	for _, tc := range []struct {
		tok string
		err error
	}{
		{"short", nil},
		{testToken[:42] + "=", nil},
		{strings.Repeat("A", 200), nil},
		{testToken, notFound},
	} {
		c, h, b := answer(tc.tok, tc.err)
		g.Expect(c).To(Equal(code), tc.tok)
		g.Expect(h).To(Equal(hdr), tc.tok)
		g.Expect(b).To(Equal(body), tc.tok)
	}
}

// TestOptions checks that New fills defaults and honours explicit caps.
func TestOptions(t *testing.T) {
	g := NewWithT(t)
	s := New(Options{}, &fakeLookup{}, &fakeRecorder{}, logr.Discard())
	g.Expect(s.opts.MaxBodyBytes).To(Equal(int64(DefaultMaxBodyBytes)))
	g.Expect(s.opts.MaxMessageBytes).To(Equal(DefaultMaxMessageBytes))
	g.Expect(s.opts.ShutdownTimeout).To(Equal(DefaultShutdownTimeout))
	g.Expect(s.NeedLeaderElection()).To(BeFalse(), "every replica serves pushes")

	rec := &fakeRecorder{}
	s = New(Options{MaxBodyBytes: 10, MaxMessageBytes: 5}, &fakeLookup{}, rec, logr.Discard())
	s.now = func() time.Time { return testNow }
	w := httptest.NewRecorder()
	s.Handler().ServeHTTP(w, httptest.NewRequest("POST", "http://push.example/api/push/"+testToken+"?msg="+url.QueryEscape("abcdé"), strings.NewReader("0123456789")))
	g.Expect(w.Code).To(Equal(200))
	g.Expect(rec.Calls()).To(HaveLen(1))
	g.Expect(rec.Calls()[0].hb.Message).To(Equal("abcd"), "the cap falls inside é")

	w = httptest.NewRecorder()
	s.Handler().ServeHTTP(w, httptest.NewRequest("POST", "http://push.example/api/push/"+testToken, strings.NewReader("0123456789A")))
	g.Expect(w.Code).To(Equal(413))
	g.Expect(rec.Calls()).To(HaveLen(1))
}

// TestRecordIsBounded: a push waits a bounded time for its heartbeat to be
// written, so a stuck API turns into a 503, not a hung client.
func FuzzParse(f *testing.F) {
	for _, q := range []string{
		"", "status=up", "status=down&msg=x&value=1", "status=DOWN", "msg=%FF%FE", "value=1e3",
		"value=0x1p3", "ping=", "ping=12", "value=&ping=7", "value=NaN", "value=1e400", "%zz",
		"a=1;b=2", "msg=" + strings.Repeat("é", 600), "status=%00", "value=-0", "value=1_0",
	} {
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, q string) {
		lookup, rec := &fakeLookup{}, &fakeRecorder{}
		s := New(Options{}, lookup, rec, logr.Discard())
		req := httptest.NewRequest("GET", "http://push.example/api/push/"+testToken, nil)
		req.URL.RawQuery = q
		w := httptest.NewRecorder()
		s.Handler().ServeHTTP(w, req) // must not panic

		if w.Code != 200 && w.Code != 400 {
			t.Fatalf("query %q: answered %d %s", q, w.Code, w.Body.String())
		}
		var ans struct {
			OK  bool   `json:"ok"`
			Msg string `json:"msg"`
		}
		if err := json.Unmarshal(w.Body.Bytes(), &ans); err != nil {
			t.Fatalf("query %q: answer is not JSON: %q", q, w.Body.String())
		}
		calls := rec.Calls()
		if w.Code == 400 {
			if ans.OK || ans.Msg == "" || len(calls) != 0 {
				t.Fatalf("query %q: 400 %q with %d recorder calls", q, w.Body.String(), len(calls))
			}
			return
		}
		if !ans.OK || len(calls) != 1 {
			t.Fatalf("query %q: 200 %q with %d recorder calls", q, w.Body.String(), len(calls))
		}
		h := calls[0].hb
		if h.Status != monitoringv1alpha1.ReportedUp && h.Status != monitoringv1alpha1.ReportedDown {
			t.Fatalf("query %q: status %q", q, h.Status)
		}
		if !utf8.ValidString(h.Message) || len(h.Message) > DefaultMaxMessageBytes {
			t.Fatalf("query %q: message %q (%d bytes)", q, h.Message, len(h.Message))
		}
		if h.Value != "" {
			v, err := strconv.ParseFloat(h.Value, 64)
			if err != nil || math.IsNaN(v) || math.IsInf(v, 0) || strconv.FormatFloat(v, 'g', -1, 64) != h.Value {
				t.Fatalf("query %q: value %q is not a canonical finite number", q, h.Value)
			}
		}
	})
}

func TestStartAndGracefulShutdown(t *testing.T) {
	g := NewWithT(t)
	logs := &logBuffer{}
	rec := &fakeRecorder{}
	s := New(Options{Addr: "127.0.0.1:0", ShutdownTimeout: 10 * time.Second}, &fakeLookup{}, rec, logs.logger())
	g.Expect(s.Addr()).To(BeEmpty())
	g.Expect(s.ReadyCheck(nil)).To(HaveOccurred(), "not ready before listening")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Start(ctx) }()
	g.Eventually(s.Addr, 5*time.Second, 5*time.Millisecond).ShouldNot(BeEmpty())
	g.Expect(s.ReadyCheck(nil)).To(Succeed())
	base := "http://" + s.Addr()

	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Post(base+"/api/push/"+testToken+"?status=down&msg=disk+full&ping=3", "text/plain", nil)
	g.Expect(err).NotTo(HaveOccurred())
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	g.Expect(resp.StatusCode).To(Equal(200), string(b))
	g.Expect(strings.TrimSpace(string(b))).To(Equal(`{"ok":true}`))
	g.Expect(rec.Calls()).To(HaveLen(1))
	got := rec.Calls()[0].hb
	g.Expect(got.Status).To(Equal(monitoringv1alpha1.ReportedDown))
	g.Expect(got.Message).To(Equal("disk full"))
	g.Expect(got.Value).To(Equal("3"))
	g.Expect(got.Time).To(Equal(got.Time.Truncate(time.Microsecond)), "microsecond precision")
	g.Expect(got.Time).To(BeTemporally("~", time.Now(), 10*time.Second))

	// A chunked body over the cap through a real connection.
	req, err := http.NewRequest("POST", base+"/api/push/"+testToken, &bigReader{n: DefaultMaxBodyBytes + 1})
	g.Expect(err).NotTo(HaveOccurred())
	resp, err = client.Do(req)
	g.Expect(err).NotTo(HaveOccurred())
	resp.Body.Close()
	g.Expect(resp.StatusCode).To(Equal(413))
	g.Expect(rec.Calls()).To(HaveLen(1))

	// An in-flight push finishes during shutdown.
	entered, release := rec.block()
	inflight := make(chan int, 1)
	go func() {
		resp, err := client.Get(base + "/api/push/" + testToken)
		if err != nil {
			inflight <- -1
			return
		}
		resp.Body.Close()
		inflight <- resp.StatusCode
	}()
	g.Eventually(entered, 5*time.Second).Should(BeClosed())
	cancel()
	g.Consistently(done, 100*time.Millisecond).ShouldNot(Receive(), "Start waits for in-flight requests")
	close(release)
	g.Eventually(inflight, 5*time.Second).Should(Receive(Equal(200)))
	var startErr error
	g.Eventually(done, 5*time.Second).Should(Receive(&startErr))
	g.Expect(startErr).NotTo(HaveOccurred())

	_, err = client.Get(base + "/api/push/" + testToken) //nolint:bodyclose // it must fail: there is no body
	g.Expect(err).To(HaveOccurred(), "no longer listening")
	g.Expect(logs.String()).To(ContainSubstring("serving push endpoint"))
	g.Expect(logs.String()).NotTo(ContainSubstring(testToken))
}

func TestStartFailsOnBusyAddress(t *testing.T) {
	g := NewWithT(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	g.Expect(err).NotTo(HaveOccurred())
	defer ln.Close()
	s := New(Options{Addr: ln.Addr().String()}, &fakeLookup{}, &fakeRecorder{}, logr.Discard())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = s.Start(ctx)
	g.Expect(err).To(HaveOccurred())
	g.Expect(err.Error()).To(ContainSubstring("push endpoint"))
	g.Expect(s.Addr()).To(BeEmpty())
}
