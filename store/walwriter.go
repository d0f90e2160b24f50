package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Checkpoint triggers besides a waiting reader, an unlogged request and a
// full log: the open transaction is committed at the latest this long
// after its first acknowledged batch, or after this many requests. They
// bound the work a crash leaves to Open and keep checkpoints rare enough
// that few deliveries wait behind one (p99 at one connection).
const (
	checkpointDelay    = time.Second
	checkpointRequests = 8192
	// maxRecord: a larger batch is committed to the file at once. Its
	// bytes, not the syncs, set the cost, and logging them would write
	// them twice (measured with 64 KiB messages, docs/BENCHMARKS.md).
	maxRecord = 256 << 10
)

// updateLogged is update for a request whose writes go through
// txn.put and txn.nextSequence only: with the log on, it may be
// acknowledged once its writes are in the log.
func (s *Store) updateLogged(ctx context.Context, fn func(*txn) error) error {
	return s.submit(ctx, &writeReq{fn: fn, logged: true, err: make(chan error, 1)})
}

// commitLogged runs a batch in the open transaction. A batch of logged
// requests is acknowledged after its record is synced; any other batch
// (or one that does not fit the log) is committed with a checkpoint.
func (s *Store) commitLogged(batch []*writeReq) {
	if s.broken != nil {
		failAll(batch, s.broken)
		return
	}
	fresh := s.wtx == nil
	if s.wtx == nil {
		tx, err := s.db.Begin(true)
		if err != nil {
			failAll(batch, fmt.Errorf("store: %w", err))
			return
		}
		s.wtx = tx
	}
	if s.space.low.Load() {
		// The disk is full: no new mail. Other writes (flags, expunges,
		// account changes) may still fit in free pages, and free space.
		kept := batch[:0]
		for _, r := range batch {
			if r.logged {
				r.err <- ErrNoSpace
			} else {
				kept = append(kept, r)
			}
		}
		if batch = kept; len(batch) == 0 {
			return
		}
	}
	logged := true
	for _, r := range batch {
		logged = logged && r.logged
	}
	now := s.clock()
	for len(batch) > 0 {
		s.oplog.reset()
		var log *opLog
		if logged {
			log = &s.oplog
		}
		t0 := time.Now()
		err := s.runInOpen(batch, now, log)
		s.txNanos.Add(uint64(time.Since(t0)))
		if err == nil {
			break
		}
		// The transaction holds part of the batch: take it back to the
		// checkpoint plus the log, then run the batch without the
		// request that failed.
		if rerr := s.rebuild(); rerr != nil {
			failAll(batch, rerr)
			return
		}
		var m *errBatchMember
		if !errors.As(err, &m) {
			failAll(batch, err)
			return
		}
		batch[m.i].err <- m.err
		batch = append(batch[:m.i:m.i], batch[m.i+1:]...)
	}
	if len(batch) == 0 {
		return
	}
	if logged && len(s.oplog.buf) == 0 {
		// Nothing written (a lease that found nothing due): nothing to
		// make durable, no record and no sync; a transaction opened for
		// it alone is dropped, so no checkpoint follows either.
		if fresh {
			s.wtx.Rollback()
			s.wtx = nil
		}
		for _, r := range batch {
			s.feed.publish(r.changes)
			r.err <- nil
		}
		return
	}
	if logged && s.deferred+len(batch) < checkpointRequests && !s.oplog.full {
		t0 := time.Now()
		err := s.wal.append(s.walSeq+1, s.oplog.buf)
		s.walNanos.Add(uint64(time.Since(t0)))
		// The number is used up even when the append failed: a record
		// whose sync failed may still reach the disk, and the checkpoint
		// below (which holds the batch) must cover it, or a later Open
		// would apply it again over newer writes.
		s.walSeq++
		if err == nil {
			s.walSyncs.Add(1)
			s.requests.Add(uint64(len(batch)))
			s.deferred += len(batch)
			// Before the answers: a reader that starts after one must
			// wait for this batch's checkpoint.
			gen := s.deferGen.Add(1)
			s.acctMu.Lock()
			for _, r := range batch {
				for _, a := range r.accts {
					s.acctGen[a] = gen
				}
			}
			s.acctMu.Unlock()
			// The changes go out now: a session that hears of a message
			// reads it through the barrier, and the log keeps it even if
			// a checkpoint fails.
			for _, r := range batch {
				s.feed.publish(r.changes)
				if r.dirChanged {
					s.dirGen.Add(1)
				}
				r.err <- nil
			}
			return
		}
		if !errors.Is(err, errWALFull) {
			s.log.Error("store: writing the write-ahead log; committing instead", "err", err)
		}
		// Fall through: the checkpoint makes the batch durable. If it
		// fails, the open transaction is rebuilt from the log, which
		// ends before this number: the store then refuses writes
		// (rebuild) rather than guess.
	}
	err := s.checkpoint(batch)
	if err == nil {
		s.requests.Add(uint64(len(batch)))
	}
	failAll(batch, err)
}

