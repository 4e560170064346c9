package redlock

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/driver"
	"github.com/distlock/distlock/internal/rediswire"
)

// errNoAnswer: a node did not answer within its time limit. The request may
// still run on it.
var errNoAnswer = errors.New("no answer")

// redlockDriver implements driver.Driver over N independent Redis nodes.
type redlockDriver struct {
	nodes    []*node
	quorum   int // N/2 + 1
	opts     Options
	own      bool                 // the clients were made by Open: Close closes them
	inflight rediswire.Background // node requests, some still running after their caller returned
	closeMu  sync.Once
	closeErr error
}

func newDriver(ctx context.Context, nodes []*node, opts Options, own bool) (*redlockDriver, error) {
	d := &redlockDriver{nodes: nodes, quorum: len(nodes)/2 + 1, opts: opts, own: own}
	err := rediswire.CheckPrefix(opts.Prefix)
	if err == nil {
		err = d.probe(ctx)
	}
	if err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

func (d *redlockDriver) Info() driver.Info {
	return driver.Info{Name: Name, MinTTL: MinTTL, TTLGranularity: time.Millisecond}
}

// drift is the allowance for the nodes' clocks running at other rates than
// ours, as the Redlock description gives it: 1% of the TTL plus 2ms (the
// 2ms also covers Redis's millisecond expiry resolution).
func drift(ttl time.Duration) time.Duration { return ttl/100 + 2*time.Millisecond }

// nodeTimeout is the per-node time limit of a request that races a lock's
// validity (acquire, renewal).
func (d *redlockDriver) nodeTimeout(ttl time.Duration) time.Duration {
	if d.opts.NodeTimeout > 0 {
		return d.opts.NodeTimeout
	}
	return max(ttl/nodeTimeoutDivisor, minNodeTimeout)
}

// slowTimeout is the per-node time limit of Release and Inspect.
func (d *redlockDriver) slowTimeout(ttl time.Duration) time.Duration {
	return max(d.nodeTimeout(ttl), slowNodeTimeout)
}

func (d *redlockDriver) names(key string) rediswire.Names {
	return rediswire.NamesFor(d.opts.Prefix, key)
}

// nodeErrors joins the errors of the nodes that failed, each named.
func nodeErrors[T any](d *redlockDriver, replies []reply[T], failed func(i int) bool) error {
	var b []error
	for i, r := range replies {
		if r.err != nil && failed(i) {
			b = append(b, fmt.Errorf("%s: %w", d.nodes[i].name, r.err))
		}
	}
	return joinLine(b...)
}

// joinLine is errors.Join on one line ("; " between the errors), so that a
// message about several nodes stays one line in logs and on a terminal.
func joinLine(errs ...error) error {
	errs = slices.DeleteFunc(errs, func(e error) bool { return e == nil })
	if len(errs) == 0 {
		return nil
	}
	return lineErrors(errs)
}

type lineErrors []error

func (e lineErrors) Error() string {
	s := make([]string, len(e))
	for i, err := range e {
		s[i] = err.Error()
	}
	return strings.Join(s, "; ")
}

func (e lineErrors) Unwrap() []error { return e }

// Acquire asks every node at once to take the key for the token, and holds
// the lock if a majority granted it while the lock is still valid:
// TTL - elapsed - drift > 0. The fence is the largest of the granting
// nodes' fences; when fewer than a majority of them already stand at it, a
// second round trip raises their records' fences to it (see raiseFences), so
// that the fence of every later holder is larger. On failure the key is
// released on every node that may have taken it.
func (d *redlockDriver) Acquire(ctx context.Context, req driver.AcquireRequest) (driver.Lease, error) {
	names := d.names(req.Key)
	if err := rediswire.CheckLock(names.Lock); err != nil {
		return driver.Lease{}, err
	}
	ttl := time.Duration(rediswire.Millis(req.TTL)) * time.Millisecond
	timeout := d.nodeTimeout(ttl)
	start := time.Now()
	floor := uint64(start.UnixMicro()) + fenceLead
	replies := fanOut(ctx, d, timeout, func(ctx context.Context, n *node) (driver.Lease, error) {
		return rediswire.AcquireAbove(ctx, n.c, names, req.Token, req.Owner, ttl, floor)
	})

	const (
		granted = iota
		locked
		refused // the node's record of the key is not a string: nothing taken
		unsent  // surely had no effect
		unknown // may have taken the key
	)
	votes := make([]int, len(replies))
	var fence uint64
	var grants int
	var holder driver.Holder
	var holderFences []uint64
	for i, r := range replies {
		var held *driver.HeldError
		switch {
		case r.err == nil:
			votes[i] = granted
			grants++
			fence = max(fence, r.v.Fence)
		case errors.As(r.err, &held):
			votes[i] = locked
			holder = mergeHolder(holder, held.Holder)
			holderFences = append(holderFences, held.Holder.Fence)
		case errors.Is(r.err, distlock.ErrInvalid):
			votes[i] = refused
		case rediswire.Unsent(r.err):
			votes[i] = unsent
		default:
			votes[i] = unknown
		}
	}

	var failure error
	if grants >= d.quorum {
		// The records of a majority must stand at fence or above
		// before it is handed out: any later majority meets that one.
		var atFence, behind []int
		for i, r := range replies {
			if votes[i] == granted {
				if r.v.Fence == fence {
					atFence = append(atFence, i)
				} else {
					behind = append(behind, i)
				}
			}
		}
		if len(atFence) < d.quorum {
			raised, err := d.raiseFences(ctx, timeout, ttl, names, req.Token, req.Owner, fence, behind)
			if len(atFence)+raised < d.quorum {
				failure = fmt.Errorf("redlock: fence %d reached %d of %d nodes, a majority needs %d: %w",
					fence, len(atFence)+raised, len(d.nodes), d.quorum, err)
			}
		}
		if failure == nil {
			elapsed := time.Since(start)
			if validity := ttl - elapsed - drift(ttl); validity > 0 {
				return driver.Lease{Key: req.Key, Token: req.Token, Fence: fence, TTL: ttl}, nil
			}
			failure = fmt.Errorf("redlock: a majority granted the lock after %v, too late for its ttl %v (drift allowance %v)",
				elapsed.Round(time.Microsecond), ttl, drift(ttl))
		}
	}

	// Not acquired: give the key back wherever it may have been taken,
	// whether the node said so or did not answer in time.
	var giveBack []int
	for i, v := range votes {
		if v == granted || v == unknown {
			giveBack = append(giveBack, i)
		}
	}
	stillHeld := d.releaseOn(ctx, ttl, names, req.Token, giveBack)

	n, q := len(d.nodes), d.quorum
	unreachable, failed, refusals := 0, 0, 0
	for _, v := range votes {
		switch v {
		case unsent:
			unreachable++
			failed++
		case unknown, refused:
			failed++
		}
		if v == refused {
			refusals++
		}
	}
	failedErr := nodeErrors(d, replies, func(i int) bool { return votes[i] >= refused })
	if failure == nil {
		failure = fmt.Errorf("redlock: %d of %d nodes granted the lock, a majority needs %d", grants, n, q)
		if failed > 0 {
			failure = fmt.Errorf("%w; %d did not: %w", failure, failed, failedErr)
		}
	}
	switch {
	case stillHeld >= q:
		// A majority may still hold the key for this token: it neither
		// answered the acquire nor the release. This is not left to the
		// caller's read-back, which could hand out the lock with a fence
		// that never reached a majority (see raiseFences); the key is
		// blocked until its TTL instead, a cost in time, not in safety.
		return driver.Lease{}, fmt.Errorf("%w: %w (the release got no answer from %d nodes, which may keep the key until its ttl)", driver.ErrRetry, failure, stillHeld)
	case refusals > n-q:
		// Too many nodes cannot make a fence for the key: waiting would
		// not help, an operator must delete the bad records.
		return driver.Lease{}, fmt.Errorf("%w: redlock: %d of %d nodes refused the key: %w", distlock.ErrInvalid, refusals, n, failedErr)
	case unreachable > n-q:
		// Refused connections alone rule a majority out: the store is
		// down, waiting would not help.
		err := fmt.Errorf("redlock: only %d of %d nodes could be reached, a majority needs %d: %w", n-unreachable, n, q, failedErr)
		return driver.Lease{}, fmt.Errorf("%w: %w", driver.ErrUnavailable, err)
	case holder.Held:
		// Some nodes hold the key for another token: contention.
		holder.Fence = majorityFence(holderFences, q)
		return driver.Lease{}, &driver.HeldError{Holder: holder}
	default:
		// No majority in time (slow nodes, a late answer, a fence that did
		// not spread) and the key released: the lock is not ours, nobody
		// else is known to hold it, and the next attempt may well succeed.
		// Lock waits and retries; TryLock says the store is unavailable.
		return driver.Lease{}, fmt.Errorf("%w: %w (released)", driver.ErrRetry, failure)
	}
}

// mergeHolder keeps, of two nodes' views of the holder, the one with the
// larger fence (the latest holder), and the smaller remaining TTL, so that
// a waiter's fallback timer fires no later than the first node frees it.
func mergeHolder(acc, h driver.Holder) driver.Holder {
	if !acc.Held {
		return h
	}
	ttl := acc.TTL
	if h.TTL > 0 && (ttl == 0 || h.TTL < ttl) {
		ttl = h.TTL
	}
	if h.Fence > acc.Fence {
		acc = h
	}
	acc.TTL = ttl
	return acc
}

// releaseOn releases the token on the nodes at idx and returns how many of
// them may still hold it (their release did not get an answer).
func (d *redlockDriver) releaseOn(ctx context.Context, ttl time.Duration, names rediswire.Names, token string, idx []int) int {
	if len(idx) == 0 {
		return 0
	}
	// Release even if the caller's ctx has ended: a key left behind blocks
	// its node's vote until it expires. The wait for the answers ends with
	// ctx, the releases run on.
	replies := fanOutUntil(ctx, context.WithoutCancel(ctx), d, d.slowTimeout(ttl), idx, func(ctx context.Context, n *node) (struct{}, error) {
		return struct{}{}, rediswire.Release(ctx, n.c, names, token)
	}, nil, 0)
	stillHeld := 0
	for _, r := range replies {
		if r.err != nil && !errors.Is(r.err, driver.ErrNotHeld) {
			stillHeld++
		}
	}
	return stillHeld
}

// Release deletes the key on every node where the token holds it. It
// succeeds if any node held it, and is ErrNotHeld if a majority said the
// token does not hold the key and none released it. Once a majority has
// answered and one of them released the key, it waits for the others only
// as long as an acquire waits for a node (nodeTimeout): a slow or paused
// node does not hold up Unlock for the 250ms floor of slowTimeout (its
// delete runs on in the background, or the key expires there).
func (d *redlockDriver) Release(ctx context.Context, l driver.Lease) error {
	names := d.names(l.Key)
	majorityReleased := func(out []reply[struct{}], answered []bool) bool {
		released, decided := 0, 0
		for i, r := range out {
			if !answered[i] {
				continue
			}
			if r.err == nil {
				released++
			}
			if r.err == nil || errors.Is(r.err, driver.ErrNotHeld) {
				decided++
			}
		}
		return released > 0 && decided >= d.quorum
	}
	replies := fanOutUntil(ctx, ctx, d, d.slowTimeout(l.TTL), nil, func(ctx context.Context, n *node) (struct{}, error) {
		return struct{}{}, rediswire.Release(ctx, n.c, names, l.Token)
	}, majorityReleased, d.nodeTimeout(l.TTL))
	released, notHeld := 0, 0
	for _, r := range replies {
		switch {
		case r.err == nil:
			released++
		case errors.Is(r.err, driver.ErrNotHeld):
			notHeld++
		}
	}
	switch {
	case released > 0:
		return nil
	case notHeld >= d.quorum:
		return fmt.Errorf("%w: redlock: no node held the key for this token (%d of %d answered)", driver.ErrNotHeld, notHeld, len(d.nodes))
	}
	err := fmt.Errorf("redlock: release answered by %d of %d nodes, none held it, a majority needs %d: %w",
		notHeld, len(d.nodes), d.quorum, nodeErrors(d, replies, func(int) bool { return true }))
	if allUnsent(replies) {
		return fmt.Errorf("%w: %w", driver.ErrUnavailable, err)
	}
	return err
}

func allUnsent[T any](replies []reply[T]) bool {
	for _, r := range replies {
		if r.err != nil && !errors.Is(r.err, driver.ErrNotHeld) && !rediswire.Unsent(r.err) {
			return false
		}
	}
	return true
}

// Renew extends every lease on every node in one pipeline per node (the
// nodes in parallel): one round trip per node for the whole batch. A lease
// is renewed if a majority extended it within its validity; it is lost
// (ErrNotHeld) if so many nodes said the token does not hold it that no
// majority can; otherwise its outcome is unknown and the portable layer
// retries.
func (d *redlockDriver) Renew(ctx context.Context, leases []driver.Lease) ([]error, error) {
	if len(leases) == 0 {
		return nil, nil
	}
	items := make([]rediswire.RenewItem, len(leases))
	minTTL := leases[0].TTL
	for i, l := range leases {
		items[i] = rediswire.RenewItem{Names: d.names(l.Key), Token: l.Token, TTL: l.TTL}
		minTTL = min(minTTL, l.TTL)
	}
	start := time.Now()
	replies := fanOut(ctx, d, d.nodeTimeout(minTTL), func(ctx context.Context, n *node) ([]error, error) {
		return rediswire.Renew(ctx, n.c, items)
	})
	elapsed := time.Since(start)

	batchFailed := 0
	for _, r := range replies {
		if r.err != nil {
			batchFailed++
		}
	}
	if batchFailed > len(d.nodes)-d.quorum {
		err := fmt.Errorf("redlock: renewal answered by %d of %d nodes, a majority needs %d: %w",
			len(d.nodes)-batchFailed, len(d.nodes), d.quorum, nodeErrors(d, replies, func(int) bool { return true }))
		if allUnsent(replies) {
			err = fmt.Errorf("%w: %w", driver.ErrUnavailable, err)
		}
		return nil, err
	}
	results := make([]error, len(leases))
	for i, l := range leases {
		extended, notHeld := 0, 0
		var errs []error
		for j, r := range replies {
			var e error
			if r.err != nil {
				e = r.err
			} else {
				e = r.v[i]
			}
			switch {
			case e == nil:
				extended++
			case errors.Is(e, driver.ErrNotHeld):
				notHeld++
			default:
				errs = append(errs, fmt.Errorf("%s: %w", d.nodes[j].name, e))
			}
		}
		n, q := len(d.nodes), d.quorum
		switch {
		case extended >= q && l.TTL-elapsed-drift(l.TTL) > 0:
			results[i] = nil
		case extended >= q:
			results[i] = fmt.Errorf("%w: redlock: renewal took %v, too late for ttl %v", driver.ErrNotHeld, elapsed.Round(time.Microsecond), l.TTL)
		case n-notHeld < q:
			results[i] = fmt.Errorf("%w: redlock: held on %d of %d nodes, a majority needs %d", driver.ErrNotHeld, extended, n, q)
		default:
			results[i] = fmt.Errorf("redlock: extended on %d of %d nodes, a majority needs %d: %w", extended, n, q, joinLine(errs...))
		}
	}
	return results, nil
}

// Inspect reads the key on every node and reports the holder whose token a
// majority holds, with the fence a majority of them vouches for
// (majorityFence) and the time until fewer than a majority hold it. The key is free when no token can hold a
// majority, counting the nodes that did not answer as possibly its; if
// those could still make one, the answer is an error.
func (d *redlockDriver) Inspect(ctx context.Context, key string) (driver.Holder, error) {
	names := d.names(key)
	if err := rediswire.CheckLock(names.Lock); err != nil {
		return driver.Holder{}, err
	}
	replies := fanOut(ctx, d, d.slowTimeout(0), func(ctx context.Context, n *node) (driver.Holder, error) {
		return rediswire.Inspect(ctx, n.c, names)
	})
	failed := 0
	byToken := map[string][]driver.Holder{}
	for _, r := range replies {
		switch {
		case r.err != nil:
			failed++
		case r.v.Held:
			byToken[r.v.Token] = append(byToken[r.v.Token], r.v)
		}
	}
	undecided := failed >= d.quorum
	for _, hs := range byToken {
		if len(hs) >= d.quorum {
			return majorityHolder(hs, d.quorum), nil
		}
		if len(hs)+failed >= d.quorum {
			undecided = true
		}
	}
	if undecided {
		err := fmt.Errorf("redlock: %d of %d nodes answered, too few to tell who holds the key: %w",
			len(d.nodes)-failed, len(d.nodes), nodeErrors(d, replies, func(int) bool { return true }))
		if allUnsent(replies) {
			err = fmt.Errorf("%w: %w", driver.ErrUnavailable, err)
		}
		return driver.Holder{}, err
	}
	return driver.Holder{}, nil
}

// majorityHolder merges the views of the nodes that hold one token: the
// fence a majority vouches for (majorityFence), and as TTL the time until
// only a minority holds it (the quorum-th longest remaining TTL).
func majorityHolder(hs []driver.Holder, quorum int) driver.Holder {
	h := hs[0]
	ttls := make([]time.Duration, len(hs))
	fences := make([]uint64, len(hs))
	for i, x := range hs {
		ttls[i], fences[i] = x.TTL, x.Fence
		if h.Owner == "" {
			h.Owner = x.Owner
		}
	}
	slices.SortFunc(ttls, func(a, b time.Duration) int { return cmp.Compare(b, a) })
	h.TTL = ttls[quorum-1]
	h.Fence = majorityFence(fences, quorum)
	return h
}

// majorityFence is the quorum-th largest of the fences the nodes holding a
// token report (the smallest, if fewer report): the largest fence that a
// majority stands at or above. After a grant, every granting node stands
// at the holder's fence, and a node whose grant landed after the attempt
// gave up on it (a straggler) may report a larger one of its own; the
// plain maximum would show the straggler's, which no majority vouches for.
func majorityFence(fences []uint64, quorum int) uint64 {
	if len(fences) == 0 {
		return 0
	}
	s := slices.Clone(fences)
	slices.SortFunc(s, func(a, b uint64) int { return cmp.Compare(b, a) })
	return s[min(quorum, len(s))-1]
}

// Close waits (up to rediswire.CloseWait) for node requests still running
// (a caller's client without ContextTimeoutEnabled holds one on a paused
// node until its own ReadTimeout), and closes the clients Open made (never
// the caller's).
func (d *redlockDriver) Close() error {
	d.closeMu.Do(func() {
		d.inflight.Close(rediswire.CloseWait)
		if !d.own {
			return
		}
		var errs []error
		for _, n := range d.nodes {
			if err := n.c.Close(); err != nil && !errors.Is(err, redis.ErrClosed) {
				errs = append(errs, fmt.Errorf("%s: %w", n.name, err))
			}
		}
		d.closeErr = errors.Join(errs...)
	})
	return d.closeErr
}

// nodeNames lists the nodes, for messages.
func (d *redlockDriver) nodeNames() string {
	s := make([]string, len(d.nodes))
	for i, n := range d.nodes {
		s[i] = n.name
	}
	return strings.Join(s, ",")
}
