package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// SchemaVersion is the layout this code reads and writes. A file with a
// higher version is refused, never rewritten; an older one is upgraded
// when opened for writing (upgradeSchema).
//
//   - 1: the first layout.
//   - 2: expunges are recorded per mailbox for QRESYNC (vanished.go).
//   - 3: evidence entries are indexed by account (evidence_acct).
//   - 4: the evidence tree and indexes are built at commit, behind the
//     entries (meta/evidence_built; evidence_build.go). An older abox
//     would write entries without them.
//   - 5: the evidence entries one transaction writes are one value, a
//     group (evidence_entries.go); an older abox would misread them.
const SchemaVersion = 5

// FileName is the database file inside the data directory.
const FileName = "abox.db"

// Clock returns the current time. Tests move it.
type Clock func() time.Time

// Options configure Open.
type Options struct {
	// LockTimeout is how long Open waits for another process to release
	// the file. Zero means 200 ms.
	LockTimeout time.Duration
	// Clock defaults to time.Now.
	Clock Clock
	// MaxBatch caps how many write requests share one transaction
	// (default 512).
	MaxBatch int
	// ReadOnly opens the file with a shared lock and refuses writes.
	ReadOnly bool
	// FastCommits stops bbolt writing its whole free-page list with
	// every commit (it grows with the file: 22,000 free pages after an
	// hour of 64 KiB deliveries made every commit write 176 KB more, and
	// halved throughput). The list is written once on Close instead, so
	// the next Open loads it; after a crash, Open rebuilds it by walking
	// the file (slower, once). For the server; short-lived commands
	// leave it off.
	FastCommits bool
	// WAL acknowledges deliveries once a write-ahead log beside the file
	// has them (one small sequential sync) and commits them to the file
	// in checkpoints (wal.go). For the server. Whatever this says, Open
	// applies a log left by a crash.
	WAL bool
	// SegmentMin is the size from which a body is kept in a segment file
	// beside the database instead of inside it (segments.go). Zero means
	// 16 KiB; negative keeps every body in the database.
	SegmentMin int
	// SegmentSize is the size past which a segment takes no more bodies
	// (default 256 MiB).
	SegmentSize int64
	// ReserveSpace is the disk space kept in reserve beside the file so
	// that acknowledged mail always reaches it when the disk fills up
	// (space.go). Zero means 128 MiB with WAL and none without; negative
	// keeps none.
	ReserveSpace int64
	Logger       *slog.Logger
}

// Store is an open abox database.
type Store struct {
	// benchNoEvidence is set by BenchmarkDeliverOfficial alone: official
	// deliveries without their evidence entries, the comparison issue
	// 15's CPU budget is measured against (docs/BENCHMARKS.md).
	benchNoEvidence bool

	db    *bolt.DB
	opts  Options
	path  string
	clock Clock
	log   *slog.Logger
	feed  *Feed
	blobs blobStore
	space *space

	acctMemo acctMemo // decoded account records, by their bytes

	reqs     chan *writeReq
	maxBatch int
	stop     chan struct{}
	done     chan struct{}
	// resumed is closed once resumeDeletes has finished the deletions
	// Open found (Import waits for it: a deletion it restores must not
	// run while the import's body references are still uncounted).
	resumed chan struct{}

	dirGen   atomic.Uint64 // bumped after a commit changed domains, classes or senders
	commits  atomic.Uint64 // write transactions committed
	requests atomic.Uint64 // write requests committed
	txNanos  atomic.Uint64 // time spent running request functions
	ioNanos  atomic.Uint64 // time spent writing and syncing commits

	// The write-ahead log (wal.go); wal is nil without Options.WAL. The
	// fields below it belong to the writer goroutine, except the
	// barrier's.
	wal      *wal
	wtx      *bolt.Tx // open transaction since the last checkpoint
	oplog    opLog    // the batch being logged
	walSeq   uint64   // last record written
	ckSeq    uint64   // last record in a committed checkpoint
	deferred int      // requests acknowledged since the checkpoint
	broken   error    // the log could not be read back: refuse writes
	walSyncs atomic.Uint64
	walNanos atomic.Uint64 // time spent writing and syncing log records
	// The barrier: readers wait until the acknowledged batches
	// (deferGen) are checkpointed (appliedGen).
	deferGen   atomic.Uint64
	appliedGen atomic.Uint64
	ckMu       sync.Mutex
	ckCond     sync.Cond
	ckAttempts uint64 // guarded by ckMu
	ckStopped  bool   // guarded by ckMu: the writer has exited
	kick       chan struct{}
	// acctGen is, per account, the last acknowledged batch that wrote
	// its mail since the last checkpoint (barrierFor).
	acctMu  sync.Mutex
	acctGen map[uint64]uint64 // guarded by acctMu
	// crashOnClose (tests) makes Close drop the open transaction as a
	// crash would, instead of checkpointing it.
	crashOnClose bool
	// finalCheckpoint: the checkpoint being made is Close's, which also
	// records that the log holds nothing more (writer goroutine).
	finalCheckpoint bool

	closeOnce sync.Once
	mu        sync.RWMutex // guards closed against in-flight submits
	closed    bool
}

