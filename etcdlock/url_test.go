package etcdlock

import (
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/distlock/distlock"
)

func TestParseURL(t *testing.T) {
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		url     string
		want    Config // compared without TLS
		tls     bool
		wantErr string // in the message; "" means success
	}{
		{url: "etcd://h1:2379", want: Config{Endpoints: []string{"h1:2379"}}},
		{url: "etcd://h1,h2:32379/", want: Config{Endpoints: []string{"h1:2379", "h2:32379"}}},
		{url: "etcd://[::1]:2379", want: Config{Endpoints: []string{"[::1]:2379"}}},
		{url: "etcd://u:p%40ss@h1:2379?prefix=/locks/", want: Config{Endpoints: []string{"h1:2379"}, Username: "u", Password: "p@ss", Options: Options{Prefix: "/locks/"}}},
		{url: "etcd://h1?dial_timeout=2s", want: Config{Endpoints: []string{"h1:2379"}, DialTimeout: 2e9}},
		{url: "etcd://h1?tls=true", want: Config{Endpoints: []string{"h1:2379"}}, tls: true},
		{url: "etcd://h1?insecure_skip_verify=true", want: Config{Endpoints: []string{"h1:2379"}}, tls: true},
		{url: "etcd://", wantErr: "no hosts"},
		{url: "etcd:h1", wantErr: "no hosts"},
		{url: "etcd://h1/path", wantErr: "path"},
		{url: "etcd://h1,,h2", wantErr: "empty host"},
		{url: "etcd://h1:0", wantErr: "bad port"},
		{url: "etcd://h1:99999", wantErr: "bad port"},
		{url: "etcd://:2379", wantErr: "no name"},
		{url: "etcd://h1?bogus=1", wantErr: "unknown parameter(s) bogus"},
		{url: "etcd://h1?prefix=a&prefix=b", wantErr: "given 2 times"},
		{url: "etcd://h1?dial_timeout=soon", wantErr: "dial_timeout"},
		{url: "etcd://h1?tls=maybe", wantErr: "tls="},
		{url: "etcd://h1?cert=/c.pem", wantErr: "together"},
		{url: "etcd://h1?tls=false&insecure_skip_verify=true", wantErr: "contradicts"},
		{url: "etcd://h1?ca=/does/not/exist.pem", wantErr: "ca:"},
		{url: "etcd://h1?ca=" + caFile, wantErr: "no PEM certificate"},
		{url: "etcd://:secret@h1", wantErr: "user name"},
		{url: "etcd://h1#frag", wantErr: "fragment"},
	} {
		u, err := url.Parse(c.url)
		if err != nil {
			t.Fatalf("%s: %v", c.url, err)
		}
		got, err := parseURL(u)
		if c.wantErr != "" {
			if err == nil || !errors.Is(err, distlock.ErrInvalid) || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("%s: error %v, want ErrInvalid mentioning %q", c.url, err, c.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), "secret") {
				t.Errorf("%s: error shows the password: %v", c.url, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", c.url, err)
			continue
		}
		if (got.TLS != nil) != c.tls {
			t.Errorf("%s: TLS %v, want %v", c.url, got.TLS != nil, c.tls)
		}
		got.TLS = nil
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: %+v, want %+v", c.url, got, c.want)
		}
	}
}

func TestLeaseKeyMatchesMutex(t *testing.T) {
	// concurrency.Mutex names its key fmt.Sprintf("%s%x", pfx, s.Lease()).
	if got := leaseKey("jobs/", 0x694d77a0c3e4b30a); got != "jobs/694d77a0c3e4b30a" {
		t.Errorf("leaseKey = %q", got)
	}
	for _, c := range []struct {
		key  string
		want bool
	}{{"a/1f", true}, {"a/b/1f", false}, {"a//1f", false}, {"a/", false}, {"ab/1f", false}} {
		if got := isDirectChild("a/", []byte(c.key)); got != c.want {
			t.Errorf("isDirectChild(a/, %q) = %v, want %v", c.key, got, c.want)
		}
	}
}
