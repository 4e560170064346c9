package redislock_test

import (
	"context"
	"errors"
	"net/url"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/internal/rediswire"
	"github.com/distlock/distlock/internal/testserver"
	"github.com/distlock/distlock/redislock"
)

// Lock names in distlock's own key space are refused by every call that
// takes a key, and prefixes that would put every name there by New and
// Open, all before any request.
func TestReservedNamesRefused(t *testing.T) {
	srv := testserver.StartRedis(t, testserver.Private())
	ctx := t.Context()
	c, err := redislock.Open(ctx, "redis://"+srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	reserved := rediswire.NamesFor("", "victim").Record
	if _, err := c.TryLock(ctx, reserved); !errors.Is(err, distlock.ErrInvalid) {
		t.Errorf("TryLock(%q) = %v, want ErrInvalid", reserved, err)
	}
	lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := c.Lock(lctx, reserved); !errors.Is(err, distlock.ErrInvalid) {
		t.Errorf("Lock(%q) = %v, want ErrInvalid", reserved, err)
	}
	if _, err := c.Status(ctx, reserved); !errors.Is(err, distlock.ErrInvalid) {
		t.Errorf("Status(%q) = %v, want ErrInvalid", reserved, err)
	}
	l, err := c.TryLock(ctx, "victim")
	if err != nil || l.Fence() == 0 {
		t.Fatalf("victim: %v, %v", l, err)
	}
	l.Unlock(ctx)

	rc := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer rc.Close()
	if _, err := redislock.New(rc, &redislock.Options{Prefix: "distlock:{x}:"}); !errors.Is(err, distlock.ErrInvalid) {
		t.Errorf("New with a prefix in distlock's key space: %v, want ErrInvalid", err)
	}
	if _, err := redislock.Open(ctx, "redis://"+srv.Addr()+"/?prefix="+url.QueryEscape("distlock:{x}:")); !errors.Is(err, distlock.ErrInvalid) {
		t.Errorf("Open with a prefix in distlock's key space: %v, want ErrInvalid", err)
	}
}
