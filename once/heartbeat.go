package once

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/distlock/distlock"
)

func (c *Claim) interval() time.Duration { return c.ttl / 3 }

// heartbeat renews the lease every TTL/3 and ends the claim when it is
// lost; without auto-renewal it only watches the deadline. It owns time: a
// renewal runs beside it, so the claim ends at its deadline whatever the
// database or the network is doing to a renewal in flight.
func (c *Claim) heartbeat() {
	defer c.g.bg.Done()
	defer c.g.untrack(c)
	t := time.NewTimer(c.nextWake(false))
	defer t.Stop()
	var renewed chan struct{} // closed when the renewal in flight is done; nil: none
	defer func() {
		if renewed != nil {
			<-renewed
		}
	}()
	for {
		select {
		case <-c.done:
			return
		case <-c.kick:
		case <-renewed:
			renewed = nil
		case <-t.C:
		}
		if renewed == nil && c.autoRenew && !time.Now().Before(c.renewAt()) {
			renewed = make(chan struct{})
			go func(done chan struct{}) {
				defer close(done)
				c.renew()
			}(renewed)
		}
		c.mu.Lock()
		deadline, last := c.deadline, c.lastErr
		c.mu.Unlock()
		if !time.Now().Before(deadline) {
			err := fmt.Errorf("%w: the lease ran out before it could be renewed", distlock.ErrLost)
			if last != nil {
				err = fmt.Errorf("%w (last renewal: %v)", err, last)
			}
			c.end(endLost, err)
			return
		}
		t.Reset(c.nextWake(renewed != nil))
	}
}

func (c *Claim) renewAt() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nextRenew
}

// nextWake is how long the heartbeat sleeps: until the next renewal or the
// deadline, whichever comes first (only the deadline while a renewal runs).
func (c *Claim) nextWake(renewing bool) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	next := c.deadline
	if c.autoRenew && !renewing && c.nextRenew.Before(next) {
		next = c.nextRenew
	}
	return max(time.Until(next), 0)
}

// renew makes one renewal attempt for the heartbeat.
func (c *Claim) renew() {
	// A slow answer still counts while the lease lasts; one lost on a dead
	// connection leaves time for a retry.
	ctx, cancel := context.WithTimeout(c.g.closing, max(min(c.interval(), time.Until(c.Deadline())), time.Millisecond))
	defer cancel()
	err := c.extend(ctx)
	switch {
	case err == nil:
	case errors.Is(err, errCompletedMeanwhile):
		// Complete landed while we renewed; Complete ends the claim.
	case errors.Is(err, distlock.ErrNotHeld):
		c.end(endLost, fmt.Errorf("%w: %w", distlock.ErrLost, err))
	default:
		c.mu.Lock()
		c.lastErr = err
		// Try again soon; the deadline still bounds the trying.
		c.nextRenew = time.Now().Add(jitter(c.interval() / 4))
		c.mu.Unlock()
	}
}

var errCompletedMeanwhile = errors.New("once: completed meanwhile")

// extend renews the lease, from now on the database's clock, by the claim's
// TTL, if the claim's token still holds the key. One round trip; two when the
// database says no row changed (MySQL counts only changed rows).
func (c *Claim) extend(ctx context.Context) error {
	sent := time.Now()
	n, err := c.g.exec(ctx, c.g.stmts.extend, c.key, c.token)
	if err != nil {
		return err
	}
	if n == 0 {
		sent = time.Now()
		x, err := c.g.read(ctx, c.key)
		switch {
		case err != nil:
			return err
		case x.exists && x.state == stateDone && x.token == c.token:
			return errCompletedMeanwhile
		case !x.ownedBy(c.token):
			return notHeld(x)
		}
		// Unchanged within the same millisecond: the lease is as read.
		c.moveDeadline(sent, min(x.remaining, c.ttl))
		return nil
	}
	c.moveDeadline(sent, c.ttl)
	return nil
}

func (c *Claim) moveDeadline(sent time.Time, lease time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if d := sent.Add(lease - deadlineMargin(c.ttl)); d.After(c.deadline) {
		c.deadline = d
	}
	c.nextRenew = sent.Add(c.interval())
	c.lastErr = nil
}

// notHeld says who has the key now, wrapping distlock.ErrNotHeld.
func notHeld(x row) error {
	switch {
	case !x.exists:
		return fmt.Errorf("%w: the row is gone", distlock.ErrNotHeld)
	case x.state == stateDone:
		return fmt.Errorf("%w: completed by another claim (%s, fence %d)", distlock.ErrNotHeld, ownerOrUnknown(x.owner), x.fence)
	case x.free():
		return fmt.Errorf("%w: the lease ran out", distlock.ErrNotHeld)
	}
	return fmt.Errorf("%w: taken over by %s (fence %d)", distlock.ErrNotHeld, ownerOrUnknown(x.owner), x.fence)
}

// Extend renews the lease now, by the claim's TTL from now on the database's
// clock, if the claim is still ours. With auto-renewal on there is no need to
// call it. An error wrapping distlock.ErrNotHeld means the claim was taken
// over (it is then lost). One round trip.
func (c *Claim) Extend(ctx context.Context) error {
	c.mu.Lock()
	ended, cerr := c.ended, c.err
	c.mu.Unlock()
	if ended != held {
		return c.g.wrap("extend", c.key, fmt.Errorf("%w: the claim has ended: %v", distlock.ErrNotHeld, cerr))
	}
	err := c.extend(ctx)
	switch {
	case err == nil:
		select {
		case c.kick <- struct{}{}:
		default:
		}
		return nil
	case errors.Is(err, errCompletedMeanwhile):
		return nil
	case errors.Is(err, distlock.ErrNotHeld):
		c.end(endLost, fmt.Errorf("%w: %w", distlock.ErrLost, err))
	}
	return c.g.wrap("extend", c.key, err)
}
