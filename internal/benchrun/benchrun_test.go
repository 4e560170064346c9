package benchrun

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestRatio(t *testing.T) {
	base := Result{Rates: []float64{100, 100, 100, 100}}
	for _, c := range []struct {
		rates       []float64
		med, lo, hi float64
	}{
		{[]float64{90, 80, 120}, 0.9, 0.8, 1.2},       // odd count: the middle one
		{[]float64{90, 80, 120, 100}, 0.95, 0.8, 1.2}, // even: the mean of the two middle ones
		{nil, 0, 0, 0},
	} {
		m, lo, hi := Ratio(Result{Rates: c.rates}, base)
		if !near(m, c.med) || !near(lo, c.lo) || !near(hi, c.hi) {
			t.Errorf("Ratio(%v) = %v, %v, %v; want %v, %v, %v", c.rates, m, lo, hi, c.med, c.lo, c.hi)
		}
	}
	// Rounds where the base did nothing are left out, not divided by zero.
	if m, _, _ := Ratio(Result{Rates: []float64{50, 70}}, Result{Rates: []float64{0, 100}}); !near(m, 0.7) {
		t.Errorf("Ratio with a zero base round = %v, want 0.7", m)
	}
}

func near(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 }

func TestAlternate(t *testing.T) {
	var order []string
	counter := func(name string, n *atomic.Int64) Contender {
		return Contender{Name: name, New: func(ctx context.Context, g int) (Op, func(), error) {
			if g == 0 {
				order = append(order, name)
			}
			return func(context.Context) error { n.Add(1); time.Sleep(time.Millisecond); return nil }, func() {}, nil
		}}
	}
	var a, b atomic.Int64
	res, err := Alternate(t.Context(), []Contender{counter("a", &a), counter("b", &b)}, 2, 20*time.Millisecond, 3)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"a", "b", "b", "a", "a", "b"}; !slices.Equal(order, want) {
		t.Errorf("slices ran in the order %v, want %v (odd rounds backwards)", order, want)
	}
	for i, n := range []int64{a.Load(), b.Load()} {
		r := res[i]
		// Each goroutine's warm-up call is not counted.
		if r.Ops != n-2*3 || r.Ops == 0 {
			t.Errorf("%s: %d ops counted, %d calls made (6 of them warm-ups)", r.Name, r.Ops, n)
		}
		if len(r.Rates) != 3 || r.Elapsed < 3*20*time.Millisecond {
			t.Errorf("%s: %d rates over %v, want 3 over at least 60ms", r.Name, len(r.Rates), r.Elapsed)
		}
	}
}

func TestAlternateStopsAtAnError(t *testing.T) {
	boom := errors.New("boom")
	var calls atomic.Int64
	c := Contender{Name: "failing", New: func(context.Context, int) (Op, func(), error) {
		return func(context.Context) error {
			if calls.Add(1) > 5 {
				return boom
			}
			return nil
		}, func() {}, nil
	}}
	_, err := Alternate(t.Context(), []Contender{c}, 1, time.Minute, 1)
	if !errors.Is(err, boom) {
		t.Fatalf("Alternate = %v, want the op's error", err)
	}
}

func TestTableHandoffs(t *testing.T) {
	var b strings.Builder
	Table(&b, []Result{
		{Name: "floor", Ops: 100, Handoffs: -1, Elapsed: time.Second, Rates: []float64{100}},
		{Name: "lock", Ops: 50, Handoffs: 20, Elapsed: time.Second, Rates: []float64{50}},
	})
	out := b.String()
	for _, want := range []string{"| handoffs/s |", "| floor | 100 |  | 1.00 | 1.00–1.00 |", "| lock | 50 | 20 | 0.50 | 0.50–0.50 |"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}