// Open opens (creating if absent) the database file at path. It fails with
// ErrLocked when another process holds it, ErrNewerSchema for a newer
// file, and ErrCorrupt or ErrNotAbox for a file it cannot trust; in those
// cases the file is left exactly as it was.
func Open(path string, opts Options) (s *Store, err error) {
	if opts.LockTimeout == 0 {
		opts.LockTimeout = 200 * time.Millisecond
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 512
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.ReserveSpace == 0 && opts.WAL {
		opts.ReserveSpace = defaultReserve
	}
	if opts.ReadOnly {
		opts.ReserveSpace = 0
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	fresh := false
	if fi, statErr := os.Stat(path); errors.Is(statErr, os.ErrNotExist) || (statErr == nil && fi.Size() == 0) {
		fresh = true
		if opts.ReadOnly {
			return nil, fmt.Errorf("store: %s: %w", path, ErrNotFound)
		}
	}
	if fresh {
		// A log or segments beside a file that is not there belong to
		// a database that is gone: never silently dropped.
		if err := refuseForeignFiles(path); err != nil {
			return nil, err
		}
	}
	db, err := openBolt(path, opts)
	if err != nil {
		return nil, err
	}
	s = &Store{
		db: db, opts: opts, path: path, clock: opts.Clock, log: opts.Logger,
		feed: newFeed(), blobs: blobStore{openSegments(path+SegmentDirSuffix, opts)}, space: newSpace(path, opts.ReserveSpace, opts.Logger),
		reqs: make(chan *writeReq, 4096), maxBatch: opts.MaxBatch,
		stop: make(chan struct{}), done: make(chan struct{}), kick: make(chan struct{}, 1),
		resumed: make(chan struct{}),
	}
	s.ckCond.L = &s.ckMu
	s.acctGen = map[uint64]uint64{}
	if err := s.checkSchema(fresh); err != nil {
		db.Close()
		return nil, err
	}
	if !opts.ReadOnly {
		if err := s.recoverWAL(); err != nil {
			db.Close()
			return nil, err
		}
	}
	if err := s.viewNow(s.blobs.segs.tidy); err != nil {
		db.Close()
		return nil, err
	}
	if opts.ReadOnly {
		close(s.done)
		close(s.resumed)
	} else {
		s.space.start()
		go s.writer()
		go s.resumeDeletes()
		go s.compactor()
	}
	return s, nil
}

func openBolt(path string, opts Options) (db *bolt.DB, err error) {
	// bbolt panics on some corrupt pages (a bad freelist) while opening.
	defer func() {
		if r := recover(); r != nil {
			db, err = nil, fmt.Errorf("store: %s: %w (%v)", path, ErrCorrupt, r)
		}
	}()
	db, err = bolt.Open(path, 0o600, &bolt.Options{
		Timeout:         opts.LockTimeout,
		FreelistType:    bolt.FreelistMapType,
		NoFreelistSync:  opts.FastCommits,
		InitialMmapSize: 1 << 30,
		ReadOnly:        opts.ReadOnly,
	})
	switch {
	case err == nil:
		return db, nil
	case errors.Is(err, berrors.ErrTimeout):
		return nil, fmt.Errorf("store: %s: %w", path, ErrLocked)
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrChecksum),
		errors.Is(err, berrors.ErrVersionMismatch):
		return nil, fmt.Errorf("store: %s: %w (%v)", path, ErrCorrupt, err)
	}
	return nil, fmt.Errorf("store: %s: %w", path, err)
}

// checkSchema initialises a fresh file or verifies an existing one, in a
// read transaction first so that a refused file is never written.
func (s *Store) checkSchema(fresh bool) error {
	var version uint64
	var empty bool
	err := s.view(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bMeta)
		if meta == nil {
			k, _ := tx.Cursor().First()
			empty = k == nil
			return nil
		}
		v := meta.Get([]byte("schema"))
		if len(v) != 8 {
			return fmt.Errorf("store: %s: schema version missing: %w", s.path, ErrCorrupt)
		}
		version = decodeU64(v)
		return nil
	})
	if err != nil {
		return err
	}
	switch {
	case version > SchemaVersion:
		return fmt.Errorf("store: %s has schema %d, this abox reads up to %d: %w", s.path, version, SchemaVersion, ErrNewerSchema)
	case version == 0 && !empty:
		return fmt.Errorf("store: %s: %w", s.path, ErrNotAbox)
	case version == 0 && fresh && !s.db.IsReadOnly():
		return s.db.Update(s.initSchema)
	case version == 0:
		return fmt.Errorf("store: %s: %w", s.path, ErrNotAbox)
	}
	if err := s.addMissingBuckets(); err != nil {
		return err
	}
	if version < SchemaVersion && !s.db.IsReadOnly() {
		return s.db.Update(func(tx *bolt.Tx) error { return upgradeSchema(tx, version) })
	}
	return nil
}

