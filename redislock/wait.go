package redislock

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/distlock/distlock"
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
// its queue lease. When ctx ends it leaves the queue (one round trip),
// passing on a lock handed to it meanwhile, waiting at most leaveAtOnce
// for the server before it returns and leaves in the background.
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

	// giveUp reports ctx's end, having left the queue (passing on or
	// deleting a lock taken or handed over meanwhile), or, if the server
	// does not answer at once, while leaving goes on in the background:
	// nothing is held for the caller either way, and the error is
	// definite, wrapping the contention seen, or ErrRetry if the server
	// never answered.
	var locked error // the contention seen
	giveUp := func() (driver.Lease, error) {
		d.leaveNow(ctx, n, req.Token, req.TTL)
		if locked == nil {
			return driver.Lease{}, fmt.Errorf("%w: %w (redis: no answer; anything taken is given back in the background)", context.Cause(ctx), driver.ErrRetry)
		}
		return driver.Lease{}, fmt.Errorf("%w: %w", context.Cause(ctx), locked)
	}

	lease := waiterLease(req.TTL)
	poll := 10 * time.Millisecond
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		l, err := rediswire.Run(ctx, d.calls, func(ctx context.Context) (driver.Lease, error) {
			return rediswire.EnqueueNotify(ctx, d.client, n, req.Token, req.Owner, d.hub.channel, req.TTL, lease)
		})
		if err == nil {
			l.Key = req.Key
			return l, nil
		}
		var held *driver.HeldError
		if !errors.As(err, &held) {
			if ctx.Err() != nil {
				return giveUp()
			}
			return driver.Lease{}, d.failed(ctx, n, req, err)
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
			d.leaveLater(n, req.Token, req.TTL)
			return driver.Lease{}, fmt.Errorf("%w: driver closed", driver.ErrUnavailable)
		}
	}
}

// failed answers an enqueue that failed with err while ctx still runs. The
// waiter leaves the queue first, so that no lock handed to it meanwhile is
// left with nobody using it; err then goes to the caller, whose read-back
// by token cannot race that leave. If leaving fails too, it goes on in the
// background, and the answer is definite (ErrRetry: anything taken is being
// given back), so that the caller does not adopt a lock the background
// leave may pass on.
func (d *redisDriver) failed(ctx context.Context, n rediswire.Names, req driver.AcquireRequest, err error) error {
	if errors.Is(err, distlock.ErrInvalid) {
		d.leaveLater(n, req.Token, req.TTL)
		return err
	}
	_, lerr := rediswire.Run(ctx, d.calls, func(ctx context.Context) (bool, error) {
		return rediswire.Leave(ctx, d.client, n, req.Token)
	})
	if lerr == nil {
		return classify(err)
	}
	d.leaveLater(n, req.Token, req.TTL)
	return fmt.Errorf("%w: redis: the wait in the queue failed (%w), and so did leaving it (%v); leaving in the background", driver.ErrRetry, classify(err), lerr)
}

// leaveAtOnce bounds the wait for a waiter's leaving the queue once its ctx
// has ended. A healthy server answers well within it, so the waiter is out
// of the queue when AcquireWait returns and no release hands the lock to a
// waiter that has gone; one that does not answer costs this much past ctx,
// and the leaving goes on in the background.
const leaveAtOnce = 100 * time.Millisecond

// leaveNow takes a waiter whose ctx ended out of the queue, waiting at most
// leaveAtOnce for the server; then leaveLater takes over.
func (d *redisDriver) leaveNow(ctx context.Context, n rediswire.Names, token string, ttl time.Duration) {
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), leaveAtOnce)
	defer cancel()
	_, err := rediswire.Run(lctx, d.calls, func(ctx context.Context) (bool, error) {
		return rediswire.Leave(ctx, d.client, n, token)
	})
	if err != nil {
		d.leaveLater(n, token, ttl)
	}
}

// leaveLater takes a waiter that gave up out of the queue, in the
// background, passing on the lock if a release handed it over meanwhile: a
// waiter that gives up must not leave the lock with nobody using it. It
// tries until the server answers, or until a lock handed over would have
// expired by itself (ttl from now), or the driver closes.
func (d *redisDriver) leaveLater(n rediswire.Names, token string, ttl time.Duration) {
	until := time.Now().Add(ttl)
	d.bg.Go(func() {
		pause := 10 * time.Millisecond
		for {
			ctx, cancel := context.WithTimeout(context.Background(), leaveTimeout)
			_, err := rediswire.Leave(ctx, d.client, n, token)
			cancel()
			if err == nil || errors.Is(err, redis.ErrClosed) || time.Now().Add(pause).After(until) {
				return
			}
			select {
			case <-time.After(pause):
			case <-d.hub.done:
				return
			}
			pause = min(2*pause, time.Second)
		}
	})
}

// leaveTimeout bounds one attempt to leave the queue.
const leaveTimeout = 2 * time.Second
