package push

import (
	"math"
	"net"
	"net/http"
	"net/netip"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/pushmon/pushmon/internal/token"
)

// Defaults for Limits, used by the manager's flags. A zero Limits (as in
// unit tests) limits nothing.
const (
	// A heartbeat client pushes every few seconds at most; a run sends
	// start, log and end in quick succession: 2/s with a burst of 20.
	DefaultTokenRate  = 2
	DefaultTokenBurst = 20
	// Many clients may share one address (NAT, a proxy without a trusted
	// header): generous enough for them, low enough to slow token guessing.
	DefaultIPRate  = 50
	DefaultIPBurst = 100
	// DefaultMaxKeys bounds each table of buckets (tokens, addresses).
	DefaultMaxKeys = 65536
	// DefaultMaxConns caps concurrent connections to the push endpoint.
	DefaultMaxConns = 1024
)

// Limits are the push endpoint's abuse limits. They apply to every route the
// server serves, as middleware around the whole handler.
type Limits struct {
	// TokenRate and TokenBurst are the token bucket per push token (keyed
	// by the token's digest). TokenRate <= 0 turns the limit off.
	TokenRate  float64
	TokenBurst int
	// IPRate and IPBurst are the token bucket per client address.
	// IPRate <= 0 turns the limit off.
	IPRate  float64
	IPBurst int
	// MaxKeys bounds how many buckets each table holds; DefaultMaxKeys
	// when <= 0.
	MaxKeys int
	// ClientIPHeader names a header set by a trusted reverse proxy (e.g.
	// X-Forwarded-For, X-Real-IP) that carries the client's address. Empty:
	// the client is the connection's peer, and no header is believed.
	ClientIPHeader string
	// TrustedProxies are the only peers whose ClientIPHeader is believed;
	// in an X-Forwarded-For chain, addresses in them are skipped from the
	// right. Empty: no peer's header is believed, since any client could
	// otherwise pick its own bucket (cmd/main.go refuses a header without
	// trusted proxies).
	TrustedProxies []netip.Prefix
}

// limiter guards every route: it refuses unclean paths and applies Limits
// in front of next.
type limiter struct {
	limits Limits
	tokens *buckets // nil when off
	ips    *buckets // nil when off
	next   http.Handler
	now    func() time.Time
}

func newLimiter(l Limits, next http.Handler, now func() time.Time) *limiter {
	if l.MaxKeys <= 0 {
		l.MaxKeys = DefaultMaxKeys
	}
	lim := &limiter{limits: l, next: next, now: now}
	if l.TokenRate > 0 {
		lim.tokens = newBuckets(l.TokenRate, l.TokenBurst, l.MaxKeys)
	}
	if l.IPRate > 0 {
		lim.ips = newBuckets(l.IPRate, l.IPBurst, l.MaxKeys)
	}
	return lim
}

func (l *limiter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !cleanPath(r.URL.Path) {
		// ServeMux would answer such paths (dot segments, "//") with a
		// redirect to the cleaned path, i.e. follow a traversal in the token
		// elsewhere: refuse them instead, as any other unknown path.
		writeJSON(w, http.StatusNotFound, "not found")
		return
	}
	if l.ips == nil && l.tokens == nil {
		l.next.ServeHTTP(w, r)
		return
	}
	now := l.now()
	if l.ips != nil {
		if wait, ok := l.ips.take(l.clientIP(r), now); !ok {
			tooMany(w, wait, "too many requests from this address")
			return
		}
	}
	if l.tokens != nil {
		// Every well-formed token is limited alike, known or not, before it
		// is looked up: a 429 tells nothing about whether a token exists.
		// Malformed ones are not (they are 404 at once; the address limit
		// covers them) and take no memory.
		if tok := pathToken(r.URL.Path); token.WellFormed(tok) {
			if wait, ok := l.tokens.take(token.Digest(tok), now); !ok {
				tooMany(w, wait, "too many requests for this push URL")
				return
			}
		}
	}
	l.next.ServeHTTP(w, r)
}

// cleanPath reports whether p is already in the form ServeMux serves without
// redirecting (no ".", ".." or empty segments).
func cleanPath(p string) bool {
	if p == "" {
		return true // ServeMux answers an empty path itself, without a redirect
	}
	c := path.Clean(p)
	if strings.HasSuffix(p, "/") && c != "/" {
		c += "/"
	}
	return c == p
}

// tooMany answers 429 with Retry-After in whole seconds (at least 1).
func tooMany(w http.ResponseWriter, wait time.Duration, msg string) {
	secs := max(int64(math.Ceil(wait.Seconds())), 1)
	w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
	writeJSON(w, http.StatusTooManyRequests, msg+"; retry later")
}

