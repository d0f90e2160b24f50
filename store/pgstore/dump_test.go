package pgstore

import (
	"bufio"
	"crypto/ed25519"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"abox/store"
)

// readDump reads a JSON-lines dump written by store's
// TestDumpFixtureFile: the evidence public key, then the records.
func readDump(t *testing.T, path string) (ed25519.PublicKey, []*store.DumpRecord) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := json.NewDecoder(bufio.NewReader(f))
	var pub ed25519.PublicKey
	if err := dec.Decode(&pub); err != nil {
		t.Fatal(err)
	}
	var recs []*store.DumpRecord
	for {
		r := new(store.DumpRecord)
		if err := dec.Decode(r); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	return pub, recs
}

func stream(recs []*store.DumpRecord) func() (*store.DumpRecord, error) {
	return func() (*store.DumpRecord, error) {
		if len(recs) == 0 {
			return nil, io.EOF
		}
		r := recs[0]
		recs = recs[1:]
		return r, nil
	}
}

func digest(t *testing.T, recs []*store.DumpRecord) map[store.DumpKind]store.KindDigest {
	t.Helper()
	d := store.DumpDigest()
	for _, r := range recs {
		d.Add(r)
	}
	if err := d.Err(); err != nil {
		t.Fatal(err)
	}
	return d.Sum()
}

func exportPG(t *testing.T, s *Store) []*store.DumpRecord {
	t.Helper()
	var recs []*store.DumpRecord
	if err := s.Export(bg, func(r *store.DumpRecord) error {
		recs = append(recs, r)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return recs
}

// TestMigrateBoltDump moves the embedded store's dump fixture (every
// kind of record: purged and sealed accounts, official letters with
// their evidence log and signed heads, a legacy ledger, queue entries,
// broadcasts...) into PostgreSQL with bodies in SeaweedFS and back into
// a new bbolt store: each step's export has the same digest, kind by
// kind, as the source; the evidence log verifies with the key and the
// ledger's chain holds on PostgreSQL; the bbolt store at the end of
// the trip checks clean. A second import into the same database is
// refused.
func TestMigrateBoltDump(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "fixture.jsonl")
	cmd := exec.Command("go", "test", "-count=1", "-run", "^TestDumpFixtureFile$", "abox/store")
	cmd.Env = append(os.Environ(), "ABOX_DUMP_FIXTURE="+path)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("writing the fixture: %v\n%s", err, out)
	}
	pub, src := readDump(t, path)
	want := digest(t, src)

	s := openTest(t, true)
	if _, err := s.Import(bg, stream(src)); err != nil {
		t.Fatal(err)
	}
	got := digest(t, exportPG(t, s))
	for _, k := range store.DumpKinds {
		t.Logf("%s: %d records", k, want[k].Count)
	}
	if diff := store.CompareDigests(want, got); len(diff) > 0 {
		t.Fatalf("bbolt → PostgreSQL: the kinds %v differ", diff)
	}
	rep, err := s.VerifyEvidence(pub, nil)
	if err != nil || !rep.OK {
		t.Fatalf("evidence on PostgreSQL after the import: %+v %v", rep, err)
	}
	if lr, err := s.VerifyLedger(); err != nil || !lr.OK {
		t.Fatalf("ledger on PostgreSQL after the import: %+v %v", lr, err)
	}
	if _, err := s.Import(bg, stream(src)); err == nil {
		t.Fatal("a second import into the same database was accepted")
	}

	back, err := store.Open(filepath.Join(dir, "back", store.FileName), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer back.Close()
	if _, err := back.Import(bg, stream(exportPG(t, s))); err != nil {
		t.Fatal(err)
	}
	var again []*store.DumpRecord
	if err := back.Export(bg, func(r *store.DumpRecord) error { again = append(again, r); return nil }); err != nil {
		t.Fatal(err)
	}
	if diff := store.CompareDigests(want, digest(t, again)); len(diff) > 0 {
		t.Fatalf("PostgreSQL → bbolt: the kinds %v differ", diff)
	}
	if rep, err := back.Check(); err != nil || len(rep.Problems) > 0 {
		t.Fatalf("the bbolt store back from PostgreSQL: %+v %v", rep, err)
	}
	if rep, err := back.VerifyEvidence(pub, nil); err != nil || !rep.OK {
		t.Fatalf("evidence back on bbolt: %+v %v", rep, err)
	}
}
