package leaserow

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	_ "modernc.org/sqlite"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/driver"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// noReturning is SQLite with RETURNING left out of Acquire and Renew, as
// MySQL must do: it exercises the AcquireRead and RenewRead fallbacks.
var noReturning = func() *Dialect {
	d := *SQLite
	d.Name = "sqlite-noreturning"
	d.Acquire, _, _ = strings.Cut(SQLiteAcquire, "\nRETURNING")
	d.AcquireRead = `SELECT token, fence, owner, ttl_ms, expires_at - ` + SQLiteNowMs + ` FROM {table} WHERE lock_key = ?1`
	d.Renew, _, _ = strings.Cut(SQLiteRenew, "\nRETURNING")
	d.RenewRead = `SELECT lock_key, token FROM {table} WHERE lock_key IN ({keys}) AND token IN ({tokens}) AND expires_at > ` + SQLiteNowMs
	return &d
}()

// smallBatch splits renewals every two leases.
var smallBatch = func() *Dialect {
	d := *SQLite
	d.Name = "sqlite-batch2"
	d.MaxBatch = 2
	return &d
}()

var dialects = []*Dialect{SQLite, noReturning, smallBatch}

func openDB(t testing.TB, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// newStore opens a fresh database file and an initialised Store over it.
func newStore(t testing.TB, d *Dialect) *Store {
	t.Helper()
	db := openDB(t, filepath.Join(t.TempDir(), "locks.db"))
	s, err := New(Config{DB: db, Dialect: d})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Init(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	return s
}

func forEachDialect(t *testing.T, f func(t *testing.T, s *Store)) {
	for _, d := range dialects {
		t.Run(d.Name, func(t *testing.T) { f(t, newStore(t, d)) })
	}
}

func req(key, token string) driver.AcquireRequest {
	return driver.AcquireRequest{Key: key, Token: token, TTL: 10 * time.Second, Owner: "owner-" + token}
}

func mustAcquire(t *testing.T, s *Store, r driver.AcquireRequest) driver.Lease {
	t.Helper()
	l, err := s.Acquire(context.Background(), r)
	if err != nil {
		t.Fatalf("Acquire(%q, %q): %v", r.Key, r.Token, err)
	}
	return l
}

// rowFence reads the stored fence of key, whether held or not.
func rowFence(t *testing.T, s *Store, key string) uint64 {
	t.Helper()
	var f uint64
	if err := s.DB().QueryRow("SELECT fence FROM "+s.Table()+" WHERE lock_key = ?", key).Scan(&f); err != nil {
		t.Fatal(err)
	}
	return f
}

// expire makes key's lease expire now, as if its TTL had run out.
func expire(t *testing.T, s *Store, key string) {
	t.Helper()
	if _, err := s.DB().Exec("UPDATE "+s.Table()+" SET expires_at = expires_at - ttl_ms - 1 WHERE lock_key = ?", key); err != nil {
		t.Fatal(err)
	}
}

func TestAcquireContendRelease(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		before := uint64(time.Now().Add(-time.Minute).UnixMicro())
		a := mustAcquire(t, s, req("k", "A"))
		if a.Key != "k" || a.Token != "A" || a.TTL != 10*time.Second {
			t.Fatalf("lease = %+v", a)
		}
		if after := uint64(time.Now().Add(time.Minute).UnixMicro()); a.Fence < before || a.Fence > after {
			t.Errorf("first fence %d is not the clock in microseconds (want within [%d, %d])", a.Fence, before, after)
		}

		_, err := s.Acquire(ctx, req("k", "B"))
		var held *driver.HeldError
		if !errors.As(err, &held) || !errors.Is(err, driver.ErrLocked) {
			t.Fatalf("contended Acquire: err = %v, want *HeldError", err)
		}
		if h := held.Holder; !h.Held || h.Owner != "owner-A" || h.Fence != a.Fence || h.TTL <= 9*time.Second || h.TTL > 10*time.Second || h.Token != "" {
			t.Errorf("holder = %+v, want owner-A, fence %d, TTL about 10s, no token", h, a.Fence)
		}

		h, err := s.Inspect(ctx, "k")
		if err != nil || !h.Held || h.Token != "A" || h.Fence != a.Fence || h.Owner != "owner-A" || h.TTL <= 9*time.Second {
			t.Fatalf("Inspect = %+v, %v", h, err)
		}

		if err := s.Release(ctx, driver.Lease{Key: "k", Token: "B"}); !errors.Is(err, driver.ErrNotHeld) {
			t.Errorf("Release with another token: %v, want ErrNotHeld", err)
		}
		if err := s.Release(ctx, a); err != nil {
			t.Fatalf("Release: %v", err)
		}
		if err := s.Release(ctx, a); !errors.Is(err, driver.ErrNotHeld) {
			t.Errorf("second Release: %v, want ErrNotHeld", err)
		}
		if h, err := s.Inspect(ctx, "k"); err != nil || h != (driver.Holder{}) {
			t.Errorf("Inspect after release = %+v, %v; want free", h, err)
		}
		if got := rowFence(t, s, "k"); got != a.Fence {
			t.Errorf("release changed the stored fence: %d, want %d", got, a.Fence)
		}

		b := mustAcquire(t, s, req("k", "B"))
		if b.Fence <= a.Fence {
			t.Errorf("fence after release = %d, not above %d", b.Fence, a.Fence)
		}
		if h, err := s.Inspect(ctx, "missing"); err != nil || h.Held {
			t.Errorf("Inspect of a missing key = %+v, %v", h, err)
		}
	})
}

