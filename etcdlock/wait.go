package etcdlock

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/driver"
)

// AcquireWait joins the lock's queue and waits for its turn (Lock),
// exactly as concurrency.Mutex.Lock does on the wire: one Txn writes our key
// if absent and reads the holder; if we are not first, we watch the
// deletion of our predecessor only (the direct child with the greatest
// create revision below ours), so a release wakes one waiter, oldest
// first. When the predecessor goes, one Txn re-reads our place (and checks
// our key is still there) while the lease is renewed beside it.
//
// The watch is provably synced: it starts from the server's current
// revision, and if that is past the revision at which we read our
// predecessor, our place is read again after the watch exists. (A watch
// started at an older revision is caught up by the server only every 100ms,
// which is what makes concurrency.Mutex's hand-offs slow.)
//
// When ctx ends, AcquireWait returns an error wrapping ctx's cause and
// ErrLocked, and deletes its key in the background, starting at once (the
// key's lock name stays blocked in this driver until the first try ends;
// if it fails, the lease is retired and the delete retried). When the lease
// is lost while waiting, it returns at once with an error wrapping
// distlock.ErrLost and ErrLocked.
//
// A lock granted at once, with nobody queued, gets no keep-alive beside it:
// as with Acquire, it is as fresh as the lease's last renewal
// (Lease.Since), two requests per uncontended Lock+Unlock. A lease the
// server no longer has is lost, and the request tries once more on a new
// one.
func (d *etcdDriver) AcquireWait(ctx context.Context, req driver.AcquireRequest) (driver.Lease, error) {
	return d.onLiveLease(ctx, req, d.acquireWait)
}

func (d *etcdDriver) acquireWait(ctx context.Context, req driver.AcquireRequest, used **lease) (driver.Lease, error) {
	if l, ok := d.heldBy(req); ok {
		return l, nil
	}
	l, err := d.leaseFor(ctx, req.TTL)
	if err != nil {
		return driver.Lease{}, err
	}
	*used = l
	e := d.newEntry(req, l)
	if busy, err := d.waitSlot(ctx, e); err != nil {
		return driver.Lease{}, contention(err, d.localHolder(busy))
	}
	// A lease lost or retired while we waited for the slot takes no new
	// users: bind moves e to the lease in force.
	if err := d.bind(ctx, e); err != nil {
		d.drop(e)
		return driver.Lease{}, err
	}
	*used = e.lease
	return d.queue(ctx, e)
}

// contention is the error of a wait that ended: the cause, and that the
// lock is held (by whom, when known).
func contention(cause error, holder *driver.HeldError) error {
	if holder == nil {
		return fmt.Errorf("%w: %w", cause, driver.ErrLocked)
	}
	return fmt.Errorf("%w: %w", cause, holder)
}

// queueState is our place in a lock's queue at one revision.
type queueState struct {
	rev   int64            // the revision read
	own   bool             // our key exists with our create revision
	first *mvccpb.KeyValue // the holder
	pred  *mvccpb.KeyValue // the direct child just before ours; nil: we hold the lock
}

func (d *etcdDriver) queue(ctx context.Context, e *entry) (driver.Lease, error) {
	since := e.lease.lastRenewed()
	rev, first, err := d.enqueue(ctx, e)
	if err == nil && first != nil && first.CreateRevision == rev {
		granted := d.grant(e, rev)
		granted.Since = since
		return granted, nil
	}
	if err != nil {
		return driver.Lease{}, d.giveUp(ctx, e, 0, nil, err)
	}
	e.fence = rev // not yet shared: e is not held
	st, err := d.place(ctx, e, nil)
	for {
		if err != nil {
			return driver.Lease{}, d.giveUp(ctx, e, rev, st.first, err)
		}
		if !st.own {
			d.drop(e)
			return driver.Lease{}, fmt.Errorf("%w: our key %q left the queue while waiting (removed, or its lease expired): %w",
				distlock.ErrLost, e.etcdKey, driver.ErrLocked)
		}
		if st.pred == nil {
			return d.grant(e, rev), nil
		}
		st, err = d.waitFor(ctx, e, st)
	}
}

// place reads our place in the queue: one Txn. With ka, the lease is
// renewed beside it, and a place at the head of the queue is reported only
// if the renewal succeeded.
func (d *etcdDriver) place(ctx context.Context, e *entry, ka *asyncKA) (queueState, error) {
	var resp *clientv3.TxnResponse
	err := d.retry(ctx, e.lease, false, func(ctx context.Context) (err error) {
		resp, err = d.cli.Txn(ctx).Then(
			clientv3.OpGet(e.etcdKey),
			firstOp(e.prefix),
			beforeOp(e.prefix, e.fence),
		).Commit()
		return err
	})
	var st queueState
	if err == nil {
		st.rev = resp.Header.Revision
		if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) == 1 && kvs[0].CreateRevision == e.fence {
			st.own = true
		}
		st.first, err = d.firstDirect(ctx, e.prefix, resp.Responses[1].GetResponseRange(), st.rev, true)
	}
	if err == nil {
		st.pred, err = d.firstDirect(ctx, e.prefix, resp.Responses[2].GetResponseRange(), st.rev, false)
	}
	if ka != nil {
		kaErr := ka.wait(err != nil || st.pred != nil || !st.own)
		if err == nil && st.own && st.pred == nil && kaErr != nil {
			err = fmt.Errorf("renew etcd lease %x: %w", int64(e.lease.id), kaErr)
		}
	}
	return st, err
}

