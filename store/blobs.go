package store

import (
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// blobStore keeps message bytes by blob id (ids grow, so new bodies are
// appended at the end of the tree rather than scattered by hash). It is the one seam through
// which bodies could move to files or an object store: callers of the
// store never see it, and reference counting stays in the bodies bucket.
//
// Implementations run inside the store's transaction so that a body and
// the records pointing at it commit together.
type blobStore interface {
	put(t *txn, id uint64, data []byte) error
	// get returns the bytes; they are valid only while tx is open.
	get(tx *bolt.Tx, id uint64) ([]byte, error)
	del(tx *bolt.Tx, id uint64) error
	has(tx *bolt.Tx, id uint64) bool
}

// boltBlobs keeps bodies in the "blobs" bucket. Measured against files
// beside the database (docs/BENCHMARKS.md), it gives one fsync per group
// commit for any number of bodies.
type boltBlobs struct{}

func (boltBlobs) put(t *txn, id uint64, data []byte) error {
	return t.put(bBlobs, u64(id), data, appendFill)
}

func (boltBlobs) get(tx *bolt.Tx, id uint64) ([]byte, error) {
	v := tx.Bucket(bBlobs).Get(u64(id))
	if v == nil {
		return nil, fmt.Errorf("body %d: %w", id, ErrCorrupt)
	}
	return v, nil
}

func (boltBlobs) del(tx *bolt.Tx, id uint64) error {
	return tx.Bucket(bBlobs).Delete(u64(id))
}

func (boltBlobs) has(tx *bolt.Tx, id uint64) bool {
	return tx.Bucket(bBlobs).Get(u64(id)) != nil
}
