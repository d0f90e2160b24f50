package store

import (
	"bytes"
	"cmp"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"

	"abox/evidence"
)

// EvidenceReport is the result of VerifyEvidence.
type EvidenceReport struct {
	Entries    uint64     `json:"entries"`
	Heads      int        `json:"signed_heads"`
	SignedUpTo uint64     `json:"signed_up_to"`          // entries covered by the latest good head
	LatestHead *time.Time `json:"latest_head,omitempty"` // its time
	OK         bool       `json:"ok"`
	// SignaturesChecked is false when no public key was given: the
	// entries were checked against the stored tree and the stored heads'
	// roots, which catches a change made without recomputing them, but
	// not one made by whoever can rewrite the whole file.
	SignaturesChecked bool    `json:"signatures_checked"`
	BadEntry          *uint64 `json:"bad_entry,omitempty"` // first entry that does not verify
	Problem           string  `json:"problem,omitempty"`
}

var errEvidenceBad = errors.New("evidence does not verify")

func (r *EvidenceReport) fail(entry *uint64, format string, args ...any) error {
	r.OK, r.BadEntry, r.Problem = false, entry, fmt.Sprintf(format, args...)
	return errEvidenceBad
}

// VerifyEvidence checks the whole evidence log against the signed tree
// heads, with the operator's public key only: every head's signature,
// every entry's place and bytes (the tree is recomputed from the entries,
// never taken from the file), every stored tree node, each head's root,
// and consistency between consecutive heads. extra are heads kept
// outside the database (the heads file). It names the first bad entry;
// when the stored tree was recomputed to match changed entries, only
// the heads can tell, and the report names the first entry after the
// last head that still verifies. With no key (pub nil), the heads'
// signatures are not checked (SignaturesChecked false): everything else
// is.
func (s *Store) VerifyEvidence(pub ed25519.PublicKey, extra []evidence.SignedHead) (EvidenceReport, error) {
	rep := EvidenceReport{OK: true, SignaturesChecked: pub != nil}
	heads, err := s.SignedHeads()
	if err != nil {
		return rep, err
	}
	heads, err = mergeHeads(&rep, pub, append(heads, extra...))
	if err != nil {
		return rep, ignoreBad(err)
	}
	var (
		b     evidence.Builder
		next  uint64 // next entry index expected
		hi    int    // next head to check
		total uint64
	)
	for ; hi < len(heads) && heads[hi].TreeSize == 0; hi++ {
		if err := checkHead(&rep, heads, hi, evidence.EmptyRoot); err != nil {
			return rep, ignoreBad(err)
		}
	}
	for {
		done := false
		err := s.view(func(tx *bolt.Tx) error {
			total = evidenceSize(tx)
			tree := &storedTree{tree: tx.Bucket(bEvidenceTree)}
			ec := newEntryCursor(tx)
			i, v, ok := ec.Seek(next)
			for n := 0; ok && n < 10_000; i, v, ok = ec.Next() {
				n++
				if err := checkEntry(&rep, &b, tree, i, next, v); err != nil {
					return err
				}
				next++
				for ; hi < len(heads) && heads[hi].TreeSize == next; hi++ {
					if err := checkHead(&rep, heads, hi, b.Root()); err != nil {
						return err
					}
				}
			}
			done = !ok
			return nil
		})
		if err != nil {
			return rep, ignoreBad(err)
		}
		if done {
			break
		}
	}
	rep.Entries = next
	if next != total {
		return rep, ignoreBad(rep.fail(&next, "the log records %d entries but holds %d: entries were removed at the end", total, next))
	}
	if hi < len(heads) {
		return rep, ignoreBad(rep.fail(&next, "a head signed at %s covers %d entries; the log holds %d: entries were removed", heads[hi].Time().Format(time.RFC3339), heads[hi].TreeSize, next))
	}
	return rep, ignoreBad(s.checkConsistency(&rep, heads))
}

func ignoreBad(err error) error {
	if errors.Is(err, errEvidenceBad) {
		return nil
	}
	return err
}

// mergeHeads verifies every head's signature and orders them by size,
// dropping duplicates; a later head for a smaller tree is a rewrite.
func mergeHeads(rep *EvidenceReport, pub ed25519.PublicKey, all []evidence.SignedHead) ([]evidence.SignedHead, error) {
	for _, h := range all {
		if pub == nil {
			break
		}
		if err := h.Verify(pub); err != nil {
			return nil, rep.fail(nil, "%v", err)
		}
	}
	slices.SortFunc(all, func(a, b evidence.SignedHead) int {
		return cmp.Or(cmp.Compare(a.TreeSize, b.TreeSize), cmp.Compare(a.Timestamp, b.Timestamp))
	})
	all = slices.CompactFunc(all, func(a, b evidence.SignedHead) bool { return a == b })
	for i := 1; i < len(all); i++ {
		if all[i].Timestamp < all[i-1].Timestamp {
			return nil, rep.fail(nil, "the head of %d entries is signed before the head of %d: the log was rewritten", all[i].TreeSize, all[i-1].TreeSize)
		}
	}
	rep.Heads = len(all)
	return all, nil
}

