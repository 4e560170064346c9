package pglock

import (
	"context"
	"database/sql"
	"errors"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/distlock/distlock/internal/leaserow"
)

// native runs the hot-path statements on the pgx pool itself rather than
// through database/sql (see leaserow.Config.Native).
type native struct{ pool *pgxpool.Pool }

func (n native) QueryRow(ctx context.Context, query string, args ...any) leaserow.Row {
	return n.pool.QueryRow(ctx, query, args...)
}

func (n native) Exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	tag, err := n.pool.Exec(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return rowsAffected(tag.RowsAffected()), nil
}

// rowsAffected is a command tag's row count as a sql.Result.
type rowsAffected int64

func (n rowsAffected) RowsAffected() (int64, error) { return int64(n), nil }

func (rowsAffected) LastInsertId() (int64, error) {
	return 0, errors.New("pglock: PostgreSQL has no last insert id")
}
