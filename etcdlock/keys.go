package etcdlock

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/distlock/distlock/driver"
)

// queuePrefix is the etcd prefix of the lock named name: every contender's
// key lies directly under it.
func (d *etcdDriver) queuePrefix(name string) string { return d.prefix + name + "/" }

// leaseKey is the key a lease puts in a queue, exactly as etcd's
// concurrency.Mutex names it: the prefix and the lease ID in lower-case hex.
func leaseKey(prefix string, id clientv3.LeaseID) string {
	return fmt.Sprintf("%s%x", prefix, int64(id))
}

// isDirectChild reports whether key is a contender for the lock whose queue
// prefix is prefix: directly under it, not under a deeper lock's prefix
// (the keys of lock "a/b" lie under "a/" too, and must not count for "a").
func isDirectChild(prefix string, key []byte) bool {
	rest, ok := strings.CutPrefix(string(key), prefix)
	return ok && rest != "" && !strings.Contains(rest, "/")
}

// value is what a distlock contender stores in its key. A holder that
// stored something else (concurrency.Mutex and etcdctl lock store nothing)
// has no token, and its owner is shown as its lease.
type value struct {
	Token string `json:"token"`
	Owner string `json:"owner,omitempty"`
}

func encodeValue(token, owner string) string {
	b, _ := json.Marshal(value{Token: token, Owner: owner})
	return string(b)
}

// holderOf describes the contender kv.
func holderOf(kv *mvccpb.KeyValue) driver.Holder {
	h := driver.Holder{Held: true, Fence: uint64(kv.CreateRevision)}
	var v value
	if json.Unmarshal(kv.Value, &v) == nil && v.Token != "" {
		h.Token, h.Owner = v.Token, v.Owner
	} else {
		h.Owner = fmt.Sprintf("etcd lease %x", kv.Lease)
	}
	return h
}

func tokenOf(kv *mvccpb.KeyValue) string {
	var v value
	if json.Unmarshal(kv.Value, &v) != nil {
		return ""
	}
	return v.Token
}

// pageSize is how many keys one range of a queue reads: enough to find the
// first direct child at once unless deeper locks crowd the queue.
const pageSize = 8

// firstOp reads the oldest keys of a queue (the holder is among them).
func firstOp(prefix string) clientv3.Op {
	return clientv3.OpGet(prefix, clientv3.WithPrefix(),
		clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend), clientv3.WithLimit(pageSize))
}

// beforeOp reads the newest keys of a queue created before rev (the
// predecessor of the key created at rev is among them).
func beforeOp(prefix string, rev int64) clientv3.Op {
	return clientv3.OpGet(prefix, clientv3.WithPrefix(), clientv3.WithMaxCreateRev(rev-1),
		clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortDescend), clientv3.WithLimit(pageSize))
}

// firstDirect finds the first direct child of prefix in a page read at
// revision rev in create-revision order (ascending, or descending below
// maxRev), reading further pages at the same revision if the page had none.
// nil means the queue has no such key.
func (d *etcdDriver) firstDirect(ctx context.Context, prefix string, page *pb.RangeResponse, rev int64, ascending bool) (*mvccpb.KeyValue, error) {
	for {
		for _, kv := range page.Kvs {
			if isDirectChild(prefix, kv.Key) {
				return kv, nil
			}
		}
		if !page.More || len(page.Kvs) == 0 {
			return nil, nil
		}
		last := page.Kvs[len(page.Kvs)-1].CreateRevision
		opts := []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithRev(rev), clientv3.WithLimit(pageSize)}
		if ascending {
			opts = append(opts, clientv3.WithMinCreateRev(last+1), clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend))
		} else {
			opts = append(opts, clientv3.WithMaxCreateRev(last-1), clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortDescend))
		}
		next, err := d.cli.Get(ctx, prefix, opts...)
		if err != nil {
			return nil, err
		}
		page = (*pb.RangeResponse)(next)
	}
}

// slot is this driver's one use of a lock name's key: one request at a time,
// the others waiting in arrival order.
type slot struct {
	busy    *entry
	waiters []*slotWaiter
}

type slotWaiter struct {
	e     *entry
	ready chan struct{} // closed when e has been given the slot
}

