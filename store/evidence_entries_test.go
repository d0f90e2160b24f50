package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// allEntries returns the log's entries in order, as stored.
func allEntries(tx *bolt.Tx) [][]byte {
	var out [][]byte
	ec := newEntryCursor(tx)
	for _, raw, ok := ec.First(); ok; _, raw, ok = ec.Next() {
		out = append(out, bytes.Clone(raw))
	}
	return out
}

// explodeEvidence stores every entry alone under its own index, as
// schema 4 did, so that a test can change, swap or delete one entry.
func explodeEvidence(t testing.TB, tx *bolt.Tx) {
	t.Helper()
	var idx []uint64
	var raws [][]byte
	ec := newEntryCursor(tx)
	for i, raw, ok := ec.First(); ok; i, raw, ok = ec.Next() {
		idx, raws = append(idx, i), append(raws, bytes.Clone(raw))
	}
	if err := tx.DeleteBucket(bEvidence); err != nil {
		t.Fatal(err)
	}
	b, err := tx.CreateBucket(bEvidence)
	if err != nil {
		t.Fatal(err)
	}
	for n, i := range idx {
		if err := b.Put(u64(i), raws[n]); err != nil {
			t.Fatal(err)
		}
	}
}

// groupValue is a group of raws (evidence_entries.go's format).
func groupValue(raws ...[]byte) []byte {
	v := []byte{evidenceGroupMark}
	for _, r := range raws {
		v = binary.AppendUvarint(v, uint64(len(r)))
		v = append(v, r...)
	}
	return v
}

// The entry cursor reads singles and groups as one sequence, from any
// index: the first, one inside a group, the one after a group, one past
// the end; and a damaged group's entry comes back as its bytes (which
// then fail every check), the entries after it missing.
func TestEntryCursor(t *testing.T) {
	s, _ := openTest(t)
	entry := func(i int) []byte { return fmt.Appendf(nil, `{"index":%d}`, i) }
	// 0 alone, 1-4 a group, 5 alone, 6-7 a group (the last value).
	layout := map[uint64][]byte{
		0: entry(0), 1: groupValue(entry(1), entry(2), entry(3), entry(4)),
		5: entry(5), 6: groupValue(entry(6), entry(7)),
	}
	if err := s.db.Update(func(tx *bolt.Tx) error {
		for k, v := range layout {
			if err := tx.Bucket(bEvidence).Put(u64(k), v); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	err := s.db.View(func(tx *bolt.Tx) error {
		var got []string
		ec := newEntryCursor(tx)
		for i, raw, ok := ec.First(); ok; i, raw, ok = ec.Next() {
			got = append(got, fmt.Sprintf("%d=%s", i, raw))
		}
		if want := `0={"index":0} 1={"index":1} 2={"index":2} 3={"index":3} 4={"index":4} 5={"index":5} 6={"index":6} 7={"index":7}`; fmt.Sprint(got) != "["+want+"]" {
			t.Errorf("in order: %v", got)
		}
		for i := uint64(0); i < 8; i++ {
			if raw := evidenceEntry(tx, i); string(raw) != string(entry(int(i))) {
				t.Errorf("entry %d: %q", i, raw)
			}
			// And onwards from there.
			ec := newEntryCursor(tx)
			j, _, ok := ec.Seek(i)
			for ok && j < 7 {
				var next uint64
				next, _, ok = ec.Next()
				if !ok || next != j+1 {
					t.Errorf("from %d: %d then %d (%v)", i, j, next, ok)
				}
				j = next
			}
		}
		if raw := evidenceEntry(tx, 8); raw != nil {
			t.Errorf("entry 8 past the end: %q", raw)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// A length running past the group.
	if err := s.db.Update(func(tx *bolt.Tx) error {
		bad := groupValue(entry(6), entry(7))
		bad[1] = 200
		return tx.Bucket(bEvidence).Put(u64(6), bad)
	}); err != nil {
		t.Fatal(err)
	}
	_ = s.db.View(func(tx *bolt.Tx) error {
		ec := newEntryCursor(tx)
		i, raw, ok := ec.Seek(6)
		if !ok || i != 6 || bytes.Equal(raw, entry(6)) {
			t.Errorf("damaged group: entry %d %q %v", i, raw, ok)
		}
		if i, _, ok := ec.Next(); ok {
			t.Errorf("after the damaged group: entry %d", i)
		}
		return nil
	})
}

// One writer's entries are groups of at most maxGroupEntries, readable
// one by one and in order.
func TestEvidenceGroupsAreBounded(t *testing.T) {
	s, _ := openTest(t)
	const n = 2*maxGroupEntries + 5
	if err := s.update(ctx, func(tx *txn) error {
		w := tx.evidenceWriter()
		for i := range n {
			if err := w.add(EvidenceEvent{Kind: EvidenceStored, MessageID: "<big@gov.kz>", Account: uint64(i + 1)}); err != nil {
				return err
			}
		}
		return w.close()
	}); err != nil {
		t.Fatal(err)
	}
	err := s.viewNow(func(tx *bolt.Tx) error {
		var sizes []int
		c := tx.Bucket(bEvidence).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			count := 1
			if v[0] == evidenceGroupMark {
				count = 0
				for rest := v[1:]; len(rest) > 0; count++ {
					l, m := binary.Uvarint(rest)
					rest = rest[m+int(l):]
				}
			}
			sizes = append(sizes, count)
		}
		if fmt.Sprint(sizes) != fmt.Sprint([]int{maxGroupEntries, maxGroupEntries, 5}) {
			t.Errorf("values of %v entries, want %d, %d, 5", sizes, maxGroupEntries, maxGroupEntries)
		}
		if got := len(allEntries(tx)); got != n {
			t.Errorf("%d entries read, want %d", got, n)
		}
		for i := uint64(0); i < n; i++ {
			if raw := evidenceEntry(tx, i); !bytes.Contains(raw, fmt.Appendf(nil, `"index":%d,`, i)) {
				t.Errorf("entry %d: %q", i, raw)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if size, _, err := s.EvidenceHead(); err != nil || size != n {
		t.Fatalf("head of %d entries (%v), want %d", size, err, n)
	}
}
