package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/distlock/distlock/internal/benchrun"
	"github.com/distlock/distlock/internal/testserver"
)

// TestSideBySide is the side-by-side benchmark of distlock against the floor
// and the peer libraries, on one private redis-server, contenders taking
// turns in slices so machine noise hits them alike. It prints Markdown
// tables. It runs only when DISTLOCK_BENCH=1 (make bench-peers):
//
//	DISTLOCK_BENCH=1 go test -run '^TestSideBySide$' -count=1 -v .
//
// Knobs: DISTLOCK_BENCH_SLICE (one contender's turn, default 1s),
// DISTLOCK_BENCH_ROUNDS (turns per contender, default 5),
// DISTLOCK_BENCH_CONTENDED (goroutine counts, default "8,64"; "none" runs
// the uncontended table only).
func TestSideBySide(t *testing.T) {
	benchrun.SkipUnlessEnabled(t, "make bench-peers")
	slice := envDuration(t, "DISTLOCK_BENCH_SLICE", time.Second)
	rounds := envInt(t, "DISTLOCK_BENCH_ROUNDS", 5)
	counts := []int{8, 64}
	if s := os.Getenv("DISTLOCK_BENCH_CONTENDED"); s == "none" {
		counts = nil
	} else if s != "" {
		counts = nil
		for f := range splitComma(s) {
			n, err := strconv.Atoi(f)
			if err != nil || n < 2 {
				t.Fatalf("DISTLOCK_BENCH_CONTENDED=%q: want goroutine counts such as 8,64", s)
			}
			counts = append(counts, n)
		}
	}
	srv := testserver.StartRedis(t, testserver.Private())
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer admin.Close()
	out := io.Writer(os.Stdout)

	fmt.Fprintf(out, "\nredis-server on loopback, %d rounds of %v slices per contender, contenders alternating; GOMAXPROCS=%d\n",
		rounds, slice, runtimeProcs())
	fmt.Fprintf(out, "Command: make bench-peers BENCH_SLICE=%v BENCH_ROUNDS=%d\n\n", slice, rounds)

	// Uncontended: one goroutine, lock and unlock in a loop.
	uncontended := []contender{floorContender, distlockContender, distlockPlainContender, driverContender, redsyncDefault, bsmTuned}
	results := make([]*stats, len(uncontended))
	for i := range results {
		results[i] = &stats{}
	}
	rates := make([]benchrun.Result, len(uncontended)) // per round, for the ratios
	for r := range rounds {
		for j := range uncontended {
			i := j
			if r%2 == 1 {
				i = len(uncontended) - 1 - j // odd rounds backwards, as benchrun.Alternate does
			}
			c := uncontended[i]
			before := results[i].acquisitions
			if err := runSlice(t, admin, srv.Addr(), c, 1, fmt.Sprintf("u%d-%d", i, r), slice, results[i]); err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			rates[i].Rates = append(rates[i].Rates, float64(results[i].acquisitions-before)/slice.Seconds())
		}
	}
	fmt.Fprintln(out, "### Uncontended: lock + unlock, one goroutine")
	fmt.Fprintln(out)
	fmt.Fprintln(out, "× floor is the median over the rounds of the ratio to the floor's rate in the same round.")
	fmt.Fprintln(out)
	fmt.Fprintln(out, "| contender | ops/s | × floor | range over rounds | requests/op | server cmds/op |")
	fmt.Fprintln(out, "|---|---:|---:|---:|---:|---:|")
	for i, c := range uncontended {
		s := results[i]
		m, lo, hi := benchrun.Ratio(rates[i], rates[0])
		fmt.Fprintf(out, "| %s | %.0f | %.2f | %.2f–%.2f | %.2f | %.2f |\n", c.name, s.rate(), m, lo, hi, s.perAcq(s.requests), s.perAcq(s.commands))
	}

	contended := []contender{distlockContender, redsyncDefault, redsyncTuned, bsmDefault, bsmTuned}
	for _, n := range counts {
		results := make([]*stats, len(contended))
		for i := range results {
			results[i] = &stats{}
		}
		for r := range rounds {
			for i, c := range contended {
				if err := runSlice(t, admin, srv.Addr(), c, n, fmt.Sprintf("c%d-%d-%d", n, i, r), slice, results[i]); err != nil {
					t.Fatalf("%s with %d goroutines: %v", c.name, n, err)
				}
			}
		}
		fmt.Fprintln(out)
		fmt.Fprintf(out, "### Contended: %d goroutines, own clients, one key (lock → tiny critical section → unlock)\n\n", n)
		fmt.Fprintln(out, "| contender | handoffs/s | acquisitions/s | hand-over wait p50 | hand-over wait p99 | acq/goroutine min–max | requests/acq | requests/handoff | server cmds/handoff | violations |")
		fmt.Fprintln(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
		for i, c := range contended {
			s := results[i]
			lo, hi := s.fairness()
			fmt.Fprintf(out, "| %s | %.0f | %.0f | %v | %v | %d–%d | %.1f | %.1f | %.1f | %d |\n",
				c.name, float64(s.handoffs)/s.elapsed.Seconds(), s.rate(), s.quantile(0.5), s.quantile(0.99),
				lo, hi, s.perAcq(s.requests), s.perHandoff(s.requests), s.perHandoff(s.commands), s.violations)
			if s.violations > 0 {
				t.Errorf("%s: %d mutual exclusion violations", c.name, s.violations)
			}
		}
	}
	fmt.Fprintln(out)
}

// stats accumulates a contender's slices.
type stats struct {
	elapsed      time.Duration
	acquisitions int64
	handoffs     int64
	requests     int64
	commands     int64
	violations   int64
	waits        []time.Duration
	perGoroutine []int64 // acquisitions by goroutine index, summed over slices
}

// fairness returns the fewest and most acquisitions of one goroutine index
// over all slices.
func (s *stats) fairness() (lo, hi int64) {
	for i, n := range s.perGoroutine {
		if i == 0 || n < lo {
			lo = n
		}
		hi = max(hi, n)
	}
	return lo, hi
}

func (s *stats) perHandoff(n int64) float64 {
	if s.handoffs == 0 {
		return 0
	}
	return float64(n) / float64(s.handoffs)
}

func (s *stats) rate() float64 { return float64(s.acquisitions) / s.elapsed.Seconds() }

func (s *stats) perAcq(n int64) float64 {
	if s.acquisitions == 0 {
		return 0
	}
	return float64(n) / float64(s.acquisitions)
}

func (s *stats) quantile(q float64) time.Duration {
	if len(s.waits) == 0 {
		return 0
	}
	slices.Sort(s.waits)
	d := s.waits[min(len(s.waits)-1, int(q*float64(len(s.waits))))]
	return d.Round(10 * time.Microsecond)
}

// runSlice runs n goroutines of contender c on one key for d, and adds what
// happened to s. Lockers are made before the clock starts and closed after
// it stops; acquisitions that complete after the slice are not counted.
func runSlice(t *testing.T, admin *redis.Client, addr string, c contender, n int, key string, d time.Duration, s *stats) error {
	ctx := context.Background()
	rt := &roundTrips{}
	lockers := make([]locker, n)
	for i := range lockers {
		l, err := c.make(addr, rt)
		if err != nil {
			return err
		}
		lockers[i] = l
	}
	defer func() {
		for _, l := range lockers {
			l.close()
		}
	}()
	// Warm up each client's connection and the server's script cache.
	for _, l := range lockers {
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		unlock, err := l.lock(wctx, key+"-warm")
		cancel()
		if err != nil {
			return fmt.Errorf("warm-up: %w", err)
		}
		if err := unlock(ctx); err != nil {
			return fmt.Errorf("warm-up unlock: %w", err)
		}
	}

	var (
		inside   atomic.Int32
		last     atomic.Int64
		handoffs atomic.Int64
		viol     atomic.Int64
		counts   = make([]int64, n)
		waits    = make([][]time.Duration, n)
		wg       sync.WaitGroup
	)
	last.Store(-1)
	before, err := serverCommands(ctx, admin)
	if err != nil {
		return err
	}
	rt.n.Store(0)
	start := time.Now()
	end := start.Add(d)
	sctx, cancel := context.WithDeadline(ctx, end)
	defer cancel()
	for g := range n {
		wg.Go(func() {
			for sctx.Err() == nil {
				asked := time.Now()
				unlock, err := lockers[g].lock(sctx, key)
				if err != nil {
					return // the slice ended (or the library failed: counted as nothing)
				}
				got := time.Now()
				if got.Before(end) {
					if !inside.CompareAndSwap(0, 1) {
						viol.Add(1)
					}
					if last.Swap(int64(g)) != int64(g) {
						// A hand-over: this goroutine waited for another's
						// release. Re-takes by the last holder are not waits.
						handoffs.Add(1)
						waits[g] = append(waits[g], got.Sub(asked))
					}
					counts[g]++
					inside.Store(0)
				}
				uctx, ucancel := context.WithTimeout(ctx, 5*time.Second)
				unlock(uctx)
				ucancel()
			}
		})
	}
	wg.Wait()
	after, err := serverCommands(ctx, admin)
	if err != nil {
		return err
	}
	s.elapsed += d
	s.requests += rt.n.Load()
	s.commands += after - before - 1 // minus the INFO itself
	s.handoffs += handoffs.Load()
	s.violations += viol.Load()
	if s.perGoroutine == nil {
		s.perGoroutine = make([]int64, n)
	}
	for g := range n {
		s.acquisitions += counts[g]
		s.waits = append(s.waits, waits[g]...)
		s.perGoroutine[g] += counts[g]
	}
	return nil
}
