package store

import (
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// blobStore keeps message bytes by SHA-256. It is the one seam through
// which bodies could move to files or an object store: callers of the
// store never see it, and reference counting stays in the bodies bucket.
//
// Implementations run inside the store's transaction so that a body and
// the records pointing at it commit together.
type blobStore interface {
	put(tx *bolt.Tx, hash [32]byte, data []byte) error
	// get returns the bytes; they are valid only while tx is open.
	get(tx *bolt.Tx, hash [32]byte) ([]byte, error)
	del(tx *bolt.Tx, hash [32]byte) error
	has(tx *bolt.Tx, hash [32]byte) bool
}

// boltBlobs keeps bodies in the "blobs" bucket. Measured against files
// beside the database (docs/BENCHMARKS.md), it gives one fsync per group
// commit for any number of bodies.
type boltBlobs struct{}

func (boltBlobs) put(tx *bolt.Tx, hash [32]byte, data []byte) error {
	return tx.Bucket(bBlobs).Put(hash[:], data)
}

func (boltBlobs) get(tx *bolt.Tx, hash [32]byte) ([]byte, error) {
	v := tx.Bucket(bBlobs).Get(hash[:])
	if v == nil {
		return nil, fmt.Errorf("body %x: %w", hash[:8], ErrCorrupt)
	}
	return v, nil
}

func (boltBlobs) del(tx *bolt.Tx, hash [32]byte) error {
	return tx.Bucket(bBlobs).Delete(hash[:])
}

func (boltBlobs) has(tx *bolt.Tx, hash [32]byte) bool {
	return tx.Bucket(bBlobs).Get(hash[:]) != nil
}
