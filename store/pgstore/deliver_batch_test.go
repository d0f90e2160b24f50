package pgstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"abox/store"
)

// Group commit (deliver_batch.go): deliveries of concurrent callers
// share one transaction, each under its own savepoint; a failed one
// rolls back alone, a failed COMMIT fails all of them.

// holdAccount locks acct's usage row in a transaction of its own until
// the returned function is called, so a batch that reaches acct waits
// there while the next callers queue behind it.
func holdAccount(t *testing.T, s *Store, acct uint64) (release func()) {
	t.Helper()
	tx, err := s.pool.Begin(bg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(bg, `SELECT 1 FROM usage WHERE account = $1 FOR UPDATE`, int64(acct)); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	release = func() { once.Do(func() { tx.Rollback(bg) }) }
	t.Cleanup(release)
	return release
}

// state reports how many deliveries wait and how many batches ran.
func (c *committer) state() (queued int, batches int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.queue), c.batches
}

// blockFlusher starts a delivery to the held account blocker and
// waits until its batch is running (and stuck on the lock): the
// deliveries started next queue up for the following batch.
func blockFlusher(t *testing.T, s *Store, blocker uint64) (release func(), done <-chan error) {
	t.Helper()
	release = holdAccount(t, s, blocker)
	_, before := s.deliveries.state()
	ch := make(chan error, 1)
	go func() {
		_, err := s.Deliver(bg, &store.Delivery{Body: letter(0, 100), AllOrNothing: true,
			Recipients: []store.Recipient{{Account: blocker}}})
		ch <- err
	}()
	waitFor(t, "the blocker's batch", func() bool {
		q, b := s.deliveries.state()
		return q == 0 && b == before+1
	})
	return release, ch
}

