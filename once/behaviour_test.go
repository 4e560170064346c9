package once_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/internal/testserver"
	"github.com/distlock/distlock/once"
)

// behaviour is one rule every database must keep, printed when it fails.
type behaviour struct {
	name string
	rule string
	run  func(t *testing.T, b *backend)
}

var behaviours = []behaviour{
	{"ClaimCompleteDone", "the first claim wins; later claims see in-progress, then done with the stored result", testClaimCompleteDone},
	{"Abandon", "an abandoned key is claimed again at once, with a higher fence", testAbandon},
	{"Takeover", "a claim whose lease ran out is taken over with a higher fence; the old claim's Complete fails and does not overwrite the new outcome", testTakeover},
	{"Heartbeat", "a live claim is renewed past its TTL and stays in progress for others", testHeartbeat},
	{"Concurrent32", "of 32 concurrent claimers of one key, each with its own *sql.DB, exactly one runs the work; all see its result", testConcurrent32},
	{"KeysAreData", "keys full of quotes, semicolons and comment markers are stored as plain data; keys differing only in case or trailing space are distinct", testKeysAreData},
	{"BadInput", "bad keys, TTLs, owners, results and table names are errors wrapping distlock.ErrInvalid", testBadInput},
	{"AnswerLostClaim", "a claim whose answer was lost after it committed is found by read-back: the claimer holds it, and the work runs once", testAnswerLostClaim},
	{"LateAnswerRenewed", "a claim whose answer arrives after its lease ran out is renewed before Claim returns it: never an expired claim", testLateAnswerRenewed},
	{"LateReadBack", "a claim whose answer was lost and whose read-back answers with under a third of the lease left is renewed before Claim returns it", testLateReadBack},
	{"StalledRenewal", "a claim whose renewal gets no answer is lost at its deadline, while the renewal is still in flight", testStalledRenewal},
	{"LateAnswerTakenOver", "a claim whose answer arrives after another claimer took the key over is not returned: Claim reports the other claim in progress", testLateAnswerTakenOver},
	{"AnswerLostComplete", "a completion whose answer was lost after it committed is found by read-back: Complete succeeds, and the work runs once", testAnswerLostComplete},
	{"DoFailureAbandons", "when the work fails, Do abandons the claim and a later Do runs it", testDoFailure},
	{"CancelledCtx", "a Claim whose ctx has ended returns its error and holds nothing", testCancelledCtx},
	{"Forget", "Forget deletes a done key, which then runs again with a higher fence", testForget},
	{"OpenURL", "once.Open with the database's URL and a table parameter gives a working Guard that creates its table", testOpenURL},
	{"CreateTableOff", "with table creation off, a missing table is a clear error at first use", testCreateTableOff},
}

