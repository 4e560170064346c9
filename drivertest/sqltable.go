package drivertest

import (
	"context"
	"database/sql"
	"fmt"
)

// SnapshotTable is a Rollbacker's Snapshot for a store whose lock data is
// one SQL table: it copies table's rows into a table of its own
// (table_snapshot), and the function it returns puts them back over
// table's in one transaction, then drops the copy. The statements are
// plain SQL that PostgreSQL, MySQL, MariaDB and SQLite all run; table is an
// identifier of the harness's, spliced into them.
func SnapshotTable(ctx context.Context, db *sql.DB, table string) (rollback func(context.Context) error, err error) {
	snap := table + "_snapshot"
	if _, err := db.ExecContext(ctx, "DROP TABLE IF EXISTS "+snap); err != nil {
		return nil, fmt.Errorf("drivertest: snapshot of %s: %w", table, err)
	}
	if _, err := db.ExecContext(ctx, "CREATE TABLE "+snap+" AS SELECT * FROM "+table); err != nil {
		return nil, fmt.Errorf("drivertest: snapshot of %s: %w", table, err)
	}
	return func(ctx context.Context) error {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback()
		for _, q := range []string{"DELETE FROM " + table, "INSERT INTO " + table + " SELECT * FROM " + snap} {
			if _, err := tx.ExecContext(ctx, q); err != nil {
				return fmt.Errorf("drivertest: rolling %s back: %w", table, err)
			}
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("drivertest: rolling %s back: %w", table, err)
		}
		_, err = db.ExecContext(ctx, "DROP TABLE "+snap)
		return err
	}, nil
}
