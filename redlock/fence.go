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

// fenceLead is how far ahead of the lock's fence, in microseconds, a
// spread sets the nodes' counters: each node makes its next fence by the
// rule max(last + 1, its clock in microseconds), so counters that stand
// behind the clocks give every node a fence of its own, and every acquire
// would need a spread. Counters a second ahead give the same next fence on
// every node that took part, for a second of the nodes' clocks.
const fenceLead = uint64(time.Second / time.Microsecond)

// raiseFences spreads fence to the nodes at idx: it raises their counters
// to fence + fenceLead (with the expiry a grant with ttl gives a counter),
// and the holder's recorded fence to fence where the token holds the key,
// so that Inspect and a retried Acquire report the fence the holder was
// given. It reports which nodes did so, in idx's order.
//
// Why: each node counts fences on its own, so the counters of different
// nodes differ. The lock's fence is the largest counter among the granting
// majority; the next holder's majority may miss the node that had it, and
// its largest counter could then be smaller. Once a majority's counters
// stand at the fence or above, every later majority includes one of them,
// whose next fence is larger.
func (d *redlockDriver) raiseFences(ctx context.Context, timeout, ttl time.Duration, names rediswire.Names, token string, fence uint64, idx []int) ([]bool, error) {
	f := strconv.FormatUint(fence, 10)
	floor := strconv.FormatUint(fence+fenceLead, 10)
	expiry := rediswire.CounterExpiry(ttl)
	replies := fanOutOn(ctx, d, timeout, idx, func(ctx context.Context, n *node) (struct{}, error) {
		return struct{}{}, fenceScript.Run(ctx, n.c, []string{names.Fence, names.Meta}, token, f, floor, expiry).Err()
	})
	raised := make([]bool, len(idx))
	var errs []error
	for k, r := range replies {
		if r.err == nil {
			raised[k] = true
		} else {
			errs = append(errs, fmt.Errorf("%s: %w", d.nodes[idx[k]].name, r.err))
		}
	}
	return raised, joinLine(errs...)
}
