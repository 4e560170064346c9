package distlock

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/distlock/distlock/driver"
)

// MinPurgeAge is the smallest age Purge accepts: a free record younger than
// this is kept, so that a store clock stepping back by less than it cannot
// make a fence repeat.
const MinPurgeAge = time.Minute

// Purge deletes what the store keeps of keys that have been free for at
// least olderThan by the store's clock (the SQL stores keep a row per key
// ever locked, which carries its fence), and returns how many records it
// deleted. Held keys are never touched, and fences stay strictly
// increasing as long as the store's clock never steps back by more than
// olderThan. Stores whose records expire by themselves (Redis, etcd) have
// nothing to purge: the error then wraps errors.ErrUnsupported.
func (c *Client) Purge(ctx context.Context, olderThan time.Duration) (int64, error) {
	if olderThan < MinPurgeAge {
		return 0, c.wrap("purge", "", fmt.Errorf("%w: purge age %v is below the minimum of %v", ErrInvalid, olderThan, MinPurgeAge))
	}
	p, ok := c.drv.(driver.Purger)
	if !ok {
		return 0, c.wrap("purge", "", fmt.Errorf("%s keeps nothing of free keys to purge: %w", c.info.Name, errors.ErrUnsupported))
	}
	if err := c.begin(); err != nil {
		return 0, c.wrap("purge", "", err)
	}
	defer c.ops.Done()
	n, err := p.Purge(ctx, olderThan)
	return n, c.wrap("purge", "", err)
}
