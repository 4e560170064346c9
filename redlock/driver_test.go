package redlock

import "testing"

func TestMajorityFence(t *testing.T) {
	for _, c := range []struct {
		fences []uint64
		quorum int
		want   uint64
	}{
		{[]uint64{7, 7, 7}, 2, 7},
		{[]uint64{9, 7, 7}, 2, 7}, // a straggler's own larger fence
		{[]uint64{7, 7}, 2, 7},
		{[]uint64{9, 7, 7, 7, 3}, 3, 7},
		{[]uint64{5}, 2, 5},
		{nil, 2, 0},
	} {
		if got := majorityFence(c.fences, c.quorum); got != c.want {
			t.Errorf("majorityFence(%v, %d) = %d, want %d", c.fences, c.quorum, got, c.want)
		}
	}
}
