package store

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// deliverEach delivers n messages one at a time (one log record each)
// and returns the offsets at which their records start in the log.
func deliverEach(t *testing.T, s *Store, acct uint64, from, n int) []int64 {
	t.Helper()
	var offs []int64
	for i := range n {
		offs = append(offs, s.wal.pos)
		if _, err := s.Deliver(ctx, &Delivery{Body: msg(from + i), Recipients: []Recipient{{Account: acct}}}); err != nil {
			t.Fatal(err)
		}
	}
	return offs
}

func inboxBodies(t *testing.T, s *Store, acct uint64) []string {
	t.Helper()
	mb, err := s.MailboxByName(acct, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := s.Messages(acct, mb.ID, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range msgs {
		b, _, err := s.Body(m.Blob)
		if err != nil {
			t.Fatalf("UID %d: %v", m.UID, err)
		}
		out = append(out, string(b))
	}
	return out
}

func flipByte(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var c [1]byte
	if _, err := f.ReadAt(c[:], off); err != nil {
		t.Fatal(err)
	}
	c[0] ^= 0xff
	if _, err := f.WriteAt(c[:], off); err != nil {
		t.Fatal(err)
	}
}

// openIncidents returns the incidents check reports.
func openIncidents(t *testing.T, s *Store) []Incident {
	t.Helper()
	rep, err := s.Check()
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Incidents) > 0 && len(rep.Problems) < len(rep.Incidents) {
		t.Fatalf("incidents %v are not problems %v", rep.Incidents, rep.Problems)
	}
	return rep.Incidents
}

// TestWALDamagedRecordInTheMiddle: record 4 of 10 is damaged. Recovery
// applies records 1-3 (a consistent state: 5-10 were written over 4's),
// records an incident naming what is lost (which check reports until it
// is acknowledged), moves the damaged log aside, and a later crash
// never brings records 5-10 back over the newer deliveries.
func TestWALDamagedRecordInTheMiddle(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, FileName)
	s := openWALTest(t, path)
	a := addAccount(t, s, "alice@example.kz")
	offs := deliverEach(t, s, a.ID, 0, 10)
	crash(s)
	flipByte(t, path+WALFileSuffix, offs[3]+walHeader+2) // record 4's payload

	s2 := openWALTest(t, path)
	got := inboxBodies(t, s2, a.ID)
	if len(got) != 3 || got[2] != string(msg(2)) {
		t.Fatalf("after damage to record 4: %d messages, want the first 3", len(got))
	}
	incs := openIncidents(t, s2)
	if len(incs) != 1 || incs[0].Kind != "wal-damaged" || !strings.Contains(incs[0].Detail, "records 4 to 10") ||
		len(incs[0].Accounts) != 1 || incs[0].Accounts[0] != "alice@example.kz" || incs[0].MovedTo == "" {
		t.Fatalf("incidents %+v: want one wal-damaged naming records 4 to 10 and alice, moved aside", incs)
	}
	if _, err := os.Stat(incs[0].MovedTo); err != nil {
		t.Fatalf("the damaged log was not kept at %s: %v", incs[0].MovedTo, err)
	}
	// New deliveries, then a second crash: only they come back.
	deliverEach(t, s2, a.ID, 100, 2)
	s3 := crashAndReopen(t, s2, path)
	defer s3.Close()
	got = inboxBodies(t, s3, a.ID)
	want := []string{string(msg(0)), string(msg(1)), string(msg(2)), string(msg(100)), string(msg(101))}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("after a second crash: %d messages %q, want %q", len(got), got, want)
	}
	if n, err := s3.AcknowledgeIncidents(ctx, Audit{Actor: "test"}); err != nil || n != 1 {
		t.Fatalf("acknowledge: %d, %v", n, err)
	}
	mustCheck(t, s3)
}

