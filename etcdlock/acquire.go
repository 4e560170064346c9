package etcdlock

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/driver"
)

// heldBy returns the lease if this driver already holds req.Key for
// req.Token (a retried request).
func (d *etcdDriver) heldBy(req driver.AcquireRequest) (driver.Lease, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if e := d.tokens[req.Token]; e != nil && e.held && e.name == req.Key {
		l := e.driverLease()
		l.Since = e.lease.lastRenewed()
		return l, true
	}
	return driver.Lease{}, false
}

// Acquire tries once to take the lock (TryLock). When nobody is in the
// queue it is one Txn that writes our key only if no key exists under the
// lock's prefix; the lease answers for the TTL from its last successful
// renewal, which the returned Lease.Since reports. When
// the queue is not empty the same Txn reads the holder instead, and nothing
// is written: contention costs one round trip and no write. Only when the
// queue holds nothing but the keys of deeper locks ("a/b/..." for "a") does
// it fall back to writing its key and checking its place, as
// concurrency.Mutex.TryLock does (two or three round trips).
//
// A Txn whose answer is lost is sent again: our key's name and value are
// ours alone, so the retry learns what the first one did, and adopts our
// key if it finds it at the head of the queue. The lost answer retires the
// lease (see the package doc). If the store stays unreachable for the
// lock's TTL or ctx ends first, Acquire answers ErrUnavailable and nothing
// is left held: it removes whatever it may have written, in the background
// once ctx has ended.
func (d *etcdDriver) Acquire(ctx context.Context, req driver.AcquireRequest) (driver.Lease, error) {
	return d.onLiveLease(ctx, req, d.acquire)
}

// onLiveLease runs try, and once more if its write was refused because the
// server no longer has the lease it used: the lease died since its last
// renewal (revoked, expired), so it is lost for every lock on it, and the
// request goes on a new lease, as it would have after a failed keep-alive.
func (d *etcdDriver) onLiveLease(ctx context.Context, req driver.AcquireRequest, try func(context.Context, driver.AcquireRequest, **lease) (driver.Lease, error)) (driver.Lease, error) {
	var used *lease
	granted, err := try(ctx, req, &used)
	if err != nil && used != nil && isLeaseNotFound(err) {
		d.loseLease(used, fmt.Errorf("etcd lease %x lost: the server no longer has it", int64(used.id)))
		granted, err = try(ctx, req, &used)
	}
	return granted, err
}

func (d *etcdDriver) acquire(ctx context.Context, req driver.AcquireRequest, used **lease) (driver.Lease, error) {
	if l, ok := d.heldBy(req); ok {
		return l, nil
	}
	l, err := d.leaseFor(ctx, req.TTL)
	if err != nil {
		return driver.Lease{}, err
	}
	*used = l
	e := d.newEntry(req, l)
	busy := d.trySlot(e)
	if busy != nil && d.localHolder(busy) != nil && d.gone(ctx, busy) && d.dropGone(busy) {
		// Our own lock was removed behind its back; its holder learns at
		// its next renewal. The name is free in this driver now.
		busy = d.trySlot(e)
	}
	if busy != nil {
		if he := d.localHolder(busy); he != nil {
			return driver.Lease{}, he
		}
		// Another request of this driver waits in the queue, so the lock
		// is taken or about to be: say by whom.
		h, err := d.Inspect(ctx, req.Key)
		if err != nil {
			return driver.Lease{}, err
		}
		return driver.Lease{}, &driver.HeldError{Holder: driver.Holder{Held: h.Held, Token: h.Token, Fence: h.Fence, Owner: h.Owner}}
	}
	if err := d.bind(ctx, e); err != nil {
		d.drop(e)
		return driver.Lease{}, err
	}
	*used = e.lease
	// No keep-alive beside the grant: the lock is as fresh as the lease's
	// last successful renewal (Lease.Since), and the portable layer renews
	// at once if that leaves too little time.
	since := e.lease.lastRenewed()
	tctx, cancel := context.WithTimeout(ctx, max(e.lease.ttl, MinTTL))
	defer cancel()
	lease, err := d.take(tctx, e)
	if err != nil {
		return driver.Lease{}, err
	}
	lease.Since = since
	return lease, nil
}

// gone reports whether the key of e, a lock of this driver, is known to be
// gone. One round trip.
func (d *etcdDriver) gone(ctx context.Context, e *entry) bool {
	d.mu.Lock()
	key, fence := e.etcdKey, e.fence
	d.mu.Unlock()
	resp, err := d.cli.Get(ctx, key)
	return err == nil && (len(resp.Kvs) == 0 || resp.Kvs[0].CreateRevision != fence)
}

