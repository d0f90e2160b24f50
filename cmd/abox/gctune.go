package main

import (
	"context"
	"log/slog"
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

// Giving memory back when the server is quiet. The headroom above is
// for allocating fast; a server whose sessions all wait (thousands of
// IDLE connections and nothing arriving) does not need it, nor the
// garbage of the burst that opened them (each login's password hash
// alone allocates 19 MiB). Go returns free memory to the system only
// down to its heap target, and frees garbage only at a collection, which
// a heap that does not grow never starts. So after quietSeconds in which
// the heap grew by less than quietRate a second, if the heap holds at
// least trimMin, tuneGC collects and returns every free page
// (debug.FreeOSMemory, one full collection), once per quiet spell. (The
// live heap the last collection measured cannot tell how much would go
// back: it may have counted objects that died since.)
const (
	quietSeconds = 5
	quietRate    = 1 << 20
	trimMin      = 16 << 20
)

// quietTrimmer decides when to give memory back, from the heap's
// allocation counter and size read once a second.
type quietTrimmer struct {
	lastAllocs uint64 // the counter at the previous tick
	quiet      int    // seconds in a row under quietRate
	trimmed    bool   // this quiet spell has been trimmed
}

// tick takes the cumulative bytes allocated and the heap's size
// (objects, dead or alive, and free pages not yet returned), and says
// whether to trim now.
func (q *quietTrimmer) tick(allocs, heap uint64) bool {
	grew := allocs - q.lastAllocs
	first := q.lastAllocs == 0
	q.lastAllocs = allocs
	if first || grew >= quietRate {
		q.quiet, q.trimmed = 0, false
		return false
	}
	q.quiet++
	if q.trimmed || q.quiet < quietSeconds || heap < trimMin {
		return false
	}
	q.trimmed = true
	return true
}

// tuneGC adjusts GOGC to the live heap every second, and gives memory
// back when the server is quiet, until ctx ends.
func tuneGC(ctx context.Context, headroomMiB int, log *slog.Logger) {
	headroom := uint64(headroomMiB) << 20
	sample := []metrics.Sample{
		{Name: "/gc/heap/live:bytes"},
		{Name: "/gc/heap/allocs:bytes"},
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/memory/classes/heap/unused:bytes"},
		{Name: "/memory/classes/heap/free:bytes"},
	}
	current := -1
	var trim quietTrimmer
	apply := func() {
		metrics.Read(sample)
		for _, s := range sample {
			if s.Value.Kind() != metrics.KindUint64 {
				return
			}
		}
		live := sample[0].Value.Uint64()
		p := gcPercentFor(live, headroom)
		// Only a real change: setting it is not free.
		if current < 0 || p > current*5/4 || p < current*4/5 {
			debug.SetGCPercent(p)
			current = p
		}
		heap := sample[2].Value.Uint64() + sample[3].Value.Uint64() + sample[4].Value.Uint64()
		if trim.tick(sample[1].Value.Uint64(), heap) {
			t0 := time.Now()
			debug.FreeOSMemory()
			metrics.Read(sample[:1])
			log.Debug("quiet: memory returned to the system", "heap_mib", heap>>20,
				"live_mib", sample[0].Value.Uint64()>>20, "took", time.Since(t0))
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
