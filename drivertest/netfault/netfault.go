// Package netfault is a TCP proxy for fault tests. A test puts one in front
// of each server its client talks to, points the client at [Proxy.Addr], and
// changes at any moment what the network between them does, to every
// connection through the proxy at once:
//
//	p, err := netfault.New(srv.Addr()) // listens on a free loopback port
//	defer p.Close()
//	client := redis.NewClient(&redis.Options{Addr: p.Addr()})
//	p.Set(netfault.Stall)   // a frozen network: nothing moves, nothing is lost
//	p.Set(netfault.Forward) // what was held goes on now
//
// # Modes
//
// [Proxy.Set] picks one of:
//
//   - [Forward]: bytes pass both ways.
//   - [Stall]: no byte moves either way and connections stay open, as with a
//     SIGSTOPped server or a network that froze; what was held is delivered,
//     in order, once another mode lets it pass.
//   - [BlackHole]: bytes both ways are read and thrown away, as in a
//     partition that outlasts the connections.
//   - [DropReplies]: bytes to the server pass, bytes to the client are thrown
//     away: every request reaches the server and takes effect, and its reply
//     is lost.
//
// Besides the mode, [Proxy.SetLatency] holds every chunk for a while in
// each direction, [Proxy.CutReply] throws away one chunk from the server (a
// reply, on an idle connection) and resets its connection, [Proxy.Reset]
// ends every current connection with a TCP RST (SO_LINGER 0), and
// [Proxy.Refuse] closes the listening socket, so that new
// connections are refused (ECONNREFUSED) while current ones go on (a
// connection the proxy had not accepted yet is reset).
//
// New connections get the current mode: the client's connect succeeds (the
// kernel completes it, as it does for a stopped server) and its bytes are
// then treated as every other connection's.
//
// # Lost bytes end the connection
//
// TCP never delivers a stream with a hole in it: a real connection that lost
// data is dead. So a connection that had bytes thrown away in one direction
// is reset as soon as a mode lets that direction pass again, rather than
// carrying on with a stream the client or the server would misread.
//
// # Counters
//
// [Proxy.Stats] counts the bytes delivered and thrown away in each
// direction, and the connections accepted, so that a test can tell that a
// request reached the server, or that a reply was lost.
//
// # Goroutines
//
// A proxy runs one goroutine to accept and two per connection. Close ends
// every connection and waits for all of them, so none outlives the test.
package netfault

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Mode is what the proxy does to the bytes of every connection through it.
type Mode int32

const (
	// Forward passes bytes both ways.
	Forward Mode = iota
	// Stall moves no byte either way and holds what it has read, for the
	// next mode that lets it pass.
	Stall
	// BlackHole throws away the bytes of both directions.
	BlackHole
	// DropReplies passes the client's bytes to the server and throws away
	// the server's.
	DropReplies
)

func (m Mode) String() string {
	switch m {
	case Forward:
		return "forward"
	case Stall:
		return "stall"
	case BlackHole:
		return "black-hole"
	case DropReplies:
		return "drop-replies"
	}
	return fmt.Sprintf("Mode(%d)", int32(m))
}

// direction is the way bytes go through a connection.
type direction int

const (
	toServer direction = iota
	toClient
)

// swallows reports whether m throws away the bytes going in d.
func (m Mode) swallows(d direction) bool {
	return m == BlackHole || (m == DropReplies && d == toClient)
}

// Stats counts what went through a proxy since it started.
type Stats struct {
	ToServer, ToClient         int64 // bytes delivered
	LostToServer, LostToClient int64 // bytes thrown away
	Accepted                   int64 // connections accepted
	Open                       int   // connections open now
	Cut                        int64 // replies cut by CutReply
}

// Proxy forwards TCP connections from a loopback port to one server.
// Its methods are safe for concurrent use.
type Proxy struct {
	target string
	addr   string

	mu      sync.Mutex
	ln      net.Listener // nil while refusing
	mode    Mode
	latency time.Duration
	changed chan struct{} // closed, and replaced, at every change
	links   map[*link]struct{}
	closed  bool

	done chan struct{} // closed by Close
	wg   sync.WaitGroup

	delivered, lost [2]atomic.Int64 // by direction
	accepted        atomic.Int64
	cutIn           int   // CutReply: chunks from the server until the cut (0: none armed); guarded by mu
	cuts            int64 // guarded by mu
}

