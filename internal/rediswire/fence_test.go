package rediswire

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/driver"
)

// stale writes into n's record what it held one grant before fence, as a
// restore of an older snapshot, or a failover to a replica that missed the
// last write, leaves it.
func stale(t *testing.T, c *redis.Client, n Names, fence uint64) {
	t.Helper()
	if err := c.Set(t.Context(), n.Record, strconv.FormatUint(fence-1, 10)+" earlier-token earlier owner", 0).Err(); err != nil {
		t.Fatal(err)
	}
}

// Every way a lock is granted applies the one fence rule, so a stale
// record never repeats or lowers a fence: a plain acquire, an enqueue that
// finds the key free, the hand-over to a queued waiter, and the re-grant of
// a retried request whose record was lost.
func TestFenceAboveStaleRecord(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	const ttl = 10 * time.Second

	for name, take := range map[string]func(n Names, token string) (driver.Lease, error){
		"Acquire": func(n Names, token string) (driver.Lease, error) { return Acquire(ctx, c, n, token, "", ttl) },
		"Enqueue": func(n Names, token string) (driver.Lease, error) { return Enqueue(ctx, c, n, token, "", ttl, ttl) },
	} {
		t.Run(name, func(t *testing.T) {
			n := NamesFor(t.Name()+":", "k")
			first, err := take(n, "t1")
			if err != nil {
				t.Fatal(err)
			}
			if err := Release(ctx, c, n, "t1"); err != nil {
				t.Fatal(err)
			}
			stale(t, c, n, first.Fence)
			next, err := take(n, "t2")
			if err != nil {
				t.Fatal(err)
			}
			if next.Fence <= first.Fence {
				t.Fatalf("fence %d after a stale counter, want above the earlier %d", next.Fence, first.Fence)
			}
		})
	}

	t.Run("Handoff", func(t *testing.T) {
		n := NamesFor(t.Name()+":", "k")
		first, err := Acquire(ctx, c, n, "h", "", ttl)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Enqueue(ctx, c, n, "w", "", ttl, ttl); !errors.Is(err, driver.ErrLocked) {
			t.Fatalf("enqueue: %v", err)
		}
		stale(t, c, n, first.Fence)
		if err := Release(ctx, c, n, "h"); err != nil {
			t.Fatal(err)
		}
		h, err := Inspect(ctx, c, n)
		if err != nil || h.Token != "w" {
			t.Fatalf("after the hand-over: %+v, %v", h, err)
		}
		if h.Fence <= first.Fence {
			t.Fatalf("hand-over fence %d after a stale counter, want above the earlier %d", h.Fence, first.Fence)
		}
	})

	t.Run("Regrant", func(t *testing.T) {
		n := NamesFor(t.Name()+":", "k")
		first, err := Acquire(ctx, c, n, "t", "", ttl)
		if err != nil {
			t.Fatal(err)
		}
		// The record is gone and an older one restored: a retry of the
		// same request is granted anew, with a new fence.
		stale(t, c, n, first.Fence)
		again, err := Acquire(ctx, c, n, "t", "", ttl)
		if err != nil {
			t.Fatal(err)
		}
		if again.Fence <= first.Fence {
			t.Fatalf("re-granted fence %d after a stale counter, want above the earlier %d", again.Fence, first.Fence)
		}
	})
}

