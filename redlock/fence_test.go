package redlock_test

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/internal/rediswire"
	"github.com/distlock/distlock/internal/rediswire/rediswiretest"
	"github.com/distlock/distlock/redlock"
)

// Every node rolled back to an older snapshot (or failed over to replicas
// that missed the last writes): each counter one grant behind. The next
// fence is still above every fence handed out before.
func TestFenceAboveStaleCounters(t *testing.T) {
	ctx := t.Context()
	c := startCluster(t, 3)
	client := openClient(t, c)
	names := rediswire.NamesFor("", "k")
	var last uint64
	for round := range 3 {
		l, err := client.TryLock(ctx, "k")
		if err != nil {
			t.Fatal(err)
		}
		if l.Fence() <= last {
			t.Fatalf("round %d: fence %d, want above the earlier %d", round, l.Fence(), last)
		}
		last = l.Fence()
		if err := l.Unlock(ctx); err != nil {
			t.Fatal(err)
		}
		for _, a := range c.admin {
			if err := a.Set(ctx, names.Record, strconv.FormatUint(last-1, 10)+" earlier-token earlier owner", 0).Err(); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// A fence spread to the nodes that stood below it keeps the expiry a grant
// gives their records: nothing is left forever.
func TestRaisedRecordsExpire(t *testing.T) {
	ctx := t.Context()
	c := startCluster(t, 3)
	client := openClient(t, c)
	names := rediswire.NamesFor("", "k")
	for i, v := range []string{"9000000000000000", "5", "6"} {
		if err := c.admin[i].Set(ctx, names.Record, v+" earlier-token earlier owner", 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	l, err := client.TryLock(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	if l.Fence() != 9000000000000001 {
		t.Fatalf("fence %d, want the largest node's next, 9000000000000001", l.Fence())
	}
	const want = "9000000000000001"
	for i, a := range c.admin {
		v := a.Get(ctx, names.Record).Val()
		pttl := a.PTTL(ctx, names.Record).Val()
		if !strings.HasPrefix(v, want+" ") || pttl <= rediswire.FenceKeep || pttl > rediswire.FenceKeep+faultTTL {
			t.Errorf("node %d: record %q expiring in %v; want fence %s, expiring in (%v, %v]", i, v, pttl, want, rediswire.FenceKeep, rediswire.FenceKeep+faultTTL)
		}
	}
	if err := l.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
}

// Lock names in distlock's own key space are refused, as by redis://.
func TestReservedNamesRefused(t *testing.T) {
	ctx := t.Context()
	c := startCluster(t, 3)
	client := openClient(t, c)
	reserved := rediswire.NamesFor("", "victim").Record
	if _, err := client.TryLock(ctx, reserved); !errors.Is(err, distlock.ErrInvalid) {
		t.Errorf("TryLock(%q) = %v, want ErrInvalid", reserved, err)
	}
	if _, err := client.Status(ctx, reserved); !errors.Is(err, distlock.ErrInvalid) {
		t.Errorf("Status(%q) = %v, want ErrInvalid", reserved, err)
	}
	if n := c.holders(ctx, "", reserved); n != 0 {
		t.Errorf("the refused name is held on %d nodes", n)
	}
	_, err := redlock.NewDriver(ctx, clientsFor(t, c), &redlock.Options{Prefix: "distlock:{x}"})
	if !errors.Is(err, distlock.ErrInvalid) {
		t.Errorf("NewDriver with a prefix in distlock's key space: %v, want ErrInvalid", err)
	}
	l, err := client.TryLock(ctx, "victim")
	if err != nil || l.Fence() == 0 {
		t.Fatalf("victim: fence %v, %v", l, err)
	}
	l.Unlock(ctx)
}

// A record of another type makes its node refuse the key. A majority of
// refusals fails the acquire with ErrInvalid naming them and nothing held;
// a minority is outvoted.
func TestCorruptRecords(t *testing.T) {
	ctx := t.Context()
	c := startCluster(t, 3)
	client := openClient(t, c)
	names := rediswire.NamesFor("", "k")
	for _, a := range c.admin[:2] {
		if err := a.RPush(ctx, names.Record, "not a record").Err(); err != nil {
			t.Fatal(err)
		}
	}
	_, err := client.TryLock(ctx, "k")
	if !errors.Is(err, distlock.ErrInvalid) || !strings.Contains(err.Error(), names.Record) {
		t.Errorf("TryLock with 2 of 3 records corrupt: %v; want ErrInvalid naming %s", err, names.Record)
	}
	if n := c.holders(ctx, "", "k"); n != 0 {
		t.Errorf("the key is held on %d nodes after the refused acquire", n)
	}
	c.admin[1].Del(ctx, names.Record)
	l, err := client.TryLock(ctx, "k")
	if err != nil || l.Fence() == 0 {
		t.Fatalf("TryLock with 1 of 3 records corrupt: %v, %v; want the lock, fenced", l, err)
	}
	if err := l.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
}

// Every driver call returns by its ctx's end, on clients that do not
// honour ctx deadlines (ReadTimeout 10s, no ContextTimeoutEnabled), with a
// majority of nodes paused and a per-node limit (2s) above the ctx.
func TestCallsReturnByDeadline(t *testing.T) {
	c := startCluster(t, 3)
	clients := make([]redis.UniversalClient, len(c.servers))
	for i, s := range c.servers {
		cl := redis.NewClient(&redis.Options{Addr: s.Addr(), ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second, MaxRetries: -1})
		t.Cleanup(func() { cl.Close() })
		clients[i] = cl
	}
	d, err := redlock.NewDriver(t.Context(), clients, &redlock.Options{NodeTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	stop := func() {
		for _, s := range c.servers[1:] {
			s.Pause()
			t.Cleanup(s.Resume) // before Close, which waits for what runs on
		}
	}
	rediswiretest.CallsReturnByDeadline(t, d, stop, rediswiretest.Deadline{
		Ctx:   200 * time.Millisecond,
		Limit: time.Second,
		Check: func(t *testing.T, op string, err error) {
			if err == nil && op != "Release" { // Release succeeds on one node's word
				t.Errorf("%s with 2 of 3 nodes paused: no error", op)
			}
		},
	})
}