// closeLog makes Close's last checkpoint, which also marks the log as
// holding nothing (a later Open then knows a missing log lost nothing).
// Whatever happens, no write transaction is left open: bbolt's Close
// would wait for it for ever.
func (s *Store) closeLog() {
	defer func() {
		if s.wtx != nil {
			s.wtx.Rollback()
			s.wtx = nil
		}
	}()
	if s.crashOnClose {
		return // tests: stop as a crash would, leaving the log
	}
	if s.wal == nil || s.broken != nil {
		s.checkpoint(nil)
		return
	}
	if s.wtx == nil {
		tx, err := s.db.Begin(true)
		if err != nil {
			s.log.Error("store: closing: the next start will read the write-ahead log", "err", err)
			return
		}
		s.wtx = tx
	}
	s.finalCheckpoint = true
	if err := s.checkpoint(nil); err != nil {
		s.log.Error("store: the last checkpoint failed; the next start applies the write-ahead log", "err", err)
	}
}

// runInOpen runs the batch in the open transaction.
func (s *Store) runInOpen(batch []*writeReq, now time.Time, log *opLog) (err error) {
	idx := -1
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("store: panic in write transaction", "panic", r)
			err = fmt.Errorf("store: internal error: %v", r)
			if idx >= 0 {
				err = &errBatchMember{i: idx, err: err}
			}
		}
	}()
	return s.runRequests(s.wtx, batch, now, log, &idx)
}

// failAll answers every request with err (nil included).
func failAll(batch []*writeReq, err error) {
	for _, r := range batch {
		r.err <- err
	}
}

// rebuild replaces the open transaction with the last checkpoint plus
// the log's records: what has been acknowledged, nothing else.
func (s *Store) rebuild() error {
	s.blobs.segs.discard()
	if s.wtx != nil {
		s.wtx.Rollback()
		s.wtx = nil
	}
	tx, err := s.db.Begin(true)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	last, _, err := s.wal.records(s.wal.token, s.ckSeq, func(_ uint64, payload []byte) error { return applyOps(tx, payload) })
	if err == nil && last != s.walSeq {
		err = fmt.Errorf("store: write-ahead log ends at record %d, want %d: %w", last, s.walSeq, ErrCorrupt)
	}
	if err != nil {
		tx.Rollback()
		// Acknowledged deliveries are in the log, which the next Open
		// applies; until then this process must not write over them.
		s.broken = fmt.Errorf("store: reading back the write-ahead log: %w", err)
		s.log.Error("store: refusing writes until restarted", "err", err)
		return s.broken
	}
	s.wtx = tx
	return nil
}

