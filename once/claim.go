package once

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Claim is the right to run the work of one key. Its methods are safe for
// concurrent use. Finish it with Complete (the work is done) or Abandon (it
// is not, and another claimer may try); until then a heartbeat renews its
// lease every TTL/3 (unless WithAutoRenew(false)).
//
// If the heartbeat learns that the claim is no longer ours (its lease ran out
// and another claimer took the key over), or cannot renew it before the lease
// ends, the claim is lost: Done closes, Err wraps distlock.ErrLost, and
// Context is cancelled with that cause. Stop the work then: the new claimer
// runs it under a higher fence.
type Claim struct {
	g         *Guard
	key       string
	token     string
	fence     uint64
	owner     string
	ttl       time.Duration
	autoRenew bool

	done   chan struct{}
	ctx    context.Context
	cancel context.CancelCauseFunc
	kick   chan struct{} // Extend moved the deadline

	mu        sync.Mutex
	deadline  time.Time // local and conservative: send time of the last renewal + TTL - margin
	nextRenew time.Time
	lastErr   error // the last failed renewal
	ended     endKind
	err       error
}

type endKind int

const (
	held endKind = iota
	endLost
	endCompleted
	endAbandoned
)

// errFinished is the cause of a claim's Context after Complete or Abandon.
var errFinished = errors.New("once: claim finished")

// Key returns the claimed key.
func (c *Claim) Key() string { return c.key }

// Token returns the claim's token: 128 random bits that only this claim
// has. Complete, Abandon and Extend match it.
func (c *Claim) Token() string { return c.token }

// Fence returns the claim's fencing token: made by the database, strictly
// greater than the fence of every earlier claim of this key. Pass it to the
// resource the work writes to and have it reject writes with a smaller one,
// so a claimer that lost its claim while paused cannot do harm.
func (c *Claim) Fence() uint64 { return c.fence }

// Owner returns the metadata stored with the claim (WithOwner).
func (c *Claim) Owner() string { return c.owner }

// TTL returns the claim's lease.
func (c *Claim) TTL() time.Duration { return c.ttl }

// Done is closed when the claim stops being held: completed, abandoned, or
// lost.
func (c *Claim) Done() <-chan struct{} { return c.done }

// Context is cancelled when Done closes; after a loss its cause is Err.
func (c *Claim) Context() context.Context { return c.ctx }

// Err is nil while the claim is held and after Complete; it wraps
// distlock.ErrLost after a loss (and distlock.ErrClosed if the Guard was
// closed), and distlock.ErrNotHeld after Abandon.
func (c *Claim) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Deadline returns the local, conservative end of the lease: the claim is
// surely held until then unless it was abandoned or completed.
func (c *Claim) Deadline() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.deadline
}

// end stops the claim locally. The first call decides Err; Complete may still
// turn a local loss into a completion (the database, not the heartbeat,
// decides who holds the key).
func (c *Claim) end(kind endKind, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ended == held {
		c.err = err
		cause := err
		if cause == nil {
			cause = errFinished
		}
		c.cancel(cause)
		close(c.done)
	}
	if c.ended == held || kind == endCompleted {
		c.ended = kind
	}
	if kind == endCompleted {
		c.err = nil
	}
}

// Claim claims key for the caller, in one autocommit statement (two on
// MySQL) on the database's clock:
//
//   - a new key, or one whose previous claimer abandoned it or let its lease
//     run out, is claimed: the result is a *Claim with a fence higher than
//     every earlier claim's;
//   - a key whose work was completed: an error wrapping ErrDone, an
//     *DoneError with the stored result;
//   - a key with a live claim: an error wrapping ErrInProgress, an
//     *InProgressError saying who holds it and for how long.
//
// When the statement's outcome is unknown (timeout, broken connection), Claim
// reads the row back by its token before answering (seed point D4), and
// tries again if the first attempt did not land: it never returns an error
// while holding the key, and never a claim it does not hold. If ctx ends
// before the outcome is known, any claim that may have landed is abandoned
// by token before Claim returns, or in the background if the database does
// not answer within a second.
//
// Claim never returns a claim with less than a third of its lease left: one
// granted that late (a slow answer, a read-back) is renewed first, one
// round trip more. If the renewal finds the key taken over meanwhile,
// Claim answers as for that claimer's row (ErrInProgress, ErrDone); if it
// fails, the claim is given back and Claim returns the error.
func (g *Guard) Claim(ctx context.Context, key string, opts ...ClaimOption) (*Claim, error) {
	if err := g.begin(ctx, "claim", key); err != nil {
		return nil, err
	}
	cfg := g.cfg.claim
	for _, o := range opts {
		if o != nil {
			o.applyClaim(&cfg)
		}
	}
	if cfg.err != nil {
		return nil, g.wrap("claim", key, cfg.err)
	}
	c, err := g.claim(ctx, key, cfg)
	if err != nil {
		return nil, g.wrap("claim", key, err)
	}
	return c, nil
}

