package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Compaction: a closed segment less than half of whose bytes are still
// referenced has its remaining bodies copied to the active segment, a
// few MiB per write request (so deliveries never wait long behind it),
// and is removed once empty. The writer notes such segments as
// deletions make them (segments.noteSparse); the compactor goroutine
// moves them.

// compactBatch bounds the bytes one request moves.
const compactBatch = 4 << 20

// compactor runs until the store closes.
func (s *Store) compactor() {
	g := s.blobs.segs
	for {
		select {
		case <-g.kick:
		case <-s.stop:
			return
		}
		for {
			seg, ok := g.nextSparse()
			if !ok {
				break
			}
			if err := s.compactSegment(seg); err != nil {
				if !errors.Is(err, ErrClosed) {
					s.log.Error("store: compacting a body segment", "segment", seg, "err", err)
				}
				return
			}
		}
	}
}

// nextSparse returns the oldest sparse segment.
func (g *segments) nextSparse() (uint32, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.sparse) == 0 {
		return 0, false
	}
	segs := make([]uint32, 0, len(g.sparse))
	for seg := range g.sparse {
		segs = append(segs, seg)
	}
	return slices.Min(segs), true
}

// compactSegment moves a segment's bodies out, request by request.
func (s *Store) compactSegment(seg uint32) error {
	g := s.blobs.segs
	moved, bodies := int64(0), 0
	start := time.Now()
	for {
		var done bool
		err := s.update(context.Background(), func(t *txn) error {
			n, b, d, err := g.moveOut(t, seg, compactBatch)
			moved, bodies, done = moved+n, bodies+b, d
			return err
		})
		if err != nil {
			return err
		}
		if done {
			break
		}
	}
	g.mu.Lock()
	delete(g.sparse, seg)
	g.mu.Unlock()
	g.compactions.Add(1)
	g.compactedTo.Add(uint64(moved))
	s.log.Info("store: compacted a body segment", "segment", seg, "bodies", bodies, "bytes", moved, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// moveOut copies up to budget bytes of a segment's bodies to the active
// segment (in a request that commits) and reports whether none is left.
func (g *segments) moveOut(t *txn, seg uint32, budget int64) (moved int64, bodies int, done bool, err error) {
	if seg == g.active {
		return 0, 0, true, nil // appends went on in it: nothing to gain
	}
	index, locs := t.tx.Bucket(bSegBlobs), t.tx.Bucket(bBlobLocs)
	prefix := segKey(seg)
	var buf []byte
	for moved < budget {
		k, _ := index.Cursor().Seek(prefix)
		if k == nil || !bytes.HasPrefix(k, prefix) {
			return moved, bodies, true, nil
		}
		k = bytes.Clone(k)
		id := decodeU64(k[4:])
		loc, ok := decodeLoc(locs.Get(u64(id)))
		if !ok || loc.seg != seg {
			return moved, bodies, false, fmt.Errorf("body %d: indexed in segment %d but not there: %w", id, seg, ErrCorrupt)
		}
		if buf, err = g.read(loc, buf); err != nil {
			return moved, bodies, false, err
		}
		if err := index.Delete(k); err != nil {
			return moved, bodies, false, err
		}
		if err := g.count(t, seg, -1, -loc.size); err != nil {
			return moved, bodies, false, err
		}
		if err := g.append(t, id, buf); err != nil {
			return moved, bodies, false, err
		}
		moved += loc.size
		bodies++
	}
	return moved, bodies, false, nil
}
