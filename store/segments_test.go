package store

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// segBody is a body of about n bytes, distinct per i.
func segBody(i, n int) []byte {
	b := fmt.Appendf(nil, "Subject: body %d\r\nFrom: a@example.kz\r\n\r\n", i)
	for len(b) < n {
		b = fmt.Appendf(b, "line %d of body %d\r\n", len(b), i)
	}
	return b
}

func segFiles(t *testing.T, path string) []string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(path+SegmentDirSuffix, "*"+segmentFileSuffix))
	return m
}

// openSegTest opens a store whose bodies of 1 KiB and more go to
// segments of 64 KiB.
func openSegTest(t *testing.T, path string) *Store {
	t.Helper()
	s, err := Open(path, Options{WAL: true, SegmentMin: 1 << 10, SegmentSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// deliverTo delivers body to one account and fails the test on error.
func deliverTo(t *testing.T, s *Store, acct uint64, body []byte) {
	t.Helper()
	if _, err := s.Deliver(ctx, &Delivery{Body: body, Recipients: []Recipient{{Account: acct}}}); err != nil {
		t.Fatal(err)
	}
}

// verifyAcrossCrash runs verify on s, then on the store reopened after a
// simulated crash of s.
func verifyAcrossCrash(t *testing.T, s *Store, path string, verify func(*Store)) {
	t.Helper()
	verify(s)
	s2 := crashAndReopen(t, s, path)
	defer s2.Close()
	verify(s2)
}

// TestSegmentBodies: large bodies go to segment files (several, as each
// fills), small ones stay in the database; every read path returns the
// exact bytes, before and after a crash that leaves the deliveries in
// the log only, and the check finds the counts right.
func TestSegmentBodies(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	s := openSegTest(t, path)
	a := addAccount(t, s, "alice@example.kz")
	b := addAccount(t, s, "bob@example.kz")
	var bodies [][]byte
	for i := range 40 {
		body := segBody(i, 200+i*700) // 200 B to 27 KiB
		rcpts := []Recipient{{Account: a.ID}}
		if i%4 == 0 {
			rcpts = append(rcpts, Recipient{Account: b.ID}) // one body, two messages
		}
		if _, err := s.Deliver(ctx, &Delivery{Body: body, Recipients: rcpts}); err != nil {
			t.Fatal(err)
		}
		bodies = append(bodies, body)
	}
	if n := len(segFiles(t, path)); n < 3 {
		t.Fatalf("%d segment files, want several", n)
	}
	verify := func(s *Store) {
		t.Helper()
		mb, _ := s.MailboxByName(a.ID, "INBOX")
		msgs, err := s.Messages(a.ID, mb.ID, 0, 0)
		if err != nil || len(msgs) != len(bodies) {
			t.Fatalf("%d messages, %v", len(msgs), err)
		}
		ids := make([]uint64, len(msgs))
		for i, m := range msgs {
			ids[i] = m.Blob
			got, _, err := s.Body(m.Blob)
			if err != nil || !bytes.Equal(got, bodies[i]) {
				t.Fatalf("Body %d: %d bytes (want %d), %v", i, len(got), len(bodies[i]), err)
			}
		}
		seen := 0
		err = s.ReadBodies(ids, func(i int, body, _ []byte) error {
			if !bytes.Equal(body, bodies[i]) {
				return fmt.Errorf("ReadBodies %d: %d bytes, want %d", i, len(body), len(bodies[i]))
			}
			seen++
			return nil
		})
		if err != nil || seen != len(ids) {
			t.Fatalf("ReadBodies: %d of %d, %v", seen, len(ids), err)
		}
		mustCheck(t, s)
	}
	verifyAcrossCrash(t, s, path, verify)
}

// TestSegmentRemovedWhenEmpty: when the last body in a closed segment is
// expunged, the file goes, but not while a reader that started before
// the expunge is still running.
func TestSegmentRemovedWhenEmpty(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	s := openSegTest(t, path)
	defer s.Close()
	a := addAccount(t, s, "alice@example.kz")
	for i := range 12 {
		deliverTo(t, s, a.ID, segBody(i, 20<<10))
	}
	before := segFiles(t, path)
	if len(before) < 3 {
		t.Fatalf("segments %v", before)
	}
	mb, _ := s.MailboxByName(a.ID, "INBOX")
	msgs, _ := s.Messages(a.ID, mb.ID, 0, 0)
	// The first segment holds the first three bodies.
	r := &s.blobs.segs.readers
	e := r.enter() // a reader that started before the expunge
	if _, err := s.Expunge(ctx, a.ID, mb.ID, []uint32{msgs[0].UID, msgs[1].UID, msgs[2].UID}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(before[0]); err != nil {
		t.Fatalf("segment removed under a reader: %v", err)
	}
	r.leave(e)
	if _, err := os.Stat(before[0]); !os.IsNotExist(err) {
		t.Fatalf("emptied segment still there after its readers: %v", err)
	}
	if _, err := os.Stat(before[1]); err != nil {
		t.Fatalf("segment in use removed: %v", err)
	}
	mustCheck(t, s)
	for _, m := range msgs[3:] {
		if _, _, err := s.Body(m.Blob); err != nil {
			t.Fatal(err)
		}
	}
}

// TestSegmentOrphansRemovedAtOpen: segment files nothing refers to (a
// crash between writing bodies and their record) are removed by Open,
// and new appends never reuse their numbers.
func TestSegmentOrphansRemovedAtOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	s := openSegTest(t, path)
	a := addAccount(t, s, "alice@example.kz")
	deliverTo(t, s, a.ID, segBody(1, 4<<10))
	s.Close()
	orphan := filepath.Join(path+SegmentDirSuffix, segmentName(99))
	if err := os.WriteFile(orphan, []byte("half a body"), 0o600); err != nil {
		t.Fatal(err)
	}
	s = openSegTest(t, path)
	defer s.Close()
	if _, err := os.Stat(orphan); !os.IsNotExist(err) {
		t.Fatalf("orphan segment kept: %v", err)
	}
	deliverTo(t, s, a.ID, segBody(2, 4<<10))
	if _, err := os.Stat(filepath.Join(path+SegmentDirSuffix, segmentName(100))); err != nil {
		t.Fatalf("new segment not numbered after the orphan: %v (have %v)", err, segFiles(t, path))
	}
	mustCheck(t, s)
}

// TestBackupHoldsSegmentBodies: a backup is one file with every body in
// it: opened alone (no segment directory beside it), every message
// reads back and the check is clean.
func TestBackupHoldsSegmentBodies(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	s := openSegTest(t, path)
	defer s.Close()
	a := addAccount(t, s, "alice@example.kz")
	var bodies [][]byte
	for i := range 30 {
		body := segBody(i, 300+i*1000)
		deliverTo(t, s, a.ID, body)
		bodies = append(bodies, body)
	}
	if len(segFiles(t, path)) == 0 {
		t.Fatal("no segment bodies: the test proves nothing")
	}
	copyPath := filepath.Join(t.TempDir(), "backup.db")
	n, err := s.BackupTo(copyPath, nil)
	if fi, serr := os.Stat(copyPath); err != nil || serr != nil || fi.Size() != n {
		t.Fatalf("backup: %d bytes, %v, %v", n, err, serr)
	}
	c, err := Open(copyPath, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	mb, _ := c.MailboxByName(a.ID, "INBOX")
	msgs, err := c.Messages(a.ID, mb.ID, 0, 0)
	if err != nil || len(msgs) != len(bodies) {
		t.Fatalf("copy: %d messages, %v", len(msgs), err)
	}
	for i, m := range msgs {
		got, _, err := c.Body(m.Blob)
		if err != nil || !bytes.Equal(got, bodies[i]) {
			t.Fatalf("copy: body %d: %d bytes (want %d), %v", i, len(got), len(bodies[i]), err)
		}
	}
	if _, err := os.Stat(copyPath + SegmentDirSuffix); !os.IsNotExist(err) {
		t.Fatalf("the copy needs a segment directory: %v", err)
	}
	mustCheck(t, c)
}

// TestSegmentCompaction: when deletions leave a closed segment less than
// half referenced, its remaining bodies are copied to the active
// segment and the file goes; the bodies read back the same, also after
// a crash, and a segment still more than half used is left alone.
func TestSegmentCompaction(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	s := openSegTest(t, path)
	a := addAccount(t, s, "alice@example.kz")
	var bodies [][]byte
	for i := range 30 {
		body := segBody(i, 10<<10)
		deliverTo(t, s, a.ID, body)
		bodies = append(bodies, body)
	}
	files := segFiles(t, path)
	mb, _ := s.MailboxByName(a.ID, "INBOX")
	msgs, _ := s.Messages(a.ID, mb.ID, 0, 0)
	locOf := func(s *Store, blob uint64) (loc blobLoc) {
		t.Helper()
		_ = s.viewNow(func(tx *bolt.Tx) error {
			loc, _ = decodeLoc(tx.Bucket(bBlobLocs).Get(u64(blob)))
			return nil
		})
		return loc
	}
	// Segment 1 holds bodies 0-5, segment 2 bodies 6-11: take four
	// from the first (two of six left) and two from the second.
	if locOf(s, msgs[5].Blob).seg != 1 || locOf(s, msgs[6].Blob).seg != 2 {
		t.Fatalf("bodies 5 and 6 in segments %d and %d, want 1 and 2", locOf(s, msgs[5].Blob).seg, locOf(s, msgs[6].Blob).seg)
	}
	gone := []uint32{msgs[0].UID, msgs[1].UID, msgs[2].UID, msgs[4].UID, msgs[6].UID, msgs[7].UID}
	if _, err := s.Expunge(ctx, a.ID, mb.ID, gone); err != nil {
		t.Fatal(err)
	}
	keep := map[int]bool{}
	for i := range bodies {
		keep[i] = !slices.Contains(gone, msgs[i].UID)
	}
	// Done when the file is gone and the compactor has counted it.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(files[0]); os.IsNotExist(err) && s.SegmentStats().Compactions > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("segment 1 not compacted: %v", segFiles(t, path))
		}
	}
	if _, err := os.Stat(files[1]); err != nil {
		t.Fatalf("segment 2 (four of six bodies left) was compacted: %v", err)
	}
	st := s.SegmentStats()
	var onDisk int64
	for _, f := range segFiles(t, path) {
		fi, _ := os.Stat(f)
		onDisk += fi.Size()
	}
	if st.Compactions != 1 || st.CompactedBytes != uint64(len(bodies[3])+len(bodies[5])) || st.Files != int64(len(segFiles(t, path))) || st.Bytes != onDisk {
		t.Fatalf("stats %+v; on disk %d files, %d bytes", st, len(segFiles(t, path)), onDisk)
	}
	verify := func(s *Store) {
		t.Helper()
		for i, m := range msgs {
			if !keep[i] {
				continue
			}
			got, _, err := s.Body(m.Blob)
			if err != nil || !bytes.Equal(got, bodies[i]) {
				t.Fatalf("body %d: %d bytes, %v", i, len(got), err)
			}
		}
		if l := locOf(s, msgs[3].Blob); l.seg == 1 {
			t.Fatalf("body 3 still in segment %d", l.seg)
		}
		mustCheck(t, s)
	}
	verifyAcrossCrash(t, s, path, verify)
}

// TestSegmentFailedDeliveries: deliveries of large bodies that fail in
// the middle of a batch (all or nothing, one recipient over quota) take
// the open transaction back to the log and run the rest again; the
// bodies they appended stay unreferenced, and the counts, the index and
// every acknowledged body come out right, also after a crash.
func TestSegmentFailedDeliveries(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	s := openSegTest(t, path)
	a := addAccount(t, s, "alice@example.kz")
	b := addAccount(t, s, "bob@example.kz")
	// Bob gets his one message first, so the all-or-nothing ones fail.
	deliverTo(t, s, b.ID, msg(1))
	var mu sync.Mutex
	acked := map[string]bool{}
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 30 {
				body := segBody(w*1000+i, 2<<10+i*300)
				d := &Delivery{Body: body, Recipients: []Recipient{{Account: a.ID}}}
				fail := i%4 == 3
				if fail {
					d.AllOrNothing = true
					d.Recipients = append(d.Recipients, Recipient{Account: b.ID, MaxMessages: 1})
				}
				_, err := s.Deliver(ctx, d)
				if fail != (err != nil) {
					t.Errorf("delivery %d/%d: %v", w, i, err)
					return
				}
				if err == nil {
					mu.Lock()
					acked[string(body)] = true
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	verify := func(s *Store) {
		t.Helper()
		mb, _ := s.MailboxByName(a.ID, "INBOX")
		msgs, err := s.Messages(a.ID, mb.ID, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		found := 0
		for _, m := range msgs {
			body, _, err := s.Body(m.Blob)
			if err != nil || !acked[string(body)] {
				t.Fatalf("message %d: %d bytes not acknowledged, %v", m.UID, len(body), err)
			}
			found++
		}
		if found != len(acked) {
			t.Fatalf("%d messages, %d acknowledged", found, len(acked))
		}
		mustCheck(t, s)
	}
	verifyAcrossCrash(t, s, path, verify)
}

// TestRestoredBackupRefusesLog: a backup copied over the database file
// by hand (the old README's restore) next to the log of the database it
// was taken from: that log's records (deliveries made after the backup)
// must never be applied to it. The copy is a database of its own, so
// Open refuses the log, loudly; with the log moved away it opens as the
// backup, and the old segment files, which belong to the other
// database, are refused too rather than removed.
func TestRestoredBackupRefusesLog(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, FileName)
	s := openSegTest(t, path)
	a := addAccount(t, s, "alice@example.kz")
	deliverTo(t, s, a.ID, segBody(1, 4<<10))
	copyPath := filepath.Join(t.TempDir(), "backup.db")
	if _, err := s.BackupTo(copyPath, nil); err != nil {
		t.Fatal(err)
	}
	// Deliveries after the backup stay in the log only.
	for i := range 3 {
		deliverTo(t, s, a.ID, segBody(10+i, 4<<10))
	}
	crash(s)
	raw, err := os.ReadFile(copyPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(path, Options{WAL: true, SegmentMin: 1 << 10, SegmentSize: 64 << 10}); !errors.Is(err, ErrForeignFiles) {
		t.Fatalf("the backup beside the original's log: %v, want ErrForeignFiles", err)
	}
	os.Rename(path+WALFileSuffix, filepath.Join(dir, "old.wal"))
	if _, err := Open(path, Options{WAL: true, SegmentMin: 1 << 10, SegmentSize: 64 << 10}); !errors.Is(err, ErrForeignFiles) {
		t.Fatalf("the backup beside the original's segments: %v, want ErrForeignFiles", err)
	}
	if len(segFiles(t, path)) == 0 {
		t.Fatal("the refused Open removed the original's segments")
	}
	os.Rename(path+SegmentDirSuffix, filepath.Join(dir, "old.bodies"))
	r := openSegTest(t, path)
	defer r.Close()
	mb, _ := r.MailboxByName(a.ID, "INBOX")
	if msgs, err := r.Messages(a.ID, mb.ID, 0, 0); err != nil || len(msgs) != 1 {
		t.Fatalf("restored: %d messages, %v (want the backup's one)", len(msgs), err)
	}
	mustCheck(t, r)
}
