package leaserow

import (
	"context"
	"database/sql"
	sqldriver "database/sql/driver"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/distlock/distlock/driver"
)

// DefaultSessionTable is the lock table's name in session mode when none is
// given: a table of its own, since a session-mode acquire takes over a row
// whose holder has no beacon, which a lease-row holder never has.
const DefaultSessionTable = "distlock_session_locks"

// Beacon is the SQL of a session mode's beacons: a session-level lock
// (PostgreSQL advisory lock, MySQL GET_LOCK) named after a holder's token
// and held on a connection of the holder's own for as long as it holds the
// lock. The database drops it when that connection ends, and the session
// dialect's statements treat a row whose holder has no beacon as free.
type Beacon struct {
	// Lock takes the beacon of the token it binds, without waiting, and
	// returns one boolean: whether it was taken.
	Lock string
	// Unlock releases the beacon of the token it binds.
	Unlock string
}

// SessionStore is a Store in session mode: the mutual exclusion, the fence
// and the TTL are the lease row's, as in lease-row mode, and each lock this
// Store takes also keeps its beacon on a connection taken out of the pool
// for it, so the lock ends as soon as that connection dies. The Store's
// Dialect must be a session dialect (PostgresSession, MySQLSession), whose
// Acquire, Renew and Inspect check beacons.
//
// Round trips: Acquire 2 (the beacon, then the upsert on the beacon's
// connection; plus a connect when the pool has no idle connection), Release
// 2 (the row, then the beacon), Renew and Inspect 1, as in lease-row mode.
type SessionStore struct {
	*Store
	beacon  Beacon
	beacons *sql.DB // where beacon connections come from

	mu     sync.Mutex
	held   map[string]*sql.Conn // the beacon's connection, by token
	closed bool
	drops  sync.WaitGroup // beacons being let go of in the background
}

// NewSession makes a SessionStore over s, which must use a session dialect.
// Beacon connections come from beacons, a handle on the same database (nil:
// s's own): each held lock keeps one of its connections, so it should not
// be a pool whose size other statements depend on.
func NewSession(s *Store, b Beacon, beacons *sql.DB) (*SessionStore, error) {
	if b.Lock == "" || b.Unlock == "" {
		return nil, errors.New("leaserow: incomplete Beacon")
	}
	if beacons == nil {
		beacons = s.db
	}
	return &SessionStore{Store: s, beacon: b, beacons: beacons, held: make(map[string]*sql.Conn)}, nil
}

var errSessionClosed = fmt.Errorf("%w: driver closed", driver.ErrUnavailable)

// Acquire implements driver.Driver: it takes a connection out of the pool,
// takes the token's beacon on it, and runs the session upsert on the same
// connection, so the row is only ever written by a live holder. A retried
// request whose first attempt succeeded (this Store keeps the token's
// beacon connection) runs the upsert through the pool and returns the
// lease if the token holds the key.
//
// A lock is only ever handed out on a beacon connection this Store keeps.
// When the upsert's outcome is unknown, the connection is given up, and
// the session may live on at the server for a while, beacon included (the
// server has not noticed that the network failed): the error is ambiguous,
// and Inspect, which the read-back uses, does not report the token as the
// holder, so the lock is not handed out on a session that will end behind
// its holder's back. A retry whose beacon is held by another session (such
// an abandoned earlier attempt) releases the token's row through the pool
// and fails with an error wrapping driver.ErrRetry.
func (s *SessionStore) Acquire(ctx context.Context, req driver.AcquireRequest) (driver.Lease, error) {
	s.mu.Lock()
	closed, mine := s.closed, s.held[req.Token] != nil
	s.mu.Unlock()
	if closed {
		return driver.Lease{}, errSessionClosed
	}
	if mine {
		return s.Store.Acquire(ctx, req)
	}
	conn, err := s.beacons.Conn(ctx)
	if err != nil {
		return driver.Lease{}, fmt.Errorf("%w: %w", driver.ErrUnavailable, err)
	}
	var taken bool
	if err := conn.QueryRowContext(ctx, s.beacon.Lock, req.Token).Scan(&taken); err != nil {
		// Nothing was written: a beacon taken on this connection goes
		// with it.
		discard(conn)
		return driver.Lease{}, fmt.Errorf("%w: taking the beacon: %w", driver.ErrUnavailable, err)
	}
	if !taken {
		conn.Close()
		return driver.Lease{}, s.abandoned(ctx, req)
	}
	lease, err := s.Store.acquireOn(ctx, conn, req)
	if err != nil {
		if errors.Is(err, driver.ErrLocked) && s.unlock(ctx, conn, req.Token) == nil {
			conn.Close()
		} else {
			// The outcome is unknown: dropping the connection drops the
			// beacon, so a row written for this token is free at once.
			discard(conn)
		}
		return driver.Lease{}, err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		discard(conn)
		return driver.Lease{}, errSessionClosed
	}
	s.held[req.Token] = conn
	s.mu.Unlock()
	return lease, nil
}

