package rediswire

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/distlock/distlock/driver"
	"github.com/distlock/distlock/internal/testserver"
)

func newClient(t *testing.T) *redis.Client {
	t.Helper()
	srv := testserver.StartRedis(t)
	c := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { c.Close() })
	return c
}

func TestAcquireReleaseInspect(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	n := NamesFor(t.Name()+":", "a{b}c")

	l, err := Acquire(ctx, c, n, "tok1", "me", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if l.Fence < uint64(time.Now().Add(-time.Hour).UnixMicro()) {
		t.Fatalf("first fence %d is not seeded from the clock", l.Fence)
	}
	if v := c.Get(ctx, n.Lock).Val(); v != "tok1" {
		t.Fatalf("lock value %q, want the token", v)
	}
	// A retried request gets the same lease.
	again, err := Acquire(ctx, c, n, "tok1", "me", 10*time.Second)
	if err != nil || again.Fence != l.Fence {
		t.Fatalf("retry: %v, fence %d want %d", err, again.Fence, l.Fence)
	}
	_, err = Acquire(ctx, c, n, "tok2", "you", 10*time.Second)
	var held *driver.HeldError
	if !errors.As(err, &held) || held.Holder.Owner != "me" || held.Holder.Fence != l.Fence || held.Holder.TTL <= 0 {
		t.Fatalf("contention: %v %+v", err, held)
	}
	h, err := Inspect(ctx, c, n)
	if err != nil || !h.Held || h.Token != "tok1" || h.Owner != "me" || h.Fence != l.Fence || h.TTL <= 0 {
		t.Fatalf("Inspect = %+v, %v", h, err)
	}
	if err := Release(ctx, c, n, "tok2"); !errors.Is(err, driver.ErrNotHeld) {
		t.Fatalf("foreign release: %v", err)
	}
	if err := Release(ctx, c, n, "tok1"); err != nil {
		t.Fatal(err)
	}
	if n := c.Exists(ctx, n.Lock).Val(); n != 0 {
		t.Fatalf("the lock key is left after release")
	}
	if r := c.Get(ctx, n.Record).Val(); !strings.HasPrefix(r, strconv.FormatUint(l.Fence, 10)+" ") {
		t.Fatalf("record after release = %q, want it to keep the last fence %d", r, l.Fence)
	}
	h, err = Inspect(ctx, c, n)
	if err != nil || h.Held {
		t.Fatalf("Inspect after release = %+v, %v", h, err)
	}
	l2, err := Acquire(ctx, c, n, "tok2", "", time.Second)
	if err != nil || l2.Fence <= l.Fence {
		t.Fatalf("next acquire: %v fence %d, want above %d", err, l2.Fence, l.Fence)
	}
}

func TestFenceSurvivesLostRecord(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	n := NamesFor(t.Name()+":", "k")
	var last uint64
	for i := range 3 {
		l, err := Acquire(ctx, c, n, "t"+strconv.Itoa(i), "", time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if l.Fence <= last {
			t.Fatalf("fence %d after %d", l.Fence, last)
		}
		last = l.Fence
		if err := Release(ctx, c, n, "t"+strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
		c.Del(ctx, n.Record) // as a restart without persistence would
	}
}

func TestForeignHolder(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	n := NamesFor("", t.Name())
	c.Set(ctx, n.Lock, "theirs", 5*time.Second)
	_, err := Acquire(ctx, c, n, "ours", "", time.Second)
	var held *driver.HeldError
	if !errors.As(err, &held) || held.Holder.Fence != 0 || held.Holder.TTL <= 0 {
		t.Fatalf("contention: %v", err)
	}
	h, err := Inspect(ctx, c, n)
	if err != nil || h.Token != "theirs" || h.Fence != 0 {
		t.Fatalf("Inspect = %+v, %v", h, err)
	}
}

func TestRenew(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	a, b := NamesFor(t.Name()+":", "a"), NamesFor(t.Name()+":", "b")
	if _, err := Acquire(ctx, c, a, "ta", "", time.Second); err != nil {
		t.Fatal(err)
	}
	c.ScriptFlush(ctx) // the renewal must reload its script
	errs, err := Renew(ctx, c, []RenewItem{{a, "ta", time.Minute}, {b, "tb", time.Minute}})
	if err != nil || errs[0] != nil || !errors.Is(errs[1], driver.ErrNotHeld) {
		t.Fatalf("Renew = %v, %v", errs, err)
	}
	if ttl := c.PTTL(ctx, a.Lock).Val(); ttl < 30*time.Second {
		t.Fatalf("lock TTL %v after renewal", ttl)
	}
	if ttl := c.PTTL(ctx, a.Record).Val(); ttl < time.Minute+FenceKeep-time.Second {
		t.Fatalf("record TTL %v after renewal, want the lock's TTL and FenceKeep", ttl)
	}
}

func TestQueueHandoff(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	n := NamesFor(t.Name()+":", "k")
	ps := c.Subscribe(ctx, n.Channel)
	defer ps.Close()
	if _, err := ps.Receive(ctx); err != nil {
		t.Fatal(err)
	}
	first, err := Acquire(ctx, c, n, "h", "", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"w1", "w2", "w3"} {
		if _, err := Enqueue(ctx, c, n, w, "owner "+w, 10*time.Second, 10*time.Second); !errors.Is(err, driver.ErrLocked) {
			t.Fatalf("enqueue %s: %v", w, err)
		}
	}
	// Refreshing keeps the place.
	if _, err := Enqueue(ctx, c, n, "w1", "owner w1", 10*time.Second, 10*time.Second); !errors.Is(err, driver.ErrLocked) {
		t.Fatal(err)
	}
	// w2 gives up; w1 is handed the lock on release.
	if got, err := Leave(ctx, c, n, "w2"); err != nil || got {
		t.Fatalf("Leave = %v, %v", got, err)
	}
	if err := Release(ctx, c, n, "h"); err != nil {
		t.Fatal(err)
	}
	msg, err := ps.ReceiveMessage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	f, tok, ok := ParseHandoff(msg.Payload)
	if !ok || tok != "w1" || f <= first.Fence {
		t.Fatalf("handoff message %q", msg.Payload)
	}
	h, _ := Inspect(ctx, c, n)
	if h.Token != "w1" || h.Owner != "owner w1" || h.Fence != f {
		t.Fatalf("holder after handoff: %+v", h)
	}
	// w1 confirms (as it would after a lost message) and gets the same lease.
	l, err := Enqueue(ctx, c, n, "w1", "owner w1", 10*time.Second, 10*time.Second)
	if err != nil || l.Fence != f {
		t.Fatalf("w1 confirm: %v %+v", err, l)
	}
	// w1 gives up while holding: the lock passes on to w3.
	if got, err := Leave(ctx, c, n, "w1"); err != nil || !got {
		t.Fatalf("Leave while handed = %v, %v", got, err)
	}
	msg, err = ps.ReceiveMessage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, tok, _ := ParseHandoff(msg.Payload); tok != "w3" {
		t.Fatalf("second handoff to %q", tok)
	}
	if err := Release(ctx, c, n, "w3"); err != nil {
		t.Fatal(err)
	}
	if k := c.Exists(ctx, n.Lock, n.Queue).Val(); k != 0 {
		t.Fatalf("%d of the lock and its queue left", k)
	}
}

func TestDeadWaiterIsSkipped(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	n := NamesFor(t.Name()+":", "k")
	if _, err := Acquire(ctx, c, n, "h", "", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	Enqueue(ctx, c, n, "dead", "", 10*time.Second, 50*time.Millisecond)
	Enqueue(ctx, c, n, "live", "", 10*time.Second, 10*time.Second)
	time.Sleep(100 * time.Millisecond)
	if err := Release(ctx, c, n, "h"); err != nil {
		t.Fatal(err)
	}
	if h, _ := Inspect(ctx, c, n); h.Token != "live" {
		t.Fatalf("handed to %q, want the live waiter", h.Token)
	}
}

func TestClassify(t *testing.T) {
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1})
	defer c.Close()
	_, err := Acquire(context.Background(), c, NamesFor("", "k"), "t", "", time.Second)
	if !errors.Is(Classify(err), driver.ErrUnavailable) {
		t.Fatalf("refused dial: %v", Classify(err))
	}
}