// tokenPathPrefixes are the routes whose next path segment is a token.
var tokenPathPrefixes = []string{token.PushPathPrefix, PingPathPrefix}

// pathToken is the token segment of a push or ping path, or "".
func pathToken(path string) string {
	for _, p := range tokenPathPrefixes {
		if rest, ok := strings.CutPrefix(path, p); ok {
			tok, _, _ := strings.Cut(rest, "/")
			return tok
		}
	}
	return ""
}

// clientIP is the address a request is limited by: the connection's peer,
// or, when a proxy header is configured and the peer is one of the trusted
// proxies, the address that header names. A header that does not parse is
// ignored, so a client cannot escape its peer address's bucket with junk.
func (l *limiter) clientIP(r *http.Request) string {
	peer := remoteIP(r.RemoteAddr)
	if l.limits.ClientIPHeader == "" || !peer.IsValid() {
		return peerKey(peer, r.RemoteAddr)
	}
	if !l.trusted(peer) {
		// Also with no trusted proxies at all: a header from anyone is a
		// header any client can write.
		return peer.String()
	}
	if ip, ok := l.fromHeader(r.Header.Values(l.limits.ClientIPHeader)); ok {
		return ip.String()
	}
	return peer.String()
}

// fromHeader reads the client's address from the header's values: the
// rightmost entry that is not a trusted proxy, since each proxy appends what
// it saw and only the entries our proxies appended can be believed (a client
// can put anything on the left).
func (l *limiter) fromHeader(values []string) (netip.Addr, bool) {
	var entries []string
	for _, v := range values {
		entries = append(entries, strings.Split(v, ",")...)
	}
	for i := len(entries) - 1; i >= 0; i-- {
		ip, err := netip.ParseAddr(strings.TrimSpace(entries[i]))
		if err != nil {
			return netip.Addr{}, false
		}
		ip = ip.Unmap()
		if l.trusted(ip) && i > 0 {
			continue
		}
		return ip, true
	}
	return netip.Addr{}, false
}

func (l *limiter) trusted(ip netip.Addr) bool { return inPrefixes(ip, l.limits.TrustedProxies) }

func inPrefixes(ip netip.Addr, prefixes []netip.Prefix) bool {
	for _, p := range prefixes {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

func remoteIP(remoteAddr string) netip.Addr {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return ip.Unmap()
}

func peerKey(ip netip.Addr, remoteAddr string) string {
	if ip.IsValid() {
		return ip.String()
	}
	// Not an IP (a Unix socket, a test): one bucket for all such peers.
	return "peer:" + remoteAddr
}

// buckets is a bounded table of token buckets. A bucket idle for burst/rate
// is full again, exactly like a new one, so buckets idle that long are
// evicted without changing any answer; the table holds at most max of them
// (when full, an arbitrary one goes, which can only make the limit looser
// for its key, never refuse anyone wrongly).
type buckets struct {
	rate  rate.Limit
	burst int
	idle  time.Duration
	max   int

	mu        sync.Mutex
	m         map[string]*bucket
	lastSweep time.Time
}

type bucket struct {
	lim  *rate.Limiter
	last time.Time
}

func newBuckets(r float64, burst, maxKeys int) *buckets {
	burst = max(burst, 1)
	idle := time.Duration(float64(burst) / r * float64(time.Second))
	return &buckets{rate: rate.Limit(r), burst: burst, idle: max(idle, time.Second), max: maxKeys, m: map[string]*bucket{}}
}

// take spends one request from key's bucket; when it is empty it reports how
// long until it holds one again.
func (b *buckets) take(key string, now time.Time) (time.Duration, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if now.Sub(b.lastSweep) >= b.idle {
		b.sweep(now)
	}
	e, ok := b.m[key]
	if !ok {
		if len(b.m) >= b.max {
			for k := range b.m { // map order is random: evict one arbitrary bucket
				delete(b.m, k)
				break
			}
		}
		e = &bucket{lim: rate.NewLimiter(b.rate, b.burst)}
		b.m[key] = e
	}
	// Callers read the clock before the lock, so times arrive out of order
	// under concurrency; x/time/rate would count the time between an
	// earlier stamp and the last one twice. A bucket's time only moves on.
	if now.Before(e.last) {
		now = e.last
	}
	e.last = now
	res := e.lim.ReserveN(now, 1)
	if wait := res.DelayFrom(now); wait > 0 {
		res.CancelAt(now) // a refused request does not spend the next token
		return wait, false
	}
	return 0, true
}

func (b *buckets) sweep(now time.Time) {
	b.lastSweep = now
	for k, e := range b.m {
		if now.Sub(e.last) >= b.idle {
			delete(b.m, k)
		}
	}
}

// len is the number of buckets held (tests).
func (b *buckets) len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.m)
}