func runBehaviours(t *testing.T, b *backend) {
	for _, c := range behaviours {
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

func TestSQLite(t *testing.T) {
	t.Parallel()
	runBehaviours(t, sqliteBackend(t))
}

func TestPostgres(t *testing.T) {
	t.Parallel()
	srv := testserver.StartPostgres(t)
	runBehaviours(t, postgresBackend(t, srv))
	if srv.External() {
		srv = testserver.StartPostgres(t, testserver.Private())
	}
	runFaults(t, postgresBackend(t, srv))
}

func TestMariaDB(t *testing.T) {
	t.Parallel()
	srv := testserver.StartMariaDB(t)
	runBehaviours(t, mariadbBackend(t, srv))
	if srv.External() {
		srv = testserver.StartMariaDB(t, testserver.Private())
	}
	runFaults(t, mariadbBackend(t, srv))
}

func testClaimCompleteDone(t *testing.T, b *backend) {
	ctx := within(t, 30*time.Second)
	g1 := b.guard(t, once.WithOwner("first"))
	g2 := b.guard(t, once.WithOwner("second"))
	key := t.Name()

	c, err := g1.Claim(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if c.Fence() == 0 || c.Token() == "" || c.Owner() != "first" {
		t.Fatalf("claim fence %d token %q owner %q", c.Fence(), c.Token(), c.Owner())
	}
	st, err := g2.Status(ctx, key)
	if err != nil || st.State != once.Claimed || st.Owner != "first" || st.Fence != c.Fence() || st.TTL <= 0 {
		t.Fatalf("Status while claimed = %+v, %v", st, err)
	}

	_, err = g2.Claim(ctx, key)
	var ip *once.InProgressError
	if !errors.Is(err, once.ErrInProgress) || !errors.As(err, &ip) {
		t.Fatalf("second Claim = %v, want ErrInProgress", err)
	}
	if ip.Owner != "first" || ip.Fence != c.Fence() || ip.TTL <= 0 || ip.TTL > once.DefaultTTL || ip.Until.Before(time.Now()) {
		t.Fatalf("InProgressError = %+v", ip)
	}
	if _, ran, err := g2.Do(ctx, key, mustNotRun(t)); !errors.Is(err, once.ErrInProgress) || ran {
		t.Fatalf("Do while claimed = ran %v, %v; want ErrInProgress", ran, err)
	}

	if err := c.Complete(ctx, []byte("result")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.Done():
	default:
		t.Fatal("Done not closed after Complete")
	}
	if c.Err() != nil {
		t.Fatalf("Err after Complete = %v", c.Err())
	}
	if err := c.Complete(ctx, []byte("result")); err != nil {
		t.Fatalf("second Complete = %v, want nil", err)
	}

	_, err = g2.Claim(ctx, key)
	var de *once.DoneError
	if !errors.Is(err, once.ErrDone) || !errors.As(err, &de) {
		t.Fatalf("Claim after Complete = %v, want ErrDone", err)
	}
	if string(de.Result) != "result" || de.Fence != c.Fence() || de.Owner != "first" || de.CompletedAt.IsZero() {
		t.Fatalf("DoneError = %+v", de)
	}
	res, ran, err := g2.Do(ctx, key, mustNotRun(t))
	if err != nil || ran || string(res) != "result" {
		t.Fatalf("Do after Complete = %q, %v, %v", res, ran, err)
	}
	st, err = g2.Status(ctx, key)
	if err != nil || st.State != once.Done || string(st.Result) != "result" || st.Fence != c.Fence() {
		t.Fatalf("Status after Complete = %+v, %v", st, err)
	}
	if st, err := g2.Status(ctx, key+"/never"); err != nil || st.State != once.Free {
		t.Fatalf("Status of an unknown key = %+v, %v", st, err)
	}
}

func mustNotRun(t *testing.T) func(context.Context) ([]byte, error) {
	return func(context.Context) ([]byte, error) {
		t.Error("the work ran")
		return nil, nil
	}
}

func testAbandon(t *testing.T, b *backend) {
	ctx := within(t, 30*time.Second)
	g := b.guard(t)
	key := t.Name()
	c1, err := g.Claim(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if err := c1.Abandon(ctx); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(c1.Err(), distlock.ErrNotHeld) {
		t.Fatalf("Err after Abandon = %v", c1.Err())
	}
	if err := c1.Complete(ctx, nil); !errors.Is(err, distlock.ErrNotHeld) {
		t.Fatalf("Complete after Abandon = %v, want ErrNotHeld", err)
	}
	st, err := g.Status(ctx, key)
	if err != nil || st.State != once.Free {
		t.Fatalf("Status after Abandon = %+v, %v", st, err)
	}
	c2, err := g.Claim(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if c2.Fence() <= c1.Fence() {
		t.Fatalf("fence after abandon %d, want above %d", c2.Fence(), c1.Fence())
	}
	if err := c2.Complete(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if err := c2.Abandon(ctx); !errors.Is(err, distlock.ErrNotHeld) {
		t.Fatalf("Abandon after Complete = %v, want ErrNotHeld", err)
	}
	if _, err := g.Claim(ctx, key); !errors.Is(err, once.ErrDone) {
		t.Fatalf("Claim after Complete = %v", err)
	}
}

func testTakeover(t *testing.T, b *backend) {
	ctx := within(t, 30*time.Second)
	dead := b.guard(t, once.WithOwner("dead"))
	live := b.guard(t, once.WithOwner("live"))
	key := t.Name()
	ttl := 300 * time.Millisecond

	// A claimer that stops renewing is, to the database, a dead one.
	old, err := dead.Claim(ctx, key, once.WithTTL(ttl), once.WithAutoRenew(false))
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-old.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("Done not closed after the lease ran out")
	}
	if !errors.Is(old.Err(), distlock.ErrLost) {
		t.Fatalf("Err = %v, want ErrLost", old.Err())
	}
	// The database's clock decides; wait for it to agree.
	waitFor(t, 5*time.Second, func() bool {
		st, err := live.Status(ctx, key)
		return err == nil && st.State == once.Free
	})
	c, err := live.Claim(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if c.Fence() <= old.Fence() {
		t.Fatalf("takeover fence %d, want above %d", c.Fence(), old.Fence())
	}
	if st, err := live.Status(ctx, key); err != nil || st.Fence != c.Fence() || st.Owner != "live" || st.State != once.Claimed {
		t.Fatalf("Status after takeover = %+v, %v; want the new claim (fence %d)", st, err, c.Fence())
	}
	err = old.Complete(ctx, []byte("stale"))
	if !errors.Is(err, distlock.ErrNotHeld) {
		t.Fatalf("Complete by the taken-over claim = %v, want ErrNotHeld", err)
	}
	if !strings.Contains(err.Error(), "live") {
		t.Errorf("error %q does not name the new claimer", err)
	}
	if err := old.Extend(ctx); !errors.Is(err, distlock.ErrNotHeld) {
		t.Fatalf("Extend by the taken-over claim = %v", err)
	}
	if err := c.Complete(ctx, []byte("fresh")); err != nil {
		t.Fatal(err)
	}
	if err := old.Complete(ctx, []byte("stale")); !errors.Is(err, distlock.ErrNotHeld) {
		t.Fatalf("Complete by the taken-over claim after the new one completed = %v", err)
	}
	st, err := live.Status(ctx, key)
	if err != nil || st.State != once.Done || string(st.Result) != "fresh" || st.Fence != c.Fence() {
		t.Fatalf("Status = %+v, %v; want done with the new claimer's result", st, err)
	}

	// A lease that ran out but was not taken over can still be completed:
	// nobody else ran the work.
	key2 := key + "/late"
	late, err := dead.Claim(ctx, key2, once.WithTTL(ttl), once.WithAutoRenew(false))
	if err != nil {
		t.Fatal(err)
	}
	<-late.Done()
	if err := late.Complete(ctx, []byte("late")); err != nil {
		t.Fatalf("Complete after the lease ran out, not taken over = %v", err)
	}
	if late.Err() != nil {
		t.Fatalf("Err after a late Complete = %v", late.Err())
	}
}

func waitFor(t *testing.T, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v", d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func testHeartbeat(t *testing.T, b *backend) {
	ctx := within(t, 30*time.Second)
	g := b.guard(t)
	other := b.guard(t)
	key := t.Name()
	ttl := 600 * time.Millisecond
	c, err := g.Claim(ctx, key, once.WithTTL(ttl))
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * ttl)
	if err := c.Err(); err != nil {
		t.Fatalf("claim lost although renewed: %v", err)
	}
	if _, err := other.Claim(ctx, key); !errors.Is(err, once.ErrInProgress) {
		t.Fatalf("Claim after 3 TTLs = %v, want ErrInProgress", err)
	}
	if err := c.Extend(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Complete(ctx, nil); err != nil {
		t.Fatal(err)
	}
}

func testConcurrent32(t *testing.T, b *backend) {
	ctx := within(t, 60*time.Second)
	key := t.Name()
	const n = 32
	var runs atomic.Int32
	results := make([][]byte, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		// A table of its own, so 32 first uses race to create it too.
		g := b.guard(t, once.WithTable("once_race"), once.WithOwner(fmt.Sprintf("claimer-%d", i)))
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			results[i], errs[i] = doUntilDone(ctx, g, key, func(ctx context.Context) ([]byte, error) {
				runs.Add(1)
				time.Sleep(30 * time.Millisecond)
				return []byte(fmt.Sprintf("ran by %d", i)), nil
			}, nil)
		}()
	}
	close(start)
	wg.Wait()
	if got := runs.Load(); got != 1 {
		t.Fatalf("the work ran %d times, want 1", got)
	}
	for i := range n {
		if errs[i] != nil {
			t.Errorf("claimer %d: %v", i, errs[i])
		} else if !bytes.Equal(results[i], results[0]) {
			t.Errorf("claimer %d saw %q, claimer 0 %q", i, results[i], results[0])
		}
	}

	// The same with one Guard (and *sql.DB) shared by the 32.
	shared := b.guard(t)
	key2 := key + "/shared"
	runs.Store(0)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = doUntilDone(ctx, shared, key2, func(ctx context.Context) ([]byte, error) {
				runs.Add(1)
				time.Sleep(30 * time.Millisecond)
				return []byte(fmt.Sprintf("ran by %d", i)), nil
			}, nil)
		}()
	}
	wg.Wait()
	if got := runs.Load(); got != 1 {
		t.Fatalf("shared Guard: the work ran %d times, want 1", got)
	}
	for i := range n {
		if errs[i] != nil || !bytes.Equal(results[i], results[0]) {
			t.Errorf("shared Guard: claimer %d: %q, %v", i, results[i], errs[i])
		}
	}
}

// doUntilDone calls Do until the key is done, waiting out in-progress
// answers and retrying other errors (connection kills), as a service would.
// retried, if not nil, counts the retried errors.
func doUntilDone(ctx context.Context, g *once.Guard, key string, fn func(context.Context) ([]byte, error), retried *atomic.Int32, opts ...once.ClaimOption) ([]byte, error) {
	for {
		res, _, err := g.Do(ctx, key, fn, opts...)
		if err == nil {
			return res, nil
		}

		if ctx.Err() != nil {
			return nil, err
		}
		if !errors.Is(err, once.ErrInProgress) && retried != nil {
			retried.Add(1)
		}
		time.Sleep(time.Duration(5+time.Now().UnixNano()%20) * time.Millisecond)
	}
}

func testKeysAreData(t *testing.T, b *backend) {
	ctx := within(t, 30*time.Second)
	g := b.guard(t)
	keys := []string{
		`'; DROP TABLE distlock_once; --`,
		`" OR 1=1 --`,
		`/* comment */ key`,
		`# hash comment`,
		`back\slash \' \" \\`,
		`percent %_ underscore`,
		"new\nline\ttab",
		"日本語のキー 🔒",
		"a", "A", "a ", "ａ",
		strings.Repeat("k", distlock.MaxKeyLen),
	}
	for _, k := range keys {
		res, ran, err := g.Do(ctx, k, func(context.Context) ([]byte, error) { return []byte(k), nil })
		if err != nil || !ran || string(res) != k {
			t.Fatalf("Do(%q) = %q, %v, %v", k, res, ran, err)
		}
	}
	for _, k := range keys {
		st, err := g.Status(ctx, k)
		if err != nil || st.State != once.Done || string(st.Result) != k {
			t.Fatalf("Status(%q) = %+v, %v", k, st, err)
		}
	}
	// The table is still there and intact.
	if _, err := g.Status(ctx, "after"); err != nil {
		t.Fatal(err)
	}
}

func testBadInput(t *testing.T, b *backend) {
	ctx := within(t, 30*time.Second)
	g := b.guard(t)
	for _, tc := range []struct {
		name string
		key  string
		opts []once.ClaimOption
		want string
	}{
		{"empty key", "", nil, "key is empty"},
		{"long key", strings.Repeat("x", distlock.MaxKeyLen+1), nil, "over the limit"},
		{"NUL in key", "a\x00b", nil, "NUL"},
		{"invalid UTF-8", "\xff", nil, "UTF-8"},
		{"short ttl", "k", []once.ClaimOption{once.WithTTL(time.Millisecond)}, "below the minimum"},
		{"long owner", "k", []once.ClaimOption{once.WithOwner(strings.Repeat("o", once.MaxOwnerLen+1))}, "owner"},
	} {
		_, err := g.Claim(ctx, tc.key, tc.opts...)
		if !errors.Is(err, distlock.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Claim = %v, want ErrInvalid saying %q", tc.name, err, tc.want)
		}
		_, _, err = g.Do(ctx, tc.key, mustNotRun(t), tc.opts...)
		if !errors.Is(err, distlock.ErrInvalid) {
			t.Errorf("%s: Do = %v, want ErrInvalid", tc.name, err)
		}
	}
	c, err := g.Claim(ctx, t.Name())
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Complete(ctx, make([]byte, once.MaxResultLen+1)); !errors.Is(err, distlock.ErrInvalid) {
		t.Errorf("Complete with a big result = %v, want ErrInvalid", err)
	}
	if err := c.Complete(ctx, make([]byte, once.MaxResultLen)); err != nil {
		t.Errorf("Complete with the largest result = %v", err)
	}
	for _, name := range []string{"", "bad-name", "x; DROP TABLE y", "1abc", "a.b.c"} {
		if _, err := once.New(b.admin, b.database, once.WithTable(name)); !errors.Is(err, distlock.ErrInvalid) {
			t.Errorf("New with table %q = %v, want ErrInvalid", name, err)
		}
	}
	if _, err := once.New(b.admin, "oracle"); !errors.Is(err, distlock.ErrInvalid) {
		t.Errorf("New with an unknown database = %v", err)
	}
	if _, err := once.New(nil, b.database); !errors.Is(err, distlock.ErrInvalid) {
		t.Errorf("New with a nil db = %v", err)
	}
}

func testAnswerLostClaim(t *testing.T, b *backend) {
	ctx := within(t, 30*time.Second)
	in := &injector{}
	g := b.guardOn(t, b.openDB(t, false, in))
	if err := g.Init(ctx); err != nil {
		t.Fatal(err)
	}
	key := t.Name()
	in.arm("INSERT INTO", 1)
	var runs atomic.Int32
	res, ran, err := g.Do(ctx, key, func(context.Context) ([]byte, error) {
		runs.Add(1)
		return []byte("once"), nil
	})
	if in.count() != 1 {
		t.Fatalf("injected %d faults, want 1", in.count())
	}
	if err != nil || !ran || string(res) != "once" || runs.Load() != 1 {
		t.Fatalf("Do = %q, %v, %v (runs %d); want the claim found by read-back and the work run once", res, ran, err, runs.Load())
	}
	st, err := g.Status(ctx, key)
	if err != nil || st.State != once.Done {
		t.Fatalf("Status = %+v, %v", st, err)
	}
}

// lateClaim claims key, with a lease of ttl, on a Guard whose claim
// statement answers only after during has run.
func lateClaim(t *testing.T, b *backend, key string, ttl time.Duration, during func()) (*once.Claim, error) {
	return lateAnswer(t, b, key, ttl, "INSERT INTO", nil, during)
}

// lateAnswer claims key, with a lease of ttl, on a Guard whose first
// statement matching late answers only after during has run; first, if
// not nil, arms the Guard's injector before.
func lateAnswer(t *testing.T, b *backend, key string, ttl time.Duration, late string, first func(*injector), during func()) (*once.Claim, error) {
	ctx := within(t, 30*time.Second)
	in := &injector{}
	g := b.guardOn(t, b.openDB(t, false, in))
	if err := g.Init(ctx); err != nil {
		t.Fatal(err)
	}
	if first != nil {
		first(in)
	}
	ran := false
	in.armLate(late, func() { ran = true; during() })
	c, err := g.Claim(ctx, key, once.WithTTL(ttl))
	if !ran {
		t.Fatal("the claim's answer was not held back")
	}
	return c, err
}

func testLateAnswerRenewed(t *testing.T, b *backend) {
	const ttl = 500 * time.Millisecond
	key := t.Name()
	var answered time.Time
	c, err := lateClaim(t, b, key, ttl, func() {
		time.Sleep(ttl + ttl/3)
		answered = time.Now()
	})
	if err != nil {
		t.Fatalf("Claim whose answer came after its lease ran out, with nobody else about = %v; want the claim, renewed", err)
	}
	if !c.Deadline().After(answered) {
		t.Errorf("Claim returned a claim whose deadline %v had passed when its answer came (%v)", c.Deadline(), answered)
	}
	if err := c.Complete(within(t, 10*time.Second), []byte("late")); err != nil {
		t.Errorf("Complete of the renewed claim: %v", err)
	}
}

func testLateReadBack(t *testing.T, b *backend) {
	// The read-back answers with a fifth of the lease left: late enough to
	// be renewed, early enough for the read's own time limit (the lease).
	const ttl = time.Second
	var answered time.Time
	c, err := lateAnswer(t, b, t.Name(), ttl, "WHERE once_key", func(in *injector) { in.arm("INSERT INTO", 1) }, func() {
		time.Sleep(ttl * 4 / 5)
		answered = time.Now()
	})
	if err != nil {
		t.Fatalf("Claim read back late, with nobody else about = %v; want the claim, renewed", err)
	}
	if !c.Deadline().After(answered.Add(ttl / 3)) {
		t.Errorf("Claim returned a claim with %v left when its read-back answered; want at least %v", c.Deadline().Sub(answered), ttl/3)
	}
	if err := c.Complete(within(t, 10*time.Second), nil); err != nil {
		t.Errorf("Complete of the renewed claim: %v", err)
	}
}

func testStalledRenewal(t *testing.T, b *backend) {
	const ttl = 600 * time.Millisecond
	ctx := within(t, 30*time.Second)
	in := &injector{}
	g := b.guardOn(t, b.openDB(t, false, in))
	if err := g.Init(ctx); err != nil {
		t.Fatal(err)
	}
	c, err := g.Claim(ctx, t.Name(), once.WithTTL(ttl))
	if err != nil {
		t.Fatal(err)
	}
	// The first renewal's answer is held back until the claim is lost, or
	// for three TTLs at most.
	late := make(chan time.Duration, 1)
	in.armLate("SET expires_at = ", func() {
		select {
		case <-c.Done():
			late <- time.Since(c.Deadline())
		case <-time.After(3 * ttl):
			late <- -1
		}
	})
	select {
	case d := <-late:
		if d < 0 || d > 100*time.Millisecond {
			t.Errorf("the claim was lost %v after its deadline while its renewal was in flight (negative: not within 3 TTLs), want within 100ms", d)
		}
	case <-time.After(10 * ttl):
		t.Fatal("no renewal was sent")
	}
	if !errors.Is(c.Err(), distlock.ErrLost) {
		t.Errorf("Err() = %v, want ErrLost", c.Err())
	}
}

func testLateAnswerTakenOver(t *testing.T, b *backend) {
	const ttl = 500 * time.Millisecond
	ctx := within(t, 30*time.Second)
	key := t.Name()
	other := b.guard(t)
	var taken *once.Claim
	c, err := lateClaim(t, b, key, ttl, func() {
		time.Sleep(ttl + ttl/3)
		var err error
		if taken, err = other.Claim(ctx, key); err != nil {
			t.Errorf("Claim by another after the first lease ran out: %v", err)
		}
	})
	if err == nil {
		t.Fatalf("Claim whose answer came after another claimer took the key over returned a claim (fence %d, %v left); want no claim", c.Fence(), time.Until(c.Deadline()))
	}
	if !errors.Is(err, once.ErrInProgress) {
		t.Errorf("Claim whose answer came late, taken over meanwhile = %v; want ErrInProgress", err)
	}
	if taken != nil {
		if err := taken.Complete(ctx, []byte("other")); err != nil {
			t.Errorf("Complete by the claimer that took over: %v", err)
		}
	}
}

func testAnswerLostComplete(t *testing.T, b *backend) {
	ctx := within(t, 30*time.Second)
	in := &injector{}
	g := b.guardOn(t, b.openDB(t, false, in))
	other := b.guard(t)
	key := t.Name()
	c, err := g.Claim(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	in.arm("state = 'done'", 1)
	if err := c.Complete(ctx, []byte("kept")); err != nil {
		t.Fatalf("Complete whose answer was lost = %v, want nil after read-back", err)
	}
	if in.count() != 1 {
		t.Fatalf("injected %d faults, want 1", in.count())
	}
	res, ran, err := other.Do(ctx, key, mustNotRun(t))
	if err != nil || ran || string(res) != "kept" {
		t.Fatalf("Do after = %q, %v, %v", res, ran, err)
	}
}

func testDoFailure(t *testing.T, b *backend) {
	ctx := within(t, 30*time.Second)
	g := b.guard(t)
	key := t.Name()
	boom := errors.New("boom")
	_, ran, err := g.Do(ctx, key, func(context.Context) ([]byte, error) { return nil, boom })
	if !ran || !errors.Is(err, boom) {
		t.Fatalf("failing Do = ran %v, %v", ran, err)
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("panic not propagated")
			}
		}()
		g.Do(ctx, key, func(context.Context) ([]byte, error) { panic("work panicked") })
	}()
	res, ran, err := g.Do(ctx, key, func(context.Context) ([]byte, error) { return []byte("ok"), nil })
	if err != nil || !ran || string(res) != "ok" {
		t.Fatalf("Do after failures = %q, %v, %v", res, ran, err)
	}
}

func testForget(t *testing.T, b *backend) {
	ctx := within(t, 30*time.Second)
	g := b.guard(t)
	key := t.Name()
	c1, err := g.Claim(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := g.Forget(ctx, key); err != nil || ok {
		t.Fatalf("Forget of a claimed key = %v, %v; want false", ok, err)
	}
	if err := c1.Complete(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if ok, err := g.Forget(ctx, key); err != nil || !ok {
		t.Fatalf("Forget = %v, %v", ok, err)
	}
	c2, err := g.Claim(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if c2.Fence() <= c1.Fence() {
		t.Fatalf("fence after Forget %d, want above %d", c2.Fence(), c1.Fence())
	}
	c2.Abandon(ctx)
}

func testCreateTableOff(t *testing.T, b *backend) {
	ctx := within(t, 30*time.Second)
	g := b.guard(t, once.WithTable("once_missing_table"), once.WithCreateTable(false))
	start := time.Now()
	_, err := g.Claim(ctx, "k")
	if err == nil || !strings.Contains(err.Error(), "once_missing_table") {
		t.Fatalf("Claim without the table = %v, want an error naming it", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("the error took %v", d)
	}
}

func testOpenURL(t *testing.T, b *backend) {
	ctx := within(t, 30*time.Second)
	sep := "?"
	if strings.Contains(b.url, "?") {
		sep = "&"
	}
	g, err := once.Open(ctx, b.url+sep+"table=once_by_url")
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if g.Table() != "once_by_url" || g.Database() != b.database {
		t.Fatalf("Table %q, Database %q", g.Table(), g.Database())
	}
	res, ran, err := g.Do(ctx, t.Name(), func(context.Context) ([]byte, error) { return []byte("via url"), nil })
	if err != nil || !ran || string(res) != "via url" {
		t.Fatalf("Do = %q, %v, %v", res, ran, err)
	}
	// The same table through New.
	st, err := b.guard(t, once.WithTable("once_by_url")).Status(ctx, t.Name())
	if err != nil || st.State != once.Done {
		t.Fatalf("Status through New = %+v, %v", st, err)
	}
}

func testCancelledCtx(t *testing.T, b *backend) {
	ctx := within(t, 30*time.Second)
	g := b.guard(t)
	if err := g.Init(ctx); err != nil {
		t.Fatal(err)
	}
	key := t.Name()
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := g.Claim(cancelled, key); !errors.Is(err, context.Canceled) {
		t.Fatalf("Claim with a cancelled ctx = %v", err)
	}
	if _, ran, err := g.Do(cancelled, key, mustNotRun(t)); ran || !errors.Is(err, context.Canceled) {
		t.Fatalf("Do with a cancelled ctx = %v, %v", ran, err)
	}
	st, err := g.Status(ctx, key)
	if err != nil || st.State != once.Free {
		t.Fatalf("Status = %+v, %v; want free", st, err)
	}
}
