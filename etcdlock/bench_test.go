package etcdlock_test

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/etcdlock"
	"github.com/distlock/distlock/internal/etcdtest"
)

// requestCounts counts the requests an etcd client sends: all of them
// (unary calls, and messages sent on streams: a keep-alive, a watch
// request), and the unary calls alone.
type requestCounts struct {
	all, unary atomic.Int64
}

// countingClient is an etcd client that counts the requests it sends in n.
func countingClient(tb testing.TB, c *etcdtest.Cluster, n *requestCounts) *clientv3.Client {
	tb.Helper()
	unary := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		n.all.Add(1)
		n.unary.Add(1)
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	stream := func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		s, err := streamer(ctx, desc, cc, method, opts...)
		if err != nil {
			return nil, err
		}
		return countingStream{s, &n.all}, nil
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   c.Endpoints(),
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
		DialOptions: []grpc.DialOption{grpc.WithChainUnaryInterceptor(unary), grpc.WithChainStreamInterceptor(stream)},
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { cli.Close() })
	return cli
}

// BenchmarkEtcd runs every etcd benchmark on one embedded member, so their
// numbers compare: the floor (a Txn that puts a key bound to a lease if it
// is absent, and a delete), distlock TryLock+Unlock and
// concurrency.Mutex Lock+Unlock (session reused) uncontended, then both
// with 8 and 64 contenders taking turns on one name, each with its own
// client and lease.
//
//	go test -run '^$' -bench BenchmarkEtcd -benchtime 2s ./etcdlock/
func BenchmarkEtcd(b *testing.B) {
	c := etcdtest.Start(b)
	ctx := context.Background()

	b.Run("Floor", func(b *testing.B) {
		var n requestCounts
		cli := countingClient(b, c, &n)
		lease, err := cli.Grant(ctx, 15)
		if err != nil {
			b.Fatal(err)
		}
		start := n.all.Load()
		for b.Loop() {
			if _, err := cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision("bench/floor/"), "=", 0).WithPrefix()).
				Then(clientv3.OpPut("bench/floor/k", "v", clientv3.WithLease(lease.ID))).Commit(); err != nil {
				b.Fatal(err)
			}
			if _, err := cli.Delete(ctx, "bench/floor/k"); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(n.all.Load()-start)/float64(b.N), "requests/op")
	})

	b.Run("Distlock/Uncontended", func(b *testing.B) {
		var n requestCounts
		cl, err := etcdlock.New(countingClient(b, c, &n), nil)
		if err != nil {
			b.Fatal(err)
		}
		defer cl.Close()
		if l, err := cl.TryLock(ctx, "bench/dl"); err != nil { // grants the lease
			b.Fatal(err)
		} else {
			l.Unlock(ctx)
		}
		start := n.all.Load()
		for b.Loop() {
			l, err := cl.TryLock(ctx, "bench/dl")
			if err != nil {
				b.Fatal(err)
			}
			if err := l.Unlock(ctx); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(n.all.Load()-start)/float64(b.N), "requests/op")
	})

	b.Run("Mutex/Uncontended", func(b *testing.B) {
		var n requestCounts
		s, err := concurrency.NewSession(countingClient(b, c, &n), concurrency.WithTTL(15))
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		m := concurrency.NewMutex(s, "bench/mutex")
		start := n.all.Load()
		for b.Loop() {
			if err := m.Lock(ctx); err != nil {
				b.Fatal(err)
			}
			if err := m.Unlock(ctx); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(n.all.Load()-start)/float64(b.N), "requests/op")
	})

	for _, contenders := range []int{8, 64} {
		b.Run(fmt.Sprintf("Distlock/Contended%d", contenders), func(b *testing.B) {
			lockers := make([]locker, contenders)
			for i := range lockers {
				cl, err := etcdlock.New(c.Client(b), nil)
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { cl.Close() })
				lockers[i] = func(ctx context.Context) (func() error, error) {
					l, err := cl.Lock(ctx, fmt.Sprintf("bench/dl%d", contenders))
					if err != nil {
						return nil, err
					}
					return func() error { return l.Unlock(ctx) }, nil
				}
			}
			contend(b, lockers)
		})
		b.Run(fmt.Sprintf("Mutex/Contended%d", contenders), func(b *testing.B) {
			lockers := make([]locker, contenders)
			for i := range lockers {
				s, err := concurrency.NewSession(c.Client(b), concurrency.WithTTL(15))
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { s.Close() })
				m := concurrency.NewMutex(s, fmt.Sprintf("bench/mutex%d", contenders))
				lockers[i] = func(ctx context.Context) (func() error, error) {
					if err := m.Lock(ctx); err != nil {
						return nil, err
					}
					return func() error { return m.Unlock(ctx) }, nil
				}
			}
			contend(b, lockers)
		})
	}
}

