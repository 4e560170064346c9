package rediswire

import (
	"strings"
	"testing"
)

func TestCRC16(t *testing.T) {
	// The check value of CRC-16/XMODEM, also the test vector in the Redis
	// Cluster specification.
	if got := crc16("123456789"); got != 0x31C3 {
		t.Fatalf("crc16(123456789) = %#x, want 0x31c3", got)
	}
}

func TestSlot(t *testing.T) {
	// Values from the CLUSTER KEYSLOT documentation and a live cluster.
	for key, want := range map[string]int{
		"somekey":       11058,
		"foo{hash_tag}": 2515,
		"foo":           12182,
		"bar":           5061,
	} {
		if got := Slot(key); got != want {
			t.Errorf("Slot(%q) = %d, want %d", key, got, want)
		}
	}
	same := [][2]string{
		{"{user1000}.following", "{user1000}.followers"},
		{"foo{{bar}}zap", "{bar"}, // tag is "{bar"
		{"foo{bar}{zap}", "bar"},  // first tag only
		{"a}b{c}", "c"},           // '}' before the '{' does not count
	}
	if Slot("foo{}{bar}") != int(crc16("foo{}{bar}"))%SlotCount {
		t.Error("an empty tag must hash the whole key")
	}
	for _, p := range same {
		if Slot(p[0]) != Slot(p[1]) {
			t.Errorf("Slot(%q) != Slot(%q)", p[0], p[1])
		}
	}
}

func TestSlotTagCoversEverySlot(t *testing.T) {
	for s := range SlotCount {
		tag := SlotTag(s)
		if tag == "" || strings.ContainsAny(tag, "{}") {
			t.Fatalf("SlotTag(%d) = %q", s, tag)
		}
		if got := Slot(tag); got != s {
			t.Fatalf("Slot(SlotTag(%d)) = %d", s, got)
		}
	}
	if SlotTag(Slot("0")) != "0" {
		t.Fatal("the tag must be the smallest integer")
	}
}

func TestNamesShareTheLockSlot(t *testing.T) {
	keys := []string{"", "k", "a{b}c", "a}b", "{}x", "{x", "x}", "{a}{b}", "}{", "{{}}", "user:{42}:cart", "é{ü}"}
	for _, prefix := range []string{"", "app:", "{p}", "p{"} {
		for _, k := range keys {
			n := NamesFor(prefix, k)
			if n.Lock != prefix+k {
				t.Fatalf("Lock = %q, want %q", n.Lock, prefix+k)
			}
			want := Slot(n.Lock)
			for _, name := range []string{n.Record, n.Queue, n.Waiters, n.Channel} {
				if Slot(name) != want {
					t.Errorf("prefix %q key %q: Slot(%q) = %d, want %d", prefix, k, name, Slot(name), want)
				}
				if !strings.HasSuffix(name, n.Lock) {
					t.Errorf("%q does not end with the lock name", name)
				}
			}
		}
	}
	if a, b := NamesFor("", "x"), NamesFor("", "y"); a.Record == b.Record {
		t.Fatal("two keys share a record")
	}
}
