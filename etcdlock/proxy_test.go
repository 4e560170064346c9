package etcdlock_test

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"
)

// direction is one way through a faultProxy.
type direction int

const (
	toServer direction = iota // what the client sends
	toClient                  // what the server answers
)

// faultProxy forwards TCP connections from a loopback port to one server
// and puts faults in the transport: it holds back what flows one way
// (Stall), drops what flows from now on (Freeze), closes the client side of
// its connections while their server side stays open with what it held
// (CutClients) to deliver it late (Deliver), or closes every connection
// (Reset). New connections follow the current Stall settings.
type faultProxy struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup

	mu     sync.Mutex
	conns  map[*proxied]struct{}
	stall  [2]bool
	closed bool
}

// proxied is one client connection and its connection to the server.
type proxied struct {
	client, server net.Conn
	flows          [2]*flow
	cut            atomic.Bool // the client side was closed; the server side stays
}

// flow is one direction of a proxied connection: what was read from one
// side and not yet written to the other.
type flow struct {
	dst    net.Conn
	mu     sync.Mutex
	cond   *sync.Cond
	buf    []byte
	held   bool // keep what is read, write nothing
	frozen bool // drop what is read from now on
	eof    bool // the source ended
	closed bool
}

func startProxy(t testing.TB, target string) *faultProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{ln: ln, target: target, conns: make(map[*proxied]struct{})}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.Close)
	return p
}

// Addr is the address clients connect to.
func (p *faultProxy) Addr() string { return p.ln.Addr().String() }

func (p *faultProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		pc := &proxied{client: c, server: s}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			c.Close()
			s.Close()
			return
		}
		pc.flows[toServer] = newFlow(s, p.stall[toServer])
		pc.flows[toClient] = newFlow(c, p.stall[toClient])
		p.conns[pc] = struct{}{}
		p.wg.Add(4)
		p.mu.Unlock()
		go p.read(c, pc.flows[toServer])
		go p.read(s, pc.flows[toClient])
		go p.write(pc, pc.flows[toServer])
		go p.write(pc, pc.flows[toClient])
	}
}

func newFlow(dst net.Conn, held bool) *flow {
	f := &flow{dst: dst, held: held}
	f.cond = sync.NewCond(&f.mu)
	return f
}

func (p *faultProxy) read(src net.Conn, f *flow) {
	defer p.wg.Done()
	b := make([]byte, 32<<10)
	for {
		n, err := src.Read(b)
		f.mu.Lock()
		if n > 0 && !f.frozen {
			f.buf = append(f.buf, b[:n]...)
		}
		if err != nil {
			f.eof = true
		}
		f.cond.Broadcast()
		f.mu.Unlock()
		if err != nil {
			return
		}
	}
}

func (p *faultProxy) write(pc *proxied, f *flow) {
	defer p.wg.Done()
	for {
		f.mu.Lock()
		for !f.closed && (f.held || len(f.buf) == 0) && !(f.eof && !f.held) {
			f.cond.Wait()
		}
		if f.closed {
			f.mu.Unlock()
			return
		}
		if len(f.buf) == 0 { // the source ended and all is written
			f.mu.Unlock()
			if !pc.cut.Load() {
				p.drop(pc)
			}
			return
		}
		b := f.buf
		f.buf = nil
		f.mu.Unlock()
		if _, err := f.dst.Write(b); err != nil {
			if pc.cut.Load() {
				// The client side is gone: keep draining what the server
				// sends, and drop it.
				f.mu.Lock()
				f.frozen = true
				f.mu.Unlock()
				continue
			}
			p.drop(pc)
			return
		}
	}
}

// drop closes both sides of pc.
func (p *faultProxy) drop(pc *proxied) {
	p.mu.Lock()
	delete(p.conns, pc)
	p.mu.Unlock()
	pc.client.Close()
	pc.server.Close()
	for _, f := range pc.flows {
		f.mu.Lock()
		f.closed = true
		f.cond.Broadcast()
		f.mu.Unlock()
	}
}

// each runs fn on one direction of every open connection.
func (p *faultProxy) each(d direction, fn func(pc *proxied, f *flow)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for pc := range p.conns {
		f := pc.flows[d]
		f.mu.Lock()
		fn(pc, f)
		f.cond.Broadcast()
		f.mu.Unlock()
	}
}

// Stall holds back what flows in direction d, on every connection and on
// new ones, until Resume, Deliver or Reset.
func (p *faultProxy) Stall(d direction) {
	p.mu.Lock()
	p.stall[d] = true
	p.mu.Unlock()
	p.each(d, func(_ *proxied, f *flow) { f.held = true })
}

// Resume lets direction d flow again, what was held first.
func (p *faultProxy) Resume(d direction) {
	p.mu.Lock()
	p.stall[d] = false
	p.mu.Unlock()
	p.each(d, func(_ *proxied, f *flow) { f.held = false })
}

// Held returns how many bytes are held back in direction d.
func (p *faultProxy) Held(d direction) int {
	n := 0
	p.each(d, func(_ *proxied, f *flow) { n += len(f.buf) })
	return n
}

// Freeze keeps what direction d holds now and drops all that comes after,
// on every open connection.
func (p *faultProxy) Freeze(d direction) {
	p.each(d, func(_ *proxied, f *flow) { f.frozen = true })
}

// CutClients closes the client side of every open connection: the client
// sees its connections fail and opens new ones, which pass freely, while
// the server sides stay open with what they hold, for Deliver.
func (p *faultProxy) CutClients() {
	p.mu.Lock()
	p.stall = [2]bool{}
	var cut []*proxied
	for pc := range p.conns {
		if pc.cut.CompareAndSwap(false, true) {
			cut = append(cut, pc)
		}
	}
	p.mu.Unlock()
	for _, pc := range cut {
		pc.client.Close()
	}
}

// Deliver writes to the server what the cut connections held for it.
func (p *faultProxy) Deliver() {
	p.each(toServer, func(pc *proxied, f *flow) {
		if pc.cut.Load() {
			f.held = false
		}
	})
}

// Reset closes every connection, dropping what was held; new connections
// pass freely.
func (p *faultProxy) Reset() {
	p.mu.Lock()
	p.stall = [2]bool{}
	conns := make([]*proxied, 0, len(p.conns))
	for pc := range p.conns {
		conns = append(conns, pc)
	}
	p.mu.Unlock()
	for _, pc := range conns {
		p.drop(pc)
	}
}

// Close stops the proxy and closes every connection.
func (p *faultProxy) Close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.ln.Close()
	p.Reset()
	p.wg.Wait()
}
