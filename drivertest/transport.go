package drivertest

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/drivertest/netfault"
)

// proxies are a fault proxy per server of the store, in the harness's
// order, switched together.
type proxies []*netfault.Proxy

// proxies starts a proxy in front of every server of the store, closed when
// the case ends.
func (t *caseT) proxies() proxies {
	t.T.Helper()
	addrs := t.s.caps.transport.Addrs()
	if len(addrs) == 0 {
		t.harnessFatalf("Addrs returned no server address")
	}
	ps := make(proxies, len(addrs))
	for i, a := range addrs {
		p, err := netfault.New(a)
		if err != nil {
			t.harnessFatalf("a proxy in front of %s: %v", a, err)
		}
		t.Cleanup(func() { p.Close() })
		ps[i] = p
	}
	return ps
}

func (ps proxies) set(m netfault.Mode) {
	for _, p := range ps {
		p.Set(m)
	}
}

func (ps proxies) setLatency(d time.Duration) {
	for _, p := range ps {
		p.SetLatency(d)
	}
}

// heal lets every byte through again at once.
func (ps proxies) heal() {
	ps.setLatency(0)
	ps.set(netfault.Forward)
}

// stats sums the proxies' counters.
func (ps proxies) stats() netfault.Stats {
	var sum netfault.Stats
	for _, p := range ps {
		st := p.Stats()
		sum.ToServer += st.ToServer
		sum.ToClient += st.ToClient
		sum.LostToServer += st.LostToServer
		sum.LostToClient += st.LostToClient
		sum.Accepted += st.Accepted
		sum.Open += st.Open
		sum.Cut += st.Cut
	}
	return sum
}

// clientVia returns a Client whose driver reaches the store through ps,
// closed when the case ends, after ps are healed: a Client must not be left
// to close through a dead network.
func (t *caseT) clientVia(ps proxies, opts ...distlock.Option) *distlock.Client {
	t.T.Helper()
	via := make([]string, len(ps))
	for i, p := range ps {
		via[i] = p.Addr()
	}
	drv, err := t.s.caps.transport.NewDriverVia(t.ctx, t.T, via)
	if err != nil {
		t.harnessFatalf("NewDriverVia: %v", err)
	}
	c := t.newClient(drv, opts...)
	t.Cleanup(ps.heal) // runs before the Client's Close
	return c
}

// warm takes and releases a key through c, so that c's connections are open
// and in use when a fault begins: the fault then hits the request, not the
// connection's setup.
func (t *caseT) warm(c *distlock.Client) {
	t.T.Helper()
	t.unlock(t.tryLock(c, t.key()))
}

// doneWatch records when a Lock's Done closed.
type doneWatch struct {
	l  *distlock.Lock
	at atomic.Pointer[time.Time]
}

// watchDone starts recording when l's Done closes. The goroutine ends when
// it does, at the latest when the case's Clients are closed.
func watchDone(l *distlock.Lock) *doneWatch {
	w := &doneWatch{l: l}
	go func() {
		<-l.Done()
		now := time.Now()
		w.at.Store(&now)
	}()
	return w
}

// wantLostInTime waits for w's lock to be given up, and checks that it was
// declared lost no later than lateLoss after its Deadline. It returns when
// Done closed (the zero time if it did not).
func (t *caseT) wantLostInTime(w *doneWatch, what string) time.Time {
	t.T.Helper()
	l := w.l
	bound := time.Until(l.Deadline()) + lateLoss + t.s.lossBound()
	if !waitClosed(l.Done(), max(bound, t.s.lossBound())) {
		t.Errorf("%s: Done is still open %v after its Deadline", what, time.Since(l.Deadline()).Round(time.Millisecond))
		// How late it is, for the diagnosis.
		if waitClosed(l.Done(), 15*time.Second) {
			t.Logf("%s: Done closed %v after Deadline in the end", what, time.Since(l.Deadline()).Round(time.Millisecond))
		}
		return time.Time{}
	}
	for w.at.Load() == nil {
		time.Sleep(time.Millisecond)
	}
	at := *w.at.Load()
	// Deadline stays where the last good renewal put it once the lock is
	// gone.
	late := at.Sub(l.Deadline())
	if late >= 0 {
		t.Logf("%s: Done closed %v after Deadline", what, late.Round(time.Millisecond))
	} else {
		t.Logf("%s: Done closed %v before Deadline (early, which is safe)", what, -late.Round(time.Millisecond))
	}
	if late > lateLoss {
		t.Errorf("%s: Done closed %v after Deadline, more than %v", what, late.Round(time.Millisecond), lateLoss)
	}
	t.wantIs(l.Err(), what+": Err", distlock.ErrLost)
	return at
}

