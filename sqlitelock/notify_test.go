package sqlitelock

import (
	"testing"
)

func registered() int {
	waiters.Lock()
	defer waiters.Unlock()
	n := 0
	for _, ws := range waiters.m {
		n += len(ws)
	}
	return n
}

func woken(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func TestWakeOneInOrder(t *testing.T) {
	k := topic{file: t.Name(), table: "t", key: "k"}
	other := topic{file: t.Name(), table: "t", key: "other"}
	w1, c1 := subscribe(k)
	w2, c2 := subscribe(k)
	w3, c3 := subscribe(k)
	wo, co := subscribe(other)

	publish(k)
	if !woken(w1) || woken(w2) || woken(w3) || woken(wo) {
		t.Fatal("a release did not wake exactly the oldest waiter of its key")
	}
	// w1 took its wake-up, tried and lost: it keeps its place.
	publish(k)
	if !woken(w1) || woken(w2) {
		t.Fatal("the oldest waiter lost its place after trying")
	}
	// Two releases before anyone tries: the two oldest are woken.
	publish(k)
	publish(k)
	if !woken(w1) || !woken(w2) || woken(w3) {
		t.Fatal("a second release went to a waiter already woken")
	}
	// w1 gives up holding an unused wake-up: it goes to w2.
	publish(k)
	c1()
	c1()
	if !woken(w2) || woken(w3) {
		t.Fatal("an unused wake-up was not passed on")
	}
	c2()
	publish(k)
	if !woken(w3) {
		t.Fatal("the last waiter was not woken")
	}
	c3()
	co()
	if n := registered(); n != 0 {
		t.Errorf("%d subscriptions left after every cancel", n)
	}
	publish(k) // nobody waits: nothing happens
}
