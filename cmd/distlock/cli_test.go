package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 300)
	store := sqliteStore(t)
	tests := []struct {
		name string
		args []string
		want string // in stderr
	}{
		{"no command", nil, "usage: distlock run"},
		{"unknown command", []string{"frob"}, `unknown command "frob"`},
		{"run without arguments", []string{"run"}, "missing KEY and -- CMD"},
		{"run without separator", []string{"run", "k", "true"}, "missing -- between KEY and CMD"},
		{"run with key only", []string{"run", "k"}, "missing -- between KEY and CMD"},
		{"run without key", []string{"run", "--wait", "0", "--", "true"}, "missing KEY before --"},
		{"run without command", []string{"run", "k", "--"}, "missing CMD after --"},
		{"flag after key", []string{"run", "k", "--wait", "0", "--", "true"}, "flag --wait comes after KEY \"k\""},
		{"flag=value after key", []string{"run", "k", "-ttl=5s", "--", "true"}, "flag -ttl=5s comes after KEY"},
		{"two keys", []string{"run", "a", "b", "--", "true"}, `expected one KEY before --, got 2 words ["a" "b"]`},
		{"unknown flag", []string{"run", "--bogus", "k", "--", "true"}, "flag provided but not defined: -bogus"},
		{"wait without unit", []string{"run", "--wait", "5", "k", "--", "true"}, "want a duration such as 30s"},
		{"negative wait", []string{"run", "--wait", "-1s", "k", "--", "true"}, "must not be negative"},
		{"zero ttl", []string{"run", "--ttl", "0", "k", "--", "true"}, "--ttl 0s must be positive"},
		{"bad ttl", []string{"run", "--ttl", "soon", "k", "--", "true"}, `invalid value "soon" for flag -ttl`},
		{"negative grace", []string{"run", "--grace", "-1s", "k", "--", "true"}, "--grace -1s must not be negative"},
		{"empty key", []string{"run", "", "--", "true"}, "invalid argument: key is empty"},
		{"key with NUL", []string{"run", "a\x00b", "--", "true"}, "key contains a NUL byte"},
		{"empty store", []string{"run", "--store", "", "k", "--", "true"}, "store URL is empty"},
		{"store without scheme", []string{"run", "--store", "/tmp/x.db", "k", "--", "true"}, "has no scheme"},
		{"malformed store", []string{"run", "--store", "::nope", "k", "--", "true"}, "malformed store URL"},
		{"unknown scheme", []string{"run", "--store", "nosuch://x", "k", "--", "true"}, `unknown store scheme "nosuch"`},
		{"unknown scheme lists every compiled-in store", []string{"run", "--store", "nosuch://x", "k", "--", "true"}, "etcd, faulty, mysql, postgres, postgresql, redis, rediss, redlock, sqlite"},
		{"store parameter unknown", []string{"run", "--store", "sqlite:///nonexistent/x.db?bogus=1", "k", "--", "true"}, "bogus"},
		{"ttl below the store's minimum", []string{"run", "--store", store, "--ttl", "1ms", "k", "--", "true"}, "ttl 1ms is below sqlite's minimum"},
		{"owner too long", []string{"run", "--store", store, "--owner", long, "k", "--", "true"}, "owner is 300 bytes"},
		{"status without key", []string{"status"}, "missing KEY"},
		{"status flag after key", []string{"status", "k", "--json"}, "flag --json comes after KEY"},
		{"status two keys", []string{"status", "a", "b"}, "expected one KEY"},
		{"status unknown scheme", []string{"status", "--store", "nosuch://x", "k"}, `unknown store scheme "nosuch"`},
		{"help unknown topic", []string{"help", "frob"}, `unknown topic "frob"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := runCLI(t, tt.args...)
			if r.code != exitUsage || !strings.Contains(r.stderr, tt.want) {
				t.Errorf("distlock %q: want exit %d and stderr containing %q; got %v", tt.args, exitUsage, tt.want, r)
			}
		})
	}
}

func TestHelpAndVersion(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"help"}, {"-h"}, {"--help"}} {
		r := runCLI(t, args...)
		if r.code != exitOK || !strings.Contains(r.stdout, "Exit codes:") || r.stderr != "" {
			t.Errorf("distlock %q: want the help on stdout and exit 0; got %v", args, r)
		}
		for _, code := range []int{exitUsage, exitUnavailable, exitLocked, exitLost, exitCannotExec, exitNotFound, exitSignalBase} {
			if !regexp.MustCompile(`\n  ` + strconv.Itoa(code) + `(\+N)? `).MatchString(r.stdout) {
				t.Errorf("distlock %q: help does not list exit code %d", args, code)
			}
		}
		for _, s := range []string{"DISTLOCK_STORE", "DISTLOCK_FENCE", "XDG_STATE_HOME", `%LocalAppData%\distlock\locks.db`, "sqlite"} {
			if !strings.Contains(r.stdout, s) {
				t.Errorf("distlock %q: help does not mention %s", args, s)
			}
		}
	}
	for _, tt := range []struct {
		args []string
		out  func(result) string
		want string
	}{
		{[]string{"help", "run"}, func(r result) string { return r.stdout }, "usage: distlock run [flags] KEY -- CMD"},
		{[]string{"help", "status"}, func(r result) string { return r.stdout }, "-json"},
		{[]string{"run", "-h"}, func(r result) string { return r.stderr }, "-wait duration"},
		{[]string{"status", "--help"}, func(r result) string { return r.stderr }, "usage: distlock status"},
		{[]string{"version"}, func(r result) string { return r.stdout }, "distlock "},
	} {
		r := runCLI(t, tt.args...)
		if r.code != exitOK || !strings.Contains(tt.out(r), tt.want) {
			t.Errorf("distlock %q: want exit 0 and %q; got %v", tt.args, tt.want, r)
		}
	}
}

func TestDefaultStorePath(t *testing.T) {
	t.Parallel()
	tests := []struct {
		goos    string
		env     map[string]string
		want    string
		wantErr bool
	}{
		{"linux", map[string]string{"XDG_STATE_HOME": "/x/state", "HOME": "/home/u"}, "/x/state/distlock/locks.db", false},
		{"linux", map[string]string{"XDG_STATE_HOME": "/x/state/", "HOME": "/home/u"}, "/x/state/distlock/locks.db", false},
		{"linux", map[string]string{"HOME": "/home/u"}, "/home/u/.local/state/distlock/locks.db", false},
		{"linux", map[string]string{"XDG_STATE_HOME": "relative", "HOME": "/home/u"}, "/home/u/.local/state/distlock/locks.db", false},
		{"linux", map[string]string{}, "", true},
		{"linux", map[string]string{"HOME": "relative"}, "", true},
		{"darwin", map[string]string{"HOME": "/Users/u"}, "/Users/u/.local/state/distlock/locks.db", false},
		{"darwin", map[string]string{"XDG_STATE_HOME": "/Users/u/st", "HOME": "/Users/u"}, "/Users/u/st/distlock/locks.db", false},
		{"freebsd", map[string]string{"HOME": "/home/u"}, "/home/u/.local/state/distlock/locks.db", false},
		{"windows", map[string]string{"LocalAppData": `C:\Users\u\AppData\Local`, "XDG_STATE_HOME": "/ignored"}, `C:\Users\u\AppData\Local\distlock\locks.db`, false},
		{"windows", map[string]string{"LocalAppData": `C:\Users\u\AppData\Local\`}, `C:\Users\u\AppData\Local\distlock\locks.db`, false},
		{"windows", map[string]string{"HOME": `C:\Users\u`}, "", true},
	}
	for _, tt := range tests {
		got, err := defaultStorePath(tt.goos, func(k string) string { return tt.env[k] })
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("defaultStorePath(%s, %v) = %q, %v; want %q, error %v", tt.goos, tt.env, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestSQLiteURL(t *testing.T) {
	t.Parallel()
	tests := []struct{ goos, file, want string }{
		{"linux", "/home/u/.local/state/distlock/locks.db", "sqlite:///home/u/.local/state/distlock/locks.db"},
		{"linux", "/home/John Smith/locks.db", "sqlite:///home/John%20Smith/locks.db"},
		{"windows", `C:\Users\u\AppData\Local\distlock\locks.db`, "sqlite:///C:/Users/u/AppData/Local/distlock/locks.db"},
	}
	for _, tt := range tests {
		if got := sqliteURL(tt.goos, tt.file); got != tt.want {
			t.Errorf("sqliteURL(%s, %q) = %q, want %q", tt.goos, tt.file, got, tt.want)
		}
	}
}

func TestChooseStore(t *testing.T) {
	t.Parallel()
	env := map[string]string{"DISTLOCK_STORE": "sqlite:///env.db", "HOME": "/home/u", "LocalAppData": `C:\L`}
	getenv := func(k string) string { return env[k] }
	if got, _ := chooseStore("sqlite:///flag.db", true, getenv); got != "sqlite:///flag.db" {
		t.Errorf("--store given: got %q", got)
	}
	if got, _ := chooseStore("", true, getenv); got != "" {
		t.Errorf("--store given empty: got %q, want it kept (Open rejects it)", got)
	}
	if got, _ := chooseStore("", false, getenv); got != "sqlite:///env.db" {
		t.Errorf("$DISTLOCK_STORE: got %q", got)
	}
	env["DISTLOCK_STORE"] = ""
	if got, _ := chooseStore("", false, getenv); !strings.HasPrefix(got, "sqlite:///") || !strings.HasSuffix(got, "/distlock/locks.db") {
		t.Errorf("default: got %q", got)
	}
	delete(env, "HOME")
	delete(env, "LocalAppData")
	if _, err := chooseStore("", false, getenv); err == nil || !strings.Contains(err.Error(), "pass --store") {
		t.Errorf("no default: got error %v, want advice to pass --store", err)
	}
}

// TestDefaultStoreFromEnvironment runs status without --store: the store is
// $DISTLOCK_STORE, else the SQLite file under $XDG_STATE_HOME or $HOME.
func TestDefaultStoreFromEnvironment(t *testing.T) {
	state, home := t.TempDir(), t.TempDir()
	t.Setenv("DISTLOCK_STORE", "")
	t.Setenv("HOME", home)

	t.Setenv("XDG_STATE_HOME", state)
	if r := runCLI(t, "status", "k"); r.code != exitOK {
		t.Fatalf("status with XDG_STATE_HOME: %v", r)
	}
	if _, err := os.Stat(filepath.Join(state, "distlock", "locks.db")); err != nil {
		t.Errorf("default store not under $XDG_STATE_HOME: %v", err)
	}

	t.Setenv("XDG_STATE_HOME", "relative/ignored")
	if r := runCLI(t, "status", "k"); r.code != exitOK {
		t.Fatalf("status with HOME: %v", r)
	}
	if _, err := os.Stat(filepath.Join(home, ".local", "state", "distlock", "locks.db")); err != nil {
		t.Errorf("default store not under $HOME/.local/state: %v", err)
	}

	dir := t.TempDir()
	t.Setenv("DISTLOCK_STORE", "sqlite://"+filepath.Join(dir, "env.db"))
	if r := runCLI(t, "status", "k"); r.code != exitOK {
		t.Fatalf("status with DISTLOCK_STORE: %v", r)
	}
	if r := runCLI(t, "status", "--store", "sqlite://"+filepath.Join(dir, "flag.db"), "k"); r.code != exitOK {
		t.Fatalf("status with --store: %v", r)
	}
	for _, name := range []string{"env.db", "flag.db"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("$DISTLOCK_STORE, then --store over it: %v", err)
		}
	}
}
