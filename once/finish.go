package once

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/distlock/distlock"
)

// Complete records that the work is done, storing result (at most
// MaxResultLen bytes; nil stores none) for later claimers, who then get
// ErrDone. It succeeds only if the claim's token still holds the key: a claim
// that was taken over gets an error wrapping distlock.ErrNotHeld and the new
// claimer's outcome stands. A lease that ran out but was not taken over can
// still be completed: nobody else ran the work.
//
// When the outcome is unknown (timeout, broken connection), Complete reads
// the row back: done under our token means it landed; still ours means it
// did not, and Complete tries again, as long as ctx allows. If ctx ends first,
// the error says the outcome is unknown; the claim stays held (its heartbeat
// goes on) and Complete may be called again. Calling Complete after it
// succeeded returns nil. Cost: one round trip; two or more after a failure.
func (c *Claim) Complete(ctx context.Context, result []byte) error {
	if len(result) > MaxResultLen {
		return c.g.wrap("complete", c.key, fmt.Errorf("%w: result is %d bytes, over the limit of %d", errInvalid, len(result), MaxResultLen))
	}
	c.mu.Lock()
	ended := c.ended
	c.mu.Unlock()
	switch ended {
	case endCompleted:
		return nil
	case endAbandoned:
		return c.g.wrap("complete", c.key, fmt.Errorf("%w: the claim was abandoned", distlock.ErrNotHeld))
	}
	return c.g.wrap("complete", c.key, c.finish(ctx, c.g.stmts.complete, []any{result, c.key, c.token}, endCompleted))
}

var errAbandoned = fmt.Errorf("%w: the claim was abandoned", distlock.ErrNotHeld)

// Abandon gives the key up without completing it, so the next claimer may
// take it at once (with a higher fence). The claim ends locally at once
// (Done closes, Err wraps distlock.ErrNotHeld); if the database cannot be
// told, the lease runs out by its TTL. Abandoning a claim that was already
// taken over or abandoned returns nil; one that was completed returns an error
// wrapping distlock.ErrNotHeld. One round trip.
func (c *Claim) Abandon(ctx context.Context) error {
	c.mu.Lock()
	ended := c.ended
	c.mu.Unlock()
	switch ended {
	case endCompleted:
		return c.g.wrap("abandon", c.key, fmt.Errorf("%w: the claim was completed", distlock.ErrNotHeld))
	case endAbandoned:
		return nil
	}
	c.end(endAbandoned, errAbandoned)
	err := c.finish(ctx, c.g.stmts.abandon, []any{c.key, c.token}, endAbandoned)
	if errors.Is(err, distlock.ErrNotHeld) && !errors.Is(err, errWasCompleted) {
		return nil // not ours any more either way
	}
	return c.g.wrap("abandon", c.key, err)
}

var errWasCompleted = fmt.Errorf("%w: the claim was completed", distlock.ErrNotHeld)

// finish runs Complete's or Abandon's statement until its outcome is known:
// one row changed means it landed; otherwise (or when the answer was lost)
// the row read back says whether an earlier attempt landed, someone else
// holds the key, or the statement must be sent again.
func (c *Claim) finish(ctx context.Context, stmt string, args []any, kind endKind) error {
	backoff := 10 * time.Millisecond
	var last error
	for {
		n, err := c.g.exec(ctx, stmt, args...)
		if err == nil && n > 0 {
			c.end(kind, nil)
			return nil
		}
		if err != nil {
			if c.g.d.permanent(err) {
				return err
			}
			last = err
		}
		c.g.readBacks.Add(1)
		rctx, cancel := ctx, context.CancelFunc(func() {})
		if ctx.Err() != nil {
			// One last look, so an answer lost to the cancellation is
			// still learnt when the database is quick.
			rctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		}
		x, rerr := c.g.read(rctx, c.key)
		cancel()
		if rerr == nil {
			switch {
			case x.exists && x.state == stateDone && x.token == c.token:
				if kind == endCompleted {
					c.end(endCompleted, nil)
					return nil
				}
				return errWasCompleted
			case !x.ownedBy(c.token):
				err := notHeld(x)
				c.end(endLost, fmt.Errorf("%w: %w", distlock.ErrLost, err))
				return err
			case kind == endAbandoned && x.token == "":
				return nil
			}
			// Still ours: the statement did not land. Send it again.
		} else {
			if c.g.d.permanent(rerr) {
				return rerr
			}
			last = errors.Join(last, rerr)
		}
		if err := c.g.closedErr(); err != nil {
			return fmt.Errorf("outcome unknown (%v): %w", last, err)
		}
		if ctx.Err() != nil {
			return fmt.Errorf("outcome unknown (%v), the claim is still held and can be finished again: %w", last, context.Cause(ctx))
		}
		sleep(ctx, jitter(backoff))
		backoff = min(2*backoff, time.Second)
	}
}

// giveBack abandons, by token, a claim this call may hold but will not
// return: at once if the database answers within a second (so that, usually,
// nothing is held when Claim returns), else in the background.
func (g *Guard) giveBack(ctx context.Context, key, token string, ttl time.Duration) {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	_, err := g.exec(actx, g.stmts.abandon, key, token)
	cancel()
	if err != nil && !g.d.permanent(err) {
		g.abandonLater(key, token, ttl)
	}
}

// abandonLater keeps trying to abandon a claim whose outcome is unknown
// (token-matched, so harmless if it never landed) until it succeeds, the
// lease must have run out anyway, or the Guard closes.
func (g *Guard) abandonLater(key, token string, ttl time.Duration) {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return // the lease runs out by itself
	}
	g.bg.Add(1)
	g.mu.Unlock()
	go func() {
		defer g.bg.Done()
		ctx, cancel := context.WithTimeout(g.closing, ttl+driftMargin(ttl))
		defer cancel()
		backoff := 10 * time.Millisecond
		for {
			_, err := g.exec(ctx, g.stmts.abandon, key, token)
			if err == nil || g.d.permanent(err) {
				return
			}
			if !sleep(ctx, jitter(backoff)) {
				return
			}
			backoff = min(2*backoff, time.Second)
		}
	}()
}