// The record is residue once its key is free: it expires, a fixed time
// after the TTL of the grant that last set it, and fences go on growing
// after it has.
func TestRecordExpires(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	const keys = 20
	const ttl = time.Second
	prefix := t.Name() + ":"
	for i := range keys {
		n := NamesFor(prefix, strconv.Itoa(i))
		if _, err := Acquire(ctx, c, n, "t", "", ttl); err != nil {
			t.Fatal(err)
		}
		if err := Release(ctx, c, n, "t"); err != nil {
			t.Fatal(err)
		}
		pttl := c.PTTL(ctx, n.Record).Val()
		if pttl <= FenceKeep || pttl > FenceKeep+ttl {
			t.Fatalf("record of %s expires in %v, want in (%v, %v]", n.Lock, pttl, FenceKeep, FenceKeep+ttl)
		}
	}

	// With a short keep, see them go: nothing is left of the keys.
	defer func(k time.Duration) { fenceKeep = k }(fenceKeep)
	fenceKeep = 50 * time.Millisecond
	short := NamesFor(prefix+"short:", "k")
	var last uint64
	for i := range keys {
		n := NamesFor(prefix+"short:", strconv.Itoa(i))
		if _, err := Acquire(ctx, c, n, "t", "", 50*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		if err := Release(ctx, c, n, "t"); err != nil {
			t.Fatal(err)
		}
	}
	l, err := Acquire(ctx, c, short, "t", "", 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	last = l.Fence
	if err := Release(ctx, c, short, "t"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		left, err := c.Keys(ctx, "distlock:*"+prefix+"short:*").Result()
		if err != nil {
			t.Fatal(err)
		}
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d keys left 10s after their locks were released: %v", len(left), left[:min(len(left), 5)])
		}
		time.Sleep(20 * time.Millisecond)
	}
	l, err = Acquire(ctx, c, short, "t", "", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if l.Fence <= last {
		t.Fatalf("fence %d after the record expired, want above the earlier %d", l.Fence, last)
	}
}

// corrupt makes n's record hold something other than a record.
func corrupt(t *testing.T, c *redis.Client, n Names, kind string) {
	t.Helper()
	ctx := t.Context()
	c.Del(ctx, n.Record)
	var err error
	switch kind {
	case "text":
		err = c.Set(ctx, n.Record, "garbage", 0).Err()
	case "huge":
		err = c.Set(ctx, n.Record, "123456789012345678901234567890 t owner", 0).Err()
	case "list":
		err = c.RPush(ctx, n.Record, "x").Err()
	default:
		t.Fatalf("corrupt %q", kind)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// A record that is a string but no record is no fence: the grant makes its
// fence from the server's clock and writes the record anew.
func TestGarbageRecordMended(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	for _, kind := range []string{"text", "huge"} {
		t.Run(kind, func(t *testing.T) {
			n := NamesFor(t.Name()+":", "k")
			corrupt(t, c, n, kind)
			before := uint64(time.Now().Add(-time.Second).UnixMicro())
			l, err := Acquire(ctx, c, n, "t", "", 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if l.Fence < before || l.Fence >= 1<<53 {
				t.Errorf("fence %d over a garbage record, want the server's clock in microseconds (about %d)", l.Fence, before)
			}
			if h, err := Inspect(ctx, c, n); err != nil || h.Fence != l.Fence {
				t.Errorf("Inspect after the grant: %+v, %v; want the fence %d", h, err, l.Fence)
			}
		})
	}
}

// A grant whose record is of another type fails, names the record, and
// leaves nothing held: no lock with fence 0.
func TestCorruptRecord(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	const ttl = 10 * time.Second
	check := func(t *testing.T, n Names, err error) {
		t.Helper()
		if err == nil {
			t.Fatal("granted with a corrupt record")
		}
		var rerr redis.Error
		if !errors.Is(err, distlock.ErrInvalid) || !strings.Contains(err.Error(), n.Record) || !errors.As(err, &rerr) {
			t.Errorf("error %q: want distlock.ErrInvalid naming the record %s, and the server's reply", err, n.Record)
		}
		if k := c.Exists(ctx, n.Lock).Val(); k != 0 {
			t.Errorf("the lock was left set")
		}
	}
	t.Run("list", func(t *testing.T) {
		n := NamesFor(t.Name()+":", "k")
		corrupt(t, c, n, "list")
		_, err := Acquire(ctx, c, n, "t", "", ttl)
		check(t, n, err)
		_, err = Enqueue(ctx, c, n, "t", "", ttl, ttl)
		check(t, n, err)
		if k := c.Exists(ctx, n.Queue, n.Waiters).Val(); k != 0 {
			t.Errorf("the refused enqueue left %d queue keys", k)
		}
	})

	// A retried request finds the lock its first attempt took, but no
	// record of it: it gives the lock back rather than keep one it cannot
	// fence.
	t.Run("Retried", func(t *testing.T) {
		n := NamesFor(t.Name()+":", "k")
		if _, err := Acquire(ctx, c, n, "t", "", ttl); err != nil {
			t.Fatal(err)
		}
		corrupt(t, c, n, "list")
		_, err := Acquire(ctx, c, n, "t", "", ttl)
		check(t, n, err)
	})

	// A release that cannot fence the next waiter's grant frees the key
	// instead of handing it over; the waiter's next call reports it.
	t.Run("Handoff", func(t *testing.T) {
		n := NamesFor(t.Name()+":", "k")
		if _, err := Acquire(ctx, c, n, "h", "", ttl); err != nil {
			t.Fatal(err)
		}
		if _, err := Enqueue(ctx, c, n, "w", "", ttl, ttl); !errors.Is(err, driver.ErrLocked) {
			t.Fatalf("enqueue: %v", err)
		}
		corrupt(t, c, n, "list")
		if err := Release(ctx, c, n, "h"); err != nil {
			t.Fatalf("release: %v", err)
		}
		if k := c.Exists(ctx, n.Lock).Val(); k != 0 {
			h, _ := Inspect(ctx, c, n)
			t.Fatalf("the release left the key held (%+v)", h)
		}
		_, err := Enqueue(ctx, c, n, "w", "", ttl, ttl)
		check(t, n, err)
	})
}

// Lock names in distlock's own key space are refused: a lock on another
// key's record would make that key's grants fail.
func TestReservedNames(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	victim := NamesFor("", "victim")
	for _, n := range []Names{
		NamesFor("", victim.Record),
		NamesFor("", victim.Queue),
		NamesFor("distlock:", "{0}:f:x"),
		NamesFor("distlock:{", "x"),
		NamesFor("", "distlock:{"),
	} {
		if _, err := Acquire(ctx, c, n, "t", "", time.Second); !errors.Is(err, distlock.ErrInvalid) || !strings.Contains(err.Error(), "distlock:{") {
			t.Errorf("Acquire of %q: %v, want distlock.ErrInvalid naming the reserved prefix", n.Lock, err)
		}
		if _, err := Enqueue(ctx, c, n, "t", "", time.Second, time.Second); !errors.Is(err, distlock.ErrInvalid) {
			t.Errorf("Enqueue of %q: %v, want distlock.ErrInvalid", n.Lock, err)
		}
		if _, err := Inspect(ctx, c, n); !errors.Is(err, distlock.ErrInvalid) {
			t.Errorf("Inspect of %q: %v, want distlock.ErrInvalid", n.Lock, err)
		}
		if k := c.Exists(ctx, n.Lock, n.Record, n.Queue, n.Waiters).Val(); k != 0 {
			t.Errorf("refused name %q left %d keys", n.Lock, k)
		}
	}
	l, err := Acquire(ctx, c, victim, "t", "", time.Second)
	if err != nil || l.Fence == 0 {
		t.Fatalf("victim: %+v, %v", l, err)
	}
	// The rest of the distlock: name space is the user's.
	for _, name := range []string{"distlock:jobs", "distlock:", "distlock", "x:distlock:{0}"} {
		n := NamesFor("", name)
		if _, err := Acquire(ctx, c, n, "t", "", time.Second); err != nil {
			t.Errorf("Acquire of %q: %v", name, err)
		}
	}
}

// A floor above the server's clock is the fence of a key without a
// record, and a record above the floor goes on by one: servers asked for
// the same floor make the same fence.
func TestAcquireAbove(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	n := NamesFor(t.Name()+":", "k")
	floor := uint64(time.Now().Add(time.Second).UnixMicro())
	l, err := AcquireAbove(ctx, c, n, "t1", "", time.Second, floor)
	if err != nil || l.Fence != floor {
		t.Fatalf("AcquireAbove on a new key: fence %d, %v; want the floor %d", l.Fence, err, floor)
	}
	if err := Release(ctx, c, n, "t1"); err != nil {
		t.Fatal(err)
	}
	l, err = AcquireAbove(ctx, c, n, "t2", "", time.Second, floor-10)
	if err != nil || l.Fence != floor+1 {
		t.Fatalf("AcquireAbove below the counter: fence %d, %v; want %d", l.Fence, err, floor+1)
	}
	if err := Release(ctx, c, n, "t2"); err != nil {
		t.Fatal(err)
	}
	// A caller whose clock is a day ahead does not carry the fence there.
	n2 := NamesFor(t.Name()+":", "ahead")
	far := uint64(time.Now().Add(24 * time.Hour).UnixMicro())
	l, err = AcquireAbove(ctx, c, n2, "t3", "", time.Second, far)
	if err != nil {
		t.Fatal(err)
	}
	if ahead := time.Duration(int64(l.Fence)-time.Now().UnixMicro()) * time.Microsecond; ahead > MaxFloorLead {
		t.Errorf("a floor a day ahead made fence %d, %v ahead of the clock; want the floor ignored", l.Fence, ahead)
	}
}