// New starts a proxy on a free loopback port (127.0.0.1) that forwards every
// connection to target (host:port), in mode Forward.
func New(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("netfault: %w", err)
	}
	p := &Proxy{
		target:  target,
		addr:    ln.Addr().String(),
		ln:      ln,
		changed: make(chan struct{}),
		links:   make(map[*link]struct{}),
		done:    make(chan struct{}),
	}
	p.wg.Add(1)
	go p.serve(ln)
	return p, nil
}

// Addr is the proxy's host:port, for the client.
func (p *Proxy) Addr() string { return p.addr }

// Target is the server's host:port.
func (p *Proxy) Target() string { return p.target }

// Mode returns the current mode.
func (p *Proxy) Mode() Mode {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mode
}

// Set switches every connection to mode m at once. Bytes held by Stall go
// on if m lets them pass; a connection that lost bytes in a direction m lets
// pass is reset.
func (p *Proxy) Set(m Mode) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mode = m
	for l := range p.links {
		for _, d := range []direction{toServer, toClient} {
			if l.holed[d] && !m.swallows(d) {
				l.abort()
			}
		}
	}
	p.broadcast()
}

// SetLatency holds every chunk read from either side for d before it is
// passed on (0: none). Chunks of one direction stay in order, one at a time;
// a chunk already held is measured against the new d.
func (p *Proxy) SetLatency(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.latency = max(d, 0)
	p.broadcast()
}

// CutReply arms a one-off cut: of the chunks the server sends from now on,
// over every connection, the first n-1 pass and the n-th is thrown away and
// its connection reset on both sides, as when the network fails right
// after a request reached the server. On a connection carrying one request
// at a time a chunk is a reply, so n picks which round trip of an operation
// loses its answer. It replaces a cut armed before; n <= 0 disarms.
func (p *Proxy) CutReply(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cutIn = max(n, 0)
}

// Reset ends every current connection with a TCP RST on both sides (SO_LINGER
// 0), as a middlebox that drops its state, or a host that reboots, does. New
// connections are accepted as before.
func (p *Proxy) Reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for l := range p.links {
		l.abort()
	}
	p.broadcast()
}

// Refuse, when on, closes the listening socket, so that a new connection to
// Addr is refused (ECONNREFUSED) as by a server that is down; current
// connections go on, but one the kernel completed and the proxy had not
// accepted yet is reset. When off, it listens on the same address again.
func (p *Proxy) Refuse(on bool) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errors.New("netfault: proxy is closed")
	}
	if on {
		if p.ln != nil {
			p.ln.Close()
			p.ln = nil
		}
		return nil
	}
	if p.ln != nil {
		return nil
	}
	// The port is ours until someone else binds it; a moment after a close
	// the kernel may still refuse the bind.
	var err error
	for range 50 {
		var ln net.Listener
		if ln, err = net.Listen("tcp", p.addr); err == nil {
			p.ln = ln
			p.wg.Add(1)
			go p.serve(ln)
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("netfault: listening on %s again: %w", p.addr, err)
}

// Stats returns the counters.
func (p *Proxy) Stats() Stats {
	p.mu.Lock()
	open, cuts := len(p.links), p.cuts
	p.mu.Unlock()
	return Stats{
		ToServer:     p.delivered[toServer].Load(),
		ToClient:     p.delivered[toClient].Load(),
		LostToServer: p.lost[toServer].Load(),
		LostToClient: p.lost[toClient].Load(),
		Accepted:     p.accepted.Load(),
		Open:         open,
		Cut:          cuts,
	}
}

// Close stops listening, resets every connection and waits until every
// goroutine of the proxy has returned. It may be called twice.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		close(p.done)
		if p.ln != nil {
			p.ln.Close()
			p.ln = nil
		}
		for l := range p.links {
			l.abort()
		}
	}
	p.mu.Unlock()
	p.wg.Wait()
	return nil
}

// broadcast wakes every chunk waiting for a change. p.mu must be held.
func (p *Proxy) broadcast() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// serve accepts connections on ln until ln is closed.
func (p *Proxy) serve(ln net.Listener) {
	defer p.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors, say: try again in a moment.
			select {
			case <-p.done:
				return
			case <-time.After(10 * time.Millisecond):
			}
			continue
		}
		p.accepted.Add(1)
		p.wg.Add(1)
		go p.open(c.(*net.TCPConn))
	}
}

