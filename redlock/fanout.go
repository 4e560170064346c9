package redlock

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/distlock/distlock/driver"
)

// node is one independent Redis server that votes once.
type node struct {
	name string // its address, for messages
	c    redis.UniversalClient
}

// reply is one node's answer to one request.
type reply[T any] struct {
	v   T
	err error
}

// fanOut sends op to every node at once, each bounded by timeout, and
// returns their replies in node order once all have answered, the time is
// up or ctx has ended. A node that has not answered by then gets
// errNoAnswer: its request may still run (a paused server runs it when it
// resumes), which is why the callers treat it as an unknown outcome. The
// goroutine of such a request ends when its client gives up; Close waits
// for it.
func fanOut[T any](ctx context.Context, d *redlockDriver, timeout time.Duration, op func(ctx context.Context, n *node) (T, error)) []reply[T] {
	return fanOutOn(ctx, d, timeout, nil, op)
}

// fanOutOn is fanOut to the nodes at idx only (all nodes if idx is nil); the
// replies are in idx's order.
func fanOutOn[T any](ctx context.Context, d *redlockDriver, timeout time.Duration, idx []int, op func(ctx context.Context, n *node) (T, error)) []reply[T] {
	return fanOutUntil(ctx, ctx, d, timeout, idx, op, nil, 0)
}

// fanOutUntil is fanOutOn whose requests run on opCtx (bounded by timeout)
// while the wait for them ends with ctx, and that stops waiting early once
// enough says the replies so far decide the outcome (nil: never) and the
// others have had patience more to answer: healthy nodes all answer within
// it, so only a slow or paused node is left behind. A request left behind
// runs on to its end, bounded by timeout, in the background (Close waits
// for it); its reply is dropped and stays errNoAnswer in the result.
func fanOutUntil[T any](ctx, opCtx context.Context, d *redlockDriver, timeout time.Duration, idx []int, op func(ctx context.Context, n *node) (T, error),
	enough func(out []reply[T], answered []bool) bool, patience time.Duration) []reply[T] {
	if idx == nil {
		idx = make([]int, len(d.nodes))
		for i := range idx {
			idx[i] = i
		}
	}
	type indexed struct {
		i int
		reply[T]
	}
	opCtx, cancel := context.WithTimeout(opCtx, timeout)
	waitCtx, stopWait := context.WithTimeout(ctx, timeout)
	defer stopWait()
	ch := make(chan indexed, len(idx)) // buffered: a late sender never blocks
	out := make([]reply[T], len(idx))
	answered := make([]bool, len(idx))
	sent := 0
	for i, j := range idx {
		n := d.nodes[j]
		if d.inflight.Go(func() {
			v, err := op(opCtx, n)
			ch <- indexed{i, reply[T]{v, err}}
		}) {
			sent++
		} else {
			out[i], answered[i] = reply[T]{err: fmt.Errorf("%w: driver closed", driver.ErrUnavailable)}, true
		}
	}
	// A client that honours the context returns at the deadline with its
	// own error; give it a moment to say so before calling it silent.
	var grace <-chan time.Time
	ended := waitCtx.Done()
	var decided <-chan time.Time // fires patience after enough said yes
	got := 0
wait:
	for got < sent {
		select {
		case r := <-ch:
			got++
			out[r.i], answered[r.i] = r.reply, true
			if decided == nil && enough != nil && got < sent && enough(out, answered) {
				t := time.NewTimer(patience)
				defer t.Stop()
				decided = t.C
			}
		case <-ended:
			ended = nil
			t := time.NewTimer(2 * time.Millisecond)
			defer t.Stop()
			grace = t.C
		case <-decided:
			break wait
		case <-grace:
			break wait
		}
	}
	// The requests left behind run on, and their context ends with the
	// last of them.
	left := sent - got
	if left == 0 || !d.inflight.Go(func() {
		defer cancel()
		for range left {
			<-ch
		}
	}) {
		cancel()
	}
	for i, ok := range answered {
		if !ok {
			out[i].err = fmt.Errorf("%w within %v", errNoAnswer, timeout)
			if ctx.Err() != nil {
				out[i].err = fmt.Errorf("%w: %w", errNoAnswer, context.Cause(ctx))
			}
		}
	}
	return out
}
