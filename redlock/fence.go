package redlock

import (
	"context"
	_ "embed"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/distlock/distlock/internal/rediswire"
)

// fenceLua raises a node's fence counter (and its holder's recorded fence)
// to a given value. It is the one script of this package; every other
// request is internal/rediswire's, shared with the redis:// driver.
//
//go:embed fence.lua
var fenceLua string

var fenceScript = redis.NewScript(fenceLua)

// fenceLead is how far ahead of the caller's clock, in microseconds, an
// acquire asks every node to put its fence (rediswire.AcquireAbove). Each
// node makes its fence by the rule max(last + 1, its clock in
// microseconds); asked for the same floor above their clocks, nodes whose
// counters agree, or stand below it (a key's first lock), make the same
// fence, and no spread is needed. A second covers the request's way to the
// node and any node's clock being ahead of the caller's by less than that.
// It costs nothing in safety: every caller adds the same lead, so the
// fences after a lost counter still grow with the callers' clocks.
const fenceLead = uint64(time.Second / time.Microsecond)

// raiseFences spreads fence to the nodes at idx: it raises their counters
// to it (with the expiry a grant with ttl gives a counter), and the
// holder's recorded fence where the token holds the key, so that Inspect
// and a retried Acquire report the fence the holder was given. It returns
// how many nodes did so.
//
// Why: each node counts fences on its own, so the counters of different
// nodes may differ. The lock's fence is the largest counter among the
// granting majority; the next holder's majority may miss the node that had
// it, and its largest counter could then be smaller. Once a majority's
// counters stand at the fence or above, every later majority includes one
// of them, whose next fence is larger.
func (d *redlockDriver) raiseFences(ctx context.Context, timeout, ttl time.Duration, names rediswire.Names, token string, fence uint64, idx []int) (int, error) {
	if len(idx) == 0 {
		return 0, nil
	}
	f := strconv.FormatUint(fence, 10)
	expiry := rediswire.CounterExpiry(ttl)
	replies := fanOutOn(ctx, d, timeout, idx, func(ctx context.Context, n *node) (struct{}, error) {
		return struct{}{}, fenceScript.Run(ctx, n.c, []string{names.Fence, names.Meta}, token, f, expiry).Err()
	})
	raised := 0
	var errs []error
	for k, r := range replies {
		if r.err == nil {
			raised++
		} else {
			errs = append(errs, fmt.Errorf("%s: %w", d.nodes[idx[k]].name, r.err))
		}
	}
	return raised, joinLine(errs...)
}
