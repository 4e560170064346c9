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

// fenceLua raises the fence of a node's record of a lock name to a given
// value. It is the one script of this package; every other
// request is internal/rediswire's, shared with the redis:// driver.
//
//go:embed fence.lua
var fenceLua string

var fenceScript = redis.NewScript(fenceLua)

// fenceLead is how far ahead of the caller's clock, in microseconds, an
// acquire asks every node to put its fence (rediswire.AcquireAbove). Each
// node makes its fence by the rule max(last + 1, its clock in
// microseconds); asked for the same floor above their clocks, nodes whose
// records agree, or stand below it (a key's first lock), make the same
// fence, and no spread is needed. A second covers the request's way to the
// node and any node's clock being ahead of the caller's by less than that.
// It costs nothing in safety: every caller adds the same lead, and a node
// ignores a floor more than rediswire.MaxFloorLead ahead of its own clock,
// so fences never run far ahead of the nodes' clocks, and a lost record
// restarts above them.
const fenceLead = uint64(time.Second / time.Microsecond)

// raiseFences spreads fence to the nodes at idx: it raises the fence of
// their records of the lock name to it (a record that is missing is
// written for the holder, with the expiry a grant with ttl gives it), so
// that their next fences are larger, and Inspect and a retried Acquire
// report the fence the holder was given. It returns how many nodes did so.
//
// Why: each node makes fences on its own, so the records of different
// nodes may differ. The lock's fence is the largest among the granting
// majority; the next holder's majority may miss the node that had it, and
// its largest could then be smaller. Once a majority's records stand at
// the fence or above, every later majority includes one of them, whose
// next fence is larger.
func (d *redlockDriver) raiseFences(ctx context.Context, timeout, ttl time.Duration, names rediswire.Names, token, owner string, fence uint64, idx []int) (int, error) {
	if len(idx) == 0 {
		return 0, nil
	}
	f := strconv.FormatUint(fence, 10)
	expiry := rediswire.RecordExpiry(ttl)
	replies := fanOutOn(ctx, d, timeout, idx, func(ctx context.Context, n *node) (struct{}, error) {
		return struct{}{}, fenceScript.Run(ctx, n.c, []string{names.Record}, token, f, expiry, owner).Err()
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