// abandoned answers an acquire whose token's beacon another session holds:
// an earlier attempt with this token whose connection was given up, and
// whose session the server has not ended yet. The row that attempt may have
// written is released through the pool, so the key does not wait for the
// session's end.
func (s *SessionStore) abandoned(ctx context.Context, req driver.AcquireRequest) error {
	err := s.Store.Release(ctx, driver.Lease{Key: req.Key, Token: req.Token})
	if err != nil && !errors.Is(err, driver.ErrNotHeld) {
		// Unknown whether the row is still ours: the caller reads back.
		return fmt.Errorf("the beacon of this token is held by an abandoned session, and releasing its row failed: %w", err)
	}
	return fmt.Errorf("%w: the beacon of this token is held by an abandoned session (its row is released)", driver.ErrRetry)
}

// Inspect implements driver.Driver: the Store's read, except that the
// holder's token shows only when this Store keeps that token's beacon
// connection (Holder.Token serves the read-back of an acquire, which may
// hand the lock out only on such a connection).
func (s *SessionStore) Inspect(ctx context.Context, key string) (driver.Holder, error) {
	h, err := s.Store.Inspect(ctx, key)
	if err != nil || h.Token == "" {
		return h, err
	}
	s.mu.Lock()
	mine := s.held[h.Token] != nil
	s.mu.Unlock()
	if !mine {
		h.Token = ""
	}
	return h, nil
}

// Release implements driver.Driver: it frees the row (through the pool, so
// any driver can release by token), then lets go of the beacon if this
// Store holds it, whatever the row's answer: without its beacon the row is
// free for others at once, which is what a release wants, and a retried
// release still finds the row by token.
func (s *SessionStore) Release(ctx context.Context, l driver.Lease) error {
	err := s.Store.Release(ctx, l)
	s.drop(ctx, l.Token)
	return err
}

// Renew implements driver.Driver: one batch statement through the pool, as
// in lease-row mode, that extends only leases whose beacon is held. A lease
// found lost lets go of its beacon.
func (s *SessionStore) Renew(ctx context.Context, leases []driver.Lease) ([]error, error) {
	res, err := s.Store.Renew(ctx, leases)
	if err != nil {
		return nil, err
	}
	for i, e := range res {
		if errors.Is(e, driver.ErrNotHeld) {
			s.drop(ctx, leases[i].Token)
		}
	}
	return res, nil
}

// drop lets go of token's beacon, if this Store holds it: unlocked and
// back to the pool (one round trip, within ctx), or, if that fails or ctx
// has ended, the connection closed in the background (Close waits for it),
// so that Release and Renew return by their ctx whatever the beacon's
// connection is doing.
func (s *SessionStore) drop(ctx context.Context, token string) {
	s.mu.Lock()
	conn := s.held[token]
	delete(s.held, token)
	s.mu.Unlock()
	if conn == nil {
		return
	}
	if ctx.Err() == nil {
		uctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := s.unlock(uctx, conn, token)
		cancel()
		if err == nil {
			conn.Close()
			return
		}
	}
	s.drops.Add(1)
	go func() {
		defer s.drops.Done()
		discard(conn)
	}()
}

func (s *SessionStore) unlock(ctx context.Context, conn *sql.Conn, token string) error {
	var released bool
	if err := conn.QueryRowContext(ctx, s.beacon.Unlock, token).Scan(&released); err != nil {
		return err
	}
	if !released {
		return errors.New("leaserow: the beacon was not held")
	}
	return nil
}

// discard closes conn for good rather than returning it to the pool.
func discard(conn *sql.Conn) {
	conn.Raw(func(any) error { return sqldriver.ErrBadConn })
	conn.Close()
}

// Held reports how many beacons this Store holds (for tests).
func (s *SessionStore) Held() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.held)
}

// Close implements driver.Driver: every beacon connection is closed (the
// database drops the beacons with them), then the Store.
func (s *SessionStore) Close() error {
	s.mu.Lock()
	s.closed = true
	conns := s.held
	s.held = make(map[string]*sql.Conn)
	s.mu.Unlock()
	for _, c := range conns {
		discard(c)
	}
	s.drops.Wait()
	return s.Store.Close()
}

var (
	_ driver.Driver = (*SessionStore)(nil)
	_ driver.Purger = (*SessionStore)(nil)
)