func TestDeliverBatchPartialFailures(t *testing.T) {
	s := openTest(t, false)
	blocker := mailAccount(t, s, "blocker@example.kz").ID
	full := mailAccount(t, s, "full@example.kz").ID
	alice := mailAccount(t, s, "alice@example.kz").ID
	bob := mailAccount(t, s, "bob@example.kz").ID
	release, blocked := blockFlusher(t, s, blocker)

	// 64 deliveries, in one batch: full takes 3 messages of the 8 it
	// is sent; a bad mailbox name, a missing mailbox and a missing
	// account fail (with and without AllOrNothing); an all-or-nothing
	// delivery whose second recipient fails takes back its first's
	// copy; the rest reach alice and bob.
	type want struct {
		ok   bool
		err  error
		errs []error // per recipient, without AllOrNothing
	}
	var ds []*store.Delivery
	var wants []want
	add := func(d *store.Delivery, w want) {
		d.Body = letter(len(ds), 200+len(ds))
		ds = append(ds, d)
		wants = append(wants, w)
	}
	for i := range 64 {
		switch {
		case i%8 == 1:
			add(&store.Delivery{AllOrNothing: true, Recipients: []store.Recipient{{Account: full, MaxMessages: 3}}}, want{ok: true}) // the first 3 only: fixed below
		case i == 2:
			add(&store.Delivery{AllOrNothing: true, Recipients: []store.Recipient{{Account: alice, Mailbox: "bad\x00name"}}}, want{err: store.ErrInvalidMailbox})
		case i == 3:
			add(&store.Delivery{Recipients: []store.Recipient{{Account: bob, Mailbox: "bad\x00name"}}}, want{errs: []error{store.ErrInvalidMailbox}})
		case i == 4:
			add(&store.Delivery{AllOrNothing: true, Recipients: []store.Recipient{{Account: alice, Mailbox: "Nowhere"}}}, want{err: store.ErrNoMailbox})
		case i == 5:
			add(&store.Delivery{AllOrNothing: true, Recipients: []store.Recipient{{Account: 999999}}}, want{err: store.ErrNoAccount})
		case i == 6:
			add(&store.Delivery{AllOrNothing: true, Recipients: []store.Recipient{{Account: alice}, {Account: bob, Mailbox: "Nowhere"}}}, want{err: store.ErrNoMailbox})
		case i == 7:
			add(&store.Delivery{Recipients: []store.Recipient{{Account: alice}, {Account: bob, Mailbox: "Nowhere"}}}, want{errs: []error{nil, store.ErrNoMailbox}})
		default:
			add(&store.Delivery{AllOrNothing: true, Recipients: []store.Recipient{{Account: []uint64{alice, bob}[i%2]}}}, want{ok: true})
		}
	}
	type result struct {
		out []store.Delivered
		err error
	}
	results := make([]result, len(ds))
	var wg sync.WaitGroup
	for i, d := range ds {
		wg.Go(func() {
			out, err := s.Deliver(bg, d)
			results[i] = result{out, err}
		})
	}
	_, batches := s.deliveries.state()
	waitFor(t, "64 queued deliveries", func() bool { q, _ := s.deliveries.state(); return q == 64 })
	release()
	if err := <-blocked; err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if _, b := s.deliveries.state(); b != batches+1 {
		t.Fatalf("%d batches for 64 deliveries, want 1", b-batches)
	}

	uids := map[uint64]map[uint32]bool{}
	fullOK, fullQuota := 0, 0
	for i, r := range results {
		w := wants[i]
		rcpt := ds[i].Recipients[0].Account
		if rcpt == full {
			if r.err == nil {
				fullOK++
			} else if errors.Is(r.err, store.ErrOverQuota) {
				fullQuota++
				continue
			}
		}
		switch {
		case w.ok:
			if r.err != nil {
				t.Fatalf("delivery %d: %v", i, r.err)
			}
		case w.err != nil:
			if !errors.Is(r.err, w.err) {
				t.Fatalf("delivery %d: %v, want %v", i, r.err, w.err)
			}
			continue
		default:
			for j, e := range w.errs {
				if !errors.Is(r.out[j].Err, e) && (e != nil || r.out[j].Err != nil) {
					t.Fatalf("delivery %d recipient %d: %v, want %v", i, j, r.out[j].Err, e)
				}
			}
		}
		for _, o := range r.out {
			if o.Err != nil {
				continue
			}
			if uids[o.Account] == nil {
				uids[o.Account] = map[uint32]bool{}
			}
			if uids[o.Account][o.UID] {
				t.Fatalf("UID %d of account %d twice", o.UID, o.Account)
			}
			uids[o.Account][o.UID] = true
		}
	}
	if fullOK != 3 || fullQuota != 5 {
		t.Fatalf("full: %d delivered, %d over quota; want 3 and 5", fullOK, fullQuota)
	}
	// Gapless: each INBOX holds UIDs 1..n, the ones its callers were
	// told, and the counters and the bodies' references agree with
	// the rows (nothing of a failed delivery stayed).
	for _, acct := range []uint64{full, alice, bob} {
		mb := mailbox(t, s, acct, "INBOX")
		n := uint32(len(uids[acct]))
		for uid := uint32(1); uid <= n; uid++ {
			if !uids[acct][uid] {
				t.Fatalf("account %d: UID %d not given (have %v)", acct, uid, uids[acct])
			}
		}
		var rows, maxUID, uidNext, mbMessages, usageMessages int64
		if err := s.pool.QueryRow(bg, `SELECT count(*), coalesce(max(uid), 0),
				(SELECT uid_next FROM mailboxes WHERE account = $1 AND id = $2),
				(SELECT messages FROM mailboxes WHERE account = $1 AND id = $2),
				(SELECT messages FROM usage WHERE account = $1)
			FROM messages WHERE account = $1`, int64(acct), int64(mb.ID)).Scan(&rows, &maxUID, &uidNext, &mbMessages, &usageMessages); err != nil {
			t.Fatal(err)
		}
		if rows != int64(n) || maxUID != int64(n) || uidNext != int64(n)+1 || mbMessages != int64(n) || usageMessages != int64(n) {
			t.Fatalf("account %d: %d rows, max UID %d, UIDNEXT %d, mailbox %d and usage %d messages; callers were given %d",
				acct, rows, maxUID, uidNext, mbMessages, usageMessages, n)
		}
	}
	var refs, msgs int64
	if err := s.pool.QueryRow(bg, `SELECT (SELECT coalesce(sum(refs), 0) FROM blobs), (SELECT count(*) FROM messages)`).Scan(&refs, &msgs); err != nil {
		t.Fatal(err)
	}
	if refs != msgs {
		t.Fatalf("%d body references for %d messages", refs, msgs)
	}
}

