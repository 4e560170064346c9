package main

import (
	"errors"
	"strings"
	"testing"
)

func TestWarnHandler(t *testing.T) {
	var out strings.Builder
	c := &cli{stderr: &out}
	log := c.logger().With("backend", "sqlite")
	log.Warn("distlock: renewal failed; retrying while the TTL allows", "locks", 1, "err", errors.New("database is locked"))
	log.Warn(libraryLossMessage, "key", "k")
	log.Info("distlock: not shown")
	want := "distlock: warning: renewal failed; retrying while the TTL allows (locks=1, err=database is locked)\n"
	if out.String() != want {
		t.Errorf("got %q, want %q", out.String(), want)
	}
}
