package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"abox/evidence"
)

// nodeReader reads the tree's perfect subtrees in tx: stored from level
// 6 up, computed from their leaf block below it.
func nodeReader(tx *bolt.Tx) evidence.NodeReader {
	tree := tx.Bucket(bEvidenceTree)
	return func(level uint8, index uint64) (evidence.Hash, error) {
		if level >= leafBlockLevel {
			v := tree.Get(evidenceTreeKey(level, index))
			if len(v) != evidence.HashSize {
				return evidence.Hash{}, fmt.Errorf("evidence tree node %d/%d: %w", level, index, ErrCorrupt)
			}
			return evidence.Hash(v), nil
		}
		first := index << level
		leaves := tree.Get(evidenceLeavesKey(first / leafBlock))
		from, to := (first%leafBlock)*evidence.HashSize, (first%leafBlock+1<<level)*evidence.HashSize
		if uint64(len(leaves)) < to {
			return evidence.Hash{}, fmt.Errorf("evidence tree node %d/%d: its leaves are missing: %w", level, index, ErrCorrupt)
		}
		return perfectRoot(leaves[from:to]), nil
	}
}

// perfectRoot is the root of the perfect subtree over leaf hashes laid
// end to end (a power of two of them).
func perfectRoot(leaves []byte) evidence.Hash {
	if len(leaves) == evidence.HashSize {
		return evidence.Hash(leaves)
	}
	half := len(leaves) / 2
	return evidence.NodeHash(perfectRoot(leaves[:half]), perfectRoot(leaves[half:]))
}

func evidenceSize(tx *bolt.Tx) uint64 {
	if v := tx.Bucket(bMeta).Get(metaEvidenceSize); v != nil {
		return decodeU64(v)
	}
	return 0
}

// EvidenceHead is the log's current size and root, for signing.
func (s *Store) EvidenceHead() (size uint64, root evidence.Hash, err error) {
	err = s.view(func(tx *bolt.Tx) error {
		size = evidenceSize(tx)
		root, err = evidence.SubtreeRoot(nodeReader(tx), 0, size)
		return err
	})
	return size, root, err
}

// AddSignedHead keeps a signed tree head after checking that it names
// this log's root at its size (a head for another log is refused).
func (s *Store) AddSignedHead(ctx context.Context, h evidence.SignedHead) error {
	return s.update(ctx, func(t *txn) error {
		if err := buildEvidence(t.tx); err != nil {
			return err
		}
		if h.TreeSize > evidenceSize(t.tx) {
			return fmt.Errorf("tree head of size %d is beyond the log's %d entries", h.TreeSize, evidenceSize(t.tx))
		}
		root, err := evidence.SubtreeRoot(nodeReader(t.tx), 0, h.TreeSize)
		if err != nil {
			return err
		}
		if r, err := h.Root(); err != nil || r != root {
			return fmt.Errorf("tree head of size %d does not match this log's root", h.TreeSize)
		}
		return putJSON(t.tx.Bucket(bEvidenceHeads), headKey(h), h)
	})
}

func headKey(h evidence.SignedHead) []byte {
	return binary.BigEndian.AppendUint64(u64(h.TreeSize), uint64(h.Timestamp))
}

// SignedHeads returns the kept signed tree heads, smallest tree first.
func (s *Store) SignedHeads() ([]evidence.SignedHead, error) {
	var out []evidence.SignedHead
	err := s.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bEvidenceHeads).ForEach(func(k, v []byte) error {
			var h evidence.SignedHead
			if err := json.Unmarshal(v, &h); err != nil {
				return fmt.Errorf("signed tree head: %w", ErrCorrupt)
			}
			out = append(out, h)
			return nil
		})
	})
	return out, err
}

// EvidenceEntry is one logged event with its exact bytes.
type EvidenceEntry struct {
	Event EvidenceEvent
	Raw   []byte
}

