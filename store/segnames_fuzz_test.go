package store

// Fuzz targets for what decodes the body-segment bookkeeping: a body's
// location (decodeLoc), a segment's counters (decodeSegStats) and the
// segment file names (parseSegmentName). The write-ahead log's records
// are FuzzWALRecords' (wal_test.go).

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
)

func FuzzDecodeSegmentRecords(f *testing.F) {
	f.Add(blobLoc{seg: 1, off: 32, size: 4096}.encode(), segStats{bodies: 3, bytes: 9000}.encode())
	f.Add(blobLoc{seg: 1<<32 - 1, off: -1, size: 1}.encode(), segStats{bodies: -1}.encode())
	f.Add([]byte{}, []byte{1})
	f.Add(make([]byte, 21), make([]byte, 17))
	f.Fuzz(func(t *testing.T, loc, stats []byte) {
		l, ok := decodeLoc(loc)
		if ok != (len(loc) == 20 && int64(binary.BigEndian.Uint64(loc[4:])) >= 0 && int64(binary.BigEndian.Uint64(loc[12:])) >= 0) {
			t.Fatalf("decodeLoc(%x) = %+v, %v", loc, l, ok)
		}
		if len(loc) == 20 && !bytes.Equal(l.encode(), loc) {
			t.Fatalf("decodeLoc(%x) = %+v, encoded back as %x", loc, l, l.encode())
		}
		if ok && (l.off < 0 || l.size < 0) {
			t.Fatalf("decodeLoc(%x) = %+v accepted", loc, l)
		}
		st := decodeSegStats(stats)
		switch {
		case len(stats) == 16 && !bytes.Equal(st.encode(), stats):
			t.Fatalf("decodeSegStats(%x) = %+v, encoded back as %x", stats, st, st.encode())
		case len(stats) != 16 && st != (segStats{}):
			t.Fatalf("decodeSegStats(%x) = %+v from a record of the wrong size", stats, st)
		}
	})
}

// FuzzParseSegmentName: only the names segmentName writes are segments.
// Open works on segmentName(n) for every n parseSegmentName finds, so a
// stray "7.seg" taken for segment 7 made Open fail on a missing
// 00000007.seg (and "1.seg" beside 00000001.seg listed segment 1 twice).
func FuzzParseSegmentName(f *testing.F) {
	for _, n := range []string{"00000001.seg", "00000007.seg", "7.seg", "01.seg", "000000001.seg", "4294967295.seg", "4294967296.seg",
		"00000000.seg", ".seg", "00000001.seg.tmp", "+0000001.seg", "-0000001.seg", "0000000x.seg", "00000001.SEG", "99999999.seg", "100000000.seg"} {
		f.Add(n)
	}
	f.Add(segmentName(12345))
	f.Add(segmentName(1<<32 - 1))
	f.Fuzz(func(t *testing.T, name string) {
		n, ok := parseSegmentName(name)
		if !ok {
			return
		}
		if n == 0 {
			t.Fatalf("parseSegmentName(%q) = segment 0", name)
		}
		if segmentName(n) != name {
			t.Fatalf("parseSegmentName(%q) = %d, whose file is %q", name, n, segmentName(n))
		}
	})
}

// TestOpenStraySegmentName: a file in the segment directory whose name
// only looks like a segment's is left alone, and Open works.
func TestOpenStraySegmentName(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	s := openSegTest(t, path)
	a := addAccount(t, s, "alice@example.kz")
	deliverTo(t, s, a.ID, append(msg(1), make([]byte, 2048)...))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for _, stray := range []string{"7.seg", "01.seg"} {
		if err := os.WriteFile(filepath.Join(path+SegmentDirSuffix, stray), []byte("not a segment"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s = openSegTest(t, path)
	defer s.Close()
	msgs, err := s.Messages(a.ID, inboxID(t, s, a.ID), 0, 10)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("messages %v, %v", msgs, err)
	}
	if body, _, err := s.Body(msgs[0].Blob); err != nil || len(body) < 2048 {
		t.Fatalf("body of %d bytes, %v", len(body), err)
	}
	for _, stray := range []string{"7.seg", "01.seg"} {
		if _, err := os.Stat(filepath.Join(path+SegmentDirSuffix, stray)); err != nil {
			t.Errorf("%s: %v", stray, err)
		}
	}
}

func inboxID(t *testing.T, s *Store, acct uint64) uint32 {
	t.Helper()
	mb, err := s.MailboxByName(acct, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	return mb.ID
}
