package rediswire

import (
	"testing"

	"github.com/redis/go-redis/v9"
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
