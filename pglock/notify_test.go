package pglock_test

import (
	"strings"
	"testing"
	"time"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/internal/leaserow"
)

// TestReleaseWakesWaiter checks that a waiting Lock is woken by the
// holder's release (NOTIFY), not by its fallback timer, which the waiter's
// back-off sets far beyond the test's bound.
func TestReleaseWakesWaiter(t *testing.T) {
	dsn, _ := startPostgres(t)
	ctx := t.Context()
	for _, mode := range modes {
		t.Run(mode.String(), func(t *testing.T) {
			holder := open(t, dsn, mode, distlock.WithTTL(time.Minute))
			waiter := open(t, dsn, mode, distlock.WithBackoff(10*time.Millisecond, time.Minute))
			key := "wake-" + mode.String()
			l, err := holder.TryLock(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			got := make(chan *distlock.Lock, 1)
			go func() {
				wl, err := waiter.Lock(ctx, key)
				if err != nil {
					t.Error(err)
				}
				got <- wl
			}()
			time.Sleep(500 * time.Millisecond) // the waiter has tried and listens
			released := time.Now()
			if err := l.Unlock(ctx); err != nil {
				t.Fatal(err)
			}
			select {
			case wl := <-got:
				if wl != nil {
					t.Logf("woken %v after the release", time.Since(released))
					wl.Unlock(ctx)
				}
			case <-time.After(15 * time.Second):
				t.Fatal("the waiter was not woken by the release")
				<-got
			}
		})
	}
}

// TestHashesAgree checks that the names computed in Go (the LISTEN channel,
// the beacon's advisory-lock id) are the ones the SQL computes.
func TestHashesAgree(t *testing.T) {
	_, admin := startPostgres(t)
	ctx := t.Context()
	for _, s := range []string{"k", "", "ключ 🔒", "a'b;--", "TOKEN123"} {
		var ch string
		var id int64
		err := admin.QueryRow(ctx, "SELECT "+
			strings.ReplaceAll(leaserow.PostgresChannel, "lock_key", "$1::text")+", "+leaserow.PostgresBeaconID("$1::text"), s).Scan(&ch, &id)
		if err != nil {
			t.Fatal(err)
		}
		if want := leaserow.NotifyChannel(s); ch != want {
			t.Errorf("channel of %q: SQL %q, Go %q", s, ch, want)
		}
		if want := leaserow.BeaconID(s); id != want {
			t.Errorf("beacon of %q: SQL %d, Go %d", s, id, want)
		}
	}
}