// entry is one request of this driver on a lock name: waiting in the queue,
// or holding the lock.
type entry struct {
	name    string // the lock's name (driver key)
	prefix  string // its queue prefix
	etcdKey string // prefix + lease ID
	token   string
	owner   string
	value   string
	lease   *lease // changed only by bind, before e writes anything
	fence   int64  // the key's create revision once written; guarded by d.mu once shared
	held    bool   // guarded by d.mu
	// releasing: a Release of this entry is in flight (guarded by d.mu).
	// Its key is not taken for gone meanwhile, so no new key of the same
	// name and lease can be written before the plain delete lands.
	releasing bool
}

func (d *etcdDriver) newEntry(req driver.AcquireRequest, l *lease) *entry {
	p := d.queuePrefix(req.Key)
	return &entry{
		name:    req.Key,
		prefix:  p,
		etcdKey: leaseKey(p, l.id),
		token:   req.Token,
		owner:   req.Owner,
		value:   encodeValue(req.Token, req.Owner),
		lease:   l,
	}
}

func (e *entry) driverLease() driver.Lease {
	return driver.Lease{Key: e.name, Token: e.token, Fence: uint64(e.fence), TTL: e.lease.ttl}
}

// trySlot gives e the slot of its name if it is free, and otherwise returns
// the entry that has it.
func (d *etcdDriver) trySlot(e *entry) (busy *entry) {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.slots[e.name]
	if s == nil {
		s = &slot{}
		d.slots[e.name] = s
	}
	if s.busy != nil {
		return s.busy
	}
	s.busy = e
	d.tokens[e.token] = e
	return nil
}

// waitSlot gives e the slot of its name, waiting in arrival order behind
// this driver's other requests for the name. On ctx's end it returns the
// entry that has the slot.
func (d *etcdDriver) waitSlot(ctx context.Context, e *entry) (*entry, error) {
	d.mu.Lock()
	s := d.slots[e.name]
	if s == nil {
		s = &slot{}
		d.slots[e.name] = s
	}
	if s.busy == nil {
		s.busy = e
		d.tokens[e.token] = e
		d.mu.Unlock()
		return nil, nil
	}
	w := &slotWaiter{e: e, ready: make(chan struct{})}
	s.waiters = append(s.waiters, w)
	d.mu.Unlock()
	select {
	case <-w.ready:
		return nil, nil
	case <-ctx.Done():
	case <-d.closing:
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	select {
	case <-w.ready: // given the slot meanwhile: pass it on
		d.dropLocked(e)
	default:
		for i, x := range s.waiters {
			if x == w {
				s.waiters = append(s.waiters[:i], s.waiters[i+1:]...)
				break
			}
		}
	}
	if ctx.Err() == nil {
		return s.busy, errClosed
	}
	return s.busy, context.Cause(ctx)
}

// drop forgets e and passes its slot on.
func (d *etcdDriver) drop(e *entry) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.dropLocked(e)
}

// dropGone drops e, whose key was found gone, unless a Release of it is in
// flight (whose plain delete must not meet a new key of the same name).
func (d *etcdDriver) dropGone(e *entry) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if e.releasing {
		return false
	}
	d.dropLocked(e)
	return true
}

func (d *etcdDriver) dropLocked(e *entry) {
	if d.tokens[e.token] == e {
		delete(d.tokens, e.token)
	}
	e.held = false
	if l := e.lease; l != nil {
		if _, ok := l.users[e]; ok {
			delete(l.users, e)
			if l.retired && len(l.users) == 0 && !l.isDead() {
				d.endLocked(l)
			}
		}
	}
	s := d.slots[e.name]
	if s == nil || s.busy != e {
		return
	}
	if len(s.waiters) == 0 {
		delete(d.slots, e.name)
		return
	}
	w := s.waiters[0]
	s.waiters = s.waiters[1:]
	s.busy = w.e
	d.tokens[w.e.token] = w.e
	close(w.ready)
}

// localHolder describes the lock e holds in this driver, for contention
// answers (nil if e only waits).
func (d *etcdDriver) localHolder(e *entry) *driver.HeldError {
	if e == nil {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if !e.held {
		return nil
	}
	return &driver.HeldError{Holder: driver.Holder{Held: true, Token: e.token, Fence: uint64(e.fence), Owner: e.owner}}
}
