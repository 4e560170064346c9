package once

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Do runs fn at most once per key, across every process sharing the table,
// and records its result:
//
//   - if the key is new (or its last claimer gave up or died), Do claims it,
//     runs fn, and on success completes the claim with fn's result: it
//     returns (result, true, nil);
//   - if the key was completed earlier, fn does not run: Do returns the
//     stored result, false and a nil error;
//   - if another claimer is running it now, fn does not run: the error wraps
//     ErrInProgress (an *InProgressError says who and until when).
//
// fn's context is cancelled if the claim is lost while fn runs (another
// claimer took the key over after our lease ran out). If fn returns an error
// (or panics), the claim is abandoned so that a later call may try again, and
// Do returns (nil, true, fn's error).
//
// Once fn has succeeded, recording that is what keeps the work from running
// twice, so Complete is retried beyond ctx (ctx's values are kept, its
// cancellation is not) for up to twice the TTL, at least 30s. If it still
// fails the error says so, ran is true, and the claim is left to run out: a
// later claimer will then run the work again. A result over MaxResultLen is
// not stored: the key is completed without it, and the error wraps
// distlock.ErrInvalid.
func (g *Guard) Do(ctx context.Context, key string, fn func(ctx context.Context) ([]byte, error), opts ...ClaimOption) (result []byte, ran bool, err error) {
	c, err := g.Claim(ctx, key, opts...)
	if err != nil {
		var done *DoneError
		if errors.As(err, &done) {
			return done.Result, false, nil
		}
		return nil, false, err
	}
	result, fnErr := c.run(ctx, fn)
	if fnErr != nil {
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if aerr := c.Abandon(actx); aerr != nil {
			fnErr = errors.Join(fnErr, aerr)
		}
		return nil, true, fnErr
	}
	var tooBig error
	if len(result) > MaxResultLen {
		tooBig = g.wrap("complete", key, fmt.Errorf("%w: result is %d bytes, over the limit of %d: completed without it", errInvalid, len(result), MaxResultLen))
		result = nil
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), max(2*c.ttl, 30*time.Second))
	defer cancel()
	if err := c.Complete(cctx, result); err != nil {
		return result, true, err
	}
	return result, true, tooBig
}

// run calls fn with a context that ends when ctx does or the claim is lost,
// abandoning the claim if fn panics.
func (c *Claim) run(ctx context.Context, fn func(context.Context) ([]byte, error)) (result []byte, err error) {
	workCtx, cancel := context.WithCancelCause(ctx)
	stop := context.AfterFunc(c.Context(), func() { cancel(context.Cause(c.Context())) })
	defer func() {
		stop()
		cancel(nil)
		if p := recover(); p != nil {
			actx, acancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			c.Abandon(actx)
			acancel()
			panic(p)
		}
	}()
	return fn(workCtx)
}
