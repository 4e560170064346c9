package rediswire

import (
	"context"
	"errors"
	"testing"

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

// Run is a plain call on a client that honours ctx deadlines: it never
// goes through the Background (closed here, so that a call that did would
// fail), while on one that does not, every call with a ctx that can end
// does.
func TestRunDirectOnlyWhenHonoured(t *testing.T) {
	honours := redis.NewClient(&redis.Options{ContextTimeoutEnabled: true})
	defer honours.Close()
	ignores := redis.NewClient(&redis.Options{})
	defer ignores.Close()
	var bg Background
	bg.Close(0)
	op := func(context.Context) (int, error) { return 1, nil }
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	if v, err := Run(ctx, NewCalls(honours, &bg), op); v != 1 || err != nil {
		t.Errorf("honouring client: Run = %d, %v; want a plain call", v, err)
	}
	if v, err := Run(context.Background(), NewCalls(ignores, &bg), op); v != 1 || err != nil {
		t.Errorf("a ctx that never ends: Run = %d, %v; want a plain call", v, err)
	}
	if _, err := Run(ctx, NewCalls(ignores, &bg), op); !errors.Is(err, driver.ErrUnavailable) {
		t.Errorf("client ignoring ctx, Background closed: Run = %v; want it refused (the call would need a goroutine)", err)
	}
}