// upgradeSchema brings a file from version from to SchemaVersion, in
// one transaction with the new version number.
func upgradeSchema(tx *bolt.Tx, from uint64) error {
	if from < 2 {
		if err := migrateVanished(tx); err != nil {
			return err
		}
	}
	if from < 3 {
		if err := indexEvidenceByAccount(tx); err != nil {
			return err
		}
	}
	return tx.Bucket(bMeta).Put([]byte("schema"), u64(SchemaVersion))
}

// addMissingBuckets creates buckets that schema 1 gained after a file was
// created (additions only; nothing existing is rewritten).
func (s *Store) addMissingBuckets() (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("store: %s: %w (%v)", s.path, ErrCorrupt, r)
		}
	}()
	var missing bool
	_ = s.view(func(tx *bolt.Tx) error {
		for _, name := range allBuckets {
			if tx.Bucket(name) == nil {
				missing = true
			}
		}
		return nil
	})
	if !missing || s.db.IsReadOnly() {
		return nil
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		for _, name := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		return nil
	})
}

func (s *Store) initSchema(tx *bolt.Tx) error {
	for _, name := range allBuckets {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return err
		}
	}
	meta := tx.Bucket(bMeta)
	now := s.clock()
	if err := meta.Put([]byte("schema"), u64(SchemaVersion)); err != nil {
		return err
	}
	if err := meta.Put([]byte("created"), u64(uint64(now.Unix()))); err != nil {
		return err
	}
	if err := meta.Put(metaEvidenceBuilt, u64(0)); err != nil {
		return err
	}
	if err := meta.Put(keyDBID, newDBID()); err != nil {
		return err
	}
	if err := meta.Put(keySegHeaderFrom, binary.BigEndian.AppendUint32(nil, 1)); err != nil {
		return err
	}
	// UIDVALIDITY values come from one counter seeded with the creation
	// time, so a mailbox re-created under an old name gets a new value.
	if err := meta.Put([]byte("uidvalidity"), u64(uint64(now.Unix()))); err != nil {
		return err
	}
	return seedClasses(tx)
}

// Path is the database file.
func (s *Store) Path() string { return s.path }

// Now is the store's clock.
func (s *Store) Now() time.Time { return s.clock() }

// Close stops the writer after it has committed everything already
// submitted, then closes the file.
func (s *Store) Close() error {
	var err error
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		if !s.db.IsReadOnly() {
			close(s.stop)
		}
		<-s.done
		s.space.close()
		s.feed.closeAll()
		if s.wal != nil {
			s.wal.close()
		}
		err = s.db.Close()
		s.blobs.segs.close()
		if err == nil && s.opts.FastCommits && !s.opts.ReadOnly {
			err = syncFreelist(s.path)
		}
	})
	return err
}

// syncFreelist reopens the file with free-page syncing on, which makes
// bbolt rebuild the free-page list and write it, so the next Open loads
// it instead of walking the file.
func syncFreelist(path string) error {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, FreelistType: bolt.FreelistMapType})
	if err != nil {
		return fmt.Errorf("store: writing the free-page list: %w", err)
	}
	return db.Close()
}

// view runs fn in a read transaction, turning a bbolt panic on a corrupt
// page into ErrCorrupt. It first waits until every write acknowledged
// so far is in the file (barrier).
func (s *Store) view(fn func(*bolt.Tx) error) (err error) {
	if err := s.barrier(); err != nil {
		return err
	}
	return s.viewNow(fn)
}