// waitFor waits until st.pred is deleted, then reads our place again.
func (d *etcdDriver) waitFor(ctx context.Context, e *entry, st queueState) (queueState, error) {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	pred := st.pred
	wch := d.cli.Watch(wctx, string(pred.Key), clientv3.WithCreatedNotify())
	created, err := d.next(ctx, e, wch)
	if err != nil {
		return d.afterBrokenWatch(ctx, e, st, err)
	}
	if created.Header.Revision != st.rev {
		// Written to since we read our place: the predecessor may be gone
		// already, and its deletion then precedes the watch. Read again,
		// now that the watch exists.
		now, err := d.place(ctx, e, nil)
		if err != nil || !now.own || now.pred == nil || string(now.pred.Key) != string(pred.Key) || now.pred.CreateRevision != pred.CreateRevision {
			return now, err
		}
	}
	for {
		wr, err := d.next(ctx, e, wch)
		if err != nil {
			cancel()
			return d.afterBrokenWatch(ctx, e, st, err)
		}
		for _, ev := range wr.Events {
			if ev.Type == mvccpb.DELETE || ev.Kv.CreateRevision != pred.CreateRevision {
				cancel()
				return d.place(ctx, e, d.keepAliveAsync(ctx, e.lease))
			}
		}
	}
}

// errWatchBroken makes waitFor's caller read its place again and watch anew.
var errWatchBroken = errors.New("etcd watch ended")

// next returns the watch's next answer, or why the wait must end: ctx,
// the lease lost, the driver closed. A broken watch is not an error to the
// caller: it reads its place again (afterBrokenWatch).
func (d *etcdDriver) next(ctx context.Context, e *entry, wch clientv3.WatchChan) (clientv3.WatchResponse, error) {
	select {
	case wr, ok := <-wch:
		if !ok || wr.Canceled || wr.Err() != nil {
			if ctx.Err() != nil {
				return wr, context.Cause(ctx)
			}
			if e.lease.isDead() {
				return wr, lostWhileWaiting(e.lease)
			}
			return wr, errWatchBroken
		}
		return wr, nil
	case <-ctx.Done():
		return clientv3.WatchResponse{}, context.Cause(ctx)
	case <-e.lease.dead:
		return clientv3.WatchResponse{}, lostWhileWaiting(e.lease)
	case <-d.closing:
		return clientv3.WatchResponse{}, errClosed
	}
}

func lostWhileWaiting(l *lease) error {
	return fmt.Errorf("%w while waiting in the queue (%w): %w", distlock.ErrLost, l.deadErr, driver.ErrLocked)
}

// afterBrokenWatch reads our place again, after a pause, when the watch
// ended by itself (a member stopped, the leader was lost); other errors end
// the wait.
func (d *etcdDriver) afterBrokenWatch(ctx context.Context, e *entry, st queueState, err error) (queueState, error) {
	if !errors.Is(err, errWatchBroken) {
		return st, err
	}
	select {
	case <-ctx.Done():
		return st, context.Cause(ctx)
	case <-e.lease.dead:
		return st, lostWhileWaiting(e.lease)
	case <-d.closing:
		return st, errClosed
	case <-time.After(jitter(100 * time.Millisecond)):
	}
	return d.place(ctx, e, nil)
}

// giveUp ends a wait that failed: it removes our key (see removeKey) and
// returns the reason, wrapping ctx's cause and ErrLocked when ctx ended.
func (d *etcdDriver) giveUp(ctx context.Context, e *entry, rev int64, first *mvccpb.KeyValue, err error) error {
	d.removeKey(ctx, e, rev)
	switch {
	case errors.Is(err, distlock.ErrLost):
		return err
	case ctx.Err() != nil && rev == 0:
		// Never got an answer that put us in the queue.
		return fmt.Errorf("%w: %w: etcd did not answer in time (last error: %v)", context.Cause(ctx), driver.ErrUnavailable, err)
	case ctx.Err() != nil:
		var holder *driver.HeldError
		if first != nil {
			holder = &driver.HeldError{Holder: holderOf(first)}
		}
		return contention(context.Cause(ctx), holder)
	case errors.Is(err, errClosed):
		return err
	}
	return fmt.Errorf("%w: %w", driver.ErrUnavailable, err)
}
