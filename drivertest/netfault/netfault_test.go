package netfault_test

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/distlock/distlock/drivertest/netfault"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// echo is a server that sends back what it reads and counts it.
type echo struct {
	ln    net.Listener
	got   atomic.Int64
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns []net.Conn
}

func startEcho(t *testing.T) *echo {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := &echo{ln: ln}
	e.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			e.mu.Lock()
			e.conns = append(e.conns, c)
			e.mu.Unlock()
			e.wg.Go(func() {
				defer c.Close()
				buf := make([]byte, 1024)
				for {
					n, err := c.Read(buf)
					e.got.Add(int64(n))
					if n > 0 {
						if _, err := c.Write(buf[:n]); err != nil {
							return
						}
					}
					if err != nil {
						return
					}
				}
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		e.mu.Lock()
		for _, c := range e.conns {
			c.Close()
		}
		e.mu.Unlock()
		e.wg.Wait()
	})
	return e
}

func startProxy(t *testing.T, target string) *netfault.Proxy {
	t.Helper()
	p, err := netfault.New(target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// roundTrip writes msg and reads as many bytes back within d.
func roundTrip(c net.Conn, msg string, d time.Duration) (string, error) {
	if _, err := c.Write([]byte(msg)); err != nil {
		return "", err
	}
	return readN(c, len(msg), d)
}

func readN(c net.Conn, n int, d time.Duration) (string, error) {
	c.SetReadDeadline(time.Now().Add(d))
	defer c.SetReadDeadline(time.Time{})
	buf := make([]byte, n)
	_, err := io.ReadFull(c, buf)
	return string(buf), err
}

// waitFor polls cond for up to 5s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("still not %s after 5s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestForward(t *testing.T) {
	e := startEcho(t)
	p := startProxy(t, e.ln.Addr().String())
	c := dial(t, p.Addr())
	if got, err := roundTrip(c, "ping", 5*time.Second); err != nil || got != "ping" {
		t.Fatalf("round trip = %q, %v", got, err)
	}
	st := p.Stats()
	if st.ToServer != 4 || st.ToClient != 4 || st.Accepted != 1 || st.Open != 1 {
		t.Errorf("Stats = %+v, want 4 bytes each way on one open connection", st)
	}
}

func TestStallHoldsThenDelivers(t *testing.T) {
	e := startEcho(t)
	p := startProxy(t, e.ln.Addr().String())
	c := dial(t, p.Addr())
	p.Set(netfault.Stall)
	if _, err := roundTrip(c, "held", 100*time.Millisecond); !isTimeout(err) {
		t.Fatalf("round trip through a stalled proxy: %v, want a timeout", err)
	}
	if n := e.got.Load(); n != 0 {
		t.Errorf("the server got %d bytes through a stalled proxy", n)
	}
	// A connection made during the stall stalls too.
	c2 := dial(t, p.Addr())
	if _, err := roundTrip(c2, "new", 100*time.Millisecond); !isTimeout(err) {
		t.Fatalf("round trip on a connection made during the stall: %v, want a timeout", err)
	}
	p.Set(netfault.Forward)
	if got, err := readN(c, 4, 5*time.Second); err != nil || got != "held" {
		t.Errorf("after the stall: %q, %v; want the held bytes", got, err)
	}
	if got, err := readN(c2, 3, 5*time.Second); err != nil || got != "new" {
		t.Errorf("after the stall, the new connection: %q, %v", got, err)
	}
	if st := p.Stats(); st.LostToServer != 0 || st.LostToClient != 0 {
		t.Errorf("a stall lost bytes: %+v", st)
	}
}

func TestBlackHoleSwallowsAndResetsOnHeal(t *testing.T) {
	e := startEcho(t)
	p := startProxy(t, e.ln.Addr().String())
	c := dial(t, p.Addr())
	p.Set(netfault.BlackHole)
	if _, err := roundTrip(c, "gone", 100*time.Millisecond); !isTimeout(err) {
		t.Fatalf("round trip through a black hole: %v, want a timeout", err)
	}
	waitFor(t, "counted as lost", func() bool { return p.Stats().LostToServer == 4 })
	if n := e.got.Load(); n != 0 {
		t.Errorf("the server got %d bytes through a black hole", n)
	}
	p.Set(netfault.Forward)
	if _, err := readN(c, 1, 5*time.Second); !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("reading on a connection that lost bytes, after the heal: %v, want ECONNRESET", err)
	}
	c2 := dial(t, p.Addr())
	if got, err := roundTrip(c2, "ok", 5*time.Second); err != nil || got != "ok" {
		t.Errorf("a new connection after the heal: %q, %v", got, err)
	}
}

func TestDropRepliesLetsRequestsThrough(t *testing.T) {
	e := startEcho(t)
	p := startProxy(t, e.ln.Addr().String())
	c := dial(t, p.Addr())
	p.Set(netfault.DropReplies)
	if _, err := roundTrip(c, "acted", 100*time.Millisecond); !isTimeout(err) {
		t.Fatalf("round trip with replies dropped: %v, want a timeout", err)
	}
	waitFor(t, "at the server", func() bool { return e.got.Load() == 5 })
	waitFor(t, "counted as lost", func() bool { return p.Stats().LostToClient == 5 })
	if st := p.Stats(); st.ToServer != 5 || st.ToClient != 0 {
		t.Errorf("Stats = %+v, want 5 bytes delivered to the server and none to the client", st)
	}
	// Black-holing too keeps the connection (the reply side was already
	// lost); forwarding again resets it.
	p.Set(netfault.BlackHole)
	p.Set(netfault.Forward)
	if _, err := readN(c, 1, 5*time.Second); !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("reading after the heal: %v, want ECONNRESET", err)
	}
}

