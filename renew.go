package distlock

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/distlock/distlock/driver"
)

// renewLoop is the Client's one background goroutine. It owns time: it
// declares a lock lost the moment its local deadline passes, whatever any
// driver call is doing, and it starts the renewals that are due. It never
// waits for the store itself: each renewal batch runs on a goroutine of its
// own and pokes the loop when it is done, so a stalled server or a
// black-holed connection delays no deadline.
//
// A lock whose renewal falls due within half its interval joins a batch
// that goes out anyway (renewing early costs nothing), so the locks of one
// Client with the same TTL fall into step: one round trip per interval.
func (c *Client) renewLoop(ctx context.Context) {
	defer c.loop.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		next := c.renewDue(ctx)
		if ctx.Err() != nil {
			return
		}
		timer.Reset(time.Until(next))
		select {
		case <-ctx.Done():
			return
		case <-c.kick:
		case <-timer.C:
		}
	}
}

// renewDue does one pass: it ends the locks whose deadline has passed,
// starts a renewal batch if any lock is due, and returns when the next pass
// is needed.
func (c *Client) renewDue(ctx context.Context) time.Time {
	now := time.Now()
	next := now.Add(time.Hour)
	var batch, expired []*Lock

	c.mu.Lock()
	anyDue := false
	for l := range c.held {
		if l.renewable() && !now.Before(l.nextRenew) && now.Before(l.deadline) {
			anyDue = true
			break
		}
	}
	for l := range c.held {
		if !now.Before(l.deadline) {
			expired = append(expired, l)
			continue
		}
		next = earliest(next, l.deadline)
		if !l.renewable() {
			continue
		}
		due := !now.Before(l.nextRenew)
		// Join a batch that goes out anyway when due soon, so locks with the
		// same interval fall into step; a lock retrying after a failure keeps
		// its own pace.
		soon := anyDue && l.lastErr == nil && !now.Before(l.nextRenew.Add(-l.interval/2))
		if due || soon {
			l.renewing = true
			batch = append(batch, l)
		} else {
			next = earliest(next, l.nextRenew)
		}
	}
	causes := make([]error, len(expired))
	for i, l := range expired {
		causes[i] = expiryCause(l)
	}
	// Locks tracked from now on poke the loop only if due before next. A
	// wake-up planned earlier stays planned even if its lock went
	// meanwhile: an uncontended Lock+Unlock loop would otherwise poke, and
	// empty, the loop every time.
	if c.planned.After(now) {
		next = earliest(next, c.planned)
	}
	c.planned = next
	c.mu.Unlock()

	for i, l := range expired {
		c.expire(l, causes[i])
	}
	if len(batch) > 0 {
		c.startRenewal(ctx, batch, now)
	}
	if p := c.purgeDue(ctx, now); !p.IsZero() {
		next = earliest(next, p)
	}
	return next
}

// renewable reports whether the loop may put l in a new batch (c.mu held).
func (l *Lock) renewable() bool {
	return l.state == stateHeld && l.autoRenew && !l.renewing
}

// expiryCause says why l's deadline passed (c.mu held).
func expiryCause(l *Lock) error {
	var cause error
	switch {
	case l.state == stateReleasing:
		cause = errors.New("ttl elapsed while the release was in flight")
	case !l.autoRenew:
		cause = errors.New("ttl elapsed (renewal is off)")
	default:
		cause = errors.New("ttl elapsed without a successful renewal")
	}
	if l.lastErr != nil {
		cause = errors.Join(cause, l.lastErr)
	}
	return cause
}

// expire ends l, whose deadline has passed: the store may have let it go
// (or be about to), so it is lost whatever a call in flight may still
// answer. A lock being released is only marked lost: its Unlock gives it
// back. Any other is given back in the background, so the next holder need
// not wait for the store's own expiry (the two clocks tick at slightly
// different rates, and a renewal in flight may still land).
func (c *Client) expire(l *Lock, cause error) {
	err := c.wrap("renew", l.key, fmt.Errorf("%w: %w", ErrLost, cause))
	c.mu.Lock()
	releasing := l.state == stateReleasing
	c.mu.Unlock()
	if !l.finish(stateLost, err, false) {
		return
	}
	c.log.Warn("distlock: lock lost", "key", l.key, "fence", l.fence, "err", cause)
	if !releasing {
		c.releaseLater(l.lease, l.storeHorizon)
	}
}

// startRenewal sends one Driver.Renew for batch on a goroutine of its own.
// Its time limit comes from the batch's own locks: the longest of their
// intervals (so that a call lost on a dead connection leaves time for a
// retry on a new one), and never past the last of their deadlines.
func (c *Client) startRenewal(ctx context.Context, batch []*Lock, now time.Time) {
	leases := make([]driver.Lease, len(batch))
	var last time.Time
	var limit time.Duration
	c.mu.Lock()
	for i, l := range batch {
		leases[i] = l.lease
		last = latest(last, l.deadline)
		limit = max(limit, l.interval)
	}
	c.mu.Unlock()
	limit = min(limit, last.Sub(now))
	c.renewals.Add(1)
	go func() {
		defer c.renewals.Done()
		sent := time.Now()
		rctx, cancel := context.WithTimeout(ctx, limit)
		results, err := c.drv.Renew(rctx, leases)
		cancel()
		if err == nil && len(results) != len(leases) {
			err = fmt.Errorf("driver returned %d renewal results for %d locks", len(results), len(leases))
		}
		c.renewed(batch, sent, time.Now(), results, err)
		if ctx.Err() == nil {
			c.metrics.renewed(ctx, len(leases), err)
			if err != nil {
				c.log.Warn("distlock: renewal failed; retrying while the TTL allows", "locks", len(leases), "err", err)
			}
		}
		c.poke() // deadlines and due times moved
	}()
}

// renewed applies the outcome of a renewal batch sent at sent and answered
// (or given up on) at answered. A lock that stopped being held meanwhile
// keeps its end; a renewal that may have landed still moves the time until
// which the store may hold it, so a background release keeps trying long
// enough.
func (c *Client) renewed(batch []*Lock, sent, answered time.Time, results []error, batchErr error) {
	var lost []*Lock
	var lostErrs []error
	now := time.Now()
	c.mu.Lock()
	for i, l := range batch {
		l.renewing = false
		e := batchErr
		if e == nil {
			e = results[i]
		}
		notHeld := errors.Is(e, ErrNotHeld)
		if !notHeld {
			l.storeExpiry = latest(l.storeExpiry, goneBy(answered, l.lease.TTL))
		}
		if l.state != stateHeld {
			continue // released or lost while the renewal was in flight
		}
		switch {
		case notHeld:
			lost = append(lost, l)
			lostErrs = append(lostErrs, e)
		case e == nil && now.Before(l.deadline):
			l.deadline = latest(l.deadline, heldUntil(sent, l.lease.TTL))
			l.nextRenew = sent.Add(l.interval)
			l.lastErr = nil
		case e == nil:
			// Answered after the deadline: the loop declares it lost.
		default:
			// Transient: retry soon, but the deadline stays where it was.
			l.lastErr = e
			l.nextRenew = now.Add(retryDelay(l))
		}
	}
	c.mu.Unlock()
	for i, l := range lost {
		l.lose(lostErrs[i])
	}
}

// retryDelay spaces renewal retries after a transient failure: a few tries
// fit before the deadline, none of them hammering the store (c.mu held).
func retryDelay(l *Lock) time.Duration {
	d := min(l.interval/4, time.Until(l.deadline)/4, time.Second)
	return max(jitter(d), 5*time.Millisecond)
}

func earliest(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func latest(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
