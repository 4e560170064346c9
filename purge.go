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

// WithAutoPurge makes the Client purge, in the background, what the store
// keeps of keys free for at least olderThan (see Client.Purge): once when it
// starts and then every olderThan/4 (at most hourly, at least a minute
// apart). Failures are logged as warnings. Stores with nothing to purge
// ignore it. olderThan below MinPurgeAge makes Open fail with ErrInvalid.
func WithAutoPurge(olderThan time.Duration) Option {
	return clientOption(func(c *clientConfig) {
		if olderThan < MinPurgeAge {
			c.lock.invalid("purge age %v is below the minimum of %v", olderThan, MinPurgeAge)
			return
		}
		c.purgeAge = olderThan
	})
}

// purgeEvery is how often WithAutoPurge purges.
func purgeEvery(olderThan time.Duration) time.Duration {
	return min(max(olderThan/4, time.Minute), time.Hour)
}

// purgeDue starts a background purge if one is due and returns when the
// next one is (zero when the Client does not purge). Called by the renewal
// loop only.
func (c *Client) purgeDue(ctx context.Context, now time.Time) time.Time {
	p, ok := c.drv.(driver.Purger)
	if c.cfg.purgeAge == 0 || !ok {
		return time.Time{}
	}
	if now.Before(c.nextPurge) {
		return c.nextPurge
	}
	c.nextPurge = now.Add(purgeEvery(c.cfg.purgeAge))
	c.renewals.Add(1)
	go func() {
		defer c.renewals.Done()
		pctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		n, err := p.Purge(pctx, c.cfg.purgeAge)
		switch {
		case err != nil && ctx.Err() == nil:
			c.log.Warn("distlock: purging free keys failed", "err", err)
		case n > 0:
			c.log.Debug("distlock: purged free keys", "records", n, "older_than", c.cfg.purgeAge)
		}
	}()
	return c.nextPurge
}
