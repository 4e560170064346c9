package pglock

import (
	"context"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/internal/benchrun"
	"github.com/distlock/distlock/internal/testserver"
)

// TestSideBySide measures Lock+Unlock in both modes against the floor (an
// INSERT and a DELETE of one row through pgx), on one private server,
// contenders taking turns. It prints Markdown tables; make bench-sql runs it.
func TestSideBySide(t *testing.T) {
	benchrun.SkipUnlessEnabled(t, "make bench-sql")
	dsn := testserver.StartPostgres(t).DSN()
	floor := benchrun.Contender{Name: "floor: INSERT + DELETE of a row (pgx)", New: func(ctx context.Context, g int) (benchrun.Op, func(), error) {
		pool, err := pgxpool.New(ctx, dsn)
		if err != nil {
			return nil, nil, err
		}
		if _, err := pool.Exec(ctx, `CREATE TABLE IF NOT EXISTS bench_floor (k text PRIMARY KEY, v text NOT NULL)`); err != nil {
			pool.Close()
			return nil, nil, err
		}
		key := fmt.Sprint("floor-", g)
		return func(ctx context.Context) error {
			if _, err := pool.Exec(ctx, `INSERT INTO bench_floor (k, v) VALUES ($1, $2)`, key, "token"); err != nil {
				return err
			}
			_, err := pool.Exec(ctx, `DELETE FROM bench_floor WHERE k = $1 AND v = $2`, key, "token")
			return err
		}, pool.Close, nil
	}}
	mode := func(m Mode) benchrun.Contender {
		return benchrun.LockUnlock(fmt.Sprintf("distlock Lock+Unlock, mode=%v", m), "bench", func(ctx context.Context) (*distlock.Client, error) {
			return Open(ctx, dsn, &Options{Mode: m})
		})
	}
	cs := []benchrun.Contender{floor, mode(LeaseRow), mode(Advisory)}
	benchrun.SideBySide(t, "make bench-sql",
		benchrun.Set{Title: "PostgreSQL, uncontended: one goroutine", Par: 1, Contenders: cs},
		benchrun.Set{Title: "PostgreSQL, 8 goroutines with their own pool or Client (the floor on 8 keys, locks on one)", Par: 8, Contenders: cs},
	)
}