// checkpoint commits the open transaction with extra (a batch run in it
// but not logged), publishes extra's changes, and rewinds the log. On
// failure the transaction is rebuilt from the log (extra's writes are
// dropped) and the error returned.
func (s *Store) checkpoint(extra []*writeReq) error {
	if s.wtx == nil {
		return nil
	}
	tx := s.wtx
	s.wtx = nil
	t0 := time.Now()
	// The records after this checkpoint carry a new token: none written
	// before it can ever be applied over it.
	token := newToken()
	err := s.commitCheckpoint(tx, token)
	dropped := false
	if err != nil && noSpace(err) && s.walSeq > s.ckSeq && s.space.release() {
		// The disk is full: give the reserve back and commit what the
		// log holds (everything acknowledged). extra's writes were in
		// the rolled-back transaction and are refused.
		s.space.goLow(err.Error())
		s.log.Warn("store: gave back the disk reserve to checkpoint acknowledged mail", "err", err)
		if err = s.rebuild(); err == nil {
			tx, s.wtx = s.wtx, nil
			err = s.commitCheckpoint(tx, token)
			dropped = err == nil && len(extra) > 0
		}
	}
	s.ioNanos.Add(uint64(time.Since(t0)))
	if err != nil {
		err = fmt.Errorf("store: %w", err)
		s.log.Error("store: checkpoint failed", "err", err)
		if s.walSeq > s.ckSeq {
			s.rebuild()
		}
		s.checkpointed()
		return err
	}
	s.blobs.segs.committed()
	s.commits.Add(1)
	s.ckSeq = s.walSeq
	if s.wal != nil {
		s.wal.rewind(token)
	}
	dir := false
	for _, r := range extra {
		if dropped {
			break
		}
		s.feed.publish(r.changes)
		dir = dir || r.dirChanged
	}
	if dir {
		s.dirGen.Add(1)
	}
	s.deferred = 0
	s.appliedGen.Store(s.deferGen.Load())
	s.acctMu.Lock()
	if len(s.acctGen) > 4*checkpointRequests {
		s.acctGen = map[uint64]uint64{}
	} else {
		clear(s.acctGen)
	}
	s.acctMu.Unlock()
	s.checkpointed()
	if dropped {
		return ErrNoSpace
	}
	return nil
}

// commitCheckpoint commits the open transaction as a checkpoint: the
// last record it holds, the token the next records carry, and on Close
// that the log holds nothing more.
func (s *Store) commitCheckpoint(tx *bolt.Tx, token uint64) error {
	s.buildEvidence(tx)
	meta := tx.Bucket(bMeta)
	err := meta.Put(keyWALSeq, u64(s.walSeq))
	if err == nil {
		err = meta.Put(keyWALToken, u64(token))
	}
	if err == nil && s.finalCheckpoint {
		err = meta.Put(keyWALDirty, []byte{0})
	}
	if err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// checkpointed wakes the readers waiting in barrier.
func (s *Store) checkpointed() {
	s.ckMu.Lock()
	s.ckAttempts++
	s.ckCond.Broadcast()
	s.ckMu.Unlock()
}

func (s *Store) stopCheckpoints() {
	s.ckMu.Lock()
	s.ckStopped = true
	s.ckCond.Broadcast()
	s.ckMu.Unlock()
}

// barrier waits until every batch acknowledged before the call is in a
// committed checkpoint, asking the writer for one. After two failed
// checkpoints it gives up with ErrStorageFailing: the file does not hold
// everything acknowledged, and a reader must not take it for the truth.
func (s *Store) barrier() error { return s.barrierTo(s.deferGen.Load()) }

// barrierFor is barrier for the batches that wrote one account's mail.
func (s *Store) barrierFor(acct uint64) error {
	if s.appliedGen.Load() >= s.deferGen.Load() {
		return nil
	}
	s.acctMu.Lock()
	g := s.acctGen[acct]
	s.acctMu.Unlock()
	return s.barrierTo(g)
}

func (s *Store) barrierTo(target uint64) error {
	if s.appliedGen.Load() >= target {
		return nil
	}
	s.ckMu.Lock()
	defer s.ckMu.Unlock()
	start := s.ckAttempts
	for s.appliedGen.Load() < target && s.ckAttempts-start < 2 && !s.ckStopped {
		select {
		case s.kick <- struct{}{}:
		default:
		}
		s.ckCond.Wait()
	}
	if s.appliedGen.Load() < target {
		return ErrStorageFailing
	}
	return nil
}
