package main

import (
	"context"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// The garbage collector's target. Go's default (GOGC=100) lets the heap
// grow to twice the live heap between collections: with the few MiB a
// busy SMTP listener keeps live, that is a collection every few
// milliseconds, and a quarter of the delivery path's CPU went to it
// (docs/BENCHMARKS.md); with the hundreds of MiB that 10,000 IDLE
// sessions keep live, it doubles their memory. So the target follows the
// live heap: the heap may grow by gc-headroom-mib over it (GOGC =
// headroom / live), between a quarter of the live heap (a large, mostly
// idle heap) and ten times it (a small, busy one).
const (
	minGCPercent = 25
	maxGCPercent = 1000
)

// gcPercentFor is the GOGC that gives live bytes of live heap the
// headroom, within [minGCPercent, maxGCPercent].
func gcPercentFor(live, headroom uint64) int {
	if live == 0 {
		return maxGCPercent
	}
	p := headroom * 100 / live
	return int(min(max(p, minGCPercent), maxGCPercent))
}

// tuneGC adjusts GOGC to the live heap every second until ctx ends.
func tuneGC(ctx context.Context, headroomMiB int) {
	headroom := uint64(headroomMiB) << 20
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	current := -1
	apply := func() {
		metrics.Read(sample)
		if sample[0].Value.Kind() != metrics.KindUint64 {
			return
		}
		p := gcPercentFor(sample[0].Value.Uint64(), headroom)
		// Only a real change: setting it is not free.
		if current < 0 || p > current*5/4 || p < current*4/5 {
			debug.SetGCPercent(p)
			current = p
		}
	}
	apply()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			apply()
		}
	}
}
