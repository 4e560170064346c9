package once_test

import (
	"context"
	"database/sql/driver"
	"errors"
	"io"
	"strings"
	"sync"
)

// errInjected is what a faultConn returns in place of an answer it threw
// away: the statement ran and committed, the caller never learns it.
var errInjected = errors.New("injected fault: connection lost after the statement ran")

// injector decides which statements lose their answer: the next n whose text
// contains match; and which one's answer comes late: the next whose text
// contains lateMatch.
type injector struct {
	mu        sync.Mutex
	match     string
	n         int
	hits      int
	sent      int // statements sent to the database (round trips, for benchmarks)
	lateMatch string
	late      func() // runs after the statement ran, before its answer is passed on
}

// armLate holds back the answer of the next statement whose text contains
// match, once it has run (and committed), while during runs.
func (in *injector) armLate(match string, during func()) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.lateMatch, in.late = match, during
}

// takeLate returns what to run before passing on query's answer, or nil.
func (in *injector) takeLate(query string) func() {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.late == nil || !strings.Contains(query, in.lateMatch) {
		return nil
	}
	f := in.late
	in.late = nil
	return f
}

func (in *injector) arm(match string, n int) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.match, in.n = match, n
}

func (in *injector) take(query string) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.sent++
	if in.n > 0 && in.match != "" && strings.Contains(query, in.match) {
		in.n--
		in.hits++
		return true
	}
	return false
}

func (in *injector) statements() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.sent
}

func (in *injector) count() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.hits
}

// faultConnector wraps a real driver's connector: statements reach the real
// database, and the injector may throw their answers away.
type faultConnector struct {
	inner driver.Connector
	in    *injector
}

func (c *faultConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.inner.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return &faultConn{inner: conn, in: c.in}, nil
}

func (c *faultConnector) Driver() driver.Driver { return c.inner.Driver() }

type faultConn struct {
	inner driver.Conn
	in    *injector
	mu    sync.Mutex
	bad   bool // an answer was thrown away: the pool must drop this connection
}

func (c *faultConn) markBad() { c.mu.Lock(); c.bad = true; c.mu.Unlock() }

func (c *faultConn) IsValid() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if v, ok := c.inner.(driver.Validator); ok && !v.IsValid() {
		return false
	}
	return !c.bad
}

func (c *faultConn) ResetSession(ctx context.Context) error {
	if !c.IsValid() {
		return driver.ErrBadConn
	}
	if r, ok := c.inner.(driver.SessionResetter); ok {
		return r.ResetSession(ctx)
	}
	return nil
}

func (c *faultConn) Prepare(query string) (driver.Stmt, error) {
	return c.PrepareContext(context.Background(), query)
}

func (c *faultConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	var st driver.Stmt
	var err error
	if p, ok := c.inner.(driver.ConnPrepareContext); ok {
		st, err = p.PrepareContext(ctx, query)
	} else {
		st, err = c.inner.Prepare(query)
	}
	if err != nil {
		return nil, err
	}
	return &faultStmt{inner: st, query: query, c: c}, nil
}

func (c *faultConn) Close() error              { return c.inner.Close() }
func (c *faultConn) Begin() (driver.Tx, error) { return nil, errors.New("faultConn: no transactions") }

func (c *faultConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	e, ok := c.inner.(driver.ExecerContext)
	if !ok {
		return nil, driver.ErrSkip
	}
	res, err := e.ExecContext(ctx, query, args)
	if err == nil && c.in.take(query) {
		c.markBad()
		return nil, errInjected
	}
	if late := c.in.takeLate(query); err == nil && late != nil {
		late()
	}
	return res, err
}

func (c *faultConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	q, ok := c.inner.(driver.QueryerContext)
	if !ok {
		return nil, driver.ErrSkip
	}
	rows, err := q.QueryContext(ctx, query, args)
	if err == nil && c.in.take(query) {
		c.markBad()
		drain(rows)
		return nil, errInjected
	}
	return c.in.delay(query, rows, err)
}

// delay holds query's answer back while the injector's late hook runs, if
// it is armed for query: the rows are read first, so that the statement has
// surely completed.
func (in *injector) delay(query string, rows driver.Rows, err error) (driver.Rows, error) {
	late := in.takeLate(query)
	if err != nil || late == nil {
		return rows, err
	}
	r := &readRows{cols: rows.Columns()}
	for {
		dest := make([]driver.Value, len(r.cols))
		if rows.Next(dest) != nil {
			break
		}
		r.rows = append(r.rows, dest)
	}
	rows.Close()
	late()
	return r, nil
}

// readRows replays rows read ahead.
type readRows struct {
	cols []string
	rows [][]driver.Value
}

func (r *readRows) Columns() []string { return r.cols }
func (r *readRows) Close() error      { return nil }

func (r *readRows) Next(dest []driver.Value) error {
	if len(r.rows) == 0 {
		return io.EOF
	}
	copy(dest, r.rows[0])
	r.rows = r.rows[1:]
	return nil
}

// drain reads every row, so the statement has surely completed (and, in
// autocommit, committed) before its answer is thrown away.
func drain(rows driver.Rows) {
	dest := make([]driver.Value, len(rows.Columns()))
	for rows.Next(dest) != io.EOF {
	}
	rows.Close()
}

type faultStmt struct {
	inner driver.Stmt
	query string
	c     *faultConn
}

func (s *faultStmt) Close() error  { return s.inner.Close() }
func (s *faultStmt) NumInput() int { return s.inner.NumInput() }

func (s *faultStmt) Exec(args []driver.Value) (driver.Result, error) {
	return nil, errors.New("faultStmt: use ExecContext")
}

func (s *faultStmt) Query(args []driver.Value) (driver.Rows, error) {
	return nil, errors.New("faultStmt: use QueryContext")
}

func (s *faultStmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	res, err := s.inner.(driver.StmtExecContext).ExecContext(ctx, args)
	if err == nil && s.c.in.take(s.query) {
		s.c.markBad()
		return nil, errInjected
	}
	if late := s.c.in.takeLate(s.query); err == nil && late != nil {
		late()
	}
	return res, err
}

func (s *faultStmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	rows, err := s.inner.(driver.StmtQueryContext).QueryContext(ctx, args)
	if err == nil && s.c.in.take(s.query) {
		s.c.markBad()
		drain(rows)
		return nil, errInjected
	}
	return s.c.in.delay(s.query, rows, err)
}