func (g *Guard) claim(ctx context.Context, key string, cfg claimConfig) (*Claim, error) {
	token := newToken()
	ttlMs := int64((cfg.ttl + time.Millisecond - 1) / time.Millisecond)
	// An unknown outcome is resolved for at most one lease: by then any
	// claim that landed has run out, and giving up is safe.
	giveUp := time.Now().Add(cfg.ttl + driftMargin(cfg.ttl))
	backoff := 10 * time.Millisecond
	var cause error // the last unknown outcome
	for {
		if err := ctx.Err(); err != nil {
			return nil, context.Cause(ctx)
		}
		sent := time.Now()
		x, err := g.claimRow(ctx, key, token, cfg.owner, ttlMs)
		if err != nil {
			if g.d.permanent(err) {
				return nil, err
			}
			// Outcome unknown: read back by token.
			g.readBacks.Add(1)
			cause = err
			x, sent, err = g.readBack(ctx, key, giveUp, err)
			if err != nil {
				g.giveBack(ctx, key, token, cfg.ttl)
				return nil, err
			}
		}
		if x.ownedBy(token) && time.Until(leaseEnd(x, sent, cfg.ttl)) < cfg.ttl/3 {
			// The answer came so late (or was read back so late) that the
			// lease is due for renewal, or has even run out: renew it
			// before handing the claim out, or give it back.
			if x, sent, err = g.renewLate(ctx, key, token, x, cfg.ttl); err != nil {
				g.giveBack(ctx, key, token, cfg.ttl)
				return nil, fmt.Errorf("the claim was granted too late to be sure it is still held, and renewing it failed: %w", err)
			}
		}
		if !x.ownedBy(token) && x.free() {
			// Our statement did not land (or, granted late, our claim was
			// taken over and given up since): try again.
			if cause == nil {
				cause = errors.New("the claim was taken over before its answer came")
			}
			if !sleep(ctx, jitter(backoff)) {
				return nil, context.Cause(ctx)
			}
			if time.Now().After(giveUp) {
				// A statement still on its way could yet land.
				g.abandonLater(key, token, cfg.ttl)
				return nil, fmt.Errorf("no claim landed before the lease would have run out: %w", cause)
			}
			backoff = min(2*backoff, time.Second)
			continue
		}
		c, err := g.answer(key, token, cfg, x, sent)
		if err != nil {
			return nil, err
		}
		if ctx.Err() != nil {
			// The caller gave up while the database granted the claim.
			c.end(endAbandoned, errAbandoned)
			g.giveBack(ctx, key, token, cfg.ttl)
			return nil, context.Cause(ctx)
		}
		return c, nil
	}
}

// leaseEnd is the local, conservative end of the lease of x as read at sent.
func leaseEnd(x row, sent time.Time, ttl time.Duration) time.Time {
	return sent.Add(min(x.remaining, ttl) - deadlineMargin(ttl))
}

// renewLate renews, by ttl, the lease of a claim granted too late (x, owned
// by token) and returns the row as the renewal left it and the renewal's send
// time. One round trip; two when no row changed (another claimer took the
// key over, or MySQL, which counts only changed rows, saw a renewal within
// the same millisecond): the row is then read, and is what the caller
// answers from.
func (g *Guard) renewLate(ctx context.Context, key, token string, x row, ttl time.Duration) (row, time.Time, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ttl/2)
	defer cancel()
	sent := time.Now()
	n, err := g.exec(ctx, g.stmts.extend, key, token)
	if err != nil {
		return row{}, time.Time{}, err
	}
	if n > 0 {
		x.remaining = ttl
		return x, sent, nil
	}
	sent = time.Now()
	x, err = g.read(ctx, key)
	return x, sent, err
}