// deliverQueued starts a delivery to each of accts behind a blocked flusher
// and waits until all are queued.
func deliverQueued(t *testing.T, s *Store, accts []uint64) (wait func() []error) {
	t.Helper()
	errs := make([]error, len(accts))
	var wg sync.WaitGroup
	for i, acct := range accts {
		wg.Go(func() {
			_, errs[i] = s.Deliver(bg, &store.Delivery{Body: letter(i, 300), AllOrNothing: true,
				Recipients: []store.Recipient{{Account: acct}}})
		})
	}
	waitFor(t, fmt.Sprintf("%d queued deliveries", len(accts)), func() bool { q, _ := s.deliveries.state(); return q == len(accts) })
	return func() []error { wg.Wait(); return errs }
}

func messageCount(t *testing.T, s *Store, accts ...uint64) int64 {
	t.Helper()
	ids := make([]int64, len(accts))
	for i, a := range accts {
		ids[i] = int64(a)
	}
	var n int64
	if err := s.pool.QueryRow(bg, `SELECT count(*) FROM messages WHERE account = ANY ($1)`, ids).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// A COMMIT that fails (here a deferred constraint that refuses one
// recipient's message at commit) fails every delivery of its batch
// with a storage error, and none of them is stored.
func TestDeliverBatchCommitFails(t *testing.T) {
	s := openTest(t, false)
	blocker := mailAccount(t, s, "blocker@example.kz").ID
	alice := mailAccount(t, s, "alice@example.kz").ID
	poison := mailAccount(t, s, "poison@example.kz").ID
	if _, err := s.pool.Exec(bg, fmt.Sprintf(`
		CREATE FUNCTION test_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF NEW.account = %d THEN
				RAISE EXCEPTION USING ERRCODE = '23514', MESSAGE = 'refused at commit';
			END IF;
			RETURN NEW;
		END $$;
		CREATE CONSTRAINT TRIGGER test_refuse AFTER INSERT ON messages
			DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION test_refuse();`, poison)); err != nil {
		t.Fatal(err)
	}
	release, blocked := blockFlusher(t, s, blocker)
	accts := []uint64{alice, alice, poison, alice, alice}
	wait := deliverQueued(t, s, accts)
	release()
	if err := <-blocked; err != nil {
		t.Fatal(err)
	}
	for i, err := range wait() {
		if !errors.Is(err, store.ErrStorageFailing) {
			t.Fatalf("delivery %d to %d: %v, want a storage failure", i, accts[i], err)
		}
	}
	if n := messageCount(t, s, alice, poison); n != 0 {
		t.Fatalf("%d messages stored by a batch that did not commit", n)
	}
	if u, err := s.Usage(alice); err != nil || u.Messages != 0 {
		t.Fatalf("alice's usage %+v, %v", u, err)
	}
	// The next batch, without the refused recipient, commits.
	if _, err := s.Deliver(bg, &store.Delivery{Body: letter(9, 300), AllOrNothing: true,
		Recipients: []store.Recipient{{Account: alice}}}); err != nil {
		t.Fatal(err)
	}
	if got := mailbox(t, s, alice, "INBOX"); got.UIDNext != 2 {
		t.Fatalf("UIDNEXT %d after one stored message", got.UIDNext)
	}
}

// A batch whose connection is terminated in flight (its backend killed
// from another session while it waits on a lock) fails every delivery
// with a storage error, and none of them is stored.
func TestDeliverBatchConnectionLost(t *testing.T) {
	s := openTest(t, false)
	blocker := mailAccount(t, s, "blocker@example.kz").ID
	alice := mailAccount(t, s, "alice@example.kz").ID
	bob := mailAccount(t, s, "bob@example.kz").ID
	late := mailAccount(t, s, "late@example.kz").ID // the largest id: last in its batch
	if _, err := s.Deliver(bg, &store.Delivery{Body: letter(0, 300), AllOrNothing: true,
		Recipients: []store.Recipient{{Account: alice}}}); err != nil {
		t.Fatal(err)
	}
	holdLate := holdAccount(t, s, late)
	release, blocked := blockFlusher(t, s, blocker)
	accts := []uint64{late, alice, bob, alice}
	wait := deliverQueued(t, s, accts)
	release()
	if err := <-blocked; err != nil {
		t.Fatal(err)
	}
	// The batch stores alice's and bob's and waits on late's lock:
	// terminate its backend.
	var pid int32
	waitFor(t, "the batch waiting on late's lock", func() bool {
		err := s.pool.QueryRow(bg, `SELECT pid FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%abox_deliver%'`).Scan(&pid)
		return err == nil
	})
	if _, err := s.pool.Exec(bg, `SELECT pg_terminate_backend($1)`, pid); err != nil {
		t.Fatal(err)
	}
	for i, err := range wait() {
		if !errors.Is(err, store.ErrStorageFailing) {
			t.Fatalf("delivery %d to %d: %v, want a storage failure", i, accts[i], err)
		}
	}
	holdLate()
	if n := messageCount(t, s, alice); n != 1 {
		t.Fatalf("alice has %d messages, want the first delivery's 1", n)
	}
	if n := messageCount(t, s, bob, late); n != 0 {
		t.Fatalf("%d messages stored by a killed batch", n)
	}
	// The pool replaced the connection: deliveries go on, UIDs
	// without a gap.
	out, err := s.Deliver(bg, &store.Delivery{Body: letter(9, 300), AllOrNothing: true,
		Recipients: []store.Recipient{{Account: alice}}})
	if err != nil {
		t.Fatal(err)
	}
	if out[0].UID != 2 {
		t.Fatalf("UID %d after a lost batch, want 2", out[0].UID)
	}
}

// A caller whose context ends while its delivery waits for a batch
// gets the context's error, and the delivery is never run.
func TestDeliverBatchCancelledWhileQueued(t *testing.T) {
	s := openTest(t, false)
	blocker := mailAccount(t, s, "blocker@example.kz").ID
	alice := mailAccount(t, s, "alice@example.kz").ID
	release, blocked := blockFlusher(t, s, blocker)
	ctx, cancel := context.WithCancel(bg)
	ch := make(chan error, 1)
	go func() {
		_, err := s.Deliver(ctx, &store.Delivery{Body: letter(1, 300), AllOrNothing: true,
			Recipients: []store.Recipient{{Account: alice}}})
		ch <- err
	}()
	waitFor(t, "the queued delivery", func() bool { q, _ := s.deliveries.state(); return q == 1 })
	cancel()
	if err := <-ch; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled delivery: %v", err)
	}
	release()
	if err := <-blocked; err != nil {
		t.Fatal(err)
	}
	if n := messageCount(t, s, alice); n != 0 {
		t.Fatalf("a withdrawn delivery stored %d messages", n)
	}
}