// dialTimeout bounds the connection to the server. On loopback a dial
// either succeeds or is refused at once, even to a stopped server.
const dialTimeout = 5 * time.Second

// open connects client to the server and starts moving bytes.
func (p *Proxy) open(client *net.TCPConn) {
	defer p.wg.Done()
	c, err := net.DialTimeout("tcp", p.target, dialTimeout)
	if err != nil {
		// The server is down: the client sees its connection reset.
		client.SetLinger(0)
		client.Close()
		return
	}
	l := &link{client: client, server: c.(*net.TCPConn)}
	l.pipes.Store(2)
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		l.abort()
		return
	}
	p.links[l] = struct{}{}
	p.mu.Unlock()
	p.wg.Add(2)
	go p.pipe(l, toServer)
	go p.pipe(l, toClient)
}

// link is one client connection and its connection to the server.
type link struct {
	client, server *net.TCPConn
	pipes          atomic.Int32 // directions still moving bytes
	dead           atomic.Bool
	once           sync.Once
	holed          [2]bool // bytes were thrown away, by direction; guarded by Proxy.mu
}

// abort resets both connections (RST), once.
func (l *link) abort() {
	l.once.Do(func() {
		l.dead.Store(true)
		for _, c := range []*net.TCPConn{l.client, l.server} {
			c.SetLinger(0)
			c.Close()
		}
	})
}

// ends returns where bytes going in d come from and go to.
func (l *link) ends(d direction) (src, dst *net.TCPConn) {
	if d == toServer {
		return l.client, l.server
	}
	return l.server, l.client
}

// pipe moves the bytes of l going in d until either side ends.
func (p *Proxy) pipe(l *link, d direction) {
	defer p.wg.Done()
	src, dst := l.ends(d)
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !p.pass(l, d, dst, buf[:n]) {
			l.abort()
			break
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				dst.CloseWrite() // pass the half-close on
			} else {
				l.abort()
			}
			break
		}
	}
	if l.pipes.Add(-1) == 0 {
		l.client.Close()
		l.server.Close()
		p.mu.Lock()
		delete(p.links, l)
		p.mu.Unlock()
	}
}

// pass delivers b, read just now from the side d comes from, as the mode
// says: at once, after the latency, once a stall ends, or never. It reports
// false when the connection is to end.
func (p *Proxy) pass(l *link, d direction, dst *net.TCPConn, b []byte) bool {
	read := time.Now()
	for {
		if l.dead.Load() {
			return false
		}
		p.mu.Lock()
		mode, latency, changed := p.mode, p.latency, p.changed
		if d == toClient && mode != Stall && p.cutIn > 0 {
			p.cutIn--
			if p.cutIn == 0 {
				p.cuts++
				p.mu.Unlock()
				p.lost[d].Add(int64(len(b)))
				return false // the caller resets the connection
			}
		}
		if mode.swallows(d) {
			// Marked under the lock, so that a Set that lets d pass
			// again sees it and resets the connection.
			l.holed[d] = true
			p.mu.Unlock()
			p.lost[d].Add(int64(len(b)))
			return true
		}
		p.mu.Unlock()
		switch {
		case mode == Stall:
			if !p.await(changed, 0) {
				return false
			}
			continue
		case latency > 0 && time.Until(read.Add(latency)) > 0:
			if !p.await(changed, time.Until(read.Add(latency))) {
				return false
			}
			continue // the mode may have changed meanwhile
		}
		// Counted first: the other side may answer before Write returns.
		p.delivered[d].Add(int64(len(b)))
		if _, err := dst.Write(b); err != nil {
			p.delivered[d].Add(-int64(len(b)))
			return false
		}
		return true
	}
}

// await waits until changed closes or, if d > 0, d has passed. It reports
// false when the proxy is closing.
func (p *Proxy) await(changed <-chan struct{}, d time.Duration) bool {
	var timeout <-chan time.Time
	if d > 0 {
		timer := time.NewTimer(d)
		defer timer.Stop()
		timeout = timer.C
	}
	select {
	case <-changed:
	case <-timeout:
	case <-p.done:
		return false
	}
	return true
}
