package push

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/go-logr/logr"

	"github.com/pushmon/pushmon/internal/token"
)

var fuzzMethods = []string{"GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH"}

// FuzzServePush sends whole push requests (method, token segment, query,
// content type, body) through the handler, rate limits included, and checks
// what every answer must be: one of the documented codes, JSON of the one
// shape, the recorder called exactly for a 200 with a clean heartbeat, and
// the token never echoed.
func FuzzServePush(f *testing.F) {
	f.Add(uint8(1), testToken, "status=down&msg=x&value=1", "", []byte(nil))
	f.Add(uint8(0), testToken, "msg=a%00b%FF", "text/plain", []byte("body"))
	f.Add(uint8(1), testToken, "status=down", "application/x-www-form-urlencoded", []byte("status=down"))
	f.Add(uint8(1), testToken, "", "multipart/form-data; boundary=x", []byte("--x--"))
	f.Add(uint8(0), otherToken, "value=NaN", "", []byte(nil))
	f.Add(uint8(0), "../../etc/passwd", "", "", []byte(nil))
	f.Add(uint8(0), strings.Repeat("A", 10240), "", "", []byte(nil))
	f.Add(uint8(3), testToken, "", "", []byte(nil))
	f.Add(uint8(1), testToken, "status=up&status=down&msg=1&msg=2", "application/json", []byte(`{"status":"down"}`))
	f.Add(uint8(1), testToken, "msg="+strings.Repeat("%E2%82%AC", 500), "", []byte(nil))
	f.Fuzz(func(t *testing.T, mi uint8, tok, query, ctype string, body []byte) {
		rec := &fakeRecorder{}
		s := New(Options{MaxBodyBytes: 64, Limits: Limits{TokenRate: 1000, TokenBurst: 1000, IPRate: 1000, IPBurst: 1000}},
			&fakeLookup{}, rec, logr.Discard())
		req := httptest.NewRequest("GET", "http://push.example/", bytes.NewReader(body))
		req.Method = fuzzMethods[int(mi)%len(fuzzMethods)]
		req.URL.Path = token.PushPathPrefix + tok
		req.URL.RawQuery = query
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		w := httptest.NewRecorder()
		s.Handler().ServeHTTP(w, req) // must not panic

		switch w.Code {
		case 200, 400, 404, 405, 413, 415, 429:
		default:
			t.Fatalf("answered %d %q", w.Code, w.Body.String())
		}
		calls := rec.Calls()
		if (w.Code == 200) != (len(calls) == 1) || len(calls) > 1 {
			t.Fatalf("answered %d with %d recorder calls", w.Code, len(calls))
		}
		if strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") {
			var ans struct {
				OK  *bool   `json:"ok"`
				Msg *string `json:"msg"`
			}
			if err := json.Unmarshal(w.Body.Bytes(), &ans); err != nil || ans.OK == nil || *ans.OK != (w.Code == 200) {
				t.Fatalf("answer %d %q is not {ok, msg}", w.Code, w.Body.String())
			}
			if w.Code != 200 && (ans.Msg == nil || *ans.Msg == "") {
				t.Fatalf("answer %d without msg", w.Code)
			}
		}
		if len(tok) >= 8 && strings.Contains(w.Body.String(), tok) {
			t.Fatalf("answer %q echoes the token", w.Body.String())
		}
		if len(calls) == 1 {
			msg := calls[0].hb.Message
			if !utf8.ValidString(msg) || len(msg) > DefaultMaxMessageBytes || strings.IndexFunc(msg, unicode.IsControl) >= 0 {
				t.Fatalf("stored message %q", msg)
			}
		}
	})
}

// FuzzClientIP checks that whatever a client sends in the trusted header,
// the key its requests are limited by is an IP address (never the raw
// header, which would let junk create buckets without bound).
func FuzzClientIP(f *testing.F) {
	for _, v := range []string{"", "198.51.100.7", "1.2.3.4, 198.51.100.7", "junk", "::ffff:1.2.3.4",
		"10.0.0.1, 10.0.0.2", "[2001:db8::1]", "2001:db8::1%eth0", " , ,", "1.2.3.4:80", strings.Repeat("1.1.1.1,", 100)} {
		f.Add("10.0.0.9:5", v)
	}
	f.Add("[2001:db8::2]:443", "198.51.100.7")
	f.Add("garbage", "198.51.100.7")
	f.Fuzz(func(t *testing.T, remote, header string) {
		for _, trusted := range [][]string{nil, {"10.0.0.0/8"}} {
			l := Limits{ClientIPHeader: "X-Forwarded-For", IPRate: 1, IPBurst: 1}
			for _, p := range trusted {
				l.TrustedProxies = append(l.TrustedProxies, mustPrefix(t, p))
			}
			lim := newLimiter(l, http.NotFoundHandler(), nil)
			req := httptest.NewRequest("GET", "http://push.example/", nil)
			req.RemoteAddr = remote
			req.Header.Set("X-Forwarded-For", header)
			key := lim.clientIP(req)
			if strings.HasPrefix(key, "peer:") {
				if remoteIP(remote).IsValid() || key != "peer:"+remote {
					t.Fatalf("remote %q header %q: key %q", remote, header, key)
				}
				continue
			}
			if _, err := parseAddr(key); err != nil {
				t.Fatalf("remote %q header %q: key %q is not an address", remote, header, key)
			}
		}
	})
}

func mustPrefix(t *testing.T, s string) netip.Prefix {
	t.Helper()
	p, err := netip.ParsePrefix(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func parseAddr(s string) (netip.Addr, error) { return netip.ParseAddr(s) }
