// Package pgstore is abox's distributed store (issue 18): metadata in
// PostgreSQL (accounts, mailboxes, messages with their UIDs, MODSEQs and
// flags, the directory, audit, the evidence log, the outbound queue),
// bodies in an S3-compatible object store, small ones inline in
// PostgreSQL. Any number of `abox serve` nodes share one database and
// one bucket: UIDs and MODSEQs are allocated under row locks, changes
// reach every node's IDLE and NOTIFY sessions through LISTEN/NOTIFY,
// and jobs that must run once (sweeps, broadcasts, tree heads) take
// leases (leases.go).
//
// It implements the interfaces policy, imapd and cmd/abox ask of a
// store, and passes store/storetest's conformance suite as the embedded
// bbolt store does.
package pgstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"abox/store"
)

// Options configure Open.
type Options struct {
	// DSN is the PostgreSQL connection string (postgres://... or
	// key=value), as pgx takes it.
	DSN string
	// Objects is the object store for bodies; with no Endpoint, every
	// body is kept in PostgreSQL.
	Objects ObjectOptions
	// InlineMax is the largest body kept in PostgreSQL when an object
	// store is configured (0: DefaultInlineMax; negative: none).
	InlineMax int
	// MaxConns bounds the connection pool (0: pgx's default, the
	// larger of 4 and the number of CPUs).
	MaxConns int32
	// Clock, when set, replaces time.Now (tests).
	Clock func() time.Time
	// Logger, when set, hears of the change feed's connection lost and
	// back (nil: nothing is logged).
	Logger *slog.Logger
	// OneShot opens the store for one command that then exits (the
	// CLI without a server): none of a node's standing work, each of
	// which would hold a connection of its own, and a connection costs
	// PostgreSQL a backend forked and torn down (about 28 ms of CPU on
	// the two-core test machine, against a few for a short command's
	// queries). So no LISTEN connection: nothing of the directory is
	// cached (DirectoryGeneration changes at every call), the feed
	// carries nothing from other nodes, SyncFeed has nothing to wait for
	// and OnAccountChanged's functions are never called. And no
	// background work: the mailbox deletions a crash interrupted wait
	// for a node to finish them, and old commit tokens for a node's
	// sweep.
	OneShot bool
}

// DefaultInlineMax is the largest body kept inline in PostgreSQL by
// default: a typical notice or bill, read and written in the same round
// trip as its metadata.
const DefaultInlineMax = 8 << 10

// Store is the distributed store. Its methods are safe for concurrent
// use.
type Store struct {
	pool      *pgxpool.Pool
	objects   *objectStore // nil: bodies in PostgreSQL only
	inlineMax int
	clock     func() time.Time
	feed      *store.Feed
	listener  *listener // nil: OneShot
	// uncachedGen is a OneShot store's DirectoryGeneration.
	uncachedGen atomic.Uint64
	log         *slog.Logger // nil: nothing logged
	// deliveries queues plain deliveries for group commit
	// (deliver_batch.go).
	deliveries committer
	// commitsResolved and commitsUnknown count ambiguous COMMITs
	// (commit.go): found committed, and never learnt.
	commitsResolved, commitsUnknown atomic.Int64

	closeOnce sync.Once
	closeMu   sync.Mutex
	closed    bool // guarded by closeMu: no background work starts
	done      chan struct{}
	wg        sync.WaitGroup // background work that ends by itself
	loops     sync.WaitGroup // loops that end at Close (sweepCommitTokens)
	// resumed is closed once the deletions Open found are finished
	// (Import waits for it, as the embedded store's does).
	resumed chan struct{}
}

// Open connects to PostgreSQL (and the object store), applies the
// schema migrations not yet applied (migrations.go) and starts
// listening for other nodes' changes.
func Open(ctx context.Context, o Options) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(o.DSN)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if o.MaxConns > 0 {
		cfg.MaxConns = o.MaxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	s := &Store{pool: pool, clock: o.Clock, feed: store.NewFeed(), done: make(chan struct{}), log: o.Logger, resumed: make(chan struct{})}
	if s.clock == nil {
		s.clock = time.Now
	}
	fail := func(err error) (*Store, error) {
		pool.Close()
		return nil, err
	}
	if err := migrate(ctx, pool); err != nil {
		return fail(err)
	}
	if o.Objects.Endpoint != "" {
		s.objects, err = newObjectStore(ctx, o.Objects)
		if err != nil {
			return fail(err)
		}
		s.inlineMax = o.InlineMax
		if s.inlineMax == 0 {
			s.inlineMax = DefaultInlineMax
		}
	}
	if o.OneShot {
		close(s.resumed) // Import then waits for nothing: a node finishes the deletions
		return s, nil
	}
	s.listener, err = startListener(ctx, s, cfg.ConnConfig)
	if err != nil {
		return fail(err)
	}
	// Mailbox deletions a crash interrupted are finished in the
	// background, as the embedded store does at Open; any node may.
	s.background(func(ctx context.Context) {
		defer close(s.resumed)
		s.ResumeDeletes(ctx)
	})
	s.loops.Add(1)
	go func() {
		defer s.loops.Done()
		ctx, cancel := context.WithCancel(context.Background())
		go func() { <-s.done; cancel() }()
		s.sweepCommitTokens(ctx)
	}()
	return s, nil
}

// background runs fn in a goroutine whose context ends at Close.
func (s *Store) background(fn func(ctx context.Context)) {
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	if s.closed {
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() {
			select {
			case <-s.done:
				cancel()
			case <-ctx.Done():
			}
		}()
		fn(ctx)
	}()
}

// Close stops listening and closes the pool. Subscriptions end.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.closeMu.Lock()
		s.closed = true
		s.closeMu.Unlock()
		close(s.done)
		if s.listener != nil {
			s.listener.stop()
		}
		s.wg.Wait()
		s.loops.Wait()
		s.feed.CloseAll()
		s.pool.Close()
	})
	return nil
}

// Now is the store's clock.
func (s *Store) Now() time.Time { return s.clock() }

// Pool is the connection pool (the migration tool and tests).
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// tx runs fn in a transaction and commits it; fn's error (or the
// commit's) rolls it back. A serialization failure or deadlock, which
// PostgreSQL resolves by aborting one side, is retried a few times.
func (s *Store) tx(ctx context.Context, fn func(pgx.Tx) error) error {
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		err = pgx.BeginFunc(ctx, s.pool, fn)
		if err == nil || !retryable(err) {
			return storageErr(err)
		}
	}
	return storageErr(err)
}

// ErrNoObjectStore is returned when a body lives in the object store
// and this store was opened without one.
var ErrNoObjectStore = errors.New("a body is in the object store and none is configured")
