package redislock

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/distlock/distlock/driver"
	"github.com/distlock/distlock/internal/rediswire"
)

// waiterLease is how long a waiter's queue entry lives without a refresh; a
// waiter refreshes it every third of that while it waits. A waiter that dies
// stops holding its place in the queue after at most this long.
func waiterLease(ttl time.Duration) time.Duration {
	return min(max(ttl, time.Second), 30*time.Second)
}

// AcquireWait blocks until the lock on req.Key is held for req.Token or ctx
// ends. The waiter queues on the server: a release hands the lock to the
// oldest live waiter and publishes its name, so one release wakes one waiter
// and costs nobody a failed attempt.
//
// Round trips: one when the key is free (an Acquire, or an Enqueue once the
// driver's subscription is up: both take a free key). When it is held, one
// Enqueue (plus, once per driver, a SUBSCRIBE on its shared pub/sub
// connection), then none until the hand-over message arrives: the release
// that wakes this waiter has already made it the holder. A waiter also
// checks again at the holder's remaining TTL (a crashed holder, or a holder
// using another library, whose release publishes nothing) and every third of
// its queue lease; ctx's end costs one round trip to leave the queue.
func (d *redisDriver) AcquireWait(ctx context.Context, req driver.AcquireRequest) (driver.Lease, error) {
	n := d.names(req.Key)
	if err := rediswire.CheckLock(n.Lock); err != nil {
		return driver.Lease{}, err
	}
	if !d.hub.active() {
		l, err := d.Acquire(ctx, req)
		if !errors.Is(err, driver.ErrLocked) {
			return l, err
		}
	}
	w := d.hub.join(ctx, req.Token)
	defer d.hub.leave(w)

	// giveUp leaves the queue and reports ctx's end. When the store confirmed
	// the exit, nothing is held and the error is definite: it wraps the
	// contention seen. Otherwise the portable layer reads back by token.
	var locked error = driver.ErrLocked
	giveUp := func() (driver.Lease, error) {
		if d.leave(ctx, n, req.Token) != nil {
			return driver.Lease{}, context.Cause(ctx)
		}
		return driver.Lease{}, fmt.Errorf("%w: %w", context.Cause(ctx), locked)
	}

	lease := waiterLease(req.TTL)
	poll := 10 * time.Millisecond
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		l, err := rediswire.EnqueueNotify(ctx, d.client, n, req.Token, req.Owner, d.hub.channel, req.TTL, lease)
		if err == nil {
			l.Key = req.Key
			return l, nil
		}
		var held *driver.HeldError
		if !errors.As(err, &held) {
			if ctx.Err() != nil {
				return giveUp()
			}
			d.leave(ctx, n, req.Token)
			return driver.Lease{}, classify(err)
		}
		locked = err
		wait := lease / 3
		if t := held.Holder.TTL; t > 0 {
			wait = min(wait, t+time.Millisecond)
		}
		if !w.sub {
			wait = min(wait, poll)
			poll = min(2*poll, time.Second)
		}
		timer.Reset(wait)
		select {
		case fence := <-w.wake:
			if fence > 0 {
				return driver.Lease{Key: req.Key, Token: req.Token, Fence: fence,
					TTL: time.Duration(rediswire.Millis(req.TTL)) * time.Millisecond}, nil
			}
		case <-timer.C:
		case <-ctx.Done():
			return giveUp()
		case <-d.hub.done:
			d.leave(ctx, n, req.Token)
			return driver.Lease{}, fmt.Errorf("%w: driver closed", driver.ErrUnavailable)
		}
	}
}

// leave takes the waiter out of the queue, passing on the lock if a release
// handed it over meanwhile. It outlives ctx by up to two seconds: a waiter
// that gives up must not leave the lock with nobody using it.
func (d *redisDriver) leave(ctx context.Context, n rediswire.Names, token string) error {
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	_, err := rediswire.Leave(lctx, d.client, n, token)
	return err
}
