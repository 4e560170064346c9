package distlock

import (
	"context"
	"errors"
	"time"
)

// Do takes key (waiting like Lock), runs fn, and releases the lock. fn's
// context is derived from ctx and is also cancelled the moment the lock is
// lost, with the loss as its cause, so work stops when it is no longer
// protected.
//
// Do returns fn's error. If the lock was lost while fn ran, it returns an
// error wrapping ErrLost (joined with fn's error, if any). If the lock could
// not be taken, fn does not run and the error is Lock's. If fn panics (or
// calls runtime.Goexit), the lock is released before the panic goes on up
// the stack, so a recovering caller (an HTTP server, say) is not left with
// a lock held and renewed forever.
func (c *Client) Do(ctx context.Context, key string, fn func(context.Context) error, opts ...LockOption) error {
	l, err := c.Lock(ctx, key, opts...)
	if err != nil {
		return err
	}
	workCtx, cancel := context.WithCancelCause(ctx)
	stop := context.AfterFunc(l.Context(), func() { cancel(context.Cause(l.Context())) })
	returned := false
	defer func() {
		stop()
		cancel(nil)
		if !returned {
			unlockAfterFn(ctx, l)
		}
	}()
	fnErr := fn(workCtx)
	returned = true

	if lostErr := l.Err(); lostErr != nil {
		return errors.Join(lostErr, fnErr)
	}
	if err := unlockAfterFn(ctx, l); err != nil {
		if errors.Is(err, ErrNotHeld) {
			// Lost between fn's return and the release: fn may have run
			// unprotected at its end; say so.
			return errors.Join(l.Err(), fnErr)
		}
		return errors.Join(fnErr, err)
	}
	return fnErr
}

// unlockAfterFn releases l once fn is done, whatever became of ctx: as long
// as the lock may still be held, and at least a second.
func unlockAfterFn(ctx context.Context, l *Lock) error {
	d := max(time.Until(l.Deadline()), time.Second)
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d)
	defer cancel()
	return l.Unlock(rctx)
}
