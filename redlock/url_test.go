package redlock

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/distlock/distlock"
)

func TestParseURL(t *testing.T) {
	for _, c := range []struct {
		url     string
		wantErr string // a substring of the error; "" means no error
		nodes   []string
		check   func(t *testing.T, cfg urlConfig)
	}{
		{url: "redlock://a:1,b:2,c:3", nodes: []string{"a:1", "b:2", "c:3"}},
		{url: "redlock://a,b,c", nodes: []string{"a:6379", "b:6379", "c:6379"}},
		{url: "redlock://a:1,b:2,c:3,d:4,e:5", nodes: []string{"a:1", "b:2", "c:3", "d:4", "e:5"}},
		{url: "redlock://a:1,b,c:3", nodes: []string{"a:1", "b:6379", "c:3"}},
		{url: "redlock://[::1]:1", wantErr: "at least 3"},
		// Go's URL parser takes one IP-literal host only, and wants a port
		// after the last colon.
		{url: "redlock://[::1]:1,[::1]:2,10.0.0.1:3", wantErr: "invalid IP-literal"},
		{url: "redlock://a:1,b:2,c", wantErr: "invalid port"},
		{url: "redlock://u:secret@a:1,b:2,c:3/2?prefix=app:&node_timeout=30ms&dial_timeout=1s", nodes: []string{"a:1", "b:2", "c:3"},
			check: func(t *testing.T, cfg urlConfig) {
				for _, o := range cfg.nodes {
					if o.Username != "u" || o.Password != "secret" || o.DB != 2 || o.DialTimeout != time.Second || o.TLSConfig != nil {
						t.Errorf("node options %+v: want user u, password, db 2, dial_timeout 1s, no TLS", o)
					}
					if o.MaxRetries != -1 || !o.ContextTimeoutEnabled {
						t.Errorf("node options: MaxRetries %d, ContextTimeoutEnabled %v; want -1 and true", o.MaxRetries, o.ContextTimeoutEnabled)
					}
				}
				if cfg.opts.Prefix != "app:" || cfg.opts.NodeTimeout != 30*time.Millisecond {
					t.Errorf("options %+v: want prefix app: and node_timeout 30ms", cfg.opts)
				}
			}},
		{url: "redlock://a:1,b:2,c:3?tls=true&skip_verify=true&max_retries=2", nodes: []string{"a:1", "b:2", "c:3"},
			check: func(t *testing.T, cfg urlConfig) {
				o := cfg.nodes[0]
				if o.TLSConfig == nil || !o.TLSConfig.InsecureSkipVerify || o.MaxRetries != 2 {
					t.Errorf("tls=true&skip_verify=true&max_retries=2 gave TLS %v, MaxRetries %d", o.TLSConfig, o.MaxRetries)
				}
			}},
		{url: "redlock://a:1,b:2,c:3?tls=false", nodes: []string{"a:1", "b:2", "c:3"}},
		{url: "redlock://a:1,b:2,c:3?context_timeout_enabled=true", nodes: []string{"a:1", "b:2", "c:3"},
			check: func(t *testing.T, cfg urlConfig) {
				if !cfg.nodes[0].ContextTimeoutEnabled {
					t.Error("context_timeout_enabled=true gave ContextTimeoutEnabled false")
				}
			}},
		{url: "redlock://a:1,b:2,c:3?context_timeout_enabled=false", wantErr: "context_timeout_enabled=false is not accepted"},

		{url: "redlock://a:1,b:2", wantErr: "at least 3"},
		{url: "redlock://a:1", wantErr: "at least 3"},
		{url: "redlock://a:1,b:2,c:3,d:4", wantErr: "odd number"},
		{url: "redlock://a:1,b:2,a:1", wantErr: "a:1 is given twice"},
		{url: "redlock://A:1,b:2,a.:1", wantErr: "A:1 and a.:1 are the same node"},
		{url: "redlock://localhost:1,b:2,127.0.0.1:1", wantErr: "localhost:1 and 127.0.0.1:1 are the same node"},
		{url: "redlock://a,b:2,a:6379", wantErr: "a and a:6379 are the same node"},
		{url: "redlock://a:01,b:2,a:1", wantErr: "same node"},
		{url: "redlock://a:1,,c:3", wantErr: "empty node"},
		{url: "redlock://a:1,b:x,c:3", wantErr: "port \"x\" is not a number"},
		{url: "redlock://a:1,b:0,c:3", wantErr: "port \"0\""},
		{url: "redlock://a:1,b:2,c:3?prefix=x&prefix=y", wantErr: "given 2 times"},
		{url: "redlock://a:1,b:2,c:3?bogus=1", wantErr: "unexpected option: bogus"},
		{url: "redlock://a:1,b:2,c:3?password=secret", wantErr: "parameter password is not accepted"},
		{url: "redlock://a:1,b:2,c:3?tls=maybe", wantErr: "tls=\"maybe\""},
		{url: "redlock://a:1,b:2,c:3?node_timeout=-1s", wantErr: "node_timeout"},
		{url: "redlock://a:1,b:2,c:3/x", wantErr: "invalid database number"},
		{url: "redlock://a:1,b:2,c:3#frag", wantErr: "fragment"},
		{url: "redlock:", wantErr: "no nodes"},
		{url: "redlock:///", wantErr: "no nodes"},
	} {
		t.Run(c.url, func(t *testing.T) {
			u, err := url.Parse(c.url)
			if err != nil {
				if c.wantErr == "" || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("url.Parse: %v", err)
				}
				return
			}
			cfg, err := parseURL(u)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) || !errors.Is(err, distlock.ErrInvalid) {
					t.Fatalf("parseURL = %v; want an error wrapping ErrInvalid containing %q", err, c.wantErr)
				}
				if strings.Contains(err.Error(), "secret") {
					t.Errorf("error shows the password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseURL: %v", err)
			}
			var got []string
			for _, o := range cfg.nodes {
				got = append(got, o.Addr)
			}
			if strings.Join(got, " ") != strings.Join(c.nodes, " ") {
				t.Errorf("nodes %v, want %v", got, c.nodes)
			}
			if c.check != nil {
				c.check(t, cfg)
			}
		})
	}
}
