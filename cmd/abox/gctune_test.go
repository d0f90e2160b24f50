package main

import "testing"

func TestGCPercentFollowsTheLiveHeap(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		live, headroom uint64
		want           int
	}{
		{0, 64 * mib, maxGCPercent},
		{4 * mib, 64 * mib, maxGCPercent}, // 1600% capped
		{16 * mib, 64 * mib, 400},
		{64 * mib, 64 * mib, 100},
		{128 * mib, 64 * mib, 50},
		{400 * mib, 64 * mib, minGCPercent}, // a quarter of a large heap at least
		{16 * mib, 0, minGCPercent},
	} {
		if got := gcPercentFor(tc.live, tc.headroom); got != tc.want {
			t.Errorf("gcPercentFor(%d MiB, %d MiB) = %d, want %d", tc.live/mib, tc.headroom/mib, got, tc.want)
		}
	}
}
