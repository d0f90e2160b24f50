package store

import (
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// blobStore keeps message bytes by blob id: small bodies in the "blobs"
// bucket (ids grow, so new bodies are appended at the end of the tree
// rather than scattered by hash), large ones in segment files
// (segments.go) with their place in "blob_locs". Callers of the store
// never see it, and reference counting stays in the bodies bucket.
//
// It runs inside the store's transactions so that a body and the
// records pointing at it commit together.
type blobStore struct{ segs *segments }

func (b blobStore) put(t *txn, id uint64, data []byte) error {
	if b.segs.takes(len(data)) {
		return b.segs.append(t, id, data)
	}
	return t.put(bBlobs, u64(id), data, appendFill)
}

// read returns a body's bytes: bbolt's own or its segment's mapping,
// valid only while tx is open (inBuf false), or read from its segment
// into buf, grown as needed (inBuf true). A segment body's reader holds
// a reader epoch (viewBlobs) so its segment is not removed under it.
func (b blobStore) read(tx *bolt.Tx, id uint64, buf []byte) (data []byte, inBuf bool, err error) {
	return b.reader(tx).read(id, buf)
}

// blobReader reads many bodies in one read transaction, opening the
// buckets once (a read transaction does not cache them).
type blobReader struct {
	segs        *segments
	blobs, locs lookup
}

func (b blobStore) reader(tx *bolt.Tx) blobReader {
	return blobReader{b.segs, lookup{tx.Bucket(bBlobs).Cursor()}, lookup{tx.Bucket(bBlobLocs).Cursor()}}
}

// read is blobStore.read.
func (r blobReader) read(id uint64, buf []byte) (data []byte, inBuf bool, err error) {
	if v := r.blobs.get(u64(id)); v != nil {
		return v, false, nil
	}
	v := r.locs.get(u64(id))
	if v == nil {
		return nil, false, fmt.Errorf("body %d: %w", id, ErrCorrupt)
	}
	loc, ok := decodeLoc(v)
	if !ok {
		return nil, false, fmt.Errorf("body %d: bad location: %w", id, ErrCorrupt)
	}
	if data, ok := r.segs.view(loc); ok {
		return data, false, nil
	}
	data, err = r.segs.read(loc, buf)
	return data, true, err
}

// del forgets a body's bytes (in a request that commits).
func (b blobStore) del(t *txn, id uint64) error {
	blobs := t.tx.Bucket(bBlobs)
	if blobs.Get(u64(id)) != nil {
		return blobs.Delete(u64(id))
	}
	locs := t.tx.Bucket(bBlobLocs)
	loc, ok := decodeLoc(locs.Get(u64(id)))
	if !ok {
		return fmt.Errorf("body %d: no bytes to delete: %w", id, ErrCorrupt)
	}
	if err := locs.Delete(u64(id)); err != nil {
		return err
	}
	if err := t.tx.Bucket(bSegBlobs).Delete(segBlobKey(loc.seg, id)); err != nil {
		return err
	}
	return b.segs.count(t, loc.seg, -1, -loc.size)
}
