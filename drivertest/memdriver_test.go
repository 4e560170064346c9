package drivertest_test

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/distlock/distlock/driver"
)

// memStore is an in-memory lock store, the test double the suite is tested
// against. Several memDrivers share one store, as several processes share a
// server. Expiry is by time.Now; fences come from a per-key counter that
// survives releases and evictions.
type memStore struct {
	broken string // a mutation (see brokenDrivers), or "" for a correct store

	mu     sync.Mutex
	locks  map[string]memLock
	fences map[string]uint64
	subs   map[string]map[chan struct{}]struct{}
}

type memLock struct {
	token, owner string
	fence        uint64
	ttl          time.Duration
	expires      time.Time
}

func newMemStore() *memStore { return newBrokenMemStore("") }

func newBrokenMemStore(broken string) *memStore {
	return &memStore{
		broken: broken,
		locks:  make(map[string]memLock),
		fences: make(map[string]uint64),
		subs:   make(map[string]map[chan struct{}]struct{}),
	}
}

// norm is how the store compares keys.
func (s *memStore) norm(key string) string {
	if s.broken == "fold-case" {
		return strings.ToLower(key)
	}
	return key
}

// held returns key's lock if it has not expired. s.mu must be held.
func (s *memStore) held(key string, now time.Time) (memLock, bool) {
	l, ok := s.locks[key]
	if ok && !now.Before(l.expires) {
		delete(s.locks, key)
		return memLock{}, false
	}
	return l, ok
}

// free deletes key's lock and wakes its waiters. s.mu must be held.
func (s *memStore) free(key string) {
	delete(s.locks, key)
	for ch := range s.subs[key] {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// evict removes key's lock behind its holder's back.
func (s *memStore) evict(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key = s.norm(key)
	s.free(key)
	if s.broken == "fence-resets" {
		delete(s.fences, key)
	}
}

// snapshot copies the store's locks and fences; the function it returns
// puts them back.
func (s *memStore) snapshot() func() {
	s.mu.Lock()
	defer s.mu.Unlock()
	locks, fences := maps.Clone(s.locks), maps.Clone(s.fences)
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.locks, s.fences = maps.Clone(locks), maps.Clone(fences)
	}
}

// memDriver is one connection to a memStore.
type memDriver struct {
	s      *memStore
	closed atomic.Bool
}

var errMemClosed = fmt.Errorf("memdriver: driver is closed: %w", driver.ErrUnavailable)

func (d *memDriver) Info() driver.Info {
	return driver.Info{Name: "memory", MinTTL: 10 * time.Millisecond}
}

func (d *memDriver) Acquire(ctx context.Context, req driver.AcquireRequest) (driver.Lease, error) {
	if d.closed.Load() {
		return driver.Lease{}, errMemClosed
	}
	s := d.s
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	key := s.norm(req.Key)
	if l, ok := s.held(key, now); ok && s.broken != "no-exclusion" {
		if l.token == req.Token && s.broken != "acquire-not-idempotent" {
			return driver.Lease{Key: req.Key, Token: req.Token, Fence: l.fence, TTL: l.ttl}, nil
		}
		return driver.Lease{}, &driver.HeldError{Holder: driver.Holder{
			Held: true, Token: l.token, Fence: l.fence, Owner: l.owner, TTL: l.expires.Sub(now),
		}}
	}
	if s.broken == "check-then-set" {
		// Decide, then write in a second step, as a read followed by an
		// unconditional write would: another acquire can slip in between.
		s.mu.Unlock()
		time.Sleep(time.Microsecond)
		s.mu.Lock()
	}
	// The fence rule: one more than the last, and never below the clock,
	// so that a store rolled back to an older snapshot hands out no fence
	// twice.
	s.fences[key]++
	counterOnly := s.broken == "fence-counter" || s.broken == "fence-resets"
	if now := uint64(now.UnixMicro()); !counterOnly && s.fences[key] < now {
		s.fences[key] = now
	}
	l := memLock{token: req.Token, owner: req.Owner, fence: s.fences[key], ttl: req.TTL, expires: now.Add(req.TTL)}
	s.locks[key] = l
	return driver.Lease{Key: req.Key, Token: req.Token, Fence: l.fence, TTL: req.TTL}, nil
}

func (d *memDriver) Release(ctx context.Context, lease driver.Lease) error {
	if d.closed.Load() {
		return errMemClosed
	}
	s := d.s
	s.mu.Lock()
	defer s.mu.Unlock()
	key := s.norm(lease.Key)
	if l, ok := s.held(key, time.Now()); !ok || (l.token != lease.Token && s.broken != "release-any-token") {
		return fmt.Errorf("memdriver: release %q: %w", lease.Key, driver.ErrNotHeld)
	}
	s.free(key)
	return nil
}

func (d *memDriver) Renew(ctx context.Context, leases []driver.Lease) ([]error, error) {
	if d.closed.Load() {
		return nil, errMemClosed
	}
	s := d.s
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	res := make([]error, len(leases))
	for i, lease := range leases {
		key := s.norm(lease.Key)
		l, ok := s.held(key, now)
		switch {
		case s.broken == "renew-resurrects" && !ok:
			l = memLock{token: lease.Token, fence: lease.Fence, ttl: lease.TTL}
		case s.broken == "renew-any-token" && ok:
		case !ok || l.token != lease.Token:
			res[i] = fmt.Errorf("memdriver: renew %q: %w", lease.Key, driver.ErrNotHeld)
			continue
		}
		l.expires = now.Add(l.ttl)
		s.locks[key] = l
	}
	return res, nil
}

func (d *memDriver) Inspect(ctx context.Context, key string) (driver.Holder, error) {
	if d.closed.Load() {
		return driver.Holder{}, errMemClosed
	}
	s := d.s
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	l, ok := s.held(s.norm(key), now)
	if !ok {
		return driver.Holder{}, nil
	}
	h := driver.Holder{Held: true, Token: l.token, Fence: l.fence, Owner: l.owner, TTL: l.expires.Sub(now)}
	if s.broken == "no-owner" {
		h.Owner = ""
	}
	return h, nil
}

func (d *memDriver) Close() error {
	d.closed.Store(true)
	return nil
}

// memNotifyDriver adds wake-ups of waiters on release (driver.Notifier).
type memNotifyDriver struct{ *memDriver }

func (d memNotifyDriver) Subscribe(ctx context.Context, key string) (<-chan struct{}, func(), error) {
	if d.closed.Load() {
		return nil, nil, errMemClosed
	}
	s := d.s
	ch := make(chan struct{}, 1)
	s.mu.Lock()
	if s.subs[key] == nil {
		s.subs[key] = make(map[chan struct{}]struct{})
	}
	s.subs[key][ch] = struct{}{}
	s.mu.Unlock()
	var once sync.Once
	cancel := func() {
		once.Do(func() {
			s.mu.Lock()
			delete(s.subs[key], ch)
			if len(s.subs[key]) == 0 {
				delete(s.subs, key)
			}
			s.mu.Unlock()
		})
	}
	return ch, cancel, nil
}
