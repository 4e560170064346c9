package drivertest

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/distlock/distlock"
)

func testLockCancelled(t *caseT) {
	a, b, c := t.client(), t.client(), t.client()
	k := t.key()
	la := t.tryLock(a, k)

	// A waiter cancelled while it waits.
	ctx, cancel := context.WithCancel(t.ctx)
	defer cancel()
	res := lockAsync(ctx, b, k)
	select {
	case r := <-res:
		t.Fatalf("Lock on a held key returned before its ctx ended: %v, %v", r.l, r.err)
	case <-time.After(200 * time.Millisecond):
	}
	cancel()
	select {
	case r := <-res:
		if r.err == nil {
			t.Errorf("cancelled Lock returned a lock (fence %d) while the key was held", r.l.Fence())
			r.l.Unlock(t.ctx)
		} else {
			t.wantIs(r.err, "cancelled Lock", context.Canceled, distlock.ErrLocked)
		}
	case <-time.After(2 * time.Second):
		t.Fatalf("Lock still waiting 2s after its ctx was cancelled")
	}

	// A waiter whose deadline passes.
	dctx, dcancel := context.WithTimeout(t.ctx, 100*time.Millisecond)
	defer dcancel()
	start := time.Now()
	_, err := b.Lock(dctx, k)
	if d := time.Since(start); d > 2*time.Second+100*time.Millisecond {
		t.Errorf("Lock with a 100ms deadline returned after %v", d)
	}
	t.wantIs(err, "Lock whose deadline passed", context.DeadlineExceeded, distlock.ErrLocked)

	t.unlock(la)
	t.wantFree(c, k, "a third Client after the holder unlocked (the cancelled waiters must hold nothing)")

	// A ctx already cancelled: Lock and TryLock return at once, on a free
	// key and on a held one, and take nothing.
	dead, kill := context.WithCancel(t.ctx)
	kill()
	free := t.key()
	held := t.key()
	lh := t.tryLock(a, held)
	for _, key := range []struct{ name, key string }{{"free", free}, {"held", held}} {
		for _, op := range []struct {
			name string
			f    func(context.Context, string, ...distlock.LockOption) (*distlock.Lock, error)
		}{{"Lock", b.Lock}, {"TryLock", b.TryLock}} {
			what := fmt.Sprintf("%s with a cancelled ctx on a %s key", op.name, key.name)
			start := time.Now()
			l, err := op.f(dead, key.key)
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("%s returned after %v", what, d)
			}
			if err == nil {
				t.Errorf("%s returned a lock (fence %d)", what, l.Fence())
				l.Unlock(t.ctx)
				continue
			}
			t.wantIs(err, what, context.Canceled)
		}
	}
	t.wantNotHeld(c, free, "after Lock and TryLock with a cancelled ctx")
	t.wantHeldBy(c, held, lh.Fence(), "after Lock and TryLock with a cancelled ctx")
	t.unlock(lh)
}

func testLockWakesOnRelease(t *caseT) {
	a := t.client()
	k := t.key()
	la := t.tryLock(a, k)

	const waiters = 3
	var (
		mu     sync.Mutex
		fences []uint64
		wg     sync.WaitGroup
	)
	ctx, cancel := context.WithCancel(t.ctx)
	defer cancel()
	started := make(chan struct{}, waiters)
	for i := range waiters {
		c := t.client()
		wg.Go(func() {
			started <- struct{}{}
			l, err := c.Lock(ctx, k)
			if err != nil {
				t.Errorf("waiter %d: Lock: %v", i, err)
				return
			}
			mu.Lock()
			fences = append(fences, l.Fence())
			mu.Unlock()
			time.Sleep(10 * time.Millisecond)
			if err := l.Unlock(t.ctx); err != nil {
				t.Errorf("waiter %d: Unlock: %v", i, err)
			}
		})
	}
	for range waiters {
		<-started
	}
	time.Sleep(200 * time.Millisecond) // let them block
	mu.Lock()
	early := len(fences)
	mu.Unlock()
	if early > 0 {
		t.Errorf("%d waiters got the key while it was held", early)
	}
	t.unlock(la)

	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	bound := 10*time.Second + 4*distlock.DefaultMaxBackoff*waiters
	if !waitClosed(done, bound) {
		mu.Lock()
		n := len(fences)
		mu.Unlock()
		t.Errorf("only %d of %d waiters got the key within %v of its release", n, waiters, bound)
		cancel() // end the others' wait
		<-done
		return
	}
	mu.Lock()
	defer mu.Unlock()
	prev := la.Fence()
	for i, f := range fences {
		if f <= prev {
			t.Errorf("waiter %d in order got fence %d, want above %d", i, f, prev)
		}
		prev = f
	}
}

func testLockContextBoundsWaitOnly(t *caseT) {
	a, b := t.client(), t.client()
	k, k2 := t.key(), t.key()

	ctx1, cancel1 := context.WithCancel(t.ctx)
	l1, err := a.Lock(ctx1, k)
	cancel1()
	if err != nil {
		t.Fatalf("Lock on a free key: %v", err)
	}
	ctx2, cancel2 := context.WithTimeout(t.ctx, t.s.ttl/2)
	l2, err := a.TryLock(ctx2, k2)
	if err != nil {
		t.Fatalf("TryLock on a free key: %v", err)
	}
	<-ctx2.Done()
	cancel2()

	t.sleep(2 * t.s.ttl)
	for _, l := range []*distlock.Lock{l1, l2} {
		if err := l.Err(); err != nil {
			t.Errorf("Err of a lock whose acquire ctx ended 2 TTLs ago = %v, want nil (still held)", err)
		}
		if l.Context().Err() != nil {
			t.Errorf("the Lock's context ended with its acquire ctx: %v", context.Cause(l.Context()))
		}
		t.wantLocked(b, l.Key(), "another Client, after the holder's acquire ctx ended")
		t.unlock(l)
	}
}
