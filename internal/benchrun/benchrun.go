// Package benchrun runs side-by-side benchmarks: contenders doing the same
// work take turns in short slices, round after round, so that what disturbs
// the machine (another process, a CPU frequency change, the server's own
// background work) falls on all of them alike. A contender's speed relative
// to another is the median, over the rounds, of the ratio of their rates in
// the same round: one noisy slice moves it little.
package benchrun

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distlock/distlock"
)

// Op is one unit of the measured work, a lock and its unlock, say.
type Op func(ctx context.Context) error

// Contender is one way of doing the work.
type Contender struct {
	Name string
	// New makes the Op of one goroutine and the func that frees what it
	// holds. It is called before a slice's clock starts.
	New func(ctx context.Context, goroutine int) (op Op, done func(), err error)
	// Handoffs, if set, counts the ops that took a lock another goroutine
	// held last: acquisitions/s flatters a lock whose last holder takes it
	// again while the others sleep.
	Handoffs *atomic.Int64
}

// Result is what a contender did over all its slices.
type Result struct {
	Name     string
	Ops      int64
	Handoffs int64 // -1 when the contender does not count them
	Elapsed  time.Duration
	Rates    []float64 // ops per second, one per round
}

// Rate is the contender's ops per second over all its slices.
func (r Result) Rate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Ops) / r.Elapsed.Seconds()
}

// Ratio returns the median, over the rounds, of r's rate divided by base's
// rate in the same round, and the lowest and highest of those ratios.
func Ratio(r, base Result) (median, lo, hi float64) {
	var ratios []float64
	for i := range min(len(r.Rates), len(base.Rates)) {
		if base.Rates[i] > 0 {
			ratios = append(ratios, r.Rates[i]/base.Rates[i])
		}
	}
	if len(ratios) == 0 {
		return 0, 0, 0
	}
	slices.Sort(ratios)
	n := len(ratios)
	median = ratios[n/2]
	if n%2 == 0 {
		median = (ratios[n/2-1] + ratios[n/2]) / 2
	}
	return median, ratios[0], ratios[n-1]
}

// Alternate runs every contender for one slice with par goroutines, in
// turn (forwards, then backwards), rounds times, and returns their results in the order given. Each
// goroutine repeats its Op until the slice ends; an Op that fails stops the
// run with its error.
func Alternate(ctx context.Context, cs []Contender, par int, slice time.Duration, rounds int) ([]Result, error) {
	results := make([]Result, len(cs))
	for i, c := range cs {
		results[i].Name = c.Name
		if c.Handoffs == nil {
			results[i].Handoffs = -1
		}
	}
	for r := range rounds {
		for j := range cs {
			// Odd rounds run backwards, so that a drift within a round (the
			// server's background work catching up, say) does not always
			// fall on the same contenders.
			i := j
			if r%2 == 1 {
				i = len(cs) - 1 - j
			}
			c := cs[i]
			var before int64
			if c.Handoffs != nil {
				before = c.Handoffs.Load()
			}
			ops, elapsed, err := runSlice(ctx, c, par, slice)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", c.Name, err)
			}
			if c.Handoffs != nil {
				results[i].Handoffs += c.Handoffs.Load() - before
			}
			results[i].Ops += ops
			results[i].Elapsed += elapsed
			results[i].Rates = append(results[i].Rates, float64(ops)/elapsed.Seconds())
		}
	}
	return results, nil
}

func runSlice(ctx context.Context, c Contender, par int, slice time.Duration) (int64, time.Duration, error) {
	ops := make([]Op, par)
	for g := range par {
		op, done, err := c.New(ctx, g)
		if err != nil {
			return 0, 0, err
		}
		defer done()
		// One untimed call warms the connection and the server's caches.
		if err := op(ctx); err != nil {
			return 0, 0, fmt.Errorf("warm-up: %w", err)
		}
		ops[g] = op
	}
	var (
		count    atomic.Int64
		stop     atomic.Bool
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	start := time.Now()
	for g := range par {
		wg.Go(func() {
			for !stop.Load() {
				if err := ops[g](ctx); err != nil {
					errOnce.Do(func() { firstErr = err })
					stop.Store(true)
					return
				}
				count.Add(1)
			}
		})
	}
	timer := time.AfterFunc(slice, func() { stop.Store(true) })
	wg.Wait()
	timer.Stop()
	return count.Load(), time.Since(start), firstErr
}

// Settings reads the slice length and the number of rounds from
// DISTLOCK_BENCH_SLICE and DISTLOCK_BENCH_ROUNDS, with the defaults given.
func Settings(slice time.Duration, rounds int) (time.Duration, int, error) {
	if s := os.Getenv("DISTLOCK_BENCH_SLICE"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			return 0, 0, fmt.Errorf("DISTLOCK_BENCH_SLICE=%q: want a duration such as 500ms", s)
		}
		slice = d
	}
	if s := os.Getenv("DISTLOCK_BENCH_ROUNDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return 0, 0, fmt.Errorf("DISTLOCK_BENCH_ROUNDS=%q: want a positive count", s)
		}
		rounds = n
	}
	return slice, rounds, nil
}