// claimRow runs the claim statement and returns the row as it is
// afterwards: one round trip; on MySQL, two when the row was not taken (the
// upsert, then a read of the row).
func (g *Guard) claimRow(ctx context.Context, key, token, owner string, ttlMs int64) (row, error) {
	args := g.d.claimArgs(key, token, owner, ttlMs)
	if g.stmts.claimRead == "" {
		return scanRow(g.queryRow(ctx, g.stmts.claim, args...))
	}
	var res sql.Result
	var err error
	if st := g.prepped[g.stmts.claim]; st != nil {
		res, err = st.ExecContext(ctx, args...)
	} else {
		res, err = g.db.ExecContext(ctx, g.stmts.claim, args...)
	}
	if err != nil {
		return row{}, err
	}
	fence, err := res.LastInsertId()
	if err != nil {
		return row{}, err
	}
	if fence != 0 {
		// Taken: the row is ours as the statement wrote it.
		return row{exists: true, state: stateClaimed, token: token, fence: uint64(fence), owner: owner,
			remaining: time.Duration(ttlMs) * time.Millisecond}, nil
	}
	x, err := scanRow(g.queryRow(ctx, g.stmts.claimRead, key))
	if err == nil && !x.exists {
		err = errors.New("once: the claimed row is missing")
	}
	return x, err
}

// readBack reads key's row after a statement whose outcome is unknown,
// retrying while the failure looks transient, until ctx ends or giveUp
// passes. It returns the row and when the read was sent.
func (g *Guard) readBack(ctx context.Context, key string, giveUp time.Time, cause error) (row, time.Time, error) {
	backoff := 10 * time.Millisecond
	for {
		if ctx.Err() != nil {
			return row{}, time.Time{}, fmt.Errorf("outcome unknown (%w), and the caller gave up: %w", cause, context.Cause(ctx))
		}
		if err := g.closedErr(); err != nil {
			return row{}, time.Time{}, fmt.Errorf("outcome unknown (%w): %w", cause, err)
		}
		remaining := time.Until(giveUp)
		if remaining <= 0 {
			return row{}, time.Time{}, fmt.Errorf("outcome unknown, and reading back failed until the lease would have run out: %w", cause)
		}
		rctx, cancel := context.WithTimeout(ctx, min(remaining, 2*time.Second))
		sent := time.Now()
		x, err := g.read(rctx, key)
		cancel()
		if err == nil {
			return x, sent, nil
		}
		if g.d.permanent(err) {
			return row{}, time.Time{}, fmt.Errorf("outcome unknown (%w); reading back: %w", cause, err)
		}
		sleep(ctx, jitter(backoff))
		backoff = min(2*backoff, time.Second)
	}
}

// answer turns the row a claim left behind into the caller's answer.
func (g *Guard) answer(key, token string, cfg claimConfig, x row, sent time.Time) (*Claim, error) {
	switch {
	case x.exists && x.state == stateDone:
		return nil, &DoneError{Key: key, Result: x.result, Fence: x.fence, Owner: x.owner, CompletedAt: x.updated}
	case x.ownedBy(token):
		return g.newClaim(key, token, cfg, x, sent)
	case x.exists && x.state == stateClaimed && x.remaining > 0:
		return nil, &InProgressError{Key: key, Owner: x.owner, Fence: x.fence, TTL: x.remaining, Until: time.Now().Add(x.remaining)}
	}
	return nil, fmt.Errorf("once: unexpected row (state %q, fence %d)", x.state, x.fence)
}

func (g *Guard) newClaim(key, token string, cfg claimConfig, x row, sent time.Time) (*Claim, error) {
	ctx, cancel := context.WithCancelCause(context.Background())
	c := &Claim{
		g: g, key: key, token: token, fence: x.fence, owner: cfg.owner, ttl: cfg.ttl, autoRenew: cfg.autoRenew,
		done: make(chan struct{}), ctx: ctx, cancel: cancel, kick: make(chan struct{}, 1),
	}
	// The lease as the database reported it, from when the request was
	// sent: the database cannot have started it earlier.
	lease := min(x.remaining, cfg.ttl)
	c.deadline = sent.Add(lease - deadlineMargin(cfg.ttl))
	c.nextRenew = sent.Add(lease - 2*c.interval())
	if err := g.track(c); err != nil {
		cancel(err)
		g.abandonLater(key, token, cfg.ttl)
		return nil, err
	}
	go c.heartbeat()
	return c, nil
}
