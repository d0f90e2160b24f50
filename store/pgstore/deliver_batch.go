package pgstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"abox/store"
)

// Group commit of deliveries. Each delivery's acknowledgement waits
// for its commit's WAL flush, and a commit that NOTIFYs (every delivery
// does, for the feed) holds PostgreSQL's cluster-wide notify lock until
// its flush is done, so one commit per delivery serialises every
// delivery of every node behind one fsync each. The committer instead
// queues the plain deliveries (no queue entries, no official letter) of
// concurrent callers; a flusher takes what is waiting, runs it as ONE
// transaction in one pipelined round trip, each delivery under its own
// savepoint (a failed one rolls back alone, the others stay), and
// commits once. The next batch starts as soon as the previous commit
// returns: nothing waits for a timer, so a lone delivery on an idle
// server goes through at once, and under load a batch holds whatever
// arrived during the previous commit.
//
// Nothing is acknowledged before the commit: a failed COMMIT (or a
// connection lost in flight) fails every delivery of its batch with a
// storage error, a deadlock with another node's batch re-runs the whole
// batch from its first statement (after five, its deliveries run one
// by one, as without batching). The feed's notifications are queued
// inside the transaction (abox_deliver's pg_notify): PostgreSQL sends
// them at commit and drops those of a rolled-back savepoint.

const (
	// maxDeliveryBatch bounds a batch: one savepoint per delivery, and
	// PostgreSQL caches 64 subtransactions per backend before snapshots
	// elsewhere have to look them up in pg_subtrans.
	maxDeliveryBatch = 64
	// defaultDeliveryFlushers is how many batches of one node are in
	// flight at once (deliver_batch_test.go's benchmark measures 1 and
	// 2).
	defaultDeliveryFlushers = 1
	// batchTimeout bounds one batch's work, so a database that stops
	// answering fails its callers rather than holding them forever.
	batchTimeout = time.Minute
)

// committer is a Store's queue of plain deliveries. The zero value is
// ready; it owns no goroutine while the queue is empty.
type committer struct {
	mu       sync.Mutex
	queue    []*queuedDelivery // guarded by mu; bounded by the callers waiting
	flushing int               // guarded by mu: flushers running
	// flushers is the number of concurrent batches (0: the default; a
	// negative value turns batching off: one transaction per
	// delivery, for the benchmark's comparison). Set before use.
	flushers int
	// batches and batched count the batches run and the deliveries
	// they held, retries the batches run again after a deadlock
	// (guarded by mu): tests and the benchmark read them.
	batches, batched, retries int64
}

// queuedDelivery is one caller's delivery waiting for its batch.
type queuedDelivery struct {
	a     *deliverArgs
	rcpts []store.Recipient
	key   int64 // the smallest account it locks: a batch runs in this order
	res   deliverResult
	err   error
	done  chan struct{} // closed when res and err are final
}

// deliverBatched runs a plain delivery in the next batch and returns
// its outcome once that batch has committed (or failed).
func (s *Store) deliverBatched(ctx context.Context, a *deliverArgs, rcpts []store.Recipient) (deliverResult, error) {
	c := &s.deliveries
	q := &queuedDelivery{a: a, rcpts: rcpts, key: lockKey(a), done: make(chan struct{})}
	c.mu.Lock()
	c.queue = append(c.queue, q)
	start := c.flushing < max(c.flushers, defaultDeliveryFlushers)
	if start {
		c.flushing++
	}
	c.mu.Unlock()
	if start {
		go s.flushDeliveries()
	}
	select {
	case <-q.done:
		return q.res, q.err
	case <-ctx.Done():
	}
	c.mu.Lock()
	if i := slices.Index(c.queue, q); i >= 0 {
		// Not taken yet: it never runs.
		c.queue = slices.Delete(c.queue, i, i+1)
		c.mu.Unlock()
		return deliverResult{}, ctx.Err()
	}
	c.mu.Unlock()
	// In a batch already: its outcome is unknown to this caller, as a
	// query cancelled during its COMMIT is.
	return deliverResult{}, ctx.Err()
}

// lockKey is the first account whose usage row a delivery locks
// (abox_deliver locks in account order): batches sorted by it take
// their locks in one order on every node.
func lockKey(a *deliverArgs) int64 {
	k := a.sender
	for _, acct := range a.accts {
		if k == 0 || acct < k {
			k = acct
		}
	}
	return k
}

// flushDeliveries runs batches until the queue is empty, then ends.
func (s *Store) flushDeliveries() {
	c := &s.deliveries
	for {
		c.mu.Lock()
		if len(c.queue) == 0 {
			c.flushing--
			c.mu.Unlock()
			return
		}
		n := min(len(c.queue), maxDeliveryBatch)
		batch := slices.Clone(c.queue[:n])
		c.queue = slices.Delete(c.queue, 0, n)
		c.batches++
		c.batched += int64(n)
		c.mu.Unlock()
		s.runBatch(batch)
	}
}

