package pglock

import (
	"context"
	"database/sql"
	sqldriver "database/sql/driver"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/distlock/distlock/internal/leaserow"
)

// listener is the one LISTEN connection of a driver. It is started by the
// first Subscribe and LISTENs on the channel of every key some Lock call of
// the driver waits for; a NOTIFY wakes the waiter of that key that has waited
// longest. If the connection fails it reconnects, and wakes every waiter
// (a release may have been missed meanwhile).
type listener struct {
	db *sql.DB

	mu        sync.Mutex
	subs      map[string][]*subscriber // by channel, in subscription order
	listening map[string]bool          // channels LISTENed on the current connection
	idleSince map[string]time.Time     // LISTENed channels nobody waits for
	pending   []*subscriber            // waiting for their LISTEN
	interrupt context.CancelFunc       // ends the current wait, to LISTEN or UNLISTEN
	running   bool
	closed    bool
	lastErr   error // the latest failure to (re)connect or LISTEN

	stop context.CancelFunc
	ctx  context.Context
	done chan struct{}
}

type subscriber struct {
	channel string
	wake    chan struct{} // holds at most one wake-up
}

// Channels nobody waits for stay LISTENed on for a while, so that a key
// locked again and again costs one LISTEN, not one per Lock; past
// maxIdleChannels the oldest go at once.
const (
	keepIdleChannel = 30 * time.Second
	maxIdleChannels = 256
)

func newListener(db *sql.DB) *listener {
	ctx, stop := context.WithCancel(context.Background())
	return &listener{
		db:        db,
		subs:      make(map[string][]*subscriber),
		listening: make(map[string]bool),
		idleSince: make(map[string]time.Time),
		ctx:       ctx,
		stop:      stop,
		done:      make(chan struct{}),
	}
}

var errListenerClosed = errors.New("pglock: driver closed")

// subscribe registers a waiter for key. It never waits for the server:
// when the key's channel is not LISTENed on yet, the LISTEN is sent by the
// listener's goroutine, and once it is in place the waiter gets one wake-up,
// so that it checks the key again and a release between its last attempt
// and the LISTEN is never missed. An uncontended Lock therefore pays nothing
// for its subscription.
func (l *listener) subscribe(ctx context.Context, key string) (<-chan struct{}, func(), error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	s := &subscriber{channel: leaserow.NotifyChannel(key), wake: make(chan struct{}, 1)}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil, nil, errListenerClosed
	}
	l.subs[s.channel] = append(l.subs[s.channel], s)
	delete(l.idleSince, s.channel)
	if !l.listening[s.channel] {
		l.pending = append(l.pending, s)
		if !l.running {
			l.running = true
			go l.run()
		}
		if l.interrupt != nil {
			l.interrupt()
		}
	}
	l.mu.Unlock()

	var once sync.Once
	return s.wake, func() { once.Do(func() { l.unsubscribe(s) }) }, nil
}

func (l *listener) unsubscribe(s *subscriber) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ss := slices.DeleteFunc(l.subs[s.channel], func(x *subscriber) bool { return x == s })
	if len(ss) == 0 {
		delete(l.subs, s.channel)
		if l.listening[s.channel] {
			l.idleSince[s.channel] = time.Now()
		}
	} else {
		l.subs[s.channel] = ss
	}
	l.pending = slices.DeleteFunc(l.pending, func(x *subscriber) bool { return x == s })
	// A wake-up this waiter never took goes to the next one.
	select {
	case <-s.wake:
		l.wakeOne(s.channel)
	default:
	}
}

// wakeOne wakes the longest-waiting subscriber of channel that has no
// wake-up pending; l.mu must be held.
func (l *listener) wakeOne(channel string) {
	for _, s := range l.subs[channel] {
		select {
		case s.wake <- struct{}{}:
			return
		default:
		}
	}
}

// wakeAll wakes every subscriber; l.mu must be held.
func (l *listener) wakeAll() {
	for _, ss := range l.subs {
		for _, s := range ss {
			select {
			case s.wake <- struct{}{}:
			default:
			}
		}
	}
}

