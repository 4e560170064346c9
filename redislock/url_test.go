package redislock

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/driver"
)

func TestParseURL(t *testing.T) {
	opt, o, err := parseURL("redis://user:s3cret@10.0.0.1:6380/2?prefix=app%3A&dial_timeout=3s")
	if err != nil {
		t.Fatal(err)
	}
	if opt.Addr != "10.0.0.1:6380" || opt.Username != "user" || opt.Password != "s3cret" || opt.DB != 2 ||
		opt.DialTimeout != 3*time.Second || opt.TLSConfig != nil || o.Prefix != "app:" {
		t.Fatalf("got %+v, %+v", opt, o)
	}
	if !opt.ContextTimeoutEnabled {
		t.Fatal("a client made from a URL must honour ctx deadlines (ContextTimeoutEnabled)")
	}
	opt, _, err = parseURL("redis://h/?context_timeout_enabled=true&read_timeout=10s")
	if err != nil || !opt.ContextTimeoutEnabled || opt.ReadTimeout != 10*time.Second {
		t.Fatalf("context_timeout_enabled=true: %+v, %v", opt, err)
	}
	opt, o, err = parseURL("REDISS://h")
	if err != nil || opt.TLSConfig == nil || opt.Addr != "h:6379" || o.Prefix != "" {
		t.Fatalf("rediss: %+v %+v %v", opt, o, err)
	}
	for _, bad := range []string{
		"redis://:s3cret@h/x",
		"redis://:s3cret@h/?prefix=a&prefix=b",
		"redis://:s3cret@h/?nope=1",
		"redis://:s3cret@h:port/",
		"http://:s3cret@h/",
		"redis://:s3cret@h/?context_timeout_enabled=false",
		"redis://:s3cret@h/?context_timeout_enabled=maybe",
	} {
		_, _, err := parseURL(bad)
		if !errors.Is(err, distlock.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", bad, err)
		}
		if err != nil && strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%s: the error shows the password: %v", bad, err)
		}
	}
}

func TestOpenUnreachable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := distlock.Open(ctx, "redis://:pw@127.0.0.1:1")
	if !errors.Is(err, driver.ErrUnavailable) {
		t.Fatalf("Open of a closed port: %v, want ErrUnavailable", err)
	}
	if strings.Contains(err.Error(), ":pw@") {
		t.Fatalf("password in %v", err)
	}
}