// runBatch runs batch as one transaction, again from the start when
// PostgreSQL broke a deadlock by aborting it, and wakes its callers.
func (s *Store) runBatch(batch []*queuedDelivery) {
	ctx, cancel := context.WithTimeout(context.Background(), batchTimeout)
	defer cancel()
	slices.SortStableFunc(batch, func(x, y *queuedDelivery) int { return cmp.Compare(x.key, y.key) })
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		if err = s.tryBatch(ctx, batch); err == nil || !retryable(err) {
			break
		}
		s.deliveries.mu.Lock()
		s.deliveries.retries++
		s.deliveries.mu.Unlock()
	}
	if err != nil && retryable(err) {
		// Deadlocked with other nodes' batches every time: each
		// delivery alone then, as without batching, rather than
		// failing them all.
		for _, q := range batch {
			q.res, q.err = s.deliverAlone(ctx, q.a, q.rcpts)
			q.err = storageErr(q.err)
		}
		err = nil
	}
	for _, q := range batch {
		if err != nil {
			q.res, q.err = deliverResult{}, batchErr(err)
		}
		close(q.done)
	}
}

// batchErr is every delivery's error when its batch did not commit: a
// storage failure, which the protocols answer with a temporary error.
func batchErr(err error) error {
	if errors.Is(err, store.ErrStorageFailing) {
		return err
	}
	return errors.Join(store.ErrStorageFailing, fmt.Errorf("delivery batch: %w", err))
}

// errBatchAborted reports a COMMIT that PostgreSQL answered ROLLBACK.
var errBatchAborted = errors.New("the transaction was rolled back at commit")

// tryBatch runs batch's deliveries in one transaction on one
// connection: BEGIN, the transaction's token and id, then per delivery
// SAVEPOINT, abox_deliver, RELEASE, all in one pipeline (one round
// trip), then COMMIT. A delivery that fails stops the pipeline there
// (PostgreSQL skips the rest): its savepoint is rolled back, its error
// kept, and the deliveries after it are sent again in the next
// pipeline. COMMIT goes alone, once every result is read, so that a
// COMMIT without an answer can be resolved (commit.go) with the
// deliveries' outcomes in hand. A non-nil return (connection, COMMIT
// or a deadlock) means nothing of the batch is stored.
func (s *Store) tryBatch(ctx context.Context, batch []*queuedDelivery) (err error) {
	for _, q := range batch {
		q.res, q.err = deliverResult{}, nil
	}
	pc, err := s.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer pc.Release()
	conn := pc.Conn()
	defer func() {
		if err != nil && conn.PgConn().TxStatus() != 'I' {
			// Rolled back, or closed so the pool does not keep it.
			if _, rerr := conn.Exec(ctx, "ROLLBACK"); rerr != nil {
				conn.Close(ctx)
			}
		}
	}()
	rest := batch
	first := true
	var xid string
	token := newCommitToken()
	for {
		b := &pgx.Batch{}
		if first {
			b.Queue("BEGIN")
			b.Queue(xidSQL, token)
		} else {
			// Alone and unprepared: the failed pipeline made pgx drop
			// its prepared statements, which cannot be prepared again
			// in a failed transaction.
			if _, err := conn.Exec(ctx, "ROLLBACK TO SAVEPOINT d", pgx.QueryExecModeSimpleProtocol); err != nil {
				return err
			}
		}
		for _, q := range rest {
			b.Queue("SAVEPOINT d")
			b.Queue(deliverSQL, q.a.values()...)
			b.Queue("RELEASE SAVEPOINT d")
		}
		failed, err := runPipeline(ctx, conn, b, first, &xid, rest)
		if err != nil {
			return err
		}
		if failed < 0 {
			break
		}
		rest, first = rest[failed+1:], false
	}
	tag, err := conn.Exec(ctx, "COMMIT")
	if err == nil && tag.String() != "COMMIT" {
		return errBatchAborted
	}
	if err != nil {
		return s.resolveCommit(ctx, xid, token, err)
	}
	return nil
}

// runPipeline sends b and reads its results into rest's deliveries
// (and, in the first pipeline, the transaction's id into xid). It
// returns the index in rest of a delivery whose statement failed (the
// transaction is then in its failed savepoint, the pipeline's later
// statements skipped), or -1 when everything ran; an error when the
// batch as a whole failed.
func runPipeline(ctx context.Context, conn *pgx.Conn, b *pgx.Batch, first bool, xid *string, rest []*queuedDelivery) (failed int, err error) {
	br := conn.SendBatch(ctx, b)
	defer func() {
		if cerr := br.Close(); err == nil && failed < 0 && cerr != nil {
			err = cerr
		}
	}()
	if first {
		if _, err := br.Exec(); err != nil { // BEGIN
			return 0, err
		}
		if err := br.QueryRow().Scan(xid); err != nil {
			return 0, err
		}
	}
	for i, q := range rest {
		if _, err := br.Exec(); err != nil { // SAVEPOINT
			return 0, err
		}
		rows, err := br.Query()
		if err == nil {
			q.res, err = readDeliverRows(rows, q.rcpts)
		}
		if err != nil {
			if !perDelivery(err) {
				return 0, err
			}
			q.res, q.err = deliverResult{}, storageErr(deliverErr(err, q.rcpts, q.a))
			return i, nil
		}
		if _, err := br.Exec(); err != nil { // RELEASE SAVEPOINT
			return 0, err
		}
	}
	return -1, nil
}

// perDelivery reports an error of one delivery's statement that its
// savepoint's rollback undoes, leaving the batch's transaction usable:
// an error PostgreSQL raised for that statement, except a deadlock or
// serialization failure (the batch is run again) and the server's
// own failures (connection, resources, shutdown: the batch fails).
func perDelivery(err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || retryable(err) {
		return false
	}
	switch pe.Code[:2] {
	case "08", "53", "57", "58", "XX":
		return false
	}
	return true
}