// Two nodes delivering the same shareable body to overlapping accounts
// in batches lock body rows in different orders; PostgreSQL breaks
// the deadlocks and the batches run again: every delivery succeeds and
// each mailbox's UIDs are gapless.
func TestDeliverBatchTwoNodes(t *testing.T) {
	s := openTest(t, false)
	s2 := openAgain(t, s, Options{DSN: s.pool.Config().ConnString()})
	var accts []uint64
	for i := range 8 {
		accts = append(accts, mailAccount(t, s, fmt.Sprintf("u%d@example.kz", i)).ID)
	}
	bodies := [][]byte{letter(1, 500), letter(2, 500), letter(3, 500)}
	const perNode = 24
	got := map[uint64][]uint32{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for n, node := range []*Store{s, s2} {
		for g := range perNode {
			wg.Go(func() {
				for k := range 4 {
					i := n*perNode + g + k
					out, err := node.Deliver(bg, &store.Delivery{Body: bodies[i%3], Shareable: true, AllOrNothing: true,
						Recipients: []store.Recipient{{Account: accts[i%len(accts)]}, {Account: accts[(i*5+3)%len(accts)]}}})
					if err != nil {
						t.Errorf("delivery: %v", err)
						return
					}
					mu.Lock()
					for _, o := range out {
						got[o.Account] = append(got[o.Account], o.UID)
					}
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	for _, node := range []*Store{s, s2} {
		c := &node.deliveries
		c.mu.Lock()
		t.Logf("%d deliveries in %d batches, %d batches run again after a deadlock", c.batched, c.batches, c.retries)
		c.mu.Unlock()
	}
	for _, acct := range accts {
		have := map[uint32]bool{}
		for _, uid := range got[acct] {
			if have[uid] {
				t.Fatalf("account %d: UID %d twice", acct, uid)
			}
			have[uid] = true
		}
		for uid := uint32(1); uid <= uint32(len(have)); uid++ {
			if !have[uid] {
				t.Fatalf("account %d: UID %d missing of %d", acct, uid, len(have))
			}
		}
		if n := messageCount(t, s, acct); n != int64(len(have)) {
			t.Fatalf("account %d: %d rows, %d acknowledged", acct, n, len(have))
		}
	}
}

// A batch that PostgreSQL aborts to break a deadlock runs again from
// its first statement: the delivery it had stored before the deadlock
// is stored again (once), the others after it too.
func TestDeliverBatchDeadlockRetried(t *testing.T) {
	s := openTest(t, false)
	blocker := mailAccount(t, s, "blocker@example.kz").ID
	alice := mailAccount(t, s, "alice@example.kz").ID
	bob := mailAccount(t, s, "bob@example.kz").ID
	// Another session holds bob; the batch stores alice's, then waits
	// for bob; the session then asks for alice: a deadlock, which the
	// batch (waiting longer) detects and is aborted for.
	other, err := s.pool.Begin(bg)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Rollback(bg)
	if _, err := other.Exec(bg, `SELECT 1 FROM usage WHERE account = $1 FOR UPDATE`, int64(bob)); err != nil {
		t.Fatal(err)
	}
	release, blocked := blockFlusher(t, s, blocker)
	wait := deliverQueued(t, s, []uint64{bob, alice})
	release()
	if err := <-blocked; err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the batch waiting on bob's lock", func() bool {
		var n int
		s.pool.QueryRow(bg, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%abox_deliver%'`).Scan(&n)
		return n == 1
	})
	if _, err := other.Exec(bg, `SELECT 1 FROM usage WHERE account = $1 FOR UPDATE`, int64(alice)); err != nil {
		t.Fatal(err) // the batch, not this session, was aborted
	}
	waitFor(t, "the batch's retry", func() bool {
		s.deliveries.mu.Lock()
		defer s.deliveries.mu.Unlock()
		return s.deliveries.retries == 1
	})
	other.Rollback(bg)
	for i, err := range wait() {
		if err != nil {
			t.Fatalf("delivery %d: %v", i, err)
		}
	}
	for _, acct := range []uint64{alice, bob} {
		if n := messageCount(t, s, acct); n != 1 {
			t.Fatalf("account %d: %d messages, want 1", acct, n)
		}
		if mb := mailbox(t, s, acct, "INBOX"); mb.UIDNext != 2 {
			t.Fatalf("account %d: UIDNEXT %d, want 2", acct, mb.UIDNext)
		}
	}
}