func TestAcquireRetrySameToken(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *Store) {
		a := mustAcquire(t, s, req("k", "A"))
		for range 3 {
			again := mustAcquire(t, s, req("k", "A"))
			if again != a {
				t.Fatalf("retry returned %+v, want %+v", again, a)
			}
		}
		if got := rowFence(t, s, "k"); got != a.Fence {
			t.Errorf("retries bumped the fence to %d, want %d", got, a.Fence)
		}
	})
}

func TestExpiry(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		a := mustAcquire(t, s, req("k", "A"))
		expire(t, s, "k")

		if h, err := s.Inspect(ctx, "k"); err != nil || h.Held {
			t.Errorf("Inspect of an expired lock = %+v, %v; want free", h, err)
		}
		if res, err := s.Renew(ctx, []driver.Lease{a}); err != nil || !errors.Is(res[0], driver.ErrNotHeld) {
			t.Errorf("Renew of an expired lock = %v, %v; want ErrNotHeld", res, err)
		}
		if err := s.Release(ctx, a); !errors.Is(err, driver.ErrNotHeld) {
			t.Errorf("Release of an expired, untaken lock: %v, want ErrNotHeld", err)
		}

		b := mustAcquire(t, s, req("k", "B"))
		if b.Fence <= a.Fence {
			t.Errorf("takeover fence = %d, not above %d", b.Fence, a.Fence)
		}
		if err := s.Release(ctx, a); !errors.Is(err, driver.ErrNotHeld) {
			t.Errorf("Release by the previous holder: %v, want ErrNotHeld", err)
		}
		if h, err := s.Inspect(ctx, "k"); err != nil || h.Token != "B" {
			t.Errorf("the previous holder disturbed the new one: %+v, %v", h, err)
		}

		// The same token after its own lease expired is a new acquisition.
		expire(t, s, "k")
		b2 := mustAcquire(t, s, req("k", "B"))
		if b2.Fence <= b.Fence {
			t.Errorf("re-acquire after expiry: fence %d, not above %d", b2.Fence, b.Fence)
		}
	})
}

func TestRealTTL(t *testing.T) {
	s := newStore(t, SQLite)
	r := req("k", "A")
	r.TTL = 30 * time.Millisecond
	a := mustAcquire(t, s, r)
	if _, err := s.Acquire(context.Background(), req("k", "B")); !errors.Is(err, driver.ErrLocked) {
		t.Fatalf("Acquire before expiry: %v, want ErrLocked", err)
	}
	time.Sleep(40 * time.Millisecond)
	b := mustAcquire(t, s, req("k", "B"))
	if b.Fence <= a.Fence {
		t.Errorf("fence = %d, not above %d", b.Fence, a.Fence)
	}
}