// viewFor is view for reads of one account's mail: it waits only when
// that account has acknowledged deliveries not yet checkpointed.
func (s *Store) viewFor(acct uint64, fn func(*bolt.Tx) error) error {
	if err := s.barrierFor(acct); err != nil {
		return err
	}
	return s.viewNow(fn)
}

// viewBlobs is view for reads of bodies by id, whose ids come from
// message records read through viewFor, so normally in the file. Body
// ids grow (the bodies bucket's sequence), so one past the file's
// sequence belongs to a delivery still in the log: only then it waits.
func (s *Store) viewBlobs(maxID uint64, fn func(*bolt.Tx) error) error {
	// A segment emptied by a commit is removed only after the readers
	// that started before it are done.
	e := s.blobs.segs.readers.enter()
	defer s.blobs.segs.readers.leave(e)
	// Segment bodies are read through their mappings: if a segment file
	// was cut short under the server, touching the lost pages is a fault
	// (SIGBUS), which this turns into a panic that viewNow recovers as
	// ErrCorrupt for this read, instead of the end of the process.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	err := s.viewNow(func(tx *bolt.Tx) error {
		if maxID > tx.Bucket(bBodies).Sequence() {
			return errNotCheckpointed
		}
		return fn(tx)
	})
	if errors.Is(err, errNotCheckpointed) {
		if err = s.barrier(); err != nil {
			return err
		}
		err = s.viewNow(fn)
	}
	if errors.Is(err, errFault) {
		s.log.Error("store: reading a body segment faulted: a segment file is shorter than the database says (abox check names the messages)", "err", err)
		s.blobs.segs.resize()
	}
	return err
}

var (
	errNotCheckpointed = errors.New("store: not yet checkpointed")
	errFault           = errors.New("memory fault reading the file")
)

// viewNow is view without the barrier, for data that logged requests
// (deliveries) never change: accounts, the directory. And for advisory
// reads that the write transaction checks again (AccountWithUsage).
func (s *Store) viewNow(fn func(*bolt.Tx) error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			if re, ok := r.(interface{ Addr() uintptr }); ok {
				err = fmt.Errorf("store: %w: %w (%v, address %#x)", errFault, ErrCorrupt, r, re.Addr())
				return
			}
			err = fmt.Errorf("store: %w (%v)", ErrCorrupt, r)
		}
	}()
	return s.db.View(fn)
}

// txn is what a write request function receives: the transaction and a
// place to leave change notices, published after the commit.
type txn struct {
	tx         *bolt.Tx
	s          *Store
	now        time.Time
	changes    []Change
	dirChanged bool     // domains, classes or senders changed
	log        *opLog   // set while the request's writes go to the write-ahead log
	accts      []uint64 // accounts whose mail a logged request wrote
}

func (t *txn) notify(c Change) { t.changes = append(t.changes, c) }

type writeReq struct {
	fn         func(*txn) error
	logged     bool     // may be acknowledged from the write-ahead log
	accts      []uint64 // accounts its logged writes touched (txn.accts)
	changes    []Change
	dirChanged bool
	err        chan error
}

// errBatchMember marks which request in a batch failed.
type errBatchMember struct {
	i   int
	err error
}

func (e *errBatchMember) Error() string { return e.err.Error() }

// update submits fn to the writer and waits until the transaction holding
// it has committed (durably) or failed. fn may run more than once.
func (s *Store) update(ctx context.Context, fn func(*txn) error) error {
	return s.submit(ctx, &writeReq{fn: fn, err: make(chan error, 1)})
}

func (s *Store) submit(ctx context.Context, r *writeReq) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return ErrClosed
	}
	if s.db.IsReadOnly() {
		s.mu.RUnlock()
		return fmt.Errorf("store: opened read-only")
	}
	select {
	case s.reqs <- r:
	case <-ctx.Done():
		s.mu.RUnlock()
		return ctx.Err()
	}
	s.mu.RUnlock()
	// Once submitted, the request will be committed or failed; waiting
	// for it even after ctx ends keeps "acknowledged" and "on disk" equal.
	return s.spaceErr(<-r.err)
}

