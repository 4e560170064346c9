package sqlitelock_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/driver"
	"github.com/distlock/distlock/sqlitelock"
)

func dbPath(t testing.TB) string { return filepath.Join(t.TempDir(), "locks.db") }

func open(t testing.TB, path string, opts ...distlock.Option) *distlock.Client {
	t.Helper()
	c, err := sqlitelock.Open(context.Background(), path, nil, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return c
}

// rawDB opens the lock file behind the driver's back, as an operator would.
func rawDB(t testing.TB, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestLockContendUnlock(t *testing.T) {
	ctx := context.Background()
	path := dbPath(t)
	a, b := open(t, path), open(t, path)

	l, err := a.TryLock(ctx, "job", distlock.WithOwner("worker-a"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.TryLock(ctx, "job")
	if !errors.Is(err, distlock.ErrLocked) {
		t.Fatalf("TryLock of a held key: %v, want ErrLocked", err)
	}
	var held *driver.HeldError
	if !errors.As(err, &held) || held.Holder.Owner != "worker-a" || held.Holder.TTL <= 0 || held.Holder.TTL > distlock.DefaultTTL {
		t.Errorf("contention error %v does not describe the holder", err)
	}
	st, err := b.Status(ctx, "job")
	if err != nil || !st.Held || st.Owner != "worker-a" || st.Fence != l.Fence() {
		t.Errorf("Status = %+v, %v", st, err)
	}
	if err := l.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	if st, err := b.Status(ctx, "job"); err != nil || st.Held {
		t.Errorf("Status after Unlock = %+v, %v", st, err)
	}
	l2, err := b.TryLock(ctx, "job")
	if err != nil {
		t.Fatal(err)
	}
	if l2.Fence() <= l.Fence() {
		t.Errorf("fence %d after %d", l2.Fence(), l.Fence())
	}
}

func TestKeysAreStoredAsData(t *testing.T) {
	ctx := context.Background()
	path := dbPath(t)
	c := open(t, path)
	keys := []string{
		`'`, `''`, `"`, `;`, `'; DROP TABLE distlock_locks; --`, `--`, `-- comment`, `/*`, `/* x */`, `*/`,
		`a' OR '1'='1`, `?1`, `:name`, `@p`, `$1`, `{table}`, `%`, `_`, `\'`, "tab\tnew\nline", "🔒 ключ",
	}
	locks := make([]*distlock.Lock, len(keys))
	for i, k := range keys {
		l, err := c.TryLock(ctx, k)
		if err != nil {
			t.Fatalf("TryLock(%q): %v", k, err)
		}
		locks[i] = l
	}
	db := rawDB(t, path)
	for _, k := range keys {
		var stored string
		if err := db.QueryRow("SELECT lock_key FROM distlock_locks WHERE lock_key = ?", k).Scan(&stored); err != nil || stored != k {
			t.Errorf("key %q stored as %q (%v)", k, stored, err)
		}
		if _, err := c.TryLock(ctx, k); !errors.Is(err, distlock.ErrLocked) {
			t.Errorf("second TryLock(%q): %v, want ErrLocked", k, err)
		}
	}
	var n int
	if err := db.QueryRow("SELECT count(*) FROM distlock_locks").Scan(&n); err != nil || n != len(keys) {
		t.Errorf("table has %d rows (%v), want %d", n, err, len(keys))
	}
	for _, l := range locks {
		if err := l.Unlock(ctx); err != nil {
			t.Errorf("Unlock(%q): %v", l.Key(), err)
		}
	}
}

func TestFenceMonotonic(t *testing.T) {
	ctx := context.Background()
	path := dbPath(t)
	a, b := open(t, path), open(t, path)
	db := rawDB(t, path)

	var last uint64
	next := func(c *distlock.Client, why string) *distlock.Lock {
		t.Helper()
		l, err := c.TryLock(ctx, "k")
		if err != nil {
			t.Fatalf("%s: %v", why, err)
		}
		if l.Fence() <= last {
			t.Fatalf("%s: fence %d is not above %d", why, l.Fence(), last)
		}
		last = l.Fence()
		return l
	}
	for i := range 5 {
		c := a
		if i%2 == 1 {
			c = b
		}
		if err := next(c, "after release").Unlock(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// An operator deletes the row of a held lock.
	held := next(a, "before delete")
	if _, err := db.Exec("DELETE FROM distlock_locks WHERE lock_key = 'k'"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Millisecond)
	after := next(b, "after the row was deleted")
	if err := held.Unlock(ctx); !errors.Is(err, distlock.ErrNotHeld) {
		t.Errorf("Unlock by the holder whose row was deleted: %v, want ErrNotHeld", err)
	}
	// The whole table is dropped and made again.
	if err := after.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("DELETE FROM distlock_locks"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Millisecond)
	next(a, "after the table was emptied")
}

func TestTakeoverAfterExpiry(t *testing.T) {
	ctx := context.Background()
	path := dbPath(t)
	a, b := open(t, path), open(t, path)
	l, err := a.TryLock(ctx, "k", distlock.WithTTL(150*time.Millisecond), distlock.WithAutoRenew(false))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	l2, err := b.Lock(ctx, "k", distlock.WithBackoff(time.Second, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	// The waiter slept until the holder's expiry, as the store reported it,
	// not for its 1s back-off.
	if waited := time.Since(start); waited > 900*time.Millisecond {
		t.Errorf("waited %v for a lock that expired after 150ms", waited)
	}
	if l2.Fence() <= l.Fence() {
		t.Errorf("takeover fence %d, not above %d", l2.Fence(), l.Fence())
	}
	select {
	case <-l.Done():
	case <-time.After(time.Second):
		t.Error("the expired lock's Done did not close")
	}
	if err := l.Unlock(ctx); !errors.Is(err, distlock.ErrNotHeld) {
		t.Errorf("Unlock of a lock taken over: %v, want ErrNotHeld", err)
	}
}

func TestRenewalKeepsLock(t *testing.T) {
	ctx := context.Background()
	path := dbPath(t)
	a, b := open(t, path), open(t, path)
	l, err := a.TryLock(ctx, "k", distlock.WithTTL(150*time.Millisecond), distlock.WithRenewInterval(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	if _, err := b.TryLock(ctx, "k"); !errors.Is(err, distlock.ErrLocked) {
		t.Fatalf("after 3 TTLs with renewal: %v, want ErrLocked", err)
	}
	if err := l.Err(); err != nil {
		t.Fatalf("lock lost: %v", err)
	}
	if err := l.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestWakeUp checks that a waiter in this process is woken by a release
// through another Client on the same file, long before its back-off ends.
func TestWakeUp(t *testing.T) {
	ctx := context.Background()
	path := dbPath(t)
	holder, waiter := open(t, path), open(t, path)
	l, err := holder.TryLock(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan time.Time, 1)
	go func() {
		// The back-off (and fallback timer) is 10s; only a wake-up is fast.
		wl, err := waiter.Lock(ctx, "k", distlock.WithBackoff(10*time.Second, 10*time.Second))
		if err != nil {
			t.Error(err)
			close(got)
			return
		}
		got <- time.Now()
		wl.Unlock(ctx)
	}()
	time.Sleep(100 * time.Millisecond) // the waiter has tried once and sleeps
	released := time.Now()
	if err := l.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case at, ok := <-got:
		if ok && at.Sub(released) > time.Second {
			t.Errorf("woken %v after the release", at.Sub(released))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the waiter was not woken by the release")
	}
}

// TestWakeUpOtherTable checks that releases on another table or file do not
// count as releases of this key, and that New over the same file shares
// wake-ups with Open.
func TestWakeUpThroughNew(t *testing.T) {
	ctx := context.Background()
	path := dbPath(t)
	holder := open(t, path)
	db := rawDB(t, path)
	waiter, err := sqlitelock.New(ctx, db, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer waiter.Close()

	l, err := holder.TryLock(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	expectWoken(t, waiter, l, "a Client made by New was not woken by a release through Open on the same file")
}

// TestMutualExclusion runs several Clients on one file, each with several
// goroutines, all taking the same key: never two inside at once, and fences
// strictly increase in the order the lock was held.
func TestMutualExclusion(t *testing.T) {
	ctx := context.Background()
	path := dbPath(t)
	const clients, workers, rounds = 3, 3, 15
	var (
		inside    atomic.Int32
		mu        sync.Mutex
		lastFence uint64
		total     int
		wg        sync.WaitGroup
	)
	for range clients {
		c := open(t, path)
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range rounds {
					l, err := c.Lock(ctx, "shared", distlock.WithBackoff(time.Millisecond, 20*time.Millisecond))
					if err != nil {
						t.Error(err)
						return
					}
					if n := inside.Add(1); n != 1 {
						t.Errorf("%d holders at once", n)
					}
					mu.Lock()
					if l.Fence() <= lastFence {
						t.Errorf("fence %d after %d", l.Fence(), lastFence)
					}
					lastFence = l.Fence()
					total++
					mu.Unlock()
					inside.Add(-1)
					if err := l.Unlock(ctx); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	if total != clients*workers*rounds {
		t.Errorf("%d critical sections, want %d", total, clients*workers*rounds)
	}
}

func TestNewLeavesDBOpen(t *testing.T) {
	ctx := context.Background()
	db := rawDB(t, dbPath(t))
	c, err := sqlitelock.New(ctx, db, &sqlitelock.Options{Table: "app_locks"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.TryLock(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.QueryRow("SELECT count(*) FROM app_locks WHERE token = ''").Scan(&n); err != nil || n != 1 {
		t.Errorf("after Close: %d free rows (%v); Close should release the lock and leave the DB open", n, err)
	}
	if _, err := sqlitelock.New(ctx, nil, nil); !errors.Is(err, distlock.ErrInvalid) {
		t.Errorf("New(nil): %v", err)
	}
}

func TestInMemoryUserDB(t *testing.T) {
	ctx := context.Background()
	db, err := sql.Open("sqlite", ":memory:")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	a, err := sqlitelock.New(ctx, db, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := sqlitelock.New(ctx, db, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	l, err := a.TryLock(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.TryLock(ctx, "k"); !errors.Is(err, distlock.ErrLocked) {
		t.Fatalf("second TryLock: %v", err)
	}
	expectWoken(t, b, l, "waiter on the same in-memory *sql.DB was not woken")
}

// expectWoken starts a Lock on held's key through waiter, with a back-off so
// long that only a wake-up can end its wait in time, then releases held and
// fails with msg unless the waiter gets the lock within 3 s.
func expectWoken(t *testing.T, waiter *distlock.Client, held *distlock.Lock, msg string) {
	t.Helper()
	ctx := context.Background()
	done := make(chan error, 1)
	go func() {
		wl, err := waiter.Lock(ctx, held.Key(), distlock.WithBackoff(10*time.Second, 10*time.Second))
		if err == nil {
			err = wl.Unlock(ctx)
		}
		done <- err
	}()
	time.Sleep(100 * time.Millisecond)
	if err := held.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal(msg)
	}
}

func TestOpenErrors(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("not a database, and long enough to have a header of sorts..........................................................................."), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		path string
		opts *sqlitelock.Options
		want error
	}{
		{"empty path", "", nil, distlock.ErrInvalid},
		{"memory", ":memory:", nil, distlock.ErrInvalid},
		{"uri", "file:x.db?mode=memory", nil, distlock.ErrInvalid},
		{"bad table", filepath.Join(dir, "a.db"), &sqlitelock.Options{Table: "a b"}, distlock.ErrInvalid},
		{"parent is a file", filepath.Join(file, "locks.db"), nil, distlock.ErrUnavailable},
		{"path is a directory", dir, nil, distlock.ErrUnavailable},
		{"not a database", file, nil, distlock.ErrUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := sqlitelock.Open(ctx, tc.path, tc.opts)
			if err == nil {
				c.Close()
				t.Fatal("Open succeeded")
			}
			if !errors.Is(err, tc.want) {
				t.Errorf("Open: %v, want %v", err, tc.want)
			}
		})
	}
	_, err := sqlitelock.Open(ctx, filepath.Join(dir, "b.db"), &sqlitelock.Options{DisableCreateTable: true})
	if err == nil {
		t.Error("Open with DisableCreateTable of a file without the table succeeded")
	}
}

func TestOpenCreatesDirectory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", "distlock", "locks.db")
	open(t, path)
	fi, err := os.Stat(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		t.Errorf("directory mode %v, want 0700", perm)
	}
}

func TestDistlockOpen(t *testing.T) {
	ctx := context.Background()
	path := dbPath(t)
	c, err := distlock.Open(ctx, "sqlite://"+filepath.ToSlash(path)+"?table=url_locks&busy_timeout=2s")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Backend() != "sqlite" {
		t.Errorf("Backend = %q", c.Backend())
	}
	if _, err := c.TryLock(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := rawDB(t, path).QueryRow("SELECT count(*) FROM url_locks").Scan(&n); err != nil || n != 1 {
		t.Errorf("url_locks has %d rows (%v)", n, err)
	}

	for _, bad := range []string{"sqlite://host/x.db", "sqlite:///x.db?nope=1"} {
		if _, err := distlock.Open(ctx, bad); !errors.Is(err, distlock.ErrInvalid) {
			t.Errorf("Open(%q): %v, want ErrInvalid", bad, err)
		}
	}
	// A relative path is relative to the working directory.
	t.Chdir(t.TempDir())
	rc, err := distlock.Open(ctx, "sqlite:sub/rel.db")
	if err != nil {
		t.Fatal(err)
	}
	rc.Close()
	if _, err := os.Stat(filepath.Join("sub", "rel.db")); err != nil {
		t.Errorf("relative database not created: %v", err)
	}
}

func TestMinTTL(t *testing.T) {
	c := open(t, dbPath(t))
	_, err := c.TryLock(context.Background(), "k", distlock.WithTTL(50*time.Millisecond))
	if !errors.Is(err, distlock.ErrInvalid) {
		t.Errorf("TTL below the minimum: %v", err)
	}
}

func TestPathWithURIChars(t *testing.T) {
	path := filepath.Join(t.TempDir(), "we?ird #name%20.db")
	c := open(t, path)
	if _, err := c.TryLock(context.Background(), "k"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("database not at %q: %v", path, err)
	}
}

func Example() {
	dir, err := os.MkdirTemp("", "distlock-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()

	client, err := distlock.Open(ctx, "sqlite://"+filepath.ToSlash(filepath.Join(dir, "locks.db")))
	if err != nil {
		panic(err)
	}
	defer client.Close()

	err = client.Do(ctx, "nightly-report", func(ctx context.Context) error {
		fmt.Println("building the report")
		return nil
	})
	fmt.Println("err:", err)
	// Output:
	// building the report
	// err: <nil>
}

func ExampleOpen() {
	dir, err := os.MkdirTemp("", "distlock-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()

	client, err := sqlitelock.Open(ctx, filepath.Join(dir, "locks.db"), nil)
	if err != nil {
		panic(err)
	}
	defer client.Close()

	lock, err := client.TryLock(ctx, "nightly-report", distlock.WithOwner("cron@host-1"))
	if err != nil {
		panic(err)
	}
	_, err = client.TryLock(ctx, "nightly-report")
	fmt.Println(err)
	fmt.Println(errors.Is(err, distlock.ErrLocked))

	if err := lock.Unlock(ctx); err != nil {
		panic(err)
	}
	status, err := client.Status(ctx, "nightly-report")
	if err != nil {
		panic(err)
	}
	fmt.Println("held:", status.Held)
	// Output:
	// distlock: trylock "nightly-report" on sqlite: key is locked by another holder (held by cron@host-1)
	// true
	// held: false
}
