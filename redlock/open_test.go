package redlock_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/distlock/distlock"
)

func TestOpenErrors(t *testing.T) {
	c := startCluster(t, 3)
	addrs := make([]string, 3)
	for i, s := range c.servers {
		addrs[i] = s.Addr()
	}
	for _, tc := range []struct {
		url  string
		want error
	}{
		// The servers have no password: AUTH is answered with an error.
		{"redlock://u:s3cret@" + strings.Join(addrs, ","), distlock.ErrInvalid},
		{"redlock://127.0.0.1:1,127.0.0.1:2,127.0.0.1:3", distlock.ErrUnavailable},
		{"redlock://" + addrs[0] + ",127.0.0.1:2,127.0.0.1:3", distlock.ErrUnavailable},
		{"redlock://" + addrs[0] + "," + addrs[1], distlock.ErrInvalid},
		{"redlock://" + addrs[0] + "," + addrs[1] + "," + strings.Replace(addrs[0], "127.0.0.1", "localhost", 1), distlock.ErrInvalid},
	} {
		client, err := distlock.Open(t.Context(), tc.url)
		if err == nil {
			client.Close()
			t.Errorf("Open(%s) succeeded, want an error wrapping %v", tc.url, tc.want)
			continue
		}
		if !errors.Is(err, tc.want) {
			t.Errorf("Open(%s) = %v, want an error wrapping %v", tc.url, err, tc.want)
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("Open's error shows the password: %v", err)
		}
	}
	// A majority is enough to open.
	client, err := distlock.Open(t.Context(), "redlock://"+addrs[0]+","+addrs[1]+",127.0.0.1:3")
	if err != nil {
		t.Fatalf("Open with 2 of 3 nodes up: %v", err)
	}
	client.Close()
}
