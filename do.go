package distlock

import (
	"context"
	"errors"
	"time"
)

// Do takes key (waiting like Lock), runs fn, and releases the lock. fn's
// context is derived from ctx and is also cancelled the moment the lock is
// lost, with the loss as its cause, so work stops when it is no longer
// protected (seed point E3 made structural).
//
// Do returns fn's error. If the lock was lost while fn ran, it returns an
// error wrapping ErrLost (joined with fn's error, if any). If the lock could
// not be taken, fn does not run and the error is Lock's.
func (c *Client) Do(ctx context.Context, key string, fn func(context.Context) error, opts ...LockOption) error {
	l, err := c.Lock(ctx, key, opts...)
	if err != nil {
		return err
	}
	workCtx, cancel := context.WithCancelCause(ctx)
	stop := context.AfterFunc(l.Context(), func() { cancel(context.Cause(l.Context())) })
	fnErr := fn(workCtx)
	stop()
	cancel(nil)

	if lostErr := l.Err(); lostErr != nil {
		return errors.Join(lostErr, fnErr)
	}
	rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout(l))
	defer rcancel()
	if err := l.Unlock(rctx); err != nil {
		if errors.Is(err, ErrNotHeld) {
			// Lost between fn's return and the release: fn may have run
			// unprotected at its end; say so.
			return errors.Join(l.Err(), fnErr)
		}
		return errors.Join(fnErr, err)
	}
	return fnErr
}

func releaseTimeout(l *Lock) time.Duration {
	return max(time.Until(l.Deadline()), time.Second)
}
