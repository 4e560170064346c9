package main

import (
	"database/sql"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/distlock/distlock/internal/testserver"
)

// ageRows makes the rows of keys look released age ago, fences included,
// behind the store's back.
func ageRows(t *testing.T, store string, age time.Duration, keys ...string) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+strings.TrimPrefix(store, "sqlite://")+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	then := time.Now().Add(-age)
	for _, k := range keys {
		res, err := db.Exec("UPDATE distlock_locks SET expires_at = ?, fence = ? WHERE lock_key = ? AND token = ''", -then.UnixMilli(), then.UnixMicro(), k)
		if err != nil {
			t.Fatal(err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			t.Fatalf("no free row of %q to age", k)
		}
	}
}

func TestGC(t *testing.T) {
	t.Parallel()
	store := sqliteStore(t)
	for _, k := range []string{"old-1", "old-2", "day-old", "young"} {
		holdLock(t, store, k, "gc test").Unlock(t.Context())
	}
	held := holdLock(t, store, "held", "gc test")
	ageRows(t, store, 2*time.Hour, "old-1", "old-2")
	ageRows(t, store, 25*time.Hour, "day-old")

	r := runCLI(t, "gc", "--store", store)
	if r.code != exitOK || r.stdout != "purged 1 record of keys free for 24h0m0s or longer\n" {
		t.Errorf("gc with the default age: want 1 record purged, exit 0; got %v", r)
	}
	r = runCLI(t, "gc", "--store", store, "--older-than", "3600") // seconds
	if r.code != exitOK || r.stdout != "purged 2 records of keys free for 1h0m0s or longer\n" {
		t.Errorf("gc --older-than 3600: want 2 records purged, exit 0; got %v", r)
	}
	r = runCLI(t, "gc", "--store", store, "--older-than=90m")
	if r.code != exitOK || r.stdout != "purged 0 records of keys free for 1h30m0s or longer\n" {
		t.Errorf("gc again: want nothing purged, exit 0; got %v", r)
	}
	for _, k := range []string{"old-1", "old-2", "day-old"} {
		if !isFree(t, store, k) {
			t.Errorf("%s is not free after gc", k)
		}
	}
	if isFree(t, store, "held") {
		t.Error("gc freed a held key")
	}
	if err := held.Refresh(t.Context()); err != nil {
		t.Errorf("the held lock after gc: %v", err)
	}
	r = runCLI(t, "status", "--store", store, "young")
	if r.code != exitOK {
		t.Errorf("status after gc: %v", r)
	}
}

func TestGCUsage(t *testing.T) {
	t.Parallel()
	store := sqliteStore(t)
	for _, tc := range []struct {
		args []string
		want string // in stderr
	}{
		{[]string{"gc", "--store", store, "--older-than", "30s"}, "below the minimum of 1m0s"},
		{[]string{"gc", "--store", store, "--older-than", "59"}, "below the minimum of 1m0s"},
		{[]string{"gc", "--store", store, "--older-than", "soon"}, "want a duration"},
		{[]string{"gc", "--store", store, "--older-than", "-1h"}, "must not be negative"},
		{[]string{"gc", "--store", store, "extra"}, `unexpected argument "extra"`},
		{[]string{"gc", "--nope"}, "flag provided but not defined"},
		{[]string{"gc", "--store", "nope://h"}, "unknown store scheme"},
	} {
		r := runCLI(t, tc.args...)
		if r.code != exitUsage || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%q: want exit %d and %q on stderr; got %v", tc.args, exitUsage, tc.want, r)
		}
	}
	r := runCLI(t, "help", "gc")
	if r.code != exitOK || !strings.Contains(r.stdout, "usage: distlock gc [--store URL] [--older-than D]") {
		t.Errorf("help gc: %v", r)
	}
	if r := runCLI(t, "help"); !strings.Contains(r.stdout, "distlock gc [--store URL] [--older-than D]") {
		t.Errorf("help does not list gc: %v", r)
	}
}

func TestGCUnreachable(t *testing.T) {
	t.Parallel()
	r := runCLI(t, "gc", "--store", "postgres://u:secret@127.0.0.1:1/db?connect_timeout=5")
	if r.code != exitUnavailable || !regexp.MustCompile(`^distlock: `).MatchString(r.stderr) || strings.Contains(r.stderr, "secret") {
		t.Errorf("gc of an unreachable store: want exit %d and one redacted error; got %v", exitUnavailable, r)
	}
}

// TestGCNothingToPurge: a store whose records expire by themselves.
func TestGCNothingToPurge(t *testing.T) {
	t.Parallel()
	rd := testserver.StartRedis(t)
	r := runCLI(t, "gc", "--store", "redis://"+rd.Addr())
	if r.code != exitOK || r.stdout != "nothing to purge: the redis store keeps nothing of free keys\n" {
		t.Errorf("gc on Redis: want nothing to purge, exit 0; got %v", r)
	}
}
