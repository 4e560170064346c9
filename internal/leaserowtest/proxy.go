package leaserowtest

import (
	"bytes"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
)

// Proxy forwards TCP connections to a server and can cut a connection
// after the server's next reply has been received, without passing it on:
// the request took effect, and the client never learns it.
type Proxy struct {
	ln        net.Listener
	target    string
	effective func(request []byte) bool
	cut       atomic.Bool // cut the next connection that gets a reply
	abandon   atomic.Bool // and leave its server side open
	wg        sync.WaitGroup
	mu        sync.Mutex
	conns     []net.Conn
	abandoned []net.Conn // server sides left open by AbandonNextReply
}

// StartProxy listens on a free loopback port and forwards to target until
// the test ends. effective, if not nil, says from the first bytes of the
// client's last write whether that request has an effect worth losing the
// reply of (MySQL: a statement, not a COM_STMT_PREPARE); the cut waits for
// the reply to one that has; a connection's first reply (the server's
// greeting, or the answer to the client's first message) is then never cut.
func StartProxy(t *testing.T, target string, effective func(request []byte) bool) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{ln: ln, target: target, effective: effective}
	p.wg.Go(p.serve)
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

// IsUpsert is a request filter for StartProxy: the client's write carries
// the text of an acquire's upsert (INSERT INTO). The client must send
// statements with their text (pgx: default_query_exec_mode=exec;
// go-sql-driver/mysql: interpolateParams=true).
func IsUpsert(request []byte) bool { return bytes.Contains(request, []byte("INSERT INTO")) }

// Addr is the proxy's host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// CutNextReply arms the proxy: the next reply from the server is dropped
// and its connection closed.
func (p *Proxy) CutNextReply() {
	p.abandon.Store(false)
	p.cut.Store(true)
}

// AbandonNextReply arms the proxy as CutNextReply does, except that only
// the client's side is closed: the server keeps the session, and whatever
// it holds, as when the network between them fails without a word, until
// EndAbandoned or the end of the test.
func (p *Proxy) AbandonNextReply() {
	p.abandon.Store(true)
	p.cut.Store(true)
}

// EndAbandoned closes the server's side of the connections that
// AbandonNextReply left open, so that the server ends their sessions.
func (p *Proxy) EndAbandoned() {
	p.mu.Lock()
	conns := p.abandoned
	p.abandoned = nil
	p.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

// Cut reports whether the armed cut has happened.
func (p *Proxy) Cut() bool { return !p.cut.Load() }

func (p *Proxy) serve() {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		server, err := net.Dial("tcp", p.target)
		if err != nil {
			client.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, client, server)
		p.mu.Unlock()
		var lastEffective atomic.Bool // the client's last write was an effective request
		lastEffective.Store(p.effective == nil)
		var abandoned atomic.Bool // the client's side was closed, the server's is kept
		p.wg.Go(func() {
			buf := make([]byte, 64<<10)
			for {
				n, err := client.Read(buf)
				if n > 0 && p.effective != nil {
					lastEffective.Store(p.effective(buf[:n]))
				}
				if n > 0 {
					if _, err := server.Write(buf[:n]); err != nil {
						break
					}
				}
				if err != nil {
					break
				}
			}
			if !abandoned.Load() {
				server.Close()
			}
		})
		p.wg.Go(func() {
			buf := make([]byte, 64<<10)
			for {
				n, err := server.Read(buf)
				if n > 0 && lastEffective.Load() && p.cut.CompareAndSwap(true, false) {
					if p.abandon.Load() {
						abandoned.Store(true)
						p.mu.Lock()
						p.abandoned = append(p.abandoned, server)
						p.mu.Unlock()
						client.Close()
						io.Copy(io.Discard, server) // until EndAbandoned
						return
					}
					client.Close()
					server.Close()
					return
				}
				if n > 0 {
					if _, err := client.Write(buf[:n]); err != nil {
						return
					}
				}
				if err != nil {
					client.Close()
					return
				}
			}
		})
	}
}
