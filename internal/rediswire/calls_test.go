package rediswire

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/distlock/distlock/driver"
)

func TestHonoursContext(t *testing.T) {
	unknown := struct{ redis.UniversalClient }{redis.NewClient(&redis.Options{ContextTimeoutEnabled: true})}
	defer unknown.Close()
	for _, c := range []struct {
		name   string
		client redis.UniversalClient
		want   bool
	}{
		{"Client", redis.NewClient(&redis.Options{}), false},
		{"ClientEnabled", redis.NewClient(&redis.Options{ContextTimeoutEnabled: true}), true},
		{"Failover", redis.NewFailoverClient(&redis.FailoverOptions{MasterName: "m", SentinelAddrs: []string{"127.0.0.1:1"}}), false},
		{"FailoverEnabled", redis.NewFailoverClient(&redis.FailoverOptions{MasterName: "m", SentinelAddrs: []string{"127.0.0.1:1"}, ContextTimeoutEnabled: true}), true},
		{"Cluster", redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{"127.0.0.1:1"}}), false},
		{"ClusterEnabled", redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{"127.0.0.1:1"}, ContextTimeoutEnabled: true}), true},
		{"Ring", redis.NewRing(&redis.RingOptions{Addrs: map[string]string{"a": "127.0.0.1:1"}}), false},
		{"RingEnabled", redis.NewRing(&redis.RingOptions{Addrs: map[string]string{"a": "127.0.0.1:1"}, ContextTimeoutEnabled: true}), true},
		{"Unknown", unknown, false},
	} {
		if got := HonoursContext(c.client); got != c.want {
			t.Errorf("%s: HonoursContext = %v, want %v", c.name, got, c.want)
		}
		if c.name != "Unknown" {
			c.client.Close()
		}
	}
}

// Run is a plain call on a client that honours ctx deadlines, and with a
// ctx whose deadline (if any) the client's own timeouts come before: it
// never goes through the Background then (closed here, so that a call that
// did would fail). A deadline that comes first makes it go through.
func TestRunDirectOnlyWhenNeeded(t *testing.T) {
	honours := redis.NewClient(&redis.Options{ContextTimeoutEnabled: true})
	defer honours.Close()
	ignores := redis.NewClient(&redis.Options{})
	defer ignores.Close()
	unbounded := redis.NewClient(&redis.Options{ReadTimeout: -1})
	defer unbounded.Close()
	var bg Background
	bg.Close(0)
	op := func(context.Context) (int, error) { return 1, nil }
	soon, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	late, cancel := context.WithTimeout(t.Context(), time.Hour)
	defer cancel()
	if v, err := Run(soon, NewCalls(honours, &bg), op); v != 1 || err != nil {
		t.Errorf("honouring client: Run = %d, %v; want a plain call", v, err)
	}
	if v, err := Run(t.Context(), NewCalls(ignores, &bg), op); v != 1 || err != nil {
		t.Errorf("a ctx without a deadline: Run = %d, %v; want a plain call", v, err)
	}
	if v, err := Run(late, NewCalls(ignores, &bg), op); v != 1 || err != nil {
		t.Errorf("a deadline after the client's own timeouts: Run = %d, %v; want a plain call", v, err)
	}
	if _, err := Run(soon, NewCalls(ignores, &bg), op); !errors.Is(err, driver.ErrUnavailable) {
		t.Errorf("client ignoring ctx, deadline first, Background closed: Run = %v; want it refused (the call would need a goroutine)", err)
	}
	if _, err := Run(late, NewCalls(unbounded, &bg), op); !errors.Is(err, driver.ErrUnavailable) {
		t.Errorf("client without a read timeout, Background closed: Run = %v; want it refused", err)
	}
}