// take is Acquire's work once e has its name's slot.
func (d *etcdDriver) take(ctx context.Context, e *entry) (driver.Lease, error) {
	var resp *clientv3.TxnResponse
	err := d.retry(ctx, e.lease, true, func(ctx context.Context) (err error) {
		resp, err = d.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.CreateRevision(e.prefix).WithPrefix(), "=", 0)).
			Then(clientv3.OpPut(e.etcdKey, e.value, clientv3.WithLease(e.lease.id))).
			Else(firstOp(e.prefix)).
			Commit()
		return err
	})
	if err != nil {
		return driver.Lease{}, d.failed(ctx, e, 0, err)
	}
	if resp.Succeeded {
		return d.grant(e, resp.Header.Revision), nil
	}
	first, err := d.firstDirect(ctx, e.prefix, resp.Responses[0].GetResponseRange(), resp.Header.Revision, true)
	if err != nil {
		d.drop(e)
		return driver.Lease{}, fmt.Errorf("%w: %w", driver.ErrUnavailable, err)
	}
	if first != nil && string(first.Key) == e.etcdKey && string(first.Value) == e.value {
		// Our own key, which an attempt whose answer was lost wrote: the
		// lock is ours, with the fence that attempt got.
		return d.grant(e, first.CreateRevision), nil
	}
	if first != nil {
		d.drop(e)
		if tokenOf(first) == e.token {
			// The request's token holds the lock on another lease: a retry
			// of a request that took it through another driver, which
			// renews it.
			return driver.Lease{Key: e.name, Token: e.token, Fence: uint64(first.CreateRevision)}, nil
		}
		return driver.Lease{}, &driver.HeldError{Holder: holderOf(first)}
	}
	// Only deeper locks' keys under the prefix: join the queue and look.
	rev, first, err := d.enqueue(ctx, e)
	if err != nil {
		return driver.Lease{}, d.failed(ctx, e, rev, err)
	}
	if first != nil && first.CreateRevision == rev {
		return d.grant(e, rev), nil
	}
	d.removeKey(ctx, e, rev)
	if first == nil {
		return driver.Lease{}, driver.ErrLocked
	}
	return driver.Lease{}, &driver.HeldError{Holder: holderOf(first)}
}

// enqueue writes e's key if it does not exist and returns its create
// revision and the holder (the first direct child of the queue), read in the
// same Txn. A key of ours left with another value is removed first.
func (d *etcdDriver) enqueue(ctx context.Context, e *entry) (int64, *mvccpb.KeyValue, error) {
	for {
		var resp *clientv3.TxnResponse
		err := d.retry(ctx, e.lease, true, func(ctx context.Context) (err error) {
			resp, err = d.cli.Txn(ctx).
				If(clientv3.Compare(clientv3.CreateRevision(e.etcdKey), "=", 0)).
				Then(clientv3.OpPut(e.etcdKey, e.value, clientv3.WithLease(e.lease.id)), firstOp(e.prefix)).
				Else(clientv3.OpGet(e.etcdKey), firstOp(e.prefix)).
				Commit()
			return err
		})
		if err != nil {
			return 0, nil, err
		}
		rev := resp.Header.Revision
		if !resp.Succeeded {
			kv := resp.Responses[0].GetResponseRange().Kvs[0]
			if string(kv.Value) != e.value {
				// Not written by this request (nothing of ours should be
				// there): remove it, then write ours. If the delete fails,
				// the key stays on our lease: retire it, so that it goes.
				if _, err := d.cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(e.etcdKey), "=", kv.CreateRevision)).
					Then(clientv3.OpDelete(e.etcdKey)).Commit(); err != nil {
					d.unsure(e.lease, err)
					return 0, nil, err
				}
				continue
			}
			rev = kv.CreateRevision // our own earlier attempt
		}
		first, err := d.firstDirect(ctx, e.prefix, resp.Responses[1].GetResponseRange(), resp.Header.Revision, true)
		return rev, first, err
	}
}

// grant marks e held with fence rev.
func (d *etcdDriver) grant(e *entry, rev int64) driver.Lease {
	d.mu.Lock()
	defer d.mu.Unlock()
	e.fence = rev
	e.held = true
	return e.driverLease()
}

