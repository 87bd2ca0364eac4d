package push

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/pushmon/pushmon/internal/metrics"
)

// startServer runs s until the test ends and waits until it listens.
func startServer(t *testing.T, s *Server) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Start(ctx) }()
	t.Cleanup(func() { cancel(); _ = <-done })
	NewWithT(t).Eventually(s.Addr, 5*time.Second, 5*time.Millisecond).ShouldNot(BeEmpty())
}

// dialFrom opens a TCP connection to addr from the loopback address from
// (Linux routes all of 127/8 to lo, so 127.0.0.2 is another client).
func dialFrom(from, addr string) (net.Conn, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
	return d.Dial("tcp", addr)
}

// pushFrom sends one push from the address from on a new connection.
func pushFrom(from, addr string, timeout time.Duration) (int, error) {
	c := &http.Client{Timeout: timeout, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
			return d.DialContext(ctx, network, a)
		},
	}}
	resp, err := c.Get("http://" + addr + "/api/push/" + testToken)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

// watchClosed reports on the returned channel the index of each conn as the
// server closes it (its Read returns).
func watchClosed(conns []net.Conn) <-chan int {
	closed := make(chan int, len(conns))
	for i, c := range conns {
		go func() {
			_, _ = c.Read(make([]byte, 1))
			closed <- i
		}()
	}
	return closed
}

func connsRefused(g Gomega) float64 {
	mfs, err := ctrlmetrics.Registry.Gather()
	g.Expect(err).NotTo(HaveOccurred())
	for _, mf := range mfs {
		if mf.GetName() == metrics.PushConnsRefusedName {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	g.Expect(metrics.PushConnsRefusedName).To(BeEmpty(), "metric not registered")
	return 0
}

// TestMaxConnsPerAddr: one address holding idle (half-open: no request
// sent) connections up to the global cap cannot starve another address.
// Without the per-address cap the eight idle connections from 127.0.0.1 hold
// every slot until the 5 s header timeout, so the push from 127.0.0.2
// (client timeout 3 s) cannot be answered; with it, the connections over
// the cap are closed at once and the push is answered.
func TestMaxConnsPerAddr(t *testing.T) {
	g := NewWithT(t)
	s := New(Options{Addr: "127.0.0.1:0", MaxConns: 8, MaxConnsPerAddr: 4}, &fakeLookup{}, &fakeRecorder{}, logr.Discard())
	startServer(t, s)
	refusedBefore := connsRefused(g)

	var idle []net.Conn
	for range 8 {
		c, err := dialFrom("127.0.0.1", s.Addr())
		g.Expect(err).NotTo(HaveOccurred())
		defer c.Close()
		idle = append(idle, c)
	}
	closed := watchClosed(idle)
	var refused []int
	g.Eventually(func() []int {
		for {
			select {
			case i := <-closed:
				refused = append(refused, i)
			default:
				return refused
			}
		}
	}, 3*time.Second, 10*time.Millisecond).Should(HaveLen(4), "the four connections over the per-address cap are closed at once")
	g.Expect(connsRefused(g)-refusedBefore).To(Equal(4.0), "each refused connection counted once")

	code, err := pushFrom("127.0.0.2", s.Addr(), 3*time.Second)
	g.Expect(err).NotTo(HaveOccurred(), "another address gets a slot while 127.0.0.1 holds its four")
	g.Expect(code).To(Equal(http.StatusOK))
	g.Expect(closed).NotTo(Receive(), "the held connections are still open: the push did not wait for the header timeout")

	// A slot given back is free again for that address.
	var held net.Conn
	for i, c := range idle {
		if !containsInt(refused, i) {
			held = c
			break
		}
	}
	g.Expect(held.Close()).To(Succeed())
	g.Eventually(func() error {
		_, err := pushFrom("127.0.0.1", s.Addr(), 3*time.Second)
		return err
	}, 5*time.Second, 20*time.Millisecond).Should(Succeed())
}

// TestMaxConnsPerAddrTrustedProxy: a trusted proxy carries many clients, so
// its connections count against the global cap only.
func TestMaxConnsPerAddrTrustedProxy(t *testing.T) {
	g := NewWithT(t)
	s := New(Options{
		Addr: "127.0.0.1:0", MaxConnsPerAddr: 2,
		Limits: Limits{ClientIPHeader: "X-Forwarded-For", TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}},
	}, &fakeLookup{}, &fakeRecorder{}, logr.Discard())
	startServer(t, s)
	for range 4 {
		c, err := dialFrom("127.0.0.1", s.Addr())
		g.Expect(err).NotTo(HaveOccurred())
		defer c.Close()
	}
	code, err := pushFrom("127.0.0.1", s.Addr(), 3*time.Second)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(code).To(Equal(http.StatusOK))
}

func containsInt(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