// writer owns all write transactions. It takes every request waiting in
// the queue (up to maxBatch) and commits them together.
func (s *Store) writer() {
	defer close(s.done)
	defer s.stopCheckpoints()
	batch := make([]*writeReq, 0, s.maxBatch)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var due <-chan time.Time // the open transaction's checkpoint time
	rearm := func() {
		switch {
		case s.wtx == nil:
			timer.Stop()
			due = nil
		case due == nil:
			timer.Reset(checkpointDelay)
			due = timer.C
		}
	}
	for {
		var first *writeReq
		select {
		case first = <-s.reqs:
		case <-s.kick:
			s.checkpoint(nil)
			rearm()
			continue
		case <-due:
			due = nil
			s.checkpoint(nil)
			rearm()
			continue
		case <-s.stop:
			// Drain what was submitted before Close.
			select {
			case first = <-s.reqs:
			default:
				s.closeLog()
				return
			}
		}
		batch = append(batch[:0], first)
	drain:
		for len(batch) < s.maxBatch {
			select {
			case r := <-s.reqs:
				batch = append(batch, r)
			default:
				break drain
			}
		}
		if s.wal == nil {
			s.commit(batch)
			continue
		}
		s.commitLogged(batch)
		select {
		case <-s.kick:
			s.checkpoint(nil)
		default:
		}
		rearm()
	}
}

// commit runs the batch in one transaction. When one request fails, the
// transaction is rolled back, that request gets its error, and the rest
// run again.
func (s *Store) commit(batch []*writeReq) {
	for len(batch) > 0 {
		err := s.runBatch(batch)
		if err != nil {
			s.blobs.segs.discard()
		}
		var m *errBatchMember
		if errors.As(err, &m) {
			batch[m.i].err <- m.err
			batch = append(batch[:m.i:m.i], batch[m.i+1:]...)
			continue
		}
		if err == nil {
			s.blobs.segs.committed()
			s.commits.Add(1)
			s.requests.Add(uint64(len(batch)))
			for _, r := range batch {
				if r.dirChanged {
					s.dirGen.Add(1)
					break
				}
			}
		}
		for _, r := range batch {
			if err == nil {
				s.feed.publish(r.changes)
			}
			r.err <- err
		}
		return
	}
}

func (s *Store) runBatch(batch []*writeReq) (err error) {
	now := s.clock()
	idx := -1
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("store: panic in write transaction", "panic", r)
			e := fmt.Errorf("store: internal error: %v", r)
			if idx >= 0 {
				err = &errBatchMember{i: idx, err: e}
			} else {
				err = e
			}
		}
	}()
	t0 := time.Now()
	var t1 time.Time
	err = s.db.Update(func(tx *bolt.Tx) error {
		if err := s.runRequests(tx, batch, now, nil, &idx); err != nil {
			return err
		}
		s.buildEvidence(tx)
		t1 = time.Now()
		return nil
	})
	if !t1.IsZero() {
		s.txNanos.Add(uint64(t1.Sub(t0)))
		s.ioNanos.Add(uint64(time.Since(t1)))
	}
	return err
}

// runRequests runs a batch's functions in tx, logging their writes in log
// when it is set. idx follows the request running, for the caller's
// panic handler.
func (s *Store) runRequests(tx *bolt.Tx, batch []*writeReq, now time.Time, log *opLog, idx *int) error {
	for i, r := range batch {
		*idx = i
		t := &txn{tx: tx, s: s, now: now, log: log}
		if err := r.fn(t); err != nil {
			return &errBatchMember{i: i, err: err}
		}
		r.changes, r.dirChanged, r.accts = t.changes, t.dirChanged, t.accts
	}
	*idx = -1
	// What the batch points at in body segments is on disk before the
	// batch is (log record or commit).
	return s.blobs.segs.sync()
}

// WriterStats counts committed write transactions (each one fsync'd) and
// the requests they carried; their ratio is the group-commit factor.
type WriterStats struct {
	Commits  uint64
	Requests uint64
	// Work is the time spent running the requests inside transactions,
	// IO the time spent writing and fsyncing their commits.
	Work, IO time.Duration
	// LogRecords counts write-ahead log records (each one synced; then
	// Commits counts checkpoints and unlogged commits), LogIO the time
	// spent writing and syncing them.
	LogRecords uint64
	LogIO      time.Duration
}

// WriterStats returns the counts since Open.
func (s *Store) WriterStats() WriterStats {
	return WriterStats{Commits: s.commits.Load(), Requests: s.requests.Load(),
		Work: time.Duration(s.txNanos.Load()), IO: time.Duration(s.ioNanos.Load()), LogRecords: s.walSyncs.Load(), LogIO: time.Duration(s.walNanos.Load())}
}

// FileSize is the database file's size in bytes.
func (s *Store) FileSize() int64 {
	fi, err := os.Stat(s.path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// DirectoryGeneration changes whenever domains, classes or senders have
// changed, so callers can cache them and notice at once.
func (s *Store) DirectoryGeneration() uint64 { return s.dirGen.Load() }