// TestWALMissingOrTruncated: after an unclean stop, a deleted, emptied
// or truncated log is an incident (the deliveries since the checkpoint
// are lost and nothing else says so); after a clean stop a missing log
// lost nothing and is no incident.
func TestWALMissingOrTruncated(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(path string) error
		kind   string
	}{
		{"deleted", os.Remove, "wal-missing"},
		{"emptied", func(p string) error { return os.Truncate(p, 0) }, "wal-missing"},
		{"truncated", func(p string) error { return os.Truncate(p, walFileHeader+100) }, "wal-truncated"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), FileName)
			s := openWALTest(t, path)
			a := addAccount(t, s, "alice@example.kz")
			deliverEach(t, s, a.ID, 0, 3)
			crash(s)
			if err := tc.damage(path + WALFileSuffix); err != nil {
				t.Fatal(err)
			}
			s2 := openWALTest(t, path)
			defer s2.Close()
			incs := openIncidents(t, s2)
			if len(incs) != 1 || incs[0].Kind != tc.kind {
				t.Fatalf("incidents %+v, want one %s", incs, tc.kind)
			}
			// The store runs on, consistent, and the new log works.
			deliverEach(t, s2, a.ID, 10, 1)
			s2.AcknowledgeIncidents(ctx, Audit{Actor: "test"})
			mustCheck(t, s2)
		})
	}
	t.Run("after a clean stop", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), FileName)
		s := openWALTest(t, path)
		a := addAccount(t, s, "alice@example.kz")
		deliverEach(t, s, a.ID, 0, 3)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		os.Remove(path + WALFileSuffix)
		s2 := openWALTest(t, path)
		defer s2.Close()
		if incs := openIncidents(t, s2); len(incs) != 0 {
			t.Fatalf("incidents after a clean stop: %+v", incs)
		}
		if got := inboxBodies(t, s2, a.ID); len(got) != 3 {
			t.Fatalf("%d messages, want 3", len(got))
		}
	})
}

