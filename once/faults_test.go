package once_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distlock/distlock/once"
)

// The fault tests run on a private server whose sessions they kill and which
// they pause.
var faults = []behaviour{
	{"KillMidClaim", "a claim whose server session is killed mid-statement is resolved by read-back and a retry: the claimer gets the key, the work runs once", testKillMidClaim},
	{"KillMidComplete", "a completion whose server session is killed mid-statement is resolved by read-back and a retry: Complete succeeds, the work runs once", testKillMidComplete},
	{"KillStorm", "32 claimers whose sessions are killed at random while they claim and complete: the work runs exactly once", testKillStorm},
	{"PausedClaim", "a claim whose ctx ends while the server is paused returns an error, holds nothing for long, and the work still runs once", testPausedClaim},
	{"PausedComplete", "a completion held up by a paused server, with the caller's ctx cancelled meanwhile, is still recorded: the work runs once", testPausedComplete},
}

func runFaults(t *testing.T, b *backend) {
	for _, c := range faults {
		t.Run(c.name, func(t *testing.T) {
			defer func() {
				if t.Failed() {
					t.Logf("rule: %s", c.rule)
				}
			}()
			c.run(t, b)
		})
	}
}

// holdRow opens a transaction on the admin connection that locks key's row,
// so that a victim's statement on it blocks, and returns the function that
// ends the transaction.
func holdRow(t *testing.T, ctx context.Context, b *backend, key string) (release func()) {
	t.Helper()
	tx, err := b.admin.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []byte
	if err := tx.QueryRowContext(ctx, fmt.Sprintf(b.forUpdate, once.DefaultTable), key).Scan(&got); err != nil {
		tx.Rollback()
		t.Fatalf("locking the row: %v", err)
	}
	var once sync.Once
	release = func() { once.Do(func() { tx.Rollback() }) }
	t.Cleanup(release)
	return release
}

