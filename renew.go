package distlock

import (
	"context"
	"errors"
	"time"

	"github.com/distlock/distlock/driver"
)

// renewLoop is the Client's one background goroutine. It renews every held
// lock that is due, in one Driver.Renew batch, and declares a lock lost when
// the store says it is no longer ours or when its local deadline passes
// before a renewal succeeded. A lock whose renewal falls due within half its
// interval joins a batch that goes out anyway (renewing early costs
// nothing), so any locks of one Client with the same TTL fall into step: one
// round trip per interval.
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

// renewDue does one pass and returns when the next one is needed.
func (c *Client) renewDue(ctx context.Context) time.Time {
	now := time.Now()
	next := now.Add(time.Hour)
	var batch []*Lock
	var expired []*Lock
	var timeout time.Duration = time.Hour

	c.mu.Lock()
	anyDue := false
	for l := range c.held {
		if l.autoRenew && !now.Before(l.nextRenew) && now.Before(l.deadline) {
			anyDue = true
			break
		}
	}
	for l := range c.held {
		if !now.Before(l.deadline) {
			expired = append(expired, l)
			continue
		}
		timeout = min(timeout, l.deadline.Sub(now))
		next = earliest(next, l.deadline)
		if !l.autoRenew {
			continue
		}
		due := !now.Before(l.nextRenew)
		// Join a batch that goes out anyway when due soon, so locks with the
		// same interval fall into step; a lock retrying after a failure keeps
		// its own pace.
		soon := anyDue && l.lastErr == nil && !now.Before(l.nextRenew.Add(-l.interval/2))
		if due || soon {
			batch = append(batch, l)
			timeout = min(timeout, l.interval)
		} else {
			next = earliest(next, l.nextRenew)
		}
	}
	leases := make([]driver.Lease, len(batch))
	for i, l := range batch {
		leases[i] = l.lease
	}
	lastErrs := make([]error, len(expired))
	for i, l := range expired {
		lastErrs[i] = l.lastErr
	}
	// Locks tracked from now on poke the loop only if due before next; while
	// a batch is out (zero), the pass after it sees them. A wake-up planned
	// earlier stays planned even if its lock went meanwhile: an uncontended
	// Lock+Unlock loop would otherwise poke, and empty, the loop every time.
	if c.planned.After(now) {
		next = earliest(next, c.planned)
	}
	c.planned = next
	if len(batch) > 0 {
		c.planned = time.Time{}
	}
	c.mu.Unlock()

	for i, l := range expired {
		cause := errors.New("ttl elapsed without a successful renewal")
		if !l.autoRenew {
			cause = errors.New("ttl elapsed (renewal is off)")
		}
		if lastErrs[i] != nil {
			cause = errors.Join(cause, lastErrs[i])
		}
		l.lose(cause)
		// The store may still hold it for a moment (clocks tick at slightly
		// different rates): give it back so the next holder need not wait.
		c.releaseLater(l.lease, goneBy(time.Now(), l.lease.TTL))
	}
	if len(batch) == 0 {
		return next
	}

	sent := time.Now()
	rctx, cancel := context.WithTimeout(ctx, timeout)
	results, err := c.drv.Renew(rctx, leases)
	cancel()
	if err == nil && len(results) != len(leases) {
		err = errors.New("driver returned a wrong number of renewal results")
	}
	if ctx.Err() != nil {
		return sent // closing
	}
	c.metrics.renewed(ctx, len(leases), err)
	if err != nil {
		c.log.Warn("distlock: renewal failed; retrying while the TTL allows", "locks", len(leases), "err", err)
	}
	var lost []*Lock
	var lostErrs []error
	c.mu.Lock()
	for i, l := range batch {
		if l.state != stateHeld {
			continue // released while the renewal was in flight
		}
		e := err
		if e == nil {
			e = results[i]
		}
		switch {
		case e == nil:
			l.deadline = heldUntil(sent, l.lease.TTL)
			l.nextRenew = sent.Add(l.interval)
			l.lastErr = nil
		case errors.Is(e, ErrNotHeld):
			lost = append(lost, l)
			lostErrs = append(lostErrs, e)
		default:
			// Transient: retry soon, but the deadline stays where it was.
			l.lastErr = e
			l.nextRenew = time.Now().Add(retryDelay(l))
		}
	}
	c.mu.Unlock()
	for i, l := range lost {
		l.lose(lostErrs[i])
	}
	return time.Now() // recompute at once: deadlines and due times moved
}

// retryDelay spaces renewal retries after a transient failure: a few tries
// fit before the deadline, none of them hammering the store.
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