// TestWALStaleRecordsAfterCheckpoint: records of an earlier checkpoint
// stay in the file after it is rewound; whatever their sequence numbers,
// they are never applied again (they carry another token).
func TestWALStaleRecordsAfterCheckpoint(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	s := openWALTest(t, path)
	a := addAccount(t, s, "alice@example.kz")
	mb, _ := s.MailboxByName(a.ID, "INBOX")
	deliverEach(t, s, a.ID, 0, 5)
	// A flag change is committed (a checkpoint): the five records stay
	// in the file behind the rewound position.
	if _, err := s.SetFlags(ctx, a.ID, mb.ID, []uint32{1}, FlagsAdd, []string{`\Seen`}); err != nil {
		t.Fatal(err)
	}
	// Delete message 1 (committed), then one more delivery is logged at
	// the start of the file.
	if _, err := s.SetFlags(ctx, a.ID, mb.ID, []uint32{1}, FlagsAdd, []string{`\Deleted`}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Expunge(ctx, a.ID, mb.ID, []uint32{1}); err != nil {
		t.Fatal(err)
	}
	deliverEach(t, s, a.ID, 50, 1)
	s2 := crashAndReopen(t, s, path)
	defer s2.Close()
	got := inboxBodies(t, s2, a.ID)
	if len(got) != 5 || got[0] != string(msg(1)) || got[4] != string(msg(50)) {
		t.Fatalf("after the crash: %d messages; want 2-5 and the new one", len(got))
	}
	if incs := openIncidents(t, s2); len(incs) != 0 {
		t.Fatalf("incidents: %+v", incs)
	}
	mustCheck(t, s2)
}

// TestForeignLogRefused: a log written for another database is never
// applied; Open refuses, naming both, and leaves everything as it was.
func TestForeignLogRefused(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a", FileName), filepath.Join(dir, "b", FileName)
	sa := openWALTest(t, a)
	acct := addAccount(t, sa, "alice@example.kz")
	deliverEach(t, sa, acct.ID, 0, 2)
	crash(sa)
	sb := openWALTest(t, b)
	sb.Close()
	raw, err := os.ReadFile(a + WALFileSuffix)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(b+WALFileSuffix, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(b)
	_, err = Open(b, Options{WAL: true})
	if !errors.Is(err, ErrForeignFiles) || !strings.Contains(err.Error(), "another database") {
		t.Fatalf("Open with another database's log: %v", err)
	}
	if after, _ := os.ReadFile(b); !bytes.Equal(before, after) {
		t.Fatal("the refused Open changed the database file")
	}
}

// TestSegmentTruncatedCostsOnlyItsMessages: a segment file cut short
// (on disk, by a crash of the disk or a careless operator) costs the
// messages whose bodies lay past its new end: reading them is an error,
// reading every other body works, and check names the lost messages.
// Before, the mapping was read past the file's end and the process died
// of SIGBUS.
func TestSegmentTruncatedCostsOnlyItsMessages(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	s := openSegTest(t, path)
	a := addAccount(t, s, "alice@example.kz")
	for i := range 4 {
		deliverTo(t, s, a.ID, segBody(i, 8<<10))
	}
	deliverTo(t, s, a.ID, msg(99)) // small: in the database
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	files := segFiles(t, path)
	if len(files) != 1 {
		t.Fatalf("segment files %v, want one", files)
	}
	seg := files[0]
	fi, _ := os.Stat(seg)
	// Cut the last body in half.
	if err := os.Truncate(seg, fi.Size()-4<<10); err != nil {
		t.Fatal(err)
	}
	s2 := openSegTest(t, path)
	defer s2.Close()
	mb, _ := s2.MailboxByName(a.ID, "INBOX")
	msgs, err := s2.Messages(a.ID, mb.ID, 0, 0)
	if err != nil || len(msgs) != 5 {
		t.Fatalf("messages: %d, %v", len(msgs), err)
	}
	var ids []uint64
	for _, m := range msgs {
		ids = append(ids, m.Blob)
	}
	read := map[int]bool{}
	if err := s2.ReadBodies(ids, func(i int, body, _ []byte) error {
		if i != 4 && !bytes.Equal(body, segBody(i, 8<<10)) {
			t.Errorf("body %d read back wrong", i)
		}
		read[i] = true
		return nil
	}); err != nil {
		t.Fatalf("ReadBodies with one damaged body: %v (want the others)", err)
	}
	if len(read) != 4 || read[3] {
		t.Fatalf("bodies read: %v; want all but the cut one (3)", read)
	}
	if _, _, err := s2.Body(msgs[3].Blob); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("the cut body: %v, want ErrCorrupt", err)
	}
	rep, err := s2.Check()
	if err != nil {
		t.Fatal(err)
	}
	named := false
	for _, p := range rep.Problems {
		named = named || strings.Contains(p, "alice@example.kz") && strings.Contains(p, "UID 4")
	}
	if !named {
		t.Fatalf("check does not name the message: %q", rep.Problems)
	}
}

// TestSegmentCutWhileServing: a segment file cut short while the store
// has it mapped. Touching the lost pages faults; the read that did gets
// ErrCorrupt instead of the process dying of SIGBUS, and the reads after
// it skip just the lost bodies.
func TestSegmentCutWhileServing(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	s := openSegTest(t, path)
	a := addAccount(t, s, "alice@example.kz")
	for i := range 4 {
		deliverTo(t, s, a.ID, segBody(i, 8<<10))
	}
	s.Close()
	s2 := openSegTest(t, path)
	defer s2.Close()
	mb, _ := s2.MailboxByName(a.ID, "INBOX")
	msgs, _ := s2.Messages(a.ID, mb.ID, 0, 0)
	var ids []uint64
	for _, m := range msgs {
		ids = append(ids, m.Blob)
	}
	var touched atomic.Int64
	count := func(check bool) (int, error) {
		n := 0
		err := s2.ReadBodies(ids, func(i int, body, _ []byte) error {
			// The read that meets the cut sees zeros up to the end of
			// the last page, then faults.
			sum := 0
			for _, c := range body { // touch every byte, as FETCH's copy does
				sum += int(c)
			}
			touched.Add(int64(sum))
			if check && !bytes.Equal(body, segBody(i, 8<<10)) {
				t.Errorf("body %d read back wrong", i)
			}
			n++
			return nil
		})
		return n, err
	}
	if n, err := count(true); n != 4 || err != nil {
		t.Fatalf("before the cut: %d bodies, %v", n, err)
	}
	files := segFiles(t, path)
	// Keep the first body and one page after it; the pages of the
	// others go.
	if err := os.Truncate(files[0], segHeaderSize+8<<10+100); err != nil {
		t.Fatal(err)
	}
	n, err := count(false)
	if err != nil && !errors.Is(err, ErrCorrupt) {
		t.Fatalf("the read that met the cut: %v", err)
	}
	if err == nil && n != 1 {
		t.Fatalf("the read that met the cut: %d bodies and no error", n)
	}
	if n, err = count(true); n != 1 || err != nil {
		t.Fatalf("after the cut: %d bodies, %v; want the first, alone", n, err)
	}
}

// TestDamagedDatabaseFile: pages of abox.db overwritten. Open answers
// ErrCorrupt (bbolt panics on some damaged pages: recovered) and leaves
// the file as it was; the operator restores a backup.
func TestDamagedDatabaseFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	s := openWALTest(t, path)
	a := addAccount(t, s, "alice@example.kz")
	deliverEach(t, s, a.ID, 0, 3)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := f.Stat()
	for off := int64(2 * 4096); off < fi.Size(); off += 4096 {
		f.WriteAt(bytes.Repeat([]byte{0xa5}, 100), off+16)
	}
	f.Close()
	before, _ := os.ReadFile(path)
	for _, opts := range []Options{{WAL: true}, {}, {ReadOnly: true}} {
		if s, err := Open(path, opts); err == nil {
			// Some damage only shows when a page is read: check finds it.
			rep, cerr := s.Check()
			s.Close()
			if cerr == nil && len(rep.Problems) == 0 {
				t.Fatalf("Open(%+v) and Check accepted a damaged file", opts)
			}
		} else if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("Open(%+v): %v, want ErrCorrupt", opts, err)
		}
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Fatal("opening the damaged file changed it")
	}
}
