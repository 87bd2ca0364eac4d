package push

import (
	"net"
	"net/netip"
	"sync"

	"github.com/pushmon/pushmon/internal/metrics"
)

// DefaultMaxConnsPerAddr caps concurrent connections from one client
// address: far more than a client (or a NAT of them) keeps open to push, far
// fewer than DefaultMaxConns, so that one host cannot hold every slot.
const DefaultMaxConnsPerAddr = 64

// perAddrListener closes, at once, each accepted connection whose peer
// address already holds max connections. It sits inside netutil's
// LimitListener: a refused connection is closed within one Accept call and
// never takes a slot of the global cap, while an admitted one holds its
// slot in both until it is closed.
//
// Hand-written: golang.org/x/net/netutil only caps the total, and no
// maintained package does this one thing without bringing a framework.
type perAddrListener struct {
	net.Listener
	max int
	// exempt peers (trusted proxies) carry many clients: the global cap
	// alone applies to them.
	exempt func(netip.Addr) bool

	mu sync.Mutex
	n  map[netip.Addr]int // open connections per peer; no zero entries
}

func limitPerAddr(ln net.Listener, maxPerAddr int, exempt func(netip.Addr) bool) net.Listener {
	return &perAddrListener{Listener: ln, max: maxPerAddr, exempt: exempt, n: map[netip.Addr]int{}}
}

func (l *perAddrListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := connIP(c.RemoteAddr())
		if !ip.IsValid() || (l.exempt != nil && l.exempt(ip)) {
			return c, nil
		}
		if !l.acquire(ip) {
			// Closed, not queued: a queued connection would wait for a
			// slot this address is holding, which is the attack.
			_ = c.Close()
			metrics.CountConnRefused()
			continue
		}
		return &perAddrConn{Conn: c, release: func() { l.release(ip) }}, nil
	}
}

func (l *perAddrListener) acquire(ip netip.Addr) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n[ip] >= l.max {
		return false
	}
	l.n[ip]++
	return true
}

func (l *perAddrListener) release(ip netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	// Entries go at zero, so the map holds only addresses with open
	// connections (bounded by MaxConns).
	if l.n[ip]--; l.n[ip] <= 0 {
		delete(l.n, ip)
	}
}

// connIP is the peer's IP, IPv4-mapped IPv6 unmapped as the rate limits
// key it; invalid for peers that are not TCP/IP.
func connIP(a net.Addr) netip.Addr {
	if t, ok := a.(*net.TCPAddr); ok {
		ip, _ := netip.AddrFromSlice(t.IP)
		return ip.Unmap()
	}
	return netip.Addr{}
}

// perAddrConn gives its address's slot back once, however often it is
// closed (net/http may close a connection more than once).
type perAddrConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *perAddrConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
