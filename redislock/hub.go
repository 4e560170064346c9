package redislock

import (
	"context"
	"crypto/rand"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/distlock/distlock/internal/rediswire"
)

// confirmWait bounds the wait for the SUBSCRIBE confirmation. A waiter that
// joins before the subscription is confirmed polls instead.
const confirmWait = 2 * time.Second

// hub is a driver's one pub/sub connection, shared by every blocked Lock. It
// subscribes to one channel of the driver's own, named in every queue entry
// the driver's waiters make, so a release that hands a lock over reaches this
// process only, and routes each message to the waiter whose token it names.
type hub struct {
	client  redis.UniversalClient
	channel string
	done    chan struct{}         // closed by close
	bg      *rediswire.Background // runs the receiving loop

	mu        sync.Mutex
	closed    bool
	started   bool          // the receiving loop runs (made on first use)
	ps        *redis.PubSub // set by the loop once it has subscribed
	ready     chan struct{} // closed when the SUBSCRIBE is confirmed
	confirmed bool
	// noWaitUntil: a confirmation timed out (SUBSCRIBE refused by an ACL,
	// a server that does not answer); until then waiters poll at once
	// rather than wait for it again.
	noWaitUntil time.Time
	waiters     map[string]*waiter // by token
}

// A waiter is one blocked AcquireWait.
type waiter struct {
	token string
	// wake receives the fence when the lock is handed to this waiter, or 0
	// when it should check again (the subscription was re-established and
	// messages may have been lost).
	wake chan uint64
	sub  bool // the subscription was confirmed when it joined
}

func newHub(client redis.UniversalClient, bg *rediswire.Background) *hub {
	return &hub{
		client:  client,
		channel: "distlock:notify:" + rand.Text(),
		done:    make(chan struct{}),
		bg:      bg,
		ready:   make(chan struct{}),
		waiters: map[string]*waiter{},
	}
}

// active reports whether the subscription is confirmed.
func (h *hub) active() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.confirmed
}

// join registers a waiter for token and makes sure the driver's channel is
// subscribed before it returns (waiting for the server's confirmation, at
// most confirmWait or until ctx ends), so no hand-over published after join
// is missed. If the subscription is not confirmed the waiter's sub is false
// and it must poll.
func (h *hub) join(ctx context.Context, token string) *waiter {
	w := &waiter{token: token, wake: make(chan uint64, 1)}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return w
	}
	h.waiters[token] = w
	if h.confirmed {
		h.mu.Unlock()
		w.sub = true
		return w
	}
	if time.Now().Before(h.noWaitUntil) {
		h.mu.Unlock()
		return w
	}
	if !h.started {
		// The first waiter starts the loop, which subscribes: go-redis
		// resubscribes by itself after a reconnect, so this happens once
		// per driver. Subscribing dials and waits for the server, which
		// is the loop's to wait for, not this waiter's.
		h.started = h.bg.Go(h.receive)
	}
	h.mu.Unlock()

	t := time.NewTimer(confirmWait)
	defer t.Stop()
	select {
	case <-h.ready:
		w.sub = true
	case <-ctx.Done():
	case <-t.C:
		h.mu.Lock()
		h.noWaitUntil = time.Now().Add(30 * time.Second)
		h.mu.Unlock()
	case <-h.done:
	}
	return w
}

// leave unregisters w.
func (h *hub) leave(w *waiter) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.waiters[w.token] == w {
		delete(h.waiters, w.token)
	}
}

// receive subscribes to the driver's channel and reads the pub/sub
// connection until the hub closes. go-redis reconnects and resubscribes
// after a read error; the confirmation that follows tells the waiters to
// check again, since hand-overs published while the connection was down
// were lost.
func (h *hub) receive() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-h.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	ps := h.client.Subscribe(ctx, h.channel)
	defer ps.Close()
	h.mu.Lock()
	closed := h.closed
	h.ps = ps
	h.mu.Unlock()
	if closed {
		return
	}
	pause := 10 * time.Millisecond
	for {
		msg, err := ps.Receive(ctx)
		if err != nil {
			select {
			case <-h.done:
				return
			case <-time.After(pause):
			}
			pause = min(2*pause, time.Second)
			continue
		}
		pause = 10 * time.Millisecond
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" {
				h.subscribed()
			}
		case *redis.Message:
			h.deliver(m.Payload)
		}
	}
}

func (h *hub) subscribed() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.confirmed {
		h.confirmed = true
		close(h.ready)
		return
	}
	for _, w := range h.waiters {
		w.poke(0)
	}
}

func (h *hub) deliver(payload string) {
	fence, token, ok := rediswire.ParseHandoff(payload)
	if !ok {
		return
	}
	h.mu.Lock()
	w := h.waiters[token]
	h.mu.Unlock()
	if w != nil {
		w.poke(fence)
	}
}

// poke sends without blocking. A fence replaces a pending re-check; a
// re-check never replaces a pending fence.
func (w *waiter) poke(fence uint64) {
	for range 2 {
		select {
		case w.wake <- fence:
			return
		default:
		}
		if fence == 0 {
			return
		}
		select {
		case <-w.wake:
		default:
		}
	}
}

// close ends the subscription. Waiters still blocked see done. The loop
// ends in the background (the driver's Close waits for it).
func (h *hub) close() {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return
	}
	h.closed = true
	close(h.done)
	ps := h.ps
	h.mu.Unlock()
	if ps != nil {
		ps.Close()
	}
}