// EvidenceFor returns a letter's evidence entries (of sender, or of any
// sender when sender is "").
func (s *Store) EvidenceFor(messageID, sender string) ([]EvidenceEntry, error) {
	msgID := NormalizeMessageID(messageID)
	var out []EvidenceEntry
	err := s.view(func(tx *bolt.Tx) error {
		prefix := append([]byte(msgID), 0)
		c := tx.Bucket(bEvidenceMsg).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			if len(k) != len(prefix)+8 {
				continue // a longer Message-ID that starts with this one and a NUL
			}
			err := readRun(tx, decodeU64(k[len(prefix):]), runLength(v), func(e EvidenceEntry) bool {
				if sender == "" || e.Event.Sender == sender {
					out = append(out, e)
				}
				return true
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	return out, err
}

// InclusionProof proves entry index is in the tree of the given size.
func (s *Store) InclusionProof(index, size uint64) (proof []evidence.Hash, err error) {
	err = s.view(func(tx *bolt.Tx) error {
		if size > evidenceSize(tx) {
			return fmt.Errorf("the log has fewer than %d entries", size)
		}
		proof, err = evidence.InclusionProof(nodeReader(tx), index, size)
		return err
	})
	return proof, err
}

// ConsistencyProof proves the tree of size m is a prefix of that of size n.
func (s *Store) ConsistencyProof(m, n uint64) (proof []evidence.Hash, err error) {
	err = s.view(func(tx *bolt.Tx) error {
		if n > evidenceSize(tx) {
			return fmt.Errorf("the log has fewer than %d entries", n)
		}
		proof, err = evidence.ConsistencyProof(nodeReader(tx), m, n)
		return err
	})
	return proof, err
}

// EvidenceForAccount returns the evidence entries about an account (by
// its stable id), in log order, from index after on (0: from the
// start), at most limit of them (0: 1,000), and the index to continue
// from (0 when there is no more).
func (s *Store) EvidenceForAccount(acct, after uint64, limit int) ([]EvidenceEntry, uint64, error) {
	if limit <= 0 {
		limit = 1000
	}
	var out []EvidenceEntry
	var next uint64
	err := s.view(func(tx *bolt.Tx) error {
		prefix := u64(acct)
		c := tx.Bucket(bEvidenceAcct).Cursor()
		k, v := c.Seek(evidenceAcctKey(acct, after))
		// A run that starts before after may reach it.
		if pk, pv := c.Prev(); pk != nil && bytes.HasPrefix(pk, prefix) && decodeU64(pk[8:])+runLength(pv) > after {
			k, v = pk, pv
		} else {
			k, v = c.Seek(evidenceAcctKey(acct, after))
		}
		for ; k != nil && bytes.HasPrefix(k, prefix) && next == 0; k, v = c.Next() {
			first := decodeU64(k[8:])
			start := max(first, after)
			err := readRun(tx, start, first+runLength(v)-start, func(e EvidenceEntry) bool {
				if len(out) == limit {
					next = e.Event.Index
					return false
				}
				out = append(out, e)
				return true
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	return out, next, err
}

// indexEvidenceByAccount fills evidence_acct for a log written before
// schema 3 (the upgrade, in its one transaction).
func indexEvidenceByAccount(tx *bolt.Tx) error {
	idx := tx.Bucket(bEvidenceAcct)
	ec := newEntryCursor(tx)
	for i, v, ok := ec.First(); ok; i, v, ok = ec.Next() {
		var e struct {
			Account uint64 `json:"account"`
		}
		if err := json.Unmarshal(v, &e); err != nil {
			return fmt.Errorf("evidence entry %d: %w", i, ErrCorrupt)
		}
		if e.Account == 0 {
			continue
		}
		if err := idx.Put(evidenceAcctKey(e.Account, i), nil); err != nil {
			return err
		}
	}
	return nil
}

// readRun calls fn with count entries from index first on, decoded,
// until fn returns false. An entry that is missing or cannot be decoded
// is the log's corruption.
func readRun(tx *bolt.Tx, first, count uint64, fn func(EvidenceEntry) bool) error {
	if count == 0 {
		return nil
	}
	ec := newEntryCursor(tx)
	i, raw, ok := ec.Seek(first)
	for idx := first; idx < first+count; idx++ {
		if !ok || i != idx {
			return fmt.Errorf("evidence entry %d is missing: %w", idx, ErrCorrupt)
		}
		var e EvidenceEvent
		if err := json.Unmarshal(raw, &e); err != nil {
			return fmt.Errorf("evidence entry %d: %w", idx, ErrCorrupt)
		}
		if !fn(EvidenceEntry{Event: e, Raw: bytes.Clone(raw)}) {
			return nil
		}
		i, raw, ok = ec.Next()
	}
	return nil
}

// evidenceIndexes checks the evidence log's indexes (abox check): every
// key of evidence_msg and evidence_acct stands for entries that exist
// and are about that letter or account, and every entry is under one
// key of each (an entry about no account under evidence_msg only).
func (c *checker) evidenceIndexes() {
	size := evidenceSize(c.tx)
	type about struct {
		MessageID string `json:"message_id"`
		Account   uint64 `json:"account"`
	}
	read := func(idx uint64) (about, bool) {
		var a about
		v := evidenceEntry(c.tx, idx)
		return a, v != nil && json.Unmarshal(v, &a) == nil
	}
	if v := c.tx.Bucket(bMeta).Get(metaEvidenceBuilt); v != nil && decodeU64(v) != size {
		c.problem("the evidence log's tree and indexes cover %d of its %d entries", decodeU64(v), size)
	}
	// One bit per entry (10M entries: 1.25 MB each).
	byMsg, byAcct := newBits(size), newBits(size)
	_ = c.tx.Bucket(bEvidenceMsg).ForEach(func(k, v []byte) error {
		i := bytes.LastIndexByte(k[:max(len(k)-8, 0)], 0)
		if len(k) < 9 || i != len(k)-9 {
			c.problem("evidence Message-ID index key %q is malformed", k)
			return nil
		}
		msgID, first := string(k[:i]), decodeU64(k[i+1:])
		for idx := first; idx < first+runLength(v); idx++ {
			a, ok := read(idx)
			switch {
			case !ok:
				c.problem("evidence Message-ID index names entry %d, which is missing or unreadable", idx)
			case a.MessageID != msgID:
				c.problem("evidence Message-ID index files entry %d under %q; it is about %q", idx, msgID, a.MessageID)
			default:
				byMsg.set(idx)
			}
		}
		return nil
	})
	_ = c.tx.Bucket(bEvidenceAcct).ForEach(func(k, v []byte) error {
		if len(k) != 16 {
			c.problem("evidence account index key %x is malformed", k)
			return nil
		}
		acct, first := decodeU64(k[:8]), decodeU64(k[8:])
		for idx := first; idx < first+runLength(v); idx++ {
			a, ok := read(idx)
			switch {
			case !ok:
				c.problem("evidence account index names entry %d, which is missing or unreadable", idx)
			case a.Account != acct:
				c.problem("evidence account index files entry %d under account %d; it is about account %d", idx, acct, a.Account)
			default:
				byAcct.set(idx)
			}
		}
		return nil
	})
	ec := newEntryCursor(c.tx)
	for idx, v, ok := ec.First(); ok && idx < size; idx, v, ok = ec.Next() {
		var a about
		if json.Unmarshal(v, &a) != nil {
			continue // the log itself is notice verify's
		}
		if !byMsg.has(idx) {
			c.problem("evidence entry %d is not in the Message-ID index", idx)
		}
		if a.Account != 0 && !byAcct.has(idx) {
			c.problem("evidence entry %d is not in the account index", idx)
		}
	}
}

// bits is a set of entry indexes below a bound.
type bits []uint64

func newBits(n uint64) bits { return make(bits, (n+63)/64) }

func (b bits) set(i uint64) {
	if i/64 < uint64(len(b)) {
		b[i/64] |= 1 << (i % 64)
	}
}

func (b bits) has(i uint64) bool { return i/64 < uint64(len(b)) && b[i/64]&(1<<(i%64)) != 0 }
