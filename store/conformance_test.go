package store_test

import (
	"path/filepath"
	"testing"

	"abox/store"
	"abox/store/storetest"
)

// TestConformance runs the store conformance suite (store/storetest)
// against the embedded store, with and without the write-ahead log.
func TestConformance(t *testing.T) {
	for _, wal := range []bool{false, true} {
		name := "bbolt"
		if wal {
			name = "bbolt+wal"
		}
		t.Run(name, func(t *testing.T) {
			storetest.Run(t, func(t *testing.T) storetest.Backend {
				s, err := store.Open(filepath.Join(t.TempDir(), store.FileName), store.Options{WAL: wal})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { s.Close() })
				return s
			})
		})
	}
}
