package distlock

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/distlock/distlock/driver"
)

func TestValidateKey(t *testing.T) {
	tests := []struct {
		key    string
		wantIn string // "" means valid
	}{
		{"a", ""},
		{"jobs/nightly-report", ""},
		{"用户:42:签到:2026-11-24", ""},
		{`'; DROP TABLE distlock_locks; --`, ""},
		{strings.Repeat("k", MaxKeyLen), ""},
		{"", "key is empty"},
		{strings.Repeat("k", MaxKeyLen+1), "key is 1025 bytes, over the limit of 1024"},
		{"bad\xffutf8", "not valid UTF-8"},
		{"nul\x00byte", "NUL byte at offset 3"},
	}
	for _, tt := range tests {
		err := ValidateKey(tt.key)
		if tt.wantIn == "" {
			if err != nil {
				t.Errorf("ValidateKey(%.20q) = %v, want nil", tt.key, err)
			}
			continue
		}
		if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.wantIn) {
			t.Errorf("ValidateKey(%.20q) = %v, want ErrInvalid mentioning %q", tt.key, err, tt.wantIn)
		}
	}
}

func TestCheckTTL(t *testing.T) {
	etcd := driver.Info{Name: "etcd", MinTTL: 2 * time.Second, TTLGranularity: time.Second}
	tests := []struct {
		name    string
		opts    []LockOption
		info    driver.Info
		wantTTL time.Duration
		wantIn  string
	}{
		{"default", nil, driver.Info{Name: "x"}, DefaultTTL, ""},
		{"below minimum", []LockOption{WithTTL(50 * time.Millisecond)}, etcd, 0, "ttl 50ms is below etcd's minimum of 2s"},
		{"rounded up", []LockOption{WithTTL(2500 * time.Millisecond)}, etcd, 3 * time.Second, ""},
		{"zero", []LockOption{WithTTL(0)}, etcd, 0, "ttl 0s must be positive"},
		{"renew too slow", []LockOption{WithTTL(time.Second), WithRenewInterval(600 * time.Millisecond)}, driver.Info{Name: "x"}, 0, "at most half the ttl"},
		{"renew off ignores interval", []LockOption{WithTTL(time.Second), WithRenewInterval(2 * time.Second), WithAutoRenew(false)}, driver.Info{Name: "x"}, time.Second, ""},
		{"short ttl under the default interval", []LockOption{WithTTL(300 * time.Millisecond)}, driver.Info{Name: "x", MinTTL: 100 * time.Millisecond}, 300 * time.Millisecond, ""},
		{"bad backoff", []LockOption{WithBackoff(0, time.Second)}, driver.Info{Name: "x"}, 0, "backoff"},
		{"owner too long", []LockOption{WithOwner(strings.Repeat("o", 300))}, driver.Info{Name: "x"}, 0, "owner is 300 bytes"},
	}
	for _, tt := range tests {
		c := &Client{cfg: defaultClientConfig(), info: tt.info}
		if err := checkTTL(&c.cfg.lock, tt.info); err != nil { // as NewClient does
			t.Fatalf("%s: default config rejected: %v", tt.name, err)
		}
		cfg, err := c.resolve(tt.opts)
		if tt.wantIn != "" {
			if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.wantIn) {
				t.Errorf("%s: err = %v, want ErrInvalid mentioning %q", tt.name, err, tt.wantIn)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if cfg.ttl != tt.wantTTL {
			t.Errorf("%s: ttl = %v, want %v", tt.name, cfg.ttl, tt.wantTTL)
		}
	}
}

func TestTokensAreUnique(t *testing.T) {
	seen := map[string]bool{}
	for range 10000 {
		tok := newToken()
		if len(tok) != 22 || seen[tok] {
			t.Fatalf("token %q repeated or of the wrong length", tok)
		}
		seen[tok] = true
	}
}

func TestJitterStaysInRange(t *testing.T) {
	for _, d := range []time.Duration{0, 1, 2, 3, time.Millisecond, time.Second} {
		for range 1000 {
			if j := jitter(d); j < d/2 || j > d {
				t.Fatalf("jitter(%v) = %v, outside [%v, %v]", d, j, d/2, d)
			}
		}
	}
}

func TestErrorMessage(t *testing.T) {
	e := &Error{Op: "lock", Key: strings.Repeat("é", 40), Backend: "sqlite", Err: ErrLocked}
	msg := e.Error()
	if !strings.HasPrefix(msg, `distlock: lock "`) || !strings.Contains(msg, "…") ||
		!strings.HasSuffix(msg, "on sqlite: key is locked by another holder") {
		t.Errorf("message %q", msg)
	}
	if !errors.Is(e, ErrLocked) {
		t.Error("Error does not unwrap to its sentinel")
	}
	nested := &Error{Op: "renew", Key: "k", Backend: "sqlite", Err: fmt.Errorf("%w: %w", ErrLost, ErrNotHeld)}
	if got, want := nested.Error(), `distlock: renew "k" on sqlite: lock lost: lock is not held`; got != want {
		t.Errorf("nested message %q, want %q", got, want)
	}
}