func TestRenew(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		short := func(key, token string) driver.AcquireRequest {
			r := req(key, token)
			r.TTL = 2 * time.Second
			return r
		}
		held1 := mustAcquire(t, s, short("held1", "T1"))
		held2 := mustAcquire(t, s, short("held2", "T2"))
		released := mustAcquire(t, s, short("released", "T3"))
		if err := s.Release(ctx, released); err != nil {
			t.Fatal(err)
		}
		expired := mustAcquire(t, s, short("expired", "T4"))
		expire(t, s, "expired")
		takenOver := mustAcquire(t, s, short("taken", "T5"))
		expire(t, s, "taken")
		mustAcquire(t, s, short("taken", "other"))
		never := driver.Lease{Key: "never", Token: "T6"}
		crossed := driver.Lease{Key: "held1", Token: "T2"} // another lease's token

		leases := []driver.Lease{held1, released, expired, held2, takenOver, never, crossed, held1}
		want := []bool{true, false, false, true, false, false, false, true}

		time.Sleep(20 * time.Millisecond) // so that an extension shows
		before, _ := s.Inspect(ctx, "held1")
		res, err := s.Renew(ctx, leases)
		if err != nil {
			t.Fatalf("Renew: %v", err)
		}
		if len(res) != len(leases) {
			t.Fatalf("Renew returned %d results for %d leases", len(res), len(leases))
		}
		for i, ok := range want {
			if ok && res[i] != nil || !ok && !errors.Is(res[i], driver.ErrNotHeld) {
				t.Errorf("lease %d (%s/%s): %v, want renewed=%v", i, leases[i].Key, leases[i].Token, res[i], ok)
			}
		}
		after, _ := s.Inspect(ctx, "held1")
		if after.TTL <= before.TTL {
			t.Errorf("TTL did not grow: %v before, %v after", before.TTL, after.TTL)
		}
		if after.TTL > 2*time.Second {
			t.Errorf("renewed TTL %v is over the row's TTL of 2s", after.TTL)
		}
		if res, err := s.Renew(ctx, nil); err != nil || len(res) != 0 {
			t.Errorf("empty Renew = %v, %v", res, err)
		}
	})
}

func TestRenewManyChunks(t *testing.T) {
	s := newStore(t, SQLite)
	n := SQLite.MaxBatch*2 + 7
	leases := make([]driver.Lease, n)
	for i := range leases {
		leases[i] = mustAcquire(t, s, req(fmt.Sprint("k", i), fmt.Sprint("t", i)))
	}
	lost := leases[SQLite.MaxBatch+3]
	if err := s.Release(context.Background(), lost); err != nil {
		t.Fatal(err)
	}
	res, err := s.Renew(context.Background(), leases)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range res {
		if (leases[i] == lost) != errors.Is(e, driver.ErrNotHeld) || leases[i] != lost && e != nil {
			t.Errorf("lease %d: %v", i, e)
		}
	}
}

