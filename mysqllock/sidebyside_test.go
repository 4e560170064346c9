package mysqllock

import (
	"context"
	"database/sql"
	"fmt"
	"testing"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/internal/benchrun"
	"github.com/distlock/distlock/internal/testserver"
)

// TestSideBySide measures Lock+Unlock in both modes against the floor (a
// prepared INSERT and DELETE of one row), on one private server, contenders
// taking turns. It prints Markdown tables; make bench-sql runs it.
func TestSideBySide(t *testing.T) {
	benchrun.SkipUnlessEnabled(t, "make bench-sql")
	dsn := testserver.StartMariaDB(t).DSN()
	floor := benchrun.Contender{Name: "floor: INSERT + DELETE of a row (prepared)", New: func(ctx context.Context, g int) (benchrun.Op, func(), error) {
		db, err := sql.Open("mysql", dsn)
		if err != nil {
			return nil, nil, err
		}
		ins, del, err := prepareFloor(ctx, db)
		if err != nil {
			db.Close()
			return nil, nil, err
		}
		key := fmt.Sprint("floor-", g)
		return func(ctx context.Context) error {
			if _, err := ins.ExecContext(ctx, key, "token"); err != nil {
				return err
			}
			_, err := del.ExecContext(ctx, key, "token")
			return err
		}, func() { ins.Close(); del.Close(); db.Close() }, nil
	}}
	mode := func(m Mode) benchrun.Contender {
		return benchrun.LockUnlock(fmt.Sprintf("distlock Lock+Unlock, mode=%v", m), "bench", func(ctx context.Context) (*distlock.Client, error) {
			return Open(ctx, dsn, &Options{Mode: m})
		})
	}
	cs := []benchrun.Contender{floor, mode(LeaseRow), mode(GetLock)}
	benchrun.SideBySide(t, "make bench-sql",
		benchrun.Set{Title: "MariaDB, uncontended: one goroutine", Par: 1, Contenders: cs},
		benchrun.Set{Title: "MariaDB, 8 goroutines with their own handle or Client (the floor on 8 keys, locks on one)", Par: 8, Contenders: cs},
	)
}

// prepareFloor makes the floor's table and prepares its two statements.
func prepareFloor(ctx context.Context, db *sql.DB) (ins, del *sql.Stmt, err error) {
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS bench_floor (k VARBINARY(1024) PRIMARY KEY, v VARBINARY(255) NOT NULL) ENGINE=InnoDB`); err != nil {
		return nil, nil, err
	}
	if ins, err = db.PrepareContext(ctx, `INSERT INTO bench_floor (k, v) VALUES (?, ?)`); err != nil {
		return nil, nil, err
	}
	if del, err = db.PrepareContext(ctx, `DELETE FROM bench_floor WHERE k = ? AND v = ?`); err != nil {
		ins.Close()
		return nil, nil, err
	}
	return ins, del, nil
}