// Table writes results as a Markdown table, each rate also as a ratio to
// the first result's (median over rounds, and its range).
// A handoffs/s column is added when a contender counts them.
func Table(w io.Writer, results []Result) {
	counted := slices.ContainsFunc(results, func(r Result) bool { return r.Handoffs >= 0 })
	if counted {
		fmt.Fprintln(w, "| contender | ops/s | handoffs/s | × first row (median of rounds) | range over rounds |")
		fmt.Fprintln(w, "|---|---:|---:|---:|---:|")
	} else {
		fmt.Fprintln(w, "| contender | ops/s | × first row (median of rounds) | range over rounds |")
		fmt.Fprintln(w, "|---|---:|---:|---:|")
	}
	for _, r := range results {
		m, lo, hi := Ratio(r, results[0])
		if !counted {
			fmt.Fprintf(w, "| %s | %.0f | %.2f | %.2f–%.2f |\n", r.Name, r.Rate(), m, lo, hi)
			continue
		}
		h := ""
		if r.Handoffs >= 0 && r.Elapsed > 0 {
			h = fmt.Sprintf("%.0f", float64(r.Handoffs)/r.Elapsed.Seconds())
		}
		fmt.Fprintf(w, "| %s | %.0f | %s | %.2f | %.2f–%.2f |\n", r.Name, r.Rate(), h, m, lo, hi)
	}
}

// Set is one table of a side-by-side run: contenders doing the same work
// with Par goroutines each.
type Set struct {
	Title      string
	Par        int
	Contenders []Contender
}

// SkipUnlessEnabled skips a side-by-side benchmark unless DISTLOCK_BENCH=1,
// naming the command that sets it: call it before starting servers. A
// benchmark that does not run is skipped, never counted as a test.
func SkipUnlessEnabled(t testing.TB, command string) {
	t.Helper()
	if os.Getenv("DISTLOCK_BENCH") != "1" {
		t.Skipf("set DISTLOCK_BENCH=1 to run the side-by-side benchmark (%s)", command)
	}
}

// LockUnlock is the contender that takes key and gives it back, each
// goroutine through a Client of its own made by open, as separate
// processes would.
func LockUnlock(name, key string, open func(ctx context.Context) (*distlock.Client, error)) Contender {
	var last, handoffs atomic.Int64
	last.Store(-1)
	return Contender{Name: name, Handoffs: &handoffs, New: func(ctx context.Context, g int) (Op, func(), error) {
		c, err := open(ctx)
		if err != nil {
			return nil, nil, err
		}
		return func(ctx context.Context) error {
			l, err := c.Lock(ctx, key)
			if err != nil {
				return err
			}
			if last.Swap(int64(g)) != int64(g) {
				handoffs.Add(1)
			}
			return l.Unlock(ctx)
		}, func() { c.Close() }, nil
	}}
}

// SideBySide is the body of a package's TestSideBySide. It runs only when
// DISTLOCK_BENCH=1 (make bench-sql), and prints one Markdown table per set,
// after a line giving the command that reproduces it. Its settings are
// DISTLOCK_BENCH_SLICE (default 1s) and DISTLOCK_BENCH_ROUNDS (default 5).
func SideBySide(t testing.TB, command string, sets ...Set) {
	t.Helper()
	SkipUnlessEnabled(t, command)
	slice, rounds, err := Settings(time.Second, 5)
	if err != nil {
		t.Fatal(err)
	}
	w := os.Stdout
	fmt.Fprintf(w, "\n%d rounds of %v slices per contender, contenders alternating; GOMAXPROCS=%d\n", rounds, slice, runtimeProcs())
	fmt.Fprintf(w, "Command: %s BENCH_SLICE=%v BENCH_ROUNDS=%d\n", command, slice, rounds)
	for _, set := range sets {
		results, err := Alternate(context.Background(), set.Contenders, set.Par, slice, rounds)
		if err != nil {
			t.Fatalf("%s: %v", set.Title, err)
		}
		fmt.Fprintf(w, "\n### %s\n\n", set.Title)
		Table(w, results)
	}
	fmt.Fprintln(w)
}

func runtimeProcs() int { return runtime.GOMAXPROCS(0) }