func TestReset(t *testing.T) {
	e := startEcho(t)
	p := startProxy(t, e.ln.Addr().String())
	c := dial(t, p.Addr())
	if _, err := roundTrip(c, "x", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	p.Reset()
	if _, err := readN(c, 1, 5*time.Second); !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("reading after Reset: %v, want ECONNRESET", err)
	}
	waitFor(t, "closed", func() bool { return p.Stats().Open == 0 })
	c2 := dial(t, p.Addr())
	if got, err := roundTrip(c2, "y", 5*time.Second); err != nil || got != "y" {
		t.Errorf("a new connection after Reset: %q, %v", got, err)
	}
}

func TestRefuse(t *testing.T) {
	e := startEcho(t)
	p := startProxy(t, e.ln.Addr().String())
	c := dial(t, p.Addr())
	if _, err := roundTrip(c, "accepted", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := p.Refuse(true); err != nil {
		t.Fatal(err)
	}
	if c2, err := net.Dial("tcp", p.Addr()); !errors.Is(err, syscall.ECONNREFUSED) {
		if c2 != nil {
			c2.Close()
		}
		t.Fatalf("dial while refusing: %v, want ECONNREFUSED", err)
	}
	if got, err := roundTrip(c, "still", 5*time.Second); err != nil || got != "still" {
		t.Errorf("a connection made before the refusal: %q, %v", got, err)
	}
	if err := p.Refuse(false); err != nil {
		t.Fatal(err)
	}
	c3 := dial(t, p.Addr())
	if got, err := roundTrip(c3, "back", 5*time.Second); err != nil || got != "back" {
		t.Errorf("a new connection after the refusal ended: %q, %v", got, err)
	}
}

func TestLatency(t *testing.T) {
	e := startEcho(t)
	p := startProxy(t, e.ln.Addr().String())
	c := dial(t, p.Addr())
	const d = 100 * time.Millisecond
	p.SetLatency(d)
	start := time.Now()
	if got, err := roundTrip(c, "slow", 5*time.Second); err != nil || got != "slow" {
		t.Fatalf("round trip with latency: %q, %v", got, err)
	}
	if took := time.Since(start); took < 2*d {
		t.Errorf("a round trip with %v each way took %v", d, took)
	}
	// A chunk held by a long latency goes on when the latency is lifted.
	p.SetLatency(time.Hour)
	if _, err := c.Write([]byte("z")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if n := e.got.Load(); n != 4 {
		t.Fatalf("the server got %d bytes, want only the 4 of the first round trip", n)
	}
	p.SetLatency(0)
	if got, err := readN(c, 1, 5*time.Second); err != nil || got != "z" {
		t.Errorf("a chunk held by a latency that was lifted: %q, %v", got, err)
	}
}

func TestServerDownResetsClient(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	target := ln.Addr().String()
	ln.Close()
	p := startProxy(t, target)
	c, err := net.Dial("tcp", p.Addr())
	if err == nil { // the reset may come before or after the connect returns
		defer c.Close()
		_, err = readN(c, 1, 5*time.Second)
	}
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("reading through a proxy whose server is down: %v, want ECONNRESET", err)
	}
}

func TestCloseEndsHeldConnections(t *testing.T) {
	e := startEcho(t)
	p, err := netfault.New(e.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, p.Addr())
	p.Set(netfault.Stall)
	if _, err := c.Write([]byte("held")); err != nil {
		t.Fatal(err)
	}
	p.SetLatency(time.Hour)
	done := make(chan struct{})
	go func() { p.Close(); p.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close with a held chunk did not return")
	}
	if _, err := readN(c, 1, 5*time.Second); err == nil || isTimeout(err) {
		t.Errorf("reading after Close: %v, want the connection ended", err)
	}
	if err := p.Refuse(false); err == nil {
		t.Errorf("Refuse on a closed proxy succeeded")
	}
}

func TestCutReply(t *testing.T) {
	e := startEcho(t)
	p := startProxy(t, e.ln.Addr().String())
	c := dial(t, p.Addr())
	p.CutReply(2)
	if got, err := roundTrip(c, "one", 5*time.Second); err != nil || got != "one" {
		t.Fatalf("the first reply after CutReply(2): %q, %v; want it through", got, err)
	}
	if _, err := roundTrip(c, "two", 5*time.Second); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("the second reply after CutReply(2): %v, want the connection reset", err)
	}
	waitFor(t, "at the server", func() bool { return e.got.Load() == 6 })
	if st := p.Stats(); st.Cut != 1 || st.LostToClient != 3 {
		t.Errorf("Stats = %+v, want one cut of 3 bytes", st)
	}
	// One cut only: the next connection works.
	c2 := dial(t, p.Addr())
	if got, err := roundTrip(c2, "three", 5*time.Second); err != nil || got != "three" {
		t.Errorf("a new connection after the cut: %q, %v", got, err)
	}
}
