package sqlitelock

import (
	"slices"
	"sync"
)

// topic names one key of one lock table of one database file.
type topic struct{ file, table, key string }

// waiter is one subscription. wake holds at most one pending wake-up.
type waiter struct{ wake chan struct{} }

// waiters is the process-wide wake-up registry: every driver in the process,
// whichever Client it belongs to, publishes its releases here. Each topic's
// waiters are kept in the order they subscribed.
var waiters = struct {
	sync.Mutex
	m map[topic][]*waiter
}{m: make(map[topic][]*waiter)}

// subscribe registers a waiter for t. cancel may be called more than once.
func subscribe(t topic) (<-chan struct{}, func()) {
	w := &waiter{wake: make(chan struct{}, 1)}
	waiters.Lock()
	waiters.m[t] = append(waiters.m[t], w)
	waiters.Unlock()

	var once sync.Once
	return w.wake, func() { once.Do(func() { unsubscribe(t, w) }) }
}

func unsubscribe(t topic, w *waiter) {
	waiters.Lock()
	defer waiters.Unlock()
	ws := slices.DeleteFunc(waiters.m[t], func(x *waiter) bool { return x == w })
	if len(ws) == 0 {
		delete(waiters.m, t)
	} else {
		waiters.m[t] = ws
	}
	// A wake-up this waiter never took is passed on, so that giving up
	// at the wrong moment does not leave the others asleep.
	select {
	case <-w.wake:
		wakeOne(t)
	default:
	}
}

// publish says that t may have become free: it wakes the waiter that has
// waited longest among those without a pending wake-up. One release frees
// the key for one waiter, so waking the others would only have them all try
// at once, queue for SQLite's single writer and fail but one; a waiter that
// tries and loses (to a TryLock from outside the queue) keeps its place and
// is woken by the next release.
func publish(t topic) {
	waiters.Lock()
	defer waiters.Unlock()
	wakeOne(t)
}

// wakeOne does publish's work; waiters must be locked.
func wakeOne(t topic) {
	for _, w := range waiters.m[t] {
		select {
		case w.wake <- struct{}{}:
			return
		default: // already woken and not yet trying: the next one
		}
	}
}
