package once_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/distlock/distlock/internal/testserver"
	"github.com/distlock/distlock/once"
)

// The benchmarks report round trips (statements sent) per operation beside
// ns/op. Run: go test -run '^$' -bench . -benchtime 200ms ./once/
func BenchmarkSQLite(b *testing.B) { benchBackend(b, sqliteBackend(b)) }

func BenchmarkPostgres(b *testing.B) {
	benchBackend(b, postgresBackend(b, testserver.StartPostgres(b)))
}

func BenchmarkMariaDB(b *testing.B) {
	benchBackend(b, mariadbBackend(b, testserver.StartMariaDB(b)))
}

func benchBackend(b *testing.B, be *backend) {
	work := func(context.Context) ([]byte, error) { return []byte("result"), nil }
	setup := func(b *testing.B) (*once.Guard, *injector) {
		in := &injector{}
		g := be.guardOn(b, be.openDB(b, false, in))
		if err := g.Init(b.Context()); err != nil {
			b.Fatal(err)
		}
		return g, in
	}
	report := func(b *testing.B, in *injector, before int) {
		b.ReportMetric(float64(in.statements()-before)/float64(b.N), "roundtrips/op")
	}
	// Do on a new key: claim, run, complete.
	b.Run("DoNewKey", func(b *testing.B) {
		g, in := setup(b)
		ctx := b.Context()
		run := time.Now().UnixNano() // the body runs again with a larger b.N
		before := in.statements()
		b.ResetTimer()
		for i := range b.N {
			if _, ran, err := g.Do(ctx, fmt.Sprintf("%s/%d/%d", b.Name(), run, i), work); err != nil || !ran {
				b.Fatal(ran, err)
			}
		}
		b.StopTimer()
		report(b, in, before)
	})
	// Do on a key already done: one claim that answers ErrDone.
	b.Run("DoDoneKey", func(b *testing.B) {
		g, in := setup(b)
		ctx := b.Context()
		key := b.Name()
		if _, _, err := g.Do(ctx, key, work); err != nil {
			b.Fatal(err)
		}
		before := in.statements()
		b.ResetTimer()
		for range b.N {
			if _, ran, err := g.Do(ctx, key, work); err != nil || ran {
				b.Fatal(ran, err)
			}
		}
		b.StopTimer()
		report(b, in, before)
	})
	// Claim and Abandon: the cost of a claim that gives up.
	b.Run("ClaimAbandon", func(b *testing.B) {
		g, in := setup(b)
		ctx := b.Context()
		key := b.Name()
		before := in.statements()
		b.ResetTimer()
		for range b.N {
			c, err := g.Claim(ctx, key)
			if err != nil {
				b.Fatal(err)
			}
			if err := c.Abandon(ctx); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		report(b, in, before)
	})
}