// run keeps a LISTEN connection until close, reconnecting with back-off.
func (l *listener) run() {
	defer close(l.done)
	backoff := 50 * time.Millisecond
	for l.ctx.Err() == nil {
		err := l.session()
		if l.ctx.Err() != nil {
			break
		}
		l.mu.Lock()
		l.lastErr = err
		clear(l.listening)
		clear(l.idleSince)
		// Every waiter checks again (a release may have been missed), and
		// then waits on its timer until a connection is back.
		l.pending = l.pending[:0]
		for _, ss := range l.subs {
			l.pending = append(l.pending, ss...)
		}
		l.wakeAll()
		l.mu.Unlock()
		select {
		case <-l.ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// session runs one connection's life: it takes a connection of the pool out
// for good, and discards it at the end (it has LISTENs on it).
func (l *listener) session() error {
	conn, err := l.db.Conn(l.ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	var loopErr error
	rawErr := conn.Raw(func(dc any) error {
		sc, ok := dc.(*stdlib.Conn)
		if !ok {
			loopErr = fmt.Errorf("pglock: the *sql.DB's driver is %T, not pgx's stdlib: waiters poll", dc)
			return nil
		}
		loopErr = l.loop(sc.Conn())
		return sqldriver.ErrBadConn // never back to the pool
	})
	if loopErr != nil {
		return loopErr
	}
	if rawErr != nil && !errors.Is(rawErr, sqldriver.ErrBadConn) {
		return rawErr
	}
	return nil
}

// loop LISTENs and UNLISTENs as subscribers come and go, and dispatches
// notifications, until the connection fails or the listener closes.
func (l *listener) loop(pc *pgx.Conn) error {
	for {
		if err := l.sync(pc); err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(l.ctx, keepIdleChannel)
		l.mu.Lock()
		l.interrupt = cancel
		dirty := len(l.pending) > 0
		l.mu.Unlock()
		if dirty {
			cancel()
		}
		n, err := pc.WaitForNotification(ctx)
		cancel()
		l.mu.Lock()
		l.interrupt = nil
		l.mu.Unlock()
		switch {
		case err == nil:
			l.mu.Lock()
			l.wakeOne(n.Channel)
			l.mu.Unlock()
		case l.ctx.Err() != nil:
			return nil
		case ctx.Err() != nil && !pc.IsClosed():
			// Interrupted to change the channel list, or time to let idle
			// channels go.
		default:
			return err
		}
	}
}

// sync brings the connection's LISTENs in line with the subscribers. The
// channel names are made by NotifyChannel (letters, digits, _), so they need
// no quoting.
func (l *listener) sync(pc *pgx.Conn) error {
	l.mu.Lock()
	var add, drop []string
	for ch := range l.subs {
		if !l.listening[ch] {
			add = append(add, ch)
		}
	}
	now := time.Now()
	for ch, since := range l.idleSince {
		if now.Sub(since) >= keepIdleChannel || len(l.idleSince) > maxIdleChannels {
			drop = append(drop, ch)
		}
	}
	l.mu.Unlock()

	ctx, cancel := context.WithTimeout(l.ctx, 10*time.Second)
	defer cancel()
	for _, ch := range drop {
		l.mu.Lock()
		still := len(l.subs[ch]) == 0
		if still {
			delete(l.idleSince, ch)
			delete(l.listening, ch)
		}
		l.mu.Unlock()
		if !still {
			continue
		}
		if _, err := pc.Exec(ctx, "UNLISTEN "+ch); err != nil {
			return err
		}
	}
	for _, ch := range add {
		if _, err := pc.Exec(ctx, "LISTEN "+ch); err != nil {
			return err
		}
		l.mu.Lock()
		l.listening[ch] = true
		if len(l.subs[ch]) == 0 {
			l.idleSince[ch] = time.Now()
		}
		l.pending = slices.DeleteFunc(l.pending, func(s *subscriber) bool {
			if s.channel == ch {
				select { // check again now that releases are heard
				case s.wake <- struct{}{}:
				default:
				}
				return true
			}
			return false
		})
		l.mu.Unlock()
	}
	return nil
}

// close stops the listener and waits for its connection to be discarded.
func (l *listener) close() {
	l.mu.Lock()
	l.closed = true
	running := l.running
	l.mu.Unlock()
	l.stop()
	if running {
		<-l.done
	}
}