// failed handles a request whose writes may or may not have happened: it
// removes e's key (by create revision rev; with rev 0, by value), in the
// background if the store does not answer now, and returns a definite
// error: nothing is held, and whatever of e's may still land is removed
// (e's lease was retired when the write failed).
func (d *etcdDriver) failed(ctx context.Context, e *entry, rev int64, err error) error {
	d.removeKey(ctx, e, rev)
	if permanent(err) {
		return fmt.Errorf("%w: %w", driver.ErrUnavailable, err)
	}
	if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
		err = fmt.Errorf("%w (last error: %w)", context.Cause(ctx), err)
	}
	return fmt.Errorf("%w: %w", driver.ErrUnavailable, err)
}

// removeKey deletes e's key if it is still the one e wrote (create revision
// rev; with rev 0, value e.value), then forgets e and passes its slot on.
// While ctx lasts it tries at once (up to 2s); otherwise, or if that
// fails, it tries in the background. A try that fails leaves the key's
// fate unknown: e's lease is retired, e is forgotten (the next request for
// the name goes on another lease), and the background keeps trying until
// it succeeds, the lease is lost or the driver closes.
func (d *etcdDriver) removeKey(ctx context.Context, e *entry, rev int64) {
	try := d.removal(e, rev)
	if e.lease.isDead() {
		d.drop(e) // revoked, or about to be: its keys go with it
		return
	}
	if ctx.Err() == nil {
		if try(ctx) == nil {
			d.drop(e)
			return
		}
		d.retire(e)
	}
	d.cleanLater(e, try)
}

// removal returns one try at deleting e's key if it is still the one e
// wrote (create revision rev; with rev 0, value e.value), bounded by 2s.
// A late landing of the delete is harmless.
func (d *etcdDriver) removal(e *entry, rev int64) func(context.Context) error {
	return func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		cmp := clientv3.Compare(clientv3.Value(e.etcdKey), "=", e.value)
		if rev != 0 {
			cmp = clientv3.Compare(clientv3.CreateRevision(e.etcdKey), "=", rev)
		}
		_, err := d.cli.Txn(ctx).If(cmp).Then(clientv3.OpDelete(e.etcdKey)).Commit()
		return err
	}
}

// retire retires e's lease and forgets e (see removeKey).
func (d *etcdDriver) retire(e *entry) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.retireLocked(e.lease)
	d.dropLocked(e)
}

// cleanLater runs try in the background until it succeeds, e's lease is
// lost or the driver closes (Close revokes the lease, and the key goes with
// it). An e not yet forgotten keeps its name's slot until a first try
// fails, so that the driver's next request for the name does not meet e's
// key; then e is forgotten and its lease retired.
func (d *etcdDriver) cleanLater(e *entry, try func(context.Context) error) {
	started := d.goBackground(func() {
		defer d.drop(e)
		backoff := 50 * time.Millisecond
		for first := true; ; first = false {
			if !first {
				select {
				case <-d.closing:
					return
				case <-e.lease.dead:
					return
				case <-time.After(jitter(backoff)):
				}
				backoff = min(2*backoff, time.Second)
			}
			if try(d.life) == nil {
				return
			}
			if first {
				d.retire(e)
			}
		}
	})
	if !started {
		d.drop(e)
	}
}

// retry runs op until it succeeds, fails for good, ctx ends or the lease
// is lost, pausing with jittered exponential back-off. op must be safe to
// repeat. With write, op writes a key bound to l: an attempt that fails
// may still land, even after a later attempt's answer, so l is retired.
func (d *etcdDriver) retry(ctx context.Context, l *lease, write bool, op func(context.Context) error) error {
	backoff := 10 * time.Millisecond
	for {
		err := op(ctx)
		if err != nil && write {
			d.unsure(l, err)
		}
		if err == nil || permanent(err) || ctx.Err() != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-l.dead:
			return fmt.Errorf("%w (%w): %w", distlock.ErrLost, l.deadErr, err)
		case <-d.closing:
			return errClosed
		case <-time.After(jitter(backoff)):
		}
		backoff = min(2*backoff, 500*time.Millisecond)
	}
}

// jitter returns a duration in [d/2, d).
func jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2)
}

// asyncKA is a keep-alive in flight.
type asyncKA struct {
	cancel context.CancelFunc
	done   chan error
}

// keepAliveAsync renews l once, beside whatever the caller does next.
func (d *etcdDriver) keepAliveAsync(ctx context.Context, l *lease) *asyncKA {
	kctx, cancel := context.WithCancel(ctx)
	a := &asyncKA{cancel: cancel, done: make(chan error, 1)}
	go func() { a.done <- d.keepAliveNow(kctx, l) }()
	return a
}

// wait returns the keep-alive's result; with abandon, it stops it first.
func (a *asyncKA) wait(abandon bool) error {
	if abandon {
		a.cancel()
	}
	err := <-a.done
	a.cancel()
	return err
}