// locker takes a lock and returns its unlock.
type locker func(context.Context) (unlock func() error, err error)

// contend runs b.N critical sections (empty ones) spread over the
// contenders, each taking the lock again as soon as it released it, and
// reports hand-offs per second, the waits' p50 and p99, fairness (Jain's
// index of the contenders' shares: 1 is perfectly even) and how many
// hand-offs went to a contender other than the one that waited longest
// (FIFO violations).
func contend(b *testing.B, lockers []locker) {
	ctx := context.Background()
	var (
		left    atomic.Int64
		mu      sync.Mutex
		waits   []time.Duration
		counts  = make([]int, len(lockers))
		started = make([]time.Time, len(lockers)) // when each began waiting
		waiting = make([]bool, len(lockers))
		unfair  int
		inside  atomic.Int32
		overlap atomic.Int32
	)
	left.Store(int64(b.N))
	b.ResetTimer()
	begin := time.Now()
	var wg sync.WaitGroup
	for i, lock := range lockers {
		wg.Go(func() {
			for left.Add(-1) >= 0 {
				t0 := time.Now()
				mu.Lock()
				started[i], waiting[i] = t0, true
				mu.Unlock()
				unlock, err := lock(ctx)
				if err != nil {
					b.Error(err)
					return
				}
				got := time.Now()
				if inside.Add(1) != 1 {
					overlap.Add(1)
				}
				mu.Lock()
				waiting[i] = false
				for j := range waiting {
					if waiting[j] && started[j].Before(t0) {
						unfair++ // someone who waited longer was passed over
						break
					}
				}
				waits = append(waits, got.Sub(t0))
				counts[i]++
				mu.Unlock()
				inside.Add(-1)
				if err := unlock(); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(begin)
	b.StopTimer()
	if n := overlap.Load(); n > 0 {
		b.Errorf("%d critical sections overlapped", n)
	}
	slices.Sort(waits)
	at := func(q float64) float64 {
		if len(waits) == 0 {
			return 0
		}
		return float64(waits[min(len(waits)-1, int(q*float64(len(waits))))].Microseconds()) / 1000
	}
	var sum, sq float64
	for _, n := range counts {
		sum += float64(n)
		sq += float64(n) * float64(n)
	}
	jain := 1.0
	if sq > 0 {
		jain = sum * sum / (float64(len(counts)) * sq)
	}
	b.ReportMetric(float64(len(waits))/elapsed.Seconds(), "handoffs/s")
	b.ReportMetric(at(0.5), "wait-p50-ms")
	b.ReportMetric(at(0.99), "wait-p99-ms")
	b.ReportMetric(math.Round(jain*1000)/1000, "fairness")
	b.ReportMetric(float64(unfair)/float64(max(1, len(waits))), "non-fifo/op")
}

type countingStream struct {
	grpc.ClientStream
	n *atomic.Int64
}

func (s countingStream) SendMsg(m any) error {
	s.n.Add(1)
	return s.ClientStream.SendMsg(m)
}

// TestRoundTrips pins the requests of the uncontended paths: TryLock+Unlock
// and Lock+Unlock are two each (a Txn and a delete), the lease granted once.
func TestRoundTrips(t *testing.T) {
	t.Parallel()
	c := etcdtest.Start(t)
	ctx := t.Context()
	var n requestCounts
	cl, err := etcdlock.New(countingClient(t, c, &n), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if l, err := cl.TryLock(ctx, "rt/warm"); err != nil { // grants the lease
		t.Fatal(err)
	} else {
		l.Unlock(ctx)
	}
	const rounds = 20
	for _, op := range []struct {
		name string
		lock func(context.Context, string, ...distlock.LockOption) (*distlock.Lock, error)
	}{{"TryLock", cl.TryLock}, {"Lock", cl.Lock}} {
		start := n.unary.Load()
		for i := range rounds {
			l, err := op.lock(ctx, fmt.Sprintf("rt/%s", op.name))
			if err != nil {
				t.Fatalf("%s %d: %v", op.name, i, err)
			}
			if err := l.Unlock(ctx); err != nil {
				t.Fatalf("%s %d: Unlock: %v", op.name, i, err)
			}
		}
		if got := float64(n.unary.Load()-start) / rounds; got != 2 {
			t.Errorf("%s+Unlock: %.2f requests each, want 2", op.name, got)
		}
	}
}
