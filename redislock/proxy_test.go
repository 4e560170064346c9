package redislock_test

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
)

// Modes of a cutProxy.
const (
	forward     = iota
	dropRequest // bytes from the client are read and thrown away
	dropReply   // bytes from the server are read and thrown away
)

// cutProxy is a TCP relay between a client and a real server that can lose
// requests or replies on the way, as a cut connection does.
type cutProxy struct {
	ln      net.Listener
	target  string
	mode    atomic.Int32
	dropped atomic.Int64 // bytes thrown away
	wg      sync.WaitGroup
	mu      sync.Mutex
	conns   []net.Conn
}

func startProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *cutProxy) addr() string { return p.ln.Addr().String() }

func (p *cutProxy) accept() {
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
		p.mu.Lock()
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(s, c, dropRequest)
		go p.pipe(c, s, dropReply)
	}
}

func (p *cutProxy) pipe(dst, src net.Conn, dropIn int32) {
	defer p.wg.Done()
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if p.mode.Load() == dropIn {
				p.dropped.Add(int64(n))
			} else if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if err != io.EOF {
				return
			}
			return
		}
	}
}

func (p *cutProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}