// checkEntry checks one entry's key, index, leaf and the tree nodes it
// completes, and adds it to the recomputed tree.
func checkEntry(rep *EvidenceReport, b *evidence.Builder, tree *storedTree, key, want uint64, raw []byte) error {
	if key != want {
		return rep.fail(&want, "entry %d is missing (deleted?)", want)
	}
	// Only the index is read: every other byte is covered by the leaf
	// hash, and decoding the whole entry was half of verify's time.
	idx, ok := entryIndex(raw)
	if !ok {
		return rep.fail(&want, "entry %d cannot be decoded", want)
	}
	if idx != want {
		return rep.fail(&want, "entry %d says it is entry %d (moved?)", want, idx)
	}
	return b.Add(evidence.LeafHash(raw), func(level uint8, index uint64, h evidence.Hash) error {
		if v, stored := tree.node(level, index); stored && (len(v) != evidence.HashSize || evidence.Hash(v) != h) {
			if level == 0 {
				return rep.fail(&want, "entry %d does not match its recorded hash: its content was changed", want)
			}
			return rep.fail(&want, "the tree node %d/%d completed by entry %d does not match the entries", level, index, want)
		}
		return nil
	})
}

// storedTree reads the stored nodes verify compares with: the leaves
// (from their blocks, one block read per 64 entries) and the nodes of
// level 6 and up; the levels between are not stored.
type storedTree struct {
	tree   *bolt.Bucket
	block  uint64
	leaves []byte // nil: block not read
}

func (t *storedTree) node(level uint8, index uint64) (v []byte, stored bool) {
	switch {
	case level >= leafBlockLevel:
		return t.tree.Get(evidenceTreeKey(level, index)), true
	case level > 0:
		return nil, false
	}
	if block := index / leafBlock; t.leaves == nil || t.block != block {
		t.block, t.leaves = block, t.tree.Get(evidenceLeavesKey(block))
		if t.leaves == nil {
			t.leaves = []byte{}
		}
	}
	off := (index % leafBlock) * evidence.HashSize
	if uint64(len(t.leaves)) < off+evidence.HashSize {
		return nil, true
	}
	return t.leaves[off : off+evidence.HashSize], true
}

// checkHead compares heads[i] with the root recomputed at its size.
func checkHead(rep *EvidenceReport, heads []evidence.SignedHead, i int, root evidence.Hash) error {
	h := heads[i]
	if r, err := h.Root(); err != nil || r != root {
		first := rep.SignedUpTo
		last := h.TreeSize - 1
		return rep.fail(&first, "entries %d to %d do not match the head signed at %s: one of them was changed, removed or moved, and the stored tree recomputed without the key (the first entry after the last verified head is named)", first, last, h.Time().Format(time.RFC3339))
	}
	rep.SignedUpTo = h.TreeSize
	t := h.Time()
	rep.LatestHead = &t
	return nil
}

// checkConsistency proves each head's tree a prefix of the next one's
// with the stored nodes (the proofs senders are given come from them).
func (s *Store) checkConsistency(rep *EvidenceReport, heads []evidence.SignedHead) error {
	for i := 1; i < len(heads); i++ {
		a, b := heads[i-1], heads[i]
		if a.TreeSize == 0 || a.TreeSize == b.TreeSize {
			continue
		}
		proof, err := s.ConsistencyProof(a.TreeSize, b.TreeSize)
		if err != nil {
			return err
		}
		ra, _ := a.Root()
		rb, _ := b.Root()
		if err := evidence.VerifyConsistency(a.TreeSize, b.TreeSize, ra, rb, proof); err != nil {
			return rep.fail(nil, "heads of %d and %d entries are not consistent: %v", a.TreeSize, b.TreeSize, err)
		}
	}
	return nil
}

// entryIndex reads the index an entry starts with ({"index":N,...}:
// EvidenceEvent's first field).
func entryIndex(raw []byte) (uint64, bool) {
	rest, ok := bytes.CutPrefix(raw, []byte(`{"index":`))
	if end := bytes.IndexByte(rest, ','); ok && end > 0 {
		if n, err := strconv.ParseUint(string(rest[:end]), 10, 64); err == nil {
			return n, true
		}
	}
	// Not as abox writes it: decode it whole (its leaf will not match).
	var e EvidenceEvent
	err := json.Unmarshal(raw, &e)
	return e.Index, err == nil
}