// wantSentinel checks that err wraps one of distlock's sentinels, so the
// caller can tell what happened.
func (t *caseT) wantSentinel(err error, what string) {
	t.T.Helper()
	for _, s := range []error{distlock.ErrUnavailable, distlock.ErrLocked, distlock.ErrNotHeld, distlock.ErrLost, distlock.ErrClosed, distlock.ErrInvalid} {
		if errors.Is(err, s) {
			return
		}
	}
	t.Errorf("%s: error %v wraps none of distlock's sentinels (ErrUnavailable, ErrLocked, ErrNotHeld, ...)", what, err)
}

// wantReturnedSoon checks that a call whose ctx ended at end returned
// within a loss bound of it, read-back and release included.
func (t *caseT) wantReturnedSoon(returned, end time.Time, what string) {
	t.T.Helper()
	if late := returned.Sub(end); late > t.s.lossBound() {
		t.Errorf("%s returned %v after its ctx ended, more than %v", what, late.Round(time.Millisecond), t.s.lossBound().Round(time.Millisecond))
	}
}

// wantFreeWithin polls until c takes key, and checks that it did within d
// of since. While holder, if not nil, has its Done open, c must not get the
// key: that would be two valid holders.
func (t *caseT) wantFreeWithin(c *distlock.Client, key string, holder *distlock.Lock, since time.Time, d time.Duration, what string) {
	t.T.Helper()
	poll := max(t.s.ttl/20, 10*time.Millisecond)
	for {
		l, err := c.TryLock(t.ctx, key)
		if err == nil {
			now := time.Now()
			if holder != nil && !isClosed(holder.Done()) {
				t.Errorf("%s: two holders: another Client took the key while the first holder's Done is open", what)
			}
			t.unlock(l)
			if took := now.Sub(since); took > d {
				t.Errorf("%s: the key was held %v, more than %v", what, took.Round(time.Millisecond), d)
			} else {
				t.Logf("%s: the key was free %v later", what, took.Round(time.Millisecond))
			}
			return
		}
		if t.ctx.Err() != nil || time.Since(since) > d+t.s.lossBound()+t.s.ttl {
			t.Errorf("%s: the key is still held %v later (want free within %v): %v", what, time.Since(since).Round(time.Millisecond), d, err)
			return
		}
		t.sleep(poll)
	}
}

