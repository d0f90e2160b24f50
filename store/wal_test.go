package store

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func openWALTest(t testing.TB, path string) *Store {
	t.Helper()
	s, err := Open(path, Options{WAL: true})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// dumpAll renders every bucket's sequence and pairs, for comparing two
// states of the file.
func dumpAll(tx *bolt.Tx) map[string]string {
	out := map[string]string{}
	for _, name := range allBuckets {
		b := tx.Bucket(name)
		out[string(name)+"/sequence"] = fmt.Sprint(b.Sequence())
		b.ForEach(func(k, v []byte) error {
			out[string(name)+"/"+fmt.Sprintf("%x", k)] = fmt.Sprintf("%x", v)
			return nil
		})
	}
	// The log's position and the checkpoint's token change with every
	// checkpoint, the dirty mark with every Open and Close.
	for _, k := range [][]byte{keyWALSeq, keyWALToken, keyWALDirty} {
		delete(out, string(bMeta)+"/"+fmt.Sprintf("%x", k))
	}
	return out
}

// fileState is dumpAll of what a reader sees (after the barrier).
func fileState(t *testing.T, s *Store) map[string]string {
	t.Helper()
	var out map[string]string
	if err := s.view(func(tx *bolt.Tx) error { out = dumpAll(tx); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

func diffDumps(t *testing.T, want, got map[string]string) {
	t.Helper()
	n := 0
	for k, v := range want {
		if g, ok := got[k]; (!ok || g != v) && n < 5 { // index keys have empty values: presence counts
			t.Errorf("after replay %s = %.60q (present %v), want %.60q", k, g, ok, v)
			n++
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok && n < 5 {
			t.Errorf("after replay %s exists, but not before the crash", k)
			n++
		}
	}
	if n > 0 {
		t.FailNow()
	}
}

// deliverMix makes every kind of logged delivery, from several writers
// so that batches hold several requests: shared bodies, several
// recipients, Junk by special use, a daily sent counter, a recipient over
// quota (skipped) and an all-or-nothing delivery that fails (which takes
// the open transaction back to the log and runs the rest again). A
// mailbox created in the middle is an unlogged write that checkpoints.
func deliverMix(t *testing.T, s *Store, a, b uint64) (acked [][]byte) {
	t.Helper()
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 40 {
				n := w*1000 + i
				d := &Delivery{Body: msg(n), Recipients: []Recipient{{Account: a}, {Account: b, SpecialUse: `\Junk`, Flags: []string{`\Seen`}}}}
				switch i % 5 {
				case 0:
					if w%2 == 0 { // an official letter: ledger, evidence entries and tree nodes in the log too
						d.Official = &OfficialLetter{MessageID: fmt.Sprintf("<letter-%d@gov.kz>", n), Sender: "egov",
							Addresses: []string{"alice@example.kz", "bob@example.kz"}, AcceptedAt: time.Unix(1_800_000_000, 0),
							ClientIP: "192.0.2.9", TLS: "TLS 1.3", Refused: []string{"carol@example.kz"}, Reason: "no-consent"}
					}
				case 1:
					d.Body, d.Shareable = msg(i), true // the same body from each writer
				case 2:
					d.Sender = &SenderCount{Account: b, MaxSentPerDay: 0}
				case 3:
					d.Recipients = append(d.Recipients, Recipient{Account: a, MaxMessages: 1})
				case 4:
					d.AllOrNothing = true
					d.Recipients = append(d.Recipients, Recipient{Account: b, MaxMessages: 1})
				}
				_, err := s.Deliver(ctx, d)
				if i%5 == 4 {
					if !errors.Is(err, ErrOverQuota) {
						t.Errorf("all-or-nothing over quota: %v", err)
					}
					continue
				}
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				acked = append(acked, d.Body)
				mu.Unlock()
			}
		}()
	}
	if _, err := s.CreateMailbox(ctx, a, "Projects", "", MailboxLimits{}); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	return acked
}

// TestWALReplayRebuildsTheFile: after a crash that leaves acknowledged
// deliveries only in the log, Open brings the file to exactly the state
// the writer had (every bucket, every sequence). A delivery write that
// bypassed the log would show here as a difference.
func TestWALReplayRebuildsTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	s := openWALTest(t, path)
	a := addAccount(t, s, "alice@example.kz")
	b := addAccount(t, s, "bob@example.kz")
	acked := deliverMix(t, s, a.ID, b.ID)
	// One more official letter last: whatever waits in the log when the
	// state is taken below (the test insists something does), this does.
	if _, err := s.Deliver(ctx, &Delivery{Body: msg(99), Recipients: []Recipient{{Account: a.ID}},
		Official: &OfficialLetter{MessageID: "<last@gov.kz>", Sender: "egov", Addresses: []string{"alice@example.kz"}}}); err != nil {
		t.Fatal(err)
	}

	// The state as the writer sees it, read inside its open transaction
	// (a read through view would checkpoint first), with the evidence
	// log's tree and indexes built as the next commit (and the one that
	// applies the log at Open) builds them.
	var want map[string]string
	if err := s.updateLogged(ctx, func(t *txn) error {
		if err := buildEvidence(t.tx); err != nil {
			return err
		}
		want = dumpAll(t.tx)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	st := s.WriterStats()
	if st.LogRecords == 0 || s.deferGen.Load() == s.appliedGen.Load() {
		t.Fatalf("nothing waits in the log (%+v): the test proves nothing", st)
	}
	s2 := crashAndReopen(t, s, path)
	defer s2.Close()
	diffDumps(t, want, fileState(t, s2))
	mustCheck(t, s2)
	// The official letters' evidence came back whole: 3 writers x 8
	// letters x (2 recipients x accepted+stored, 1 refused).
	if size, _, err := s2.EvidenceHead(); err != nil || size != 3*8*5+2 {
		t.Fatalf("evidence log after replay: %d entries (%v), want %d", size, err, 3*8*5+2)
	}
	if len(acked) != 6*32 {
		t.Fatalf("%d deliveries acknowledged, want %d", len(acked), 6*32)
	}
	// A second crash with nothing new applies nothing twice.
	s3 := crashAndReopen(t, s2, path)
	defer s3.Close()
	diffDumps(t, want, fileState(t, s3))
	// The tree over the replayed log verifies against a head signed now.
	signAndVerify(t, s3)
}

// TestWALReadsSeeAcknowledged: a read that starts after a delivery was
// acknowledged sees it, though the delivery is only in the log (the
// barrier checkpoints first), and the feed announces it.
func TestWALReadsSeeAcknowledged(t *testing.T) {
	s := openWALTest(t, filepath.Join(t.TempDir(), FileName))
	defer s.Close()
	a := addAccount(t, s, "alice@example.kz")
	sub := watch(t, s, a.ID)
	mb, _ := s.MailboxByName(a.ID, "INBOX")
	for i := range 20 {
		res, err := s.Deliver(ctx, &Delivery{Body: msg(i), Recipients: []Recipient{{Account: a.ID}}})
		if err != nil {
			t.Fatal(err)
		}
		uids, err := s.UIDs(a.ID, mb.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(uids) != i+1 || uids[i] != res[0].UID {
			t.Fatalf("after delivery %d (UID %d): UIDs %v", i, res[0].UID, uids)
		}
		if c := sub.next(t); c.Kind != MessageAdded || c.UID != res[0].UID {
			t.Fatalf("change %+v", c)
		}
	}
	if st := s.WriterStats(); st.LogRecords < 20 {
		t.Fatalf("deliveries not logged: %+v", st)
	}
	// Untouched by readers, the writer checkpoints on its own, each time.
	for i := range 3 {
		if _, err := s.Deliver(ctx, &Delivery{Body: msg(100 + i), Recipients: []Recipient{{Account: a.ID}}}); err != nil {
			t.Fatal(err)
		}
		if c := sub.next(t); c.Kind != MessageAdded {
			t.Fatalf("delivery %d: change %+v", i, c)
		}
	}
}

// TestWALTornRecordIgnored: a record cut short by a crash (never
// acknowledged) and whatever follows it are not applied.
func TestWALTornRecordIgnored(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	s := openWALTest(t, path)
	a := addAccount(t, s, "alice@example.kz")
	for i := range 3 {
		if _, err := s.Deliver(ctx, &Delivery{Body: msg(i), Recipients: []Recipient{{Account: a.ID}}}); err != nil {
			t.Fatal(err)
		}
	}
	end := s.wal.pos
	crash(s)
	// Tear the last record: flip a byte of its payload.
	f, err := os.OpenFile(path+WALFileSuffix, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	var c [1]byte
	f.ReadAt(c[:], end-1)
	c[0] ^= 0xff
	f.WriteAt(c[:], end-1)
	f.Close()

	s2 := openWALTest(t, path)
	defer s2.Close()
	mb, _ := s2.MailboxByName(a.ID, "INBOX")
	uids, _ := s2.UIDs(a.ID, mb.ID)
	if len(uids) != 2 {
		t.Fatalf("after a torn third record: UIDs %v, want the first two", uids)
	}
	mustCheck(t, s2)
	// The next delivery continues the sequence and survives a crash.
	if _, err := s2.Deliver(ctx, &Delivery{Body: msg(7), Shareable: true, Recipients: []Recipient{{Account: a.ID}}}); err != nil {
		t.Fatal(err)
	}
	s3 := crashAndReopen(t, s2, path)
	defer s3.Close()
	if _, err := s3.BodyByHash(sha256.Sum256(msg(7))); err != nil {
		t.Fatalf("delivery after the torn record: %v", err)
	}
}

// TestWALNewFileRefusesOldLog: a log left beside a database file that
// was removed may hold acknowledged mail of that database: Open refuses
// to create a new file beside it (and creates nothing), and starts an
// empty database once the log is moved away, never applying it.
func TestWALNewFileRefusesOldLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	s := openWALTest(t, path)
	a := addAccount(t, s, "alice@example.kz")
	if _, err := s.Deliver(ctx, &Delivery{Body: msg(1), Shareable: true, Recipients: []Recipient{{Account: a.ID}}}); err != nil {
		t.Fatal(err)
	}
	crash(s)
	os.Remove(path)
	if _, err := Open(path, Options{WAL: true}); !errors.Is(err, ErrForeignFiles) {
		t.Fatalf("Open beside an old log: %v, want ErrForeignFiles", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the refused Open created %s: %v", path, err)
	}
	if err := os.Rename(path+WALFileSuffix, path+".wal.old"); err != nil {
		t.Fatal(err)
	}
	s2 := openWALTest(t, path)
	defer s2.Close()
	if _, err := s2.BodyByHash(sha256.Sum256(msg(1))); !errors.Is(err, ErrNotFound) {
		t.Fatalf("body from the old log: %v", err)
	}
	var n int
	s2.view(func(tx *bolt.Tx) error { n = tx.Bucket(bBlobs).Stats().KeyN; return nil })
	if n != 0 {
		t.Fatalf("%d blobs in a new file", n)
	}
}

// TestWALFailedSyncNotReplayed: a record whose sync failed is committed
// by a checkpoint instead; if its bytes reach the disk anyway, a later
// Open must not apply it again over newer writes (here: a flag set after
// it, which replaying the old message record would undo).
func TestWALFailedSyncNotReplayed(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	s := openWALTest(t, path)
	a := addAccount(t, s, "alice@example.kz")
	mb, _ := s.MailboxByName(a.ID, "INBOX")
	failed := false
	s.wal.fault = func() error {
		if !failed {
			failed = true
			return errors.New("injected sync failure")
		}
		return nil
	}
	// The first record after a checkpoint sits at the start of the log,
	// where a replay begins.
	res, err := s.Deliver(ctx, &Delivery{Body: msg(1), Recipients: []Recipient{{Account: a.ID}}})
	if err != nil {
		t.Fatalf("delivery whose log sync failed: %v (want it committed instead)", err)
	}
	if !failed {
		t.Fatal("the fault was not reached")
	}
	if _, err := s.SetFlags(ctx, a.ID, mb.ID, []uint32{res[0].UID}, FlagsAdd, []string{`\Seen`}); err != nil {
		t.Fatal(err)
	}
	// Nothing is logged since (the flag change was committed), so the
	// file as it is now is what a restart must find.
	want := fileState(t, s)
	s2 := crashAndReopen(t, s, path)
	defer s2.Close()
	diffDumps(t, want, fileState(t, s2))
	mustCheck(t, s2)
	msgs, err := s2.MessagesByUID(a.ID, mb.ID, []uint32{res[0].UID})
	if err != nil || len(msgs) != 1 || !msgs[0].Seen() {
		t.Fatalf("after the crash: %+v, %v; want the message, seen", msgs, err)
	}
}

// TestWALBarrierPerAccount: a read of one account's mail waits for (and
// forces) a checkpoint only when that account has deliveries still in
// the log; a body read by id waits only for a body still in the log.
func TestWALBarrierPerAccount(t *testing.T) {
	s := openWALTest(t, filepath.Join(t.TempDir(), FileName))
	defer s.Close()
	a := addAccount(t, s, "alice@example.kz")
	b := addAccount(t, s, "bob@example.kz")
	mbA, _ := s.MailboxByName(a.ID, "INBOX")
	mbB, _ := s.MailboxByName(b.ID, "INBOX")
	if _, err := s.Deliver(ctx, &Delivery{Body: msg(1), Recipients: []Recipient{{Account: a.ID}}}); err != nil {
		t.Fatal(err)
	}
	before := s.WriterStats().Commits
	if uids, err := s.UIDs(b.ID, mbB.ID); err != nil || len(uids) != 0 {
		t.Fatalf("bob's INBOX: %v, %v", uids, err)
	}
	if _, err := s.Usage(b.ID); err != nil {
		t.Fatal(err)
	}
	if c := s.WriterStats().Commits; c != before {
		t.Fatalf("reading bob's mail made %d checkpoints; alice's delivery is no reason to wait", c-before)
	}
	if uids, err := s.UIDs(a.ID, mbA.ID); err != nil || len(uids) != 1 {
		t.Fatalf("alice's INBOX right after the delivery: %v, %v", uids, err)
	}
	if c := s.WriterStats().Commits; c != before+1 {
		t.Fatalf("reading alice's mail made %d checkpoints, want 1", c-before)
	}

	// A body whose id the caller has (here from the writer's own view)
	// while it is only in the log.
	if _, err := s.Deliver(ctx, &Delivery{Body: msg(2), Recipients: []Recipient{{Account: a.ID}}}); err != nil {
		t.Fatal(err)
	}
	var id uint64
	if err := s.updateLogged(ctx, func(t *txn) error { id = t.tx.Bucket(bBodies).Sequence(); return nil }); err != nil {
		t.Fatal(err)
	}
	body, _, err := s.Body(id)
	if err != nil || string(body) != string(msg(2)) {
		t.Fatalf("body %d still in the log: %q, %v", id, body, err)
	}
}

// FuzzWALRecords: the log reader and the operation decoder never panic on
// any file (a log is read back after crashes and disk faults), and a file
// of well-formed records reads back record for record. Seeds: the log of
// real deliveries, and truncations of it.
func FuzzWALRecords(f *testing.F) {
	dir := f.TempDir()
	src := openWALTest(f, filepath.Join(dir, "src", FileName))
	a := addAccount(f, src, "alice@example.kz")
	for i := range 3 {
		if _, err := src.Deliver(ctx, &Delivery{Body: msg(i), Shareable: i == 0, Recipients: []Recipient{{Account: a.ID}, {Account: a.ID, SpecialUse: `\Junk`}}}); err != nil {
			f.Fatal(err)
		}
	}
	logged := make([]byte, src.wal.pos-walFileHeader)
	if _, err := src.wal.f.ReadAt(logged, walFileHeader); err != nil {
		f.Fatal(err)
	}
	after, token := src.ckSeq, src.wal.token
	src.Close()
	f.Add(logged, token, after)
	f.Add(logged[:len(logged)/2], token, after)
	f.Add(logged[:walHeader+3], token, after)
	f.Add(frameRecord(7, 1, []byte{opPut, 250, 1, 'k'}), uint64(7), uint64(0))
	f.Add([]byte{}, uint64(0), uint64(0))

	dst, err := Open(filepath.Join(dir, "dst", FileName), Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { dst.Close() })
	n := 0
	f.Fuzz(func(t *testing.T, records []byte, token, after uint64) {
		n++
		path := filepath.Join(dir, fmt.Sprintf("wal-%d", n))
		file := append(walFileHeaderBytes(make([]byte, walIDBytes)), records...)
		if err := os.WriteFile(path, file, 0o600); err != nil {
			t.Fatal(err)
		}
		defer os.Remove(path)
		fh, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer fh.Close()
		w := &wal{f: fh, size: int64(len(file))}
		var payloads [][]byte
		last, end, err := w.records(token, after, func(seq uint64, p []byte) error {
			payloads = append(payloads, p)
			return nil
		})
		if err != nil {
			t.Fatalf("reading a file of %d bytes: %v", len(file), err)
		}
		if last != after+uint64(len(payloads)) || end > int64(len(file)) || end < walFileHeader {
			t.Fatalf("records: last %d after %d with %d records, end %d of %d", last, after, len(payloads), end, len(file))
		}
		// What was read frames back to the same bytes.
		var again []byte
		for i, p := range payloads {
			again = append(again, frameRecord(token, after+uint64(i)+1, p)...)
		}
		if string(again) != string(file[walFileHeader:end]) {
			t.Fatalf("the %d records read do not frame back to the file's bytes up to %d", len(payloads), end)
		}
		// Records found past a damaged one are whole, in order, past
		// last, and do not overlap.
		found, _ := w.later(end, token, last)
		for i, r := range found {
			if r.seq <= last || r.off <= end || i > 0 && found[i-1].off+walHeader+found[i-1].n > r.off {
				t.Fatalf("later: record %+v after %+v (end %d, last %d)", r, found[max(i-1, 0)], end, last)
			}
		}
		// Applying them returns an error or succeeds; never panics.
		tx, err := dst.db.Begin(true)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback()
		for _, p := range payloads {
			if applyOps(tx, p) != nil {
				break
			}
		}
	})
}

// crash closes s as a crash would leave it: the log not checkpointed.
func crash(s *Store) {
	s.crashOnClose = true
	s.Close()
}

// crashAndReopen crashes s and opens the file again, replaying its log.
func crashAndReopen(t *testing.T, s *Store, path string) *Store {
	t.Helper()
	crash(s)
	return openWALTest(t, path)
}

// TestWALLargeBatchCommitted: a batch whose record would pass maxRecord
// is committed to the file instead of logged; the batches around it are
// logged, and every one of them survives a crash whole.
func TestWALLargeBatchCommitted(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	s, err := Open(path, Options{WAL: true, SegmentMin: -1}) // every body in the database
	if err != nil {
		t.Fatal(err)
	}
	a := addAccount(t, s, "alice@example.kz")
	big := append(msg(1), bytes.Repeat([]byte("0123456789abcdef\r\n"), maxRecord/18+1)...)
	bodies := [][]byte{msg(0), big, msg(2)}
	for i, body := range bodies {
		before := s.WriterStats()
		if _, err := s.Deliver(ctx, &Delivery{Body: body, Recipients: []Recipient{{Account: a.ID}}}); err != nil {
			t.Fatal(err)
		}
		after := s.WriterStats()
		logged, committed := after.LogRecords-before.LogRecords, after.Commits-before.Commits
		if large := len(body) > maxRecord; large && (logged != 0 || committed == 0) || !large && (logged != 1 || committed != 0) {
			t.Fatalf("delivery %d (%d bytes): %d log records, %d commits", i, len(body), logged, committed)
		}
	}
	s2 := crashAndReopen(t, s, path)
	defer s2.Close()
	mb, _ := s2.MailboxByName(a.ID, "INBOX")
	var msgs []Message
	msgs, err = s2.Messages(a.ID, mb.ID, 0, 0)
	if err != nil || len(msgs) != len(bodies) {
		t.Fatalf("after the crash: %d messages, %v", len(msgs), err)
	}
	for i, m := range msgs {
		got, _, err := s2.Body(m.Blob)
		if err != nil || !bytes.Equal(got, bodies[i]) {
			t.Fatalf("message %d after the crash: %d bytes (want %d), %v", i, len(got), len(bodies[i]), err)
		}
	}
	mustCheck(t, s2)
}
