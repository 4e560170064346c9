package redlock

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/driver"
)

// probeTimeout bounds the opening check when the caller's ctx has no
// deadline.
const probeTimeout = 5 * time.Second

// probe asks every node for its run_id (INFO server): two addresses that
// reach the same server would vote twice, which the addresses alone cannot
// show (a DNS alias, a proxy, a NAT). A node that answers without a run_id
// (INFO refused by an ACL) is counted as up but cannot be checked. Fewer
// than a majority answering is an error: no lock could be taken.
func (d *redlockDriver) probe(ctx context.Context) error {
	timeout := probeTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	replies := fanOut(ctx, d, timeout, func(ctx context.Context, n *node) (string, error) {
		info, err := n.c.Info(ctx, "server").Result()
		if redis.HasErrorPrefix(err, "NOPERM") {
			return "", nil // answered, but an ACL forbids INFO
		}
		if err != nil {
			return "", err
		}
		for line := range strings.Lines(info) {
			if id, ok := strings.CutPrefix(strings.TrimSpace(line), "run_id:"); ok {
				return id, nil
			}
		}
		return "", nil
	})
	byID := map[string]string{}
	failed := 0
	for i, r := range replies {
		var rerr redis.Error
		switch {
		case errors.As(r.err, &rerr):
			// The server answered with an error: a wrong password or
			// database number, which waiting will not mend.
			return fmt.Errorf("%w: redlock node %s: %w", distlock.ErrInvalid, d.nodes[i].name, r.err)
		case r.err != nil:
			failed++
		case r.v != "":
			if first, dup := byID[r.v]; dup {
				return fmt.Errorf("%w (both reach the server with run_id %s)", duplicateNode(first, d.nodes[i].name), r.v)
			}
			byID[r.v] = d.nodes[i].name
		}
	}
	if failed > len(d.nodes)-d.quorum {
		err := fmt.Errorf("redlock: only %d of %d nodes (%s) answered, a majority needs %d: %w",
			len(d.nodes)-failed, len(d.nodes), d.nodeNames(), d.quorum, nodeErrors(d, replies, func(int) bool { return true }))
		return fmt.Errorf("%w: %w", driver.ErrUnavailable, err)
	}
	return nil
}
