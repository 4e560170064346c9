package main

import (
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

func TestStatus(t *testing.T) {
	t.Parallel()
	store := sqliteStore(t)

	r := runCLI(t, "status", "--store", store, "k")
	if want := "key:   k\nstate: free\n"; r.code != 0 || r.stdout != want {
		t.Errorf("free: want %q and exit 0; got %v", want, r)
	}
	r = runCLI(t, "status", "--store", store, "--json", "k")
	if want := `{"key":"k","held":false}` + "\n"; r.code != 0 || r.stdout != want {
		t.Errorf("free --json: want %q and exit 0; got %v", want, r)
	}

	l := holdLock(t, store, "k", "web1:4242 nightly")
	r = runCLI(t, "status", "--store", store, "k")
	want := regexp.MustCompile(`^key:       k\nstate:     held\nowner:     web1:4242 nightly\nfence:     \d+\ntime left: [0-9.]+m?s\n$`)
	if r.code != 0 || !want.MatchString(r.stdout) || !strings.Contains(r.stdout, "fence:     "+strconv.FormatUint(l.Fence(), 10)+"\n") {
		t.Errorf("held: want owner, fence %d and time left, exit 0; got %v", l.Fence(), r)
	}

	r = runCLI(t, "status", "--store", store, "--json", "k")
	var got map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &got); r.code != 0 || err != nil {
		t.Fatalf("held --json: want JSON and exit 0; got %v (%v)", r, err)
	}
	ttl, _ := got["ttl_ms"].(float64)
	if got["key"] != "k" || got["held"] != true || got["owner"] != "web1:4242 nightly" ||
		got["fence"] != float64(l.Fence()) || ttl <= 0 || ttl > 30000 || len(got) != 5 {
		t.Errorf("held --json: got %s", r.stdout)
	}
}
