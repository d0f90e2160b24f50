package main

import (
	"context"
	"log/slog"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"
)

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

func TestQuietTrimmerOncePerQuietSpell(t *testing.T) {
	const mib = 1 << 20
	var q quietTrimmer
	allocs := uint64(100 * mib)
	heap := uint64(300 * mib)
	step := func(grew uint64) bool {
		allocs += grew
		return q.tick(allocs, heap)
	}
	step(0) // the first reading only sets the counter
	for i := 1; i < quietSeconds; i++ {
		if step(quietRate / 2) {
			t.Fatalf("trimmed after %d quiet seconds, want %d", i, quietSeconds)
		}
	}
	if !step(0) {
		t.Fatalf("not trimmed after %d quiet seconds", quietSeconds)
	}
	for range 10 {
		if step(0) {
			t.Fatal("trimmed twice in one quiet spell")
		}
	}
	// Activity starts a new spell.
	step(10 * mib)
	for i := 1; i < quietSeconds; i++ {
		step(0)
	}
	if !step(0) {
		t.Fatal("a second quiet spell was not trimmed")
	}
	// Nothing worth returning: no trim.
	step(10 * mib)
	heap = trimMin - 1
	for range 2 * quietSeconds {
		if step(0) {
			t.Fatal("trimmed with less than trimMin to return")
		}
	}
}

// TestTuneGCGivesBackGarbageWhenQuiet: after a burst of allocation the
// process goes quiet; tuneGC collects and returns the pages to the
// system. Without it the garbage would stay until Go's two-minute forced
// collection, since a heap that does not grow starts none.
func TestTuneGCGivesBackGarbageWhenQuiet(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go tuneGC(ctx, 64, slog.New(slog.DiscardHandler))
	defer debug.SetGCPercent(100)
	burst := make([][]byte, 64)
	for i := range burst {
		burst[i] = make([]byte, 1<<20)
		burst[i][0] = 1
	}
	// Counted while the burst is still live: its pages may have come
	// from memory released before.
	released := []metrics.Sample{{Name: "/memory/classes/heap/released:bytes"}}
	metrics.Read(released)
	before := released[0].Value.Uint64()
	runtime.KeepAlive(burst)
	burst = nil
	deadline := time.Now().Add(time.Duration(quietSeconds+15) * time.Second)
	for time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
		metrics.Read(released)
		if got := released[0].Value.Uint64(); got >= before+32<<20 {
			return
		}
	}
	metrics.Read(released)
	t.Fatalf("released %d MiB before the burst was dropped, %d MiB after; want 32 more",
		before>>20, released[0].Value.Uint64()>>20)
}
