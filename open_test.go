package distlock

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/distlock/distlock/driver"
)

func TestOpenRejectsBadURLs(t *testing.T) {
	tests := []struct {
		url     string
		wantIn  string // substring of the error message
		wantNot string // must not appear (a password)
	}{
		{url: "", wantIn: "store URL is empty"},
		{url: "/var/lib/locks.db", wantIn: "has no scheme"},
		{url: "nosuch://host/x", wantIn: `unknown store scheme "nosuch"`},
		{url: "redis://127.0.0.1:6379", wantIn: "import github.com/distlock/distlock/redislock"},
		{url: "etcd://h:2379", wantIn: "import github.com/distlock/distlock/etcdlock"},
		{url: "redis://user:s3cret@host:6379/0\x7f", wantIn: "malformed store URL", wantNot: "s3cret"},
		{url: "postgres://u:hunter2@[::1:5432/db", wantIn: "malformed store URL", wantNot: "hunter2"},
		{url: "mysql://u:p%zzword@h/db", wantIn: "malformed store URL", wantNot: "p%zzword"},
	}
	for _, tt := range tests {
		_, err := Open(context.Background(), tt.url)
		if err == nil {
			t.Errorf("Open(%q): no error", tt.url)
			continue
		}
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("Open(%q): %v does not wrap ErrInvalid", tt.url, err)
		}
		msg := err.Error()
		if !strings.Contains(msg, tt.wantIn) {
			t.Errorf("Open(%q) = %q, want it to mention %q", tt.url, msg, tt.wantIn)
		}
		if tt.wantNot != "" && strings.Contains(msg, tt.wantNot) {
			t.Errorf("Open(%q) = %q leaks the password", tt.url, msg)
		}
	}
}

func TestRedactURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"redis://:pw@h:1/0", "redis://:xxxxx@h:1/0"},
		{"postgres://u:pw@h/db?x=1", "postgres://u:xxxxx@h/db?x=1"},
		{"postgres://u@h/db", "postgres://u@h/db"},
		{"sqlite:///tmp/x.db", "sqlite:///tmp/x.db"},
		{"bad postgres://u:pw@[::1 text", "bad postgres://u:xxxxx@[::1 text"},
	}
	for _, tt := range tests {
		if got := RedactURL(tt.in); got != tt.want {
			t.Errorf("RedactURL(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestRegisteredDriverErrorsAreRedacted(t *testing.T) {
	scheme := fmt.Sprintf("testleaky%d", schemeSeq.Add(1))
	Register(scheme, func(ctx context.Context, u *url.URL) (driver.Driver, error) {
		return nil, fmt.Errorf("cannot log in as %s", u.String())
	})
	_, err := Open(context.Background(), scheme+"://bob:t0ps3cret@host/")
	if err == nil || strings.Contains(err.Error(), "t0ps3cret") {
		t.Fatalf("Open error %v leaks the password", err)
	}
	if !strings.Contains(err.Error(), scheme) {
		t.Errorf("Open error %q does not name the backend", err)
	}
}

func TestRegisterTwicePanics(t *testing.T) {
	open := func(context.Context, *url.URL) (driver.Driver, error) { return nil, errors.New("x") }
	scheme := fmt.Sprintf("testdup%d", schemeSeq.Add(1))
	Register(scheme, open)
	defer func() {
		if recover() == nil {
			t.Error("second Register of the same scheme did not panic")
		}
	}()
	Register(scheme, open)
}

var schemeSeq atomic.Int64