func TestKeysAreData(t *testing.T) {
	s := newStore(t, SQLite)
	ctx := context.Background()
	keys := []string{
		`'`, `"`, `';--`, `'); DROP TABLE distlock_locks; --`, `/* comment */`, `a' OR '1'='1`,
		`?1`, `$1`, `{table}`, `{keys}`, "ключ 鍵 🔒", `\`, `%_`, "line\nbreak",
	}
	for i, k := range keys {
		l := mustAcquire(t, s, req(k, fmt.Sprint("tok", i)))
		h, err := s.Inspect(ctx, k)
		if err != nil || h.Token != l.Token {
			t.Errorf("Inspect(%q) = %+v, %v", k, h, err)
		}
		var stored string
		if err := s.DB().QueryRow("SELECT lock_key FROM distlock_locks WHERE token = ?", l.Token).Scan(&stored); err != nil || stored != k {
			t.Errorf("stored key %q, want %q (%v)", stored, k, err)
		}
	}
	var n int
	if err := s.DB().QueryRow("SELECT count(*) FROM distlock_locks").Scan(&n); err != nil || n != len(keys) {
		t.Errorf("%d rows (%v), want %d", n, err, len(keys))
	}
}

func TestFenceSurvivesDeletedRow(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		a := mustAcquire(t, s, req("k", "A"))
		if err := s.Release(ctx, a); err != nil {
			t.Fatal(err)
		}
		b := mustAcquire(t, s, req("k", "B"))
		if b.Fence <= a.Fence {
			t.Fatalf("fence %d after %d", b.Fence, a.Fence)
		}
		// An operator deletes the row while B holds it.
		if _, err := s.DB().Exec("DELETE FROM distlock_locks"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond) // the seed moves 1000 per ms
		c := mustAcquire(t, s, req("k", "C"))
		if c.Fence <= b.Fence {
			t.Errorf("fence after the row was deleted: %d, not above %d", c.Fence, b.Fence)
		}
		if err := s.Release(ctx, b); !errors.Is(err, driver.ErrNotHeld) {
			t.Errorf("Release by the holder whose row was deleted: %v, want ErrNotHeld", err)
		}
	})
}

// TestFenceDeleteWithinMillisecond deletes a row and takes the key again at
// once, many times: SQLite's millisecond clock alone would repeat fences.
func TestFenceDeleteWithinMillisecond(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *Store) {
		var last uint64
		for i := range 50 {
			l := mustAcquire(t, s, req("k", fmt.Sprint("T", i)))
			if l.Fence <= last {
				t.Fatalf("acquisition %d: fence %d after %d", i, l.Fence, last)
			}
			last = l.Fence
			if _, err := s.DB().Exec("DELETE FROM distlock_locks WHERE lock_key = 'k'"); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// TestFenceRule pins the rule: a new row gets the clock in microseconds, a
// takeover max(fence + 1, clock).
func TestFenceRule(t *testing.T) {
	s := newStore(t, SQLite)
	ctx := context.Background()
	before := uint64(time.Now().UnixMicro())
	a := mustAcquire(t, s, req("k", "A"))
	if after := uint64(time.Now().UnixMicro()); a.Fence < before || a.Fence > after+1000 {
		t.Errorf("first fence %d is not the clock in microseconds (%d..%d)", a.Fence, before, after)
	}
	// Far ahead of the clock (as after many acquisitions): takeovers add one.
	ahead := uint64(time.Now().Add(time.Hour).UnixMicro())
	if _, err := s.DB().Exec("UPDATE distlock_locks SET fence = ?, token = '', expires_at = 0", int64(ahead)); err != nil {
		t.Fatal(err)
	}
	b := mustAcquire(t, s, req("k", "B"))
	if b.Fence != ahead+1 {
		t.Errorf("takeover of a row ahead of the clock: fence %d, want %d", b.Fence, ahead+1)
	}
	if err := s.Release(ctx, b); err != nil {
		t.Fatal(err)
	}
	// Behind the clock: the takeover jumps to the clock.
	if _, err := s.DB().Exec("UPDATE distlock_locks SET fence = 7"); err != nil {
		t.Fatal(err)
	}
	before = uint64(time.Now().UnixMicro())
	c := mustAcquire(t, s, req("k", "C"))
	if c.Fence < before {
		t.Errorf("takeover of a row behind the clock: fence %d, want the clock (at least %d)", c.Fence, before)
	}
}

// TestFenceSurvivesLostCommit undoes an acquisition, as a power cut with
// synchronous=NORMAL or a failover to a lagging replica may: the next
// acquisition must still get a fence above the one that was handed out.
func TestFenceSurvivesLostCommit(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		a := mustAcquire(t, s, req("k", "A"))
		if err := s.Release(ctx, a); err != nil {
			t.Fatal(err)
		}
		b := mustAcquire(t, s, req("k", "B")) // this commit will be lost
		if _, err := s.DB().Exec("UPDATE distlock_locks SET token = '', owner = '', expires_at = 0, fence = ?", int64(a.Fence)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond) // the reboot takes a while
		c := mustAcquire(t, s, req("k", "C"))
		if c.Fence <= b.Fence {
			t.Errorf("fence %d after a lost commit is not above the lost fence %d", c.Fence, b.Fence)
		}
	})
}

// TestPurgeCondition sets rows up behind the Store's back to pin what
// Purge deletes: a free row whose release and fence are both older than
// the age; not a held row however old its fence, nor a free row whose
// fence is ahead of the clock (a key handed over faster than the clock, or
// a clock stepped back), nor one released more recently. Rows released
// before the release time was recorded (expires_at 0) go by their fence.
func TestPurgeCondition(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		now := time.Now()
		ms := func(d time.Duration) int64 { return now.Add(d).UnixMilli() }
		us := func(d time.Duration) int64 { return now.Add(d).UnixMicro() }
		rows := []struct {
			key        string
			fence      int64
			expiresAt  int64
			wantPurged bool
		}{
			{"released-long-ago", us(-time.Hour), -ms(-30 * time.Minute), true},
			{"expired-long-ago", us(-time.Hour), ms(-30 * time.Minute), true},
			{"released-before-times-were-kept", us(-time.Hour), 0, true},
			{"released-lately", us(-time.Hour), -ms(-time.Second), false},
			{"expired-lately", us(-time.Hour), ms(-time.Second), false},
			{"held-since-long-ago", us(-time.Hour), ms(time.Minute), false},
			{"fence-ahead-of-the-clock", us(time.Hour), -ms(-30 * time.Minute), false},
			{"old-row-with-a-recent-fence", us(-time.Second), 0, false},
		}
		for _, r := range rows {
			if _, err := s.DB().Exec("INSERT INTO "+s.Table()+" (lock_key, token, fence, owner, ttl_ms, expires_at) VALUES (?, ?, ?, '', 1000, ?)",
				r.key, "tok-"+r.key, r.fence, r.expiresAt); err != nil {
				t.Fatal(err)
			}
		}
		n, err := s.Purge(ctx, 10*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		want := 0
		for _, r := range rows {
			var count int
			if err := s.DB().QueryRow("SELECT count(*) FROM "+s.Table()+" WHERE lock_key = ?", r.key).Scan(&count); err != nil {
				t.Fatal(err)
			}
			if purged := count == 0; purged != r.wantPurged {
				t.Errorf("%s: purged %v, want %v", r.key, purged, r.wantPurged)
			}
			if r.wantPurged {
				want++
			}
		}
		if n != int64(want) {
			t.Errorf("Purge = %d, want %d", n, want)
		}
		if _, err := s.Purge(ctx, 0); !errors.Is(err, distlock.ErrInvalid) {
			t.Errorf("Purge(0) = %v, want ErrInvalid", err)
		}
	})
}

// TestReleasedRowIsFree: a release records its time, and the row is free
// for every statement: taken at once, not renewed, not shown by Inspect.
func TestReleasedRowIsFree(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		a := mustAcquire(t, s, req("k", "A"))
		before := time.Now().UnixMilli()
		if err := s.Release(ctx, a); err != nil {
			t.Fatal(err)
		}
		var expiresAt int64
		if err := s.DB().QueryRow("SELECT expires_at FROM " + s.Table() + " WHERE lock_key = 'k'").Scan(&expiresAt); err != nil {
			t.Fatal(err)
		}
		if after := time.Now().UnixMilli(); -expiresAt < before-1 || -expiresAt > after+1 {
			t.Errorf("expires_at after a release = %d, want minus the clock (%d..%d)", expiresAt, before, after)
		}
		if h, err := s.Inspect(ctx, "k"); err != nil || h.Held {
			t.Errorf("Inspect of a released key = %+v, %v; want free", h, err)
		}
		if res, err := s.Renew(ctx, []driver.Lease{a}); err != nil || !errors.Is(res[0], driver.ErrNotHeld) {
			t.Errorf("Renew of a released lease = %v, %v; want ErrNotHeld", res, err)
		}
		b := mustAcquire(t, s, req("k", "B"))
		if b.Fence <= a.Fence {
			t.Errorf("fence %d after %d", b.Fence, a.Fence)
		}
	})
}

func TestAcquireInvalid(t *testing.T) {
	s := newStore(t, SQLite)
	if _, err := s.Acquire(context.Background(), req("k", "")); !errors.Is(err, distlock.ErrInvalid) {
		t.Errorf("empty token: %v", err)
	}
	r := req("k", "A")
	r.TTL = 0
	if _, err := s.Acquire(context.Background(), r); !errors.Is(err, distlock.ErrInvalid) {
		t.Errorf("zero TTL: %v", err)
	}
	r.TTL = 1500 * time.Microsecond
	if l := mustAcquire(t, s, r); l.TTL != 2*time.Millisecond {
		t.Errorf("TTL 1.5ms became %v, want 2ms (rounded up)", l.TTL)
	}
}

func TestValidateTable(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"distlock_locks", true},
		{"_t", true},
		{"T2", true},
		{"main.locks", true},
		{strings.Repeat("a", 63), true},
		{strings.Repeat("a", 64), false},
		{"", false},
		{"2t", false},
		{"a-b", false},
		{"a b", false},
		{"a;DROP TABLE x", false},
		{`"quoted"`, false},
		{"a.b.c", false},
		{".a", false},
		{"a.", false},
		{"ta\u00efble", false},
	} {
		err := ValidateTable(tc.name)
		if (err == nil) != tc.ok {
			t.Errorf("ValidateTable(%q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
		if err != nil && !errors.Is(err, distlock.ErrInvalid) {
			t.Errorf("ValidateTable(%q) = %v, not ErrInvalid", tc.name, err)
		}
	}
}

func TestNewAndInit(t *testing.T) {
	ctx := context.Background()
	db := openDB(t, filepath.Join(t.TempDir(), "locks.db"))
	if _, err := New(Config{DB: db, Dialect: SQLite, Table: "x;y"}); !errors.Is(err, distlock.ErrInvalid) {
		t.Errorf("bad table: %v", err)
	}
	if _, err := New(Config{Dialect: SQLite}); !errors.Is(err, distlock.ErrInvalid) {
		t.Errorf("nil DB: %v", err)
	}
	if _, err := New(Config{DB: db, Dialect: &Dialect{Name: "half"}}); err == nil || !strings.Contains(err.Error(), "Acquire") {
		t.Errorf("incomplete dialect: %v", err)
	}

	s, err := New(Config{DB: db, Dialect: SQLite, Table: "custom"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Init(ctx, false); err == nil || !strings.Contains(err.Error(), "custom") {
		t.Errorf("Init without creating a missing table: %v", err)
	}
	if err := s.Init(ctx, true); err != nil {
		t.Fatal(err)
	}
	if err := s.Init(ctx, true); err != nil {
		t.Errorf("second Init: %v", err)
	}
	mustAcquire(t, s, req("k", "A"))

	if _, err := db.Exec("CREATE TABLE wrong (lock_key TEXT PRIMARY KEY, token TEXT)"); err != nil {
		t.Fatal(err)
	}
	w, _ := New(Config{DB: db, Dialect: SQLite, Table: "wrong"})
	if err := w.Init(ctx, true); err == nil {
		t.Error("Init accepted a table without the lease columns")
	}

	// Close leaves a handle it does not own open.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Ping(); err != nil {
		t.Errorf("Close closed the caller's *sql.DB: %v", err)
	}
}

func TestCloseOwnedDB(t *testing.T) {
	db, err := sql.Open("sqlite", filepath.Join(t.TempDir(), "locks.db"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{DB: db, Dialect: SQLite, CloseDB: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := db.Ping(); err == nil {
		t.Error("Close left the owned *sql.DB open")
	}
}

func TestUnavailable(t *testing.T) {
	// The directory does not exist: SQLite cannot open the file.
	db := openDB(t, filepath.Join(t.TempDir(), "missing", "locks.db"))
	s, err := New(Config{DB: db, Dialect: SQLite})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Init(context.Background(), true)
	if !errors.Is(err, driver.ErrUnavailable) {
		t.Fatalf("Init: %v, want ErrUnavailable", err)
	}
	if code, ok := ErrorCode(err); !ok || code&0xff != sqliteCantOpen {
		t.Errorf("the driver's error is not in the chain: code %d, %v", code, ok)
	}
	_, err = s.Acquire(context.Background(), req("k", "A"))
	if !errors.Is(err, driver.ErrUnavailable) {
		t.Errorf("Acquire: %v, want ErrUnavailable", err)
	}
	if _, err := s.Inspect(context.Background(), "k"); !errors.Is(err, driver.ErrUnavailable) {
		t.Errorf("Inspect: %v, want ErrUnavailable", err)
	}
}

func TestInfo(t *testing.T) {
	s := newStore(t, SQLite)
	want := driver.Info{Name: "sqlite", MinTTL: 100 * time.Millisecond, TTLGranularity: time.Millisecond}
	if got := s.Info(); got != want {
		t.Errorf("Info = %+v, want %+v", got, want)
	}
}

func TestBatchSQL(t *testing.T) {
	got := SQLite.batchSQL("k IN ({keys}) AND t IN ({tokens})", 3)
	if want := "k IN (?1, ?2, ?3) AND t IN (?4, ?5, ?6)"; got != want {
		t.Errorf("batchSQL = %q, want %q", got, want)
	}
	d := *SQLite
	d.Placeholder = QuestionPlaceholder
	if got, want := d.batchSQL("({keys}) ({tokens})", 2), "(?, ?) (?, ?)"; got != want {
		t.Errorf("batchSQL = %q, want %q", got, want)
	}
}
