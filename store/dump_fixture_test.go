package store

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// TestDumpFixtureFile writes dumpFixture's export as JSON lines (the
// first line the evidence key's public half) to the file
// ABOX_DUMP_FIXTURE names, for store/pgstore's migration test
// (TestMigrateBoltDump), which imports it into PostgreSQL: a package
// that imports store cannot use this package's test helpers. Without
// the variable there is nothing to write.
func TestDumpFixtureFile(t *testing.T) {
	path := os.Getenv("ABOX_DUMP_FIXTURE")
	if path == "" {
		t.Skip("ABOX_DUMP_FIXTURE names no file (store/pgstore's TestMigrateBoltDump sets it)")
	}
	s, _, pub := dumpFixture(t)
	recs, _ := exportAll(t, s)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	enc := json.NewEncoder(f)
	if err := enc.Encode(pub); err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if err := enc.Encode(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}