// killBlockedVictim waits for a victim statement to block on the held row and
// kills its session.
func killBlockedVictim(t *testing.T, ctx context.Context, b *backend) {
	t.Helper()
	var id int64
	waitFor(t, 10*time.Second, func() bool {
		var err error
		id, err = b.blockedVictim(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return id != 0
	})
	if err := b.killSession(ctx, id); err != nil {
		t.Fatalf("killing session %d: %v", id, err)
	}
}

func testKillMidClaim(t *testing.T, b *backend) {
	ctx := within(t, 30*time.Second)
	g := b.guardOn(t, b.openDB(t, true, nil))
	key := t.Name()
	// The row must exist for the admin to lock it: a claim abandoned.
	prev, err := b.guard(t).Claim(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if err := prev.Abandon(ctx); err != nil {
		t.Fatal(err)
	}
	if err := g.Init(ctx); err != nil {
		t.Fatal(err)
	}
	release := holdRow(t, ctx, b, key)
	type answer struct {
		c   *once.Claim
		err error
	}
	done := make(chan answer, 1)
	go func() {
		c, err := g.Claim(ctx, key)
		done <- answer{c, err}
	}()
	killBlockedVictim(t, ctx, b)
	release()
	a := <-done
	if a.err != nil {
		t.Fatalf("Claim after its session was killed = %v, want the claim", a.err)
	}
	if a.c.Fence() <= prev.Fence() {
		t.Fatalf("fence %d, want above %d", a.c.Fence(), prev.Fence())
	}
	if err := a.c.Complete(ctx, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, ran, err := b.guard(t).Do(ctx, key, mustNotRun(t)); err != nil || ran {
		t.Fatalf("Do after = %v, %v", ran, err)
	}
}

func testKillMidComplete(t *testing.T, b *backend) {
	ctx := within(t, 30*time.Second)
	g := b.guardOn(t, b.openDB(t, true, nil))
	key := t.Name()
	c, err := g.Claim(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	release := holdRow(t, ctx, b, key)
	done := make(chan error, 1)
	go func() { done <- c.Complete(ctx, []byte("recorded")) }()
	killBlockedVictim(t, ctx, b)
	release()
	if err := <-done; err != nil {
		t.Fatalf("Complete after its session was killed = %v, want nil", err)
	}
	res, ran, err := b.guard(t).Do(ctx, key, mustNotRun(t))
	if err != nil || ran || string(res) != "recorded" {
		t.Fatalf("Do after = %q, %v, %v", res, ran, err)
	}
}

func testKillStorm(t *testing.T, b *backend) {
	ctx := within(t, 60*time.Second)
	const (
		n    = 32 // claimers
		keys = 8  // each claimer works through these keys in turn
	)
	var runs [keys]atomic.Int32
	var retried atomic.Int32
	var wg sync.WaitGroup
	results := make([][keys][]byte, n)
	errs := make([]error, n)
	guards := make([]*once.Guard, n)
	for i := range n {
		guards[i] = b.guardOn(t, b.openDB(t, true, nil), once.WithOwner(fmt.Sprintf("claimer-%d", i)))
		if err := guards[i].Init(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// Kill every victim session every few milliseconds until the claimers
	// are done. The lease (10s) outlasts any stretch of kills a claimer
	// meets, so no claim is lost to them.
	stormCtx, stopStorm := context.WithCancel(ctx)
	defer stopStorm()
	var killed atomic.Int32
	var stormDone sync.WaitGroup
	stormDone.Add(1)
	go func() {
		defer stormDone.Done()
		for stormCtx.Err() == nil {
			k, _ := b.killVictims(stormCtx)
			killed.Add(int32(k))
			time.Sleep(10 * time.Millisecond)
		}
	}()
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for k := range keys {
				key := fmt.Sprintf("%s/%d", t.Name(), k)
				res, err := doUntilDone(ctx, guards[i], key, func(ctx context.Context) ([]byte, error) {
					runs[k].Add(1)
					time.Sleep(10 * time.Millisecond)
					return []byte(fmt.Sprintf("key %d ran by %d", k, i)), nil
				}, &retried, once.WithTTL(10*time.Second))
				if err != nil {
					errs[i] = err
					return
				}
				results[i][k] = res
			}
		}()
	}
	close(start)
	wg.Wait()
	stopStorm()
	stormDone.Wait()
	var readBacks int64
	for _, g := range guards {
		readBacks += once.ReadBacks(g)
	}
	t.Logf("sessions killed: %d; outcomes read back: %d; errors returned to claimers and retried: %d", killed.Load(), readBacks, retried.Load())
	for k := range keys {
		if got := runs[k].Load(); got != 1 {
			t.Errorf("key %d: the work ran %d times, want 1", k, got)
		}
	}
	for i := range n {
		if errs[i] != nil {
			t.Errorf("claimer %d: %v", i, errs[i])
			continue
		}
		for k := range keys {
			if string(results[i][k]) != string(results[0][k]) {
				t.Errorf("claimer %d saw %q for key %d, claimer 0 %q", i, results[i][k], k, results[0][k])
			}
		}
	}
}

func testPausedClaim(t *testing.T, b *backend) {
	ctx := within(t, 30*time.Second)
	g := b.guard(t)
	other := b.guard(t)
	key := t.Name()
	for _, gg := range []*once.Guard{g, other} {
		// Warm the pools, so the claim is sent on an open connection.
		if _, err := gg.Status(ctx, key); err != nil {
			t.Fatal(err)
		}
	}
	ttl := 2 * time.Second
	b.server.Pause()
	claimCtx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	start := time.Now()
	c, err := g.Claim(claimCtx, key, once.WithTTL(ttl))
	cancel()
	took := time.Since(start)
	b.server.Resume()
	if err == nil {
		t.Fatalf("Claim on a paused server returned a claim (fence %d)", c.Fence())
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Claim error %v does not wrap the ctx's", err)
	}
	if took > 10*time.Second {
		t.Errorf("Claim took %v to give up", took)
	}
	var runs atomic.Int32
	res, err := doUntilDone(ctx, other, key, func(context.Context) ([]byte, error) {
		runs.Add(1)
		return []byte("after pause"), nil
	}, nil)
	if err != nil || string(res) != "after pause" || runs.Load() != 1 {
		t.Fatalf("Do after the pause = %q, %v (runs %d)", res, err, runs.Load())
	}
}

func testPausedComplete(t *testing.T, b *backend) {
	ctx := within(t, 30*time.Second)
	g := b.guard(t)
	key := t.Name()
	started, finish := make(chan struct{}), make(chan struct{})
	callerCtx, cancelCaller := context.WithCancel(ctx)
	defer cancelCaller()
	type answer struct {
		res []byte
		ran bool
		err error
	}
	done := make(chan answer, 1)
	var runs atomic.Int32
	go func() {
		res, ran, err := g.Do(callerCtx, key, func(context.Context) ([]byte, error) {
			runs.Add(1)
			close(started)
			<-finish
			return []byte("survived"), nil
		})
		done <- answer{res, ran, err}
	}()
	<-started
	b.server.Pause()
	close(finish)
	time.Sleep(300 * time.Millisecond) // Complete is now waiting on the paused server
	cancelCaller()
	time.Sleep(200 * time.Millisecond)
	b.server.Resume()
	a := <-done
	if a.err != nil || !a.ran || string(a.res) != "survived" {
		t.Fatalf("Do across the pause = %q, %v, %v; want the completion recorded", a.res, a.ran, a.err)
	}
	res, ran, err := b.guard(t).Do(ctx, key, mustNotRun(t))
	if err != nil || ran || string(res) != "survived" || runs.Load() != 1 {
		t.Fatalf("Do after = %q, %v, %v (runs %d)", res, ran, err, runs.Load())
	}

	// Complete with a short ctx of its own: the outcome is unknown, the
	// claim stays held, and a second Complete settles it.
	key2 := key + "/explicit"
	c, err := g.Claim(ctx, key2)
	if err != nil {
		t.Fatal(err)
	}
	b.server.Pause()
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	err = c.Complete(short, []byte("second try"))
	cancel()
	b.server.Resume()
	if err == nil {
		t.Fatal("Complete on a paused server succeeded")
	}
	if err := c.Complete(ctx, []byte("second try")); err != nil {
		t.Fatalf("Complete again after the pause = %v", err)
	}
	st, err := g.Status(ctx, key2)
	if err != nil || st.State != once.Done || string(st.Result) != "second try" {
		t.Fatalf("Status = %+v, %v", st, err)
	}
}