// wantExclusive checks, for about span or until l's Done closes, that c
// cannot take l's key while l's Done is open.
func (t *caseT) wantExclusive(c *distlock.Client, l *distlock.Lock, span time.Duration, what string) {
	t.T.Helper()
	poll := max(t.s.ttl/20, 10*time.Millisecond)
	for end := time.Now().Add(span); time.Now().Before(end) && t.ctx.Err() == nil && !isClosed(l.Done()); t.sleep(poll) {
		other, err := c.TryLock(t.ctx, l.Key())
		if err != nil {
			continue
		}
		if !isClosed(l.Done()) {
			t.Errorf("%s: two holders: another Client took the key (fence %d) while the holder's Done is open (fence %d)", what, other.Fence(), l.Fence())
		}
		other.Unlock(t.ctx)
		return
	}
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// cuts are the ways FrozenHolder cuts a holder off from its store.
var cuts = []struct {
	name string
	cut  func(ps proxies, ttl time.Duration)
}{
	{"Stall", func(ps proxies, _ time.Duration) { ps.set(netfault.Stall) }},
	{"BlackHole", func(ps proxies, _ time.Duration) { ps.set(netfault.BlackHole) }},
	{"Latency", func(ps proxies, ttl time.Duration) { ps.setLatency(2 * ttl) }},
}

func testFrozenHolder(t *caseT) {
	for _, cut := range cuts {
		t.run(cut.name, func(t *caseT) {
			ps := t.proxies()
			a, b := t.clientVia(ps), t.client()
			k := t.key()
			la := t.tryLock(a, k)
			w := watchDone(la)
			cut.cut(ps, t.s.ttl)

			ctx, cancel := context.WithTimeout(t.ctx, 2*t.s.expiryBound()+t.s.lossBound())
			defer cancel()
			lb, err := b.Lock(ctx, k)
			if err != nil {
				t.Fatalf("another Client could not take the key of a holder cut off from the store: %v", err)
			}
			if !isClosed(la.Done()) {
				t.Errorf("two holders: another Client took the key while the cut-off holder's Done was open, %v after its Deadline",
					time.Since(la.Deadline()).Round(time.Millisecond))
			}
			t.wantLostInTime(w, "the cut-off holder")

			// What the cut-off holder sent meanwhile (a renewal, a release)
			// arrives now, or its connection is reset: neither may touch
			// the new holder's lock.
			ps.heal()
			t.sleep(t.s.interval())
			if err := lb.Err(); err != nil {
				t.Errorf("the new holder's lock was lost after the old holder's network healed: %v", err)
			}
			t.wantHeldBy(b, k, lb.Fence(), "the new holder, after the old holder's network healed")
			t.unlock(lb)
		})
	}
}

func testLostAcquireReply(t *caseT) {
	for _, v := range []struct {
		name string
		cut  int           // CutReply(cut) before TryLock, if not 0
		mode netfault.Mode // the mode during TryLock otherwise
		heal bool          // heal once TryLock returned, else at the end of the case
	}{
		// The n-th reply after TryLock began is lost and its connection
		// reset, the network working otherwise: the store ran a request of
		// the acquire (the only one, or one of several), and the
		// read-back can ask it what happened.
		{name: "FirstReplyCut", cut: 1},
		{name: "SecondReplyCut", cut: 2},
		{name: "ThirdReplyCut", cut: 3},
		// Every reply is lost until the case ends, and the store goes on
		// hearing the Client.
		{name: "RepliesStayLost", mode: netfault.DropReplies},
		// The request waits in the network until after the caller gave
		// up, then reaches the store and takes the lock for a token
		// nobody uses any more.
		{name: "DeliveredLate", mode: netfault.Stall, heal: true},
	} {
		t.run(v.name, func(t *caseT) {
			ps := t.proxies()
			a, b := t.clientVia(ps), t.client()
			t.warm(a)
			k := t.key()
			before := ps.stats()
			if v.cut > 0 {
				for _, p := range ps {
					p.CutReply(v.cut)
				}
			} else {
				ps.set(v.mode)
			}
			ctx, cancel := context.WithTimeout(t.ctx, t.s.ttl)
			end, _ := ctx.Deadline()
			l, err := a.TryLock(ctx, k)
			returned := time.Now()
			cancel()
			if v.cut > 0 {
				for _, p := range ps {
					p.CutReply(0) // a cut not reached must not hit what follows
				}
				if ps.stats().Cut == 0 {
					t.Logf("TryLock needed fewer than %d replies: no reply was cut", v.cut)
				}
			}
			if v.heal {
				ps.heal()
			}
			t.wantReturnedSoon(returned, end, "TryLock whose reply was lost")
			if v.mode == netfault.DropReplies && ps.stats().ToServer == before.ToServer {
				t.harnessFatalf("no byte reached the store through the proxies during TryLock: the case tested nothing")
			}
			if err == nil {
				t.Logf("TryLock whose reply was lost returned a lock, fence %d", l.Fence())
				w := watchDone(l)
				t.wantHeldBy(b, k, l.Fence(), "a lock TryLock returned after its reply was lost")
				t.wantExclusive(b, l, t.s.ttl+t.s.interval(), "a lock TryLock returned after its reply was lost")
				// Lost or released, the lock must not leave its key held.
				since := time.Now()
				if at := w.at.Load(); at != nil {
					t.Errorf("the lock TryLock returned was lost %v later, with the network back: %v", at.Sub(returned).Round(time.Millisecond), l.Err())
					since = *at
				} else if err := l.Unlock(t.ctx); err != nil {
					t.Errorf("Unlock of the lock TryLock returned: %v", err)
				}
				t.wantFreeWithin(b, k, nil, since, t.s.expiryBound(), "after the lock TryLock returned was released or lost")
				return
			}
			t.Logf("TryLock whose reply was lost failed: %v", err)
			t.wantSentinel(err, "TryLock whose reply was lost")
			since := returned
			if v.heal {
				since = time.Now() // the request only now reaches the store
			}
			t.wantFreeWithin(b, k, nil, since, t.s.expiryBound(), "after a TryLock that failed")
		})
	}
}

func testLostReleaseReply(t *caseT) {
	for _, v := range []struct {
		name string
		mode netfault.Mode
	}{
		// The store ran the release; the caller never heard.
		{"ReplyLost", netfault.DropReplies},
		// The release never reached the store; the network comes back
		// right after Unlock gave up.
		{"RequestLost", netfault.BlackHole},
	} {
		t.run(v.name, func(t *caseT) {
			ps := t.proxies()
			a, b := t.clientVia(ps), t.client()
			k := t.key()
			la := t.tryLock(a, k)
			ps.set(v.mode)
			ctx, cancel := context.WithTimeout(t.ctx, t.s.ttl/2)
			end, _ := ctx.Deadline()
			err := la.Unlock(ctx)
			returned := time.Now()
			cancel()
			t.wantReturnedSoon(returned, end, "Unlock whose "+map[netfault.Mode]string{netfault.DropReplies: "reply", netfault.BlackHole: "request"}[v.mode]+" was lost")
			if err != nil {
				t.wantSentinel(err, "Unlock that failed")
			}
			if v.mode == netfault.BlackHole {
				ps.heal()
			}
			t.wantFreeWithin(b, k, la, returned, t.s.expiryBound(), "after an Unlock whose message was lost")
			ps.heal()
		})
	}
}

func testLostRenewReply(t *caseT) {
	ps := t.proxies()
	a, b := t.clientVia(ps), t.client()
	k := t.key()
	la := t.tryLock(a, k)
	w := watchDone(la)
	ps.set(netfault.DropReplies)
	// The renewals reach the store and extend the lock there; the holder
	// hears nothing, so its deadline runs out. Until it gives the lock up,
	// nobody else may get it.
	t.wantExclusive(b, la, time.Until(la.Deadline())+lateLoss+t.s.lossBound(), "while the renewals' replies are lost")
	at := t.wantLostInTime(w, "the holder whose renewals' replies were lost")
	if at.IsZero() {
		return
	}
	// The replies are still lost: the store must let the key go within a
	// TTL of the last renewal it heard, or the Client must release it.
	t.wantFreeWithin(b, k, nil, at, t.s.expiryBound(), "after the holder gave the lock up")
	ps.heal()
}

func testStoreUnreachable(t *caseT) {
	ps := t.proxies()
	a, b := t.clientVia(ps), t.client()
	t.warm(a)
	k := t.key()
	for _, p := range ps {
		if err := p.Refuse(true); err != nil {
			t.harnessFatalf("%v", err)
		}
		p.Reset()
	}
	ctx, cancel := context.WithTimeout(t.ctx, t.s.ttl)
	end, _ := ctx.Deadline()
	l, err := a.TryLock(ctx, k)
	returned := time.Now()
	cancel()
	for _, p := range ps {
		if err := p.Refuse(false); err != nil {
			t.harnessFatalf("%v", err)
		}
	}
	t.wantReturnedSoon(returned, end, "TryLock on an unreachable store")
	if err == nil {
		t.Errorf("TryLock on an unreachable store returned a lock (fence %d)", l.Fence())
		l.Unlock(t.ctx)
		return
	}
	t.Logf("TryLock on an unreachable store: %v", err)
	t.wantIs(err, "TryLock on an unreachable store", distlock.ErrUnavailable)
	t.wantNotHeld(b, k, "after TryLock failed on an unreachable store")
}
