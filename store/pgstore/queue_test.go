package pgstore

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"abox/store"
	"abox/store/pgstore/pgtest"
)

// queueClock is a clock tests move by hand, shared by the nodes of one
// database.
type queueClock struct{ now atomic.Pointer[time.Time] }

func newQueueClock() *queueClock {
	c := &queueClock{}
	c.set(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	return c
}
func (c *queueClock) set(t time.Time)          { c.now.Store(&t) }
func (c *queueClock) get() time.Time           { return *c.now.Load() }
func (c *queueClock) advance(d time.Duration)  { c.set(c.get().Add(d)) }
func (c *queueClock) opts(dsn string) Options  { return Options{DSN: dsn, Clock: c.get} }
func (c *queueClock) open(t *testing.T) *Store { return openQueueStore(t, c.opts(pgtest.Database(t))) }

func openQueueStore(t *testing.T, o Options) *Store {
	t.Helper()
	s, err := Open(bg, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// queueBody is a test message of n bytes or more.
func queueBody(n int) []byte {
	b := []byte("From: alice@example.kz\r\nSubject: out\r\n\r\n")
	return append(b, bytes.Repeat([]byte("x"), n)...)
}

// enqueueForTest stores body and queues entries on it as a delivery
// does (one body reference per entry), returning the entries with their
// ids.
func enqueueForTest(t *testing.T, s *Store, body []byte, es ...*store.QueueEntry) []*store.QueueEntry {
	t.Helper()
	nb, err := s.prepareBody(bg, body, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.tx(bg, func(tx pgx.Tx) error {
		blob, err := nb.insert(bg, tx, len(es))
		if err != nil {
			return err
		}
		return s.enqueueTx(bg, tx, es, blob, int64(len(body)), s.clock())
	}); err != nil {
		t.Fatal(err)
	}
	return es
}

func queueEntry(domain string, account uint64, rcpts ...string) *store.QueueEntry {
	e := &store.QueueEntry{Domain: domain, From: "alice@example.kz", Account: account}
	for _, r := range rcpts {
		e.Recipients = append(e.Recipients, store.QueueRecipient{Address: r})
	}
	return e
}

func blobRefs(t *testing.T, s *Store, blob uint64) int {
	t.Helper()
	var refs int
	err := s.pool.QueryRow(bg, `SELECT refs FROM blobs WHERE id = $1`, blob).Scan(&refs)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return refs
}

func queueStats(t *testing.T, s *Store) store.QueueStats {
	t.Helper()
	st, err := s.QueueStats()
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestQueueLeaseUpdateFinish: entries are leased once, oldest due
// first; an attempt's outcome is written back and the entry is due at
// its next attempt; an entry whose recipients are all done leaves the
// queue with its body reference, and the body (in the object store)
// goes with the last.
func TestQueueLeaseUpdateFinish(t *testing.T) {
	clk := newQueueClock()
	o := clk.opts(pgtest.Database(t))
	w := pgtest.ObjectServer(t)
	o.Objects = ObjectOptions{Endpoint: w.Endpoint(), Bucket: w.NewBucket(), AccessKey: w.AccessKey, SecretKey: w.SecretKey, CreateBucket: true}
	o.InlineMax = 64
	s := openQueueStore(t, o)
	body := queueBody(500)
	created := clk.get()
	es := enqueueForTest(t, s, body, queueEntry("a.test", 7, "x@a.test", "y@a.test"), queueEntry("b.test", 7, "z@b.test"))
	if es[0].ID == 0 || es[1].ID <= es[0].ID || es[0].Blob == 0 || es[0].Blob != es[1].Blob || es[0].Size != int64(len(body)) {
		t.Fatalf("enqueued %+v %+v", es[0], es[1])
	}
	blob := es[0].Blob
	if n := blobRefs(t, s, blob); n != 2 {
		t.Fatalf("body refs %d, want 2", n)
	}
	if st := queueStats(t, s); st.Entries != 2 || !st.Oldest.Equal(created) {
		t.Fatalf("stats %+v", st)
	}
	if !s.QueueDueBefore(clk.get()) || s.QueueDueBefore(created.Add(-time.Second)) {
		t.Fatal("QueueDueBefore wrong before the lease")
	}

	got, err := s.QueueLease(bg, 10, time.Minute, nil)
	if err != nil || len(got) != 2 || got[0].ID != es[0].ID || got[1].ID != es[1].ID {
		t.Fatalf("lease: %+v %v", got, err)
	}
	if !got[0].Leased || !got[0].NextAttempt.Equal(clk.get().Add(time.Minute)) || got[0].Domain != "a.test" || len(got[0].Recipients) != 2 {
		t.Fatalf("leased entry %+v", got[0])
	}
	if again, err := s.QueueLease(bg, 10, time.Minute, nil); err != nil || len(again) != 0 {
		t.Fatalf("leased again: %d %v", len(again), err)
	}
	if s.QueueDueBefore(clk.get()) || !s.QueueDueBefore(clk.get().Add(time.Minute)) {
		t.Fatal("QueueDueBefore wrong during the lease")
	}
	b, err := s.QueueBody(&got[0])
	if err != nil || !bytes.Equal(b, body) {
		t.Fatalf("body %d bytes %v", len(b), err)
	}

	// A deferred attempt: one recipient delivered, one still pending.
	clk.advance(10 * time.Second)
	e := got[0]
	e.Recipients[0].Status, e.Recipients[0].Reply = store.QueueDelivered, "250 2.0.0 ok"
	e.Recipients[1].Reply = "451 4.3.0 later"
	e.Attempts, e.LastAttempt, e.LastError = 1, clk.get(), "451 4.3.0 later"
	e.NextAttempt, e.DelayWarned = clk.get().Add(5*time.Minute), true
	if err := s.QueueUpdate(bg, &e); err != nil {
		t.Fatal(err)
	}
	back, err := s.QueueGet(e.ID)
	if err != nil || back.Leased || back.Attempts != 1 || back.Pending() != 1 || !back.DelayWarned ||
		!back.NextAttempt.Equal(e.NextAttempt) || back.LastError != e.LastError || !back.CreatedAt.Equal(created) {
		t.Fatalf("after the attempt: %+v %v", back, err)
	}
	// The other entry's recipient is delivered: it leaves the queue.
	f := got[1]
	f.Recipients[0].Status = store.QueueDelivered
	if err := s.QueueUpdate(bg, &f); err != nil {
		t.Fatal(err)
	}
	if _, err := s.QueueGet(f.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("finished entry still there: %v", err)
	}
	if n := blobRefs(t, s, blob); n != 1 {
		t.Fatalf("body refs %d after one entry finished, want 1", n)
	}
	if st := queueStats(t, s); st.Entries != 1 {
		t.Fatalf("stats %+v", st)
	}
	// An update of an entry dropped meanwhile is nothing.
	if err := s.QueueUpdate(bg, &f); err != nil {
		t.Fatalf("update of a finished entry: %v", err)
	}

	// Due again at its next attempt, not before.
	if got, _ := s.QueueLease(bg, 10, time.Minute, nil); len(got) != 0 {
		t.Fatalf("leased before its next attempt: %+v", got)
	}
	clk.advance(5 * time.Minute)
	got, err = s.QueueLease(bg, 10, time.Minute, nil)
	if err != nil || len(got) != 1 || got[0].ID != e.ID || got[0].Attempts != 1 {
		t.Fatalf("second lease: %+v %v", got, err)
	}
	got[0].Recipients[1].Status = store.QueueFailed
	if err := s.QueueUpdate(bg, &got[0]); err != nil {
		t.Fatal(err)
	}
	if n := blobRefs(t, s, blob); n != 0 {
		t.Fatalf("body still held (%d refs) after every entry finished", n)
	}
	if st := queueStats(t, s); st.Entries != 0 || !st.Oldest.IsZero() {
		t.Fatalf("stats of an empty queue %+v", st)
	}
	if s.QueueDueBefore(clk.get().Add(time.Hour)) {
		t.Fatal("an empty queue is due")
	}
	if n, err := s.QueueReleaseBodies(bg, 1000); n != 0 || err != nil {
		t.Fatalf("QueueReleaseBodies %d %v", n, err)
	}
}

// TestQueueLeaseSkip: a domain the caller says is busy keeps its
// entries due while others are taken, and skip is told how many of the
// domain's entries this lease took.
func TestQueueLeaseSkip(t *testing.T) {
	clk := newQueueClock()
	s := clk.open(t)
	enqueueForTest(t, s, queueBody(10),
		queueEntry("busy.test", 0, "1@busy.test"), queueEntry("busy.test", 0, "2@busy.test"),
		queueEntry("busy.test", 0, "3@busy.test"), queueEntry("free.test", 0, "4@free.test"))
	var asked []string
	got, err := s.QueueLease(bg, 10, time.Minute, func(domain string, taken int) bool {
		asked = append(asked, fmt.Sprintf("%s:%d", domain, taken))
		return domain == "busy.test" && taken >= 1
	})
	if err != nil || len(got) != 2 || got[0].Domain != "busy.test" || got[1].Domain != "free.test" {
		t.Fatalf("lease %+v %v", got, err)
	}
	if fmt.Sprint(asked) != "[busy.test:0 busy.test:1 busy.test:1 free.test:0]" {
		t.Fatalf("skip asked %v", asked)
	}
	rest, err := s.QueueLease(bg, 1, time.Minute, nil)
	if err != nil || len(rest) != 1 || rest[0].Recipients[0].Address != "2@busy.test" {
		t.Fatalf("the skipped entries are not due: %+v %v", rest, err)
	}
}

// TestQueueOperator: hold, release, retry and drop, one entry and all
// of a selection, audited; listing by held and domain; a held entry is
// never leased.
func TestQueueOperator(t *testing.T) {
	clk := newQueueClock()
	s := clk.open(t)
	op := store.Audit{Actor: store.ActorOperator}
	body := queueBody(10)
	es := enqueueForTest(t, s, body,
		queueEntry("a.test", 1, "1@a.test"), queueEntry("b.test", 1, "2@b.test"),
		queueEntry("a.test", 2, "3@a.test"), queueEntry("c.test", 0, "4@c.test"))
	blob := es[0].Blob
	if _, err := s.QueueChange(bg, 999, store.QueueHold, "", op); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("change of a missing entry: %v", err)
	}
	before, err := s.QueueChange(bg, es[0].ID, store.QueueHold, "spam report", op)
	if err != nil || before.Held || before.ID != es[0].ID {
		t.Fatalf("hold: %+v %v", before, err)
	}
	held, err := s.QueueList(store.QueueFilter{Held: true})
	if err != nil || len(held) != 1 || held[0].ID != es[0].ID || held[0].HeldReason != "spam report" {
		t.Fatalf("held list %+v %v", held, err)
	}
	if l, _ := s.QueueList(store.QueueFilter{Domain: "a.test"}); len(l) != 2 || l[0].ID != es[0].ID || l[1].ID != es[2].ID {
		t.Fatalf("list by domain %+v", l)
	}
	if l, _ := s.QueueList(store.QueueFilter{After: es[1].ID, Limit: 1}); len(l) != 1 || l[0].ID != es[2].ID {
		t.Fatalf("list page %+v", l)
	}
	got, err := s.QueueLease(bg, 10, time.Minute, nil)
	if err != nil || len(got) != 3 {
		t.Fatalf("lease with one held: %d %v", len(got), err)
	}
	for _, e := range got {
		if e.ID == es[0].ID {
			t.Fatal("a held entry was leased")
		}
	}
	// Retry of a leased entry leaves its lease; release makes a held
	// one due now.
	if _, err := s.QueueChange(bg, es[1].ID, store.QueueRetry, "", op); err != nil {
		t.Fatal(err)
	}
	if e, _ := s.QueueGet(es[1].ID); !e.Leased || !e.NextAttempt.Equal(clk.get().Add(time.Minute)) {
		t.Fatalf("retry of a leased entry %+v", e)
	}
	clk.advance(time.Second)
	if _, err := s.QueueChange(bg, es[0].ID, store.QueueRelease, "", op); err != nil {
		t.Fatal(err)
	}
	if e, _ := s.QueueGet(es[0].ID); e.Held || e.HeldReason != "" || !e.NextAttempt.Equal(clk.get()) {
		t.Fatalf("released %+v", e)
	}
	got, err = s.QueueLease(bg, 10, time.Minute, nil)
	if err != nil || len(got) != 1 || got[0].ID != es[0].ID {
		t.Fatalf("lease after release: %+v %v", got, err)
	}

	// All of account 1's entries held (one audit entry), then released.
	n, err := s.QueueChangeAll(bg, store.QueueSelect{Account: 1}, store.QueueHold, "abuse", op, "alice@example.kz")
	if err != nil || n != 2 {
		t.Fatalf("hold all of account 1: %d %v", n, err)
	}
	if n, _ := s.QueueChangeAll(bg, store.QueueSelect{Account: 1}, store.QueueHold, "", op, ""); n != 0 {
		t.Fatalf("held again: %d", n)
	}
	if l, _ := s.QueueList(store.QueueFilter{Held: true}); len(l) != 2 {
		t.Fatalf("%d held", len(l))
	}
	var reason string
	if err := s.pool.QueryRow(bg, `SELECT data->>'reason' FROM audit WHERE data->>'action' = 'queue.hold' ORDER BY seq DESC LIMIT 1`).Scan(&reason); err != nil ||
		reason != fmt.Sprintf("2 queue entries, %d to %d: abuse", es[0].ID, es[1].ID) {
		t.Fatalf("audit of hold all: %q %v", reason, err)
	}
	if err := s.pool.QueryRow(bg, `SELECT data->>'reason' FROM audit WHERE data->>'action' = 'queue.hold' ORDER BY seq LIMIT 1`).Scan(&reason); err != nil ||
		reason != fmt.Sprintf("queue entry %d to a.test: spam report", es[0].ID) {
		t.Fatalf("audit of hold: %q %v", reason, err)
	}
	if n, err := s.QueueChangeAll(bg, store.QueueSelect{Domain: "a.test"}, store.QueueRelease, "", op, ""); err != nil || n != 1 {
		t.Fatalf("release a.test: %d %v", n, err)
	}
	// Retry of every entry not held: the three not held, due now.
	if n, err := s.QueueChangeAll(bg, store.QueueSelect{}, store.QueueRetry, "", op, ""); err != nil || n != 3 {
		t.Fatalf("retry all: %d %v", n, err)
	}

	// Drop everything: the entries go, and with them the body.
	if st := queueStats(t, s); st.Entries != 4 {
		t.Fatalf("stats %+v", st)
	}
	if n, err := s.QueueChangeAll(bg, store.QueueSelect{}, store.QueueDrop, "", op, ""); err != nil || n != 4 {
		t.Fatalf("drop all: %d %v", n, err)
	}
	if st := queueStats(t, s); st.Entries != 0 {
		t.Fatalf("stats after drop %+v", st)
	}
	if n := blobRefs(t, s, blob); n != 0 {
		t.Fatalf("body refs %d after drop", n)
	}
	if _, err := s.QueueChange(bg, es[0].ID, store.QueueDrop, "", op); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("drop of a dropped entry: %v", err)
	}
}

// TestQueueTwoNodes: two nodes leasing the same queue at once never
// get the same entry, and together get all of them; a node starting
// releases only leases that ran out, never the other node's live ones.
func TestQueueTwoNodes(t *testing.T) {
	clk := newQueueClock()
	s := clk.open(t)
	s2 := openAgain(t, s, clk.opts(s.pool.Config().ConnString()))
	const entries = 120
	var es []*store.QueueEntry
	for i := range entries {
		es = append(es, queueEntry(fmt.Sprintf("d%d.test", i%7), 0, fmt.Sprintf("r%d@x.test", i)))
	}
	enqueueForTest(t, s, queueBody(10), es...)

	var mu sync.Mutex
	seen := map[uint64]int{}
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for _, node := range []*Store{s, s2, s, s2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				got, err := node.QueueLease(bg, 5, time.Hour, nil)
				if err != nil {
					errs <- err
					return
				}
				if len(got) == 0 {
					return
				}
				mu.Lock()
				for _, e := range got {
					seen[e.ID]++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if len(seen) != entries {
		t.Fatalf("%d entries leased, want %d", len(seen), entries)
	}
	for id, n := range seen {
		if n != 1 {
			t.Fatalf("entry %d leased %d times", id, n)
		}
	}

	// A node starting while the other's leases are live releases none.
	if n, err := s2.QueueReleaseLeases(bg); err != nil || n != 0 {
		t.Fatalf("released %d live leases (%v)", n, err)
	}
	if got, _ := s2.QueueLease(bg, 10, time.Hour, nil); len(got) != 0 {
		t.Fatalf("leased %d entries another node holds", len(got))
	}
	// Once they run out (the node died), they are released and due.
	clk.advance(time.Hour)
	if n, err := s2.QueueReleaseLeases(bg); err != nil || n != entries {
		t.Fatalf("released %d expired leases (%v), want %d", n, err, entries)
	}
	if e, _ := s.QueueGet(es[0].ID); e.Leased || !e.NextAttempt.Equal(clk.get()) {
		t.Fatalf("released entry %+v", e)
	}
	got, err := s2.QueueLease(bg, entries, time.Minute, nil)
	if err != nil || len(got) != entries {
		t.Fatalf("lease after release: %d %v", len(got), err)
	}
}
