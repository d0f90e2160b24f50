package pgstore

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"abox/evidence"
	"abox/store"
)

// evidenceSize is the number of entries in the log (given their place).
func evidenceSize(ctx context.Context, q querier) (uint64, error) {
	var n int64
	if err := q.QueryRow(ctx, `SELECT built FROM evidence_state`).Scan(&n); err != nil {
		return 0, storageErr(err)
	}
	return uint64(n), nil
}

// subtreeRoot is the root of the first size entries, from the stored
// nodes in one round trip.
func subtreeRoot(ctx context.Context, q querier, size uint64) (evidence.Hash, error) {
	tr := newTreeReader(q)
	if err := tr.preload(ctx, func(read evidence.NodeReader) error {
		_, err := evidence.SubtreeRoot(read, 0, size)
		return err
	}); err != nil {
		return evidence.Hash{}, storageErr(err)
	}
	root, err := evidence.SubtreeRoot(tr.reader(ctx), 0, size)
	return root, storageErr(err)
}

// EvidenceHead is the log's current size and root, for signing: it
// first gives the entries committed so far their place (a build, or
// waiting for the one under way), so a head signed right after a
// delivery covers it, as on the embedded store.
func (s *Store) EvidenceHead() (size uint64, root evidence.Hash, err error) {
	ctx := context.Background()
	if err := s.settle(ctx, `SELECT EXISTS (SELECT 1 FROM evidence_pending ORDER BY seq LIMIT 1)`); err != nil {
		return 0, root, err
	}
	size, err = evidenceSize(ctx, s.pool)
	if err != nil {
		return 0, root, err
	}
	root, err = subtreeRoot(ctx, s.pool, size)
	return size, root, err
}

// AddSignedHead keeps a signed tree head after checking that it names
// this log's root at its size (a head for another log is refused).
func (s *Store) AddSignedHead(ctx context.Context, h evidence.SignedHead) error {
	raw, err := json.Marshal(h)
	if err != nil {
		return err
	}
	return s.tx(ctx, func(tx pgx.Tx) error {
		size, err := evidenceSize(ctx, tx)
		if err != nil {
			return err
		}
		if h.TreeSize > size {
			return fmt.Errorf("tree head of size %d is beyond the log's %d entries", h.TreeSize, size)
		}
		root, err := subtreeRoot(ctx, tx, h.TreeSize)
		if err != nil {
			return err
		}
		if r, err := h.Root(); err != nil || r != root {
			return fmt.Errorf("tree head of size %d does not match this log's root", h.TreeSize)
		}
		_, err = tx.Exec(ctx, `INSERT INTO evidence_heads (tree_size, ts, data) VALUES ($1, $2, $3)
			ON CONFLICT (tree_size, ts) DO UPDATE SET data = EXCLUDED.data`, int64(h.TreeSize), h.Timestamp, raw)
		return err
	})
}

// SignedHeads returns the kept signed tree heads, smallest tree first.
func (s *Store) SignedHeads() ([]evidence.SignedHead, error) {
	return signedHeads(context.Background(), s.pool)
}

func signedHeads(ctx context.Context, q querier) ([]evidence.SignedHead, error) {
	rows, err := q.Query(ctx, `SELECT data FROM evidence_heads ORDER BY tree_size, ts`)
	if err != nil {
		return nil, storageErr(err)
	}
	defer rows.Close()
	var out []evidence.SignedHead
	for rows.Next() {
		var raw []byte
		if err := rows.Scan(&raw); err != nil {
			return nil, storageErr(err)
		}
		var h evidence.SignedHead
		if err := json.Unmarshal(raw, &h); err != nil {
			return nil, fmt.Errorf("signed tree head: %w", store.ErrCorrupt)
		}
		out = append(out, h)
	}
	return out, storageErr(rows.Err())
}

// InclusionProof proves entry index is in the tree of the given size.
func (s *Store) InclusionProof(index, size uint64) ([]evidence.Hash, error) {
	return s.proof(size, func(read evidence.NodeReader) ([]evidence.Hash, error) {
		return evidence.InclusionProof(read, index, size)
	})
}

// ConsistencyProof proves the tree of size m is a prefix of that of size n.
func (s *Store) ConsistencyProof(m, n uint64) ([]evidence.Hash, error) {
	return s.proof(n, func(read evidence.NodeReader) ([]evidence.Hash, error) {
		return evidence.ConsistencyProof(read, m, n)
	})
}

// proof computes a proof within the first size entries: the log's size
// and every node the proof needs in one round trip.
func (s *Store) proof(size uint64, compute func(evidence.NodeReader) ([]evidence.Hash, error)) ([]evidence.Hash, error) {
	ctx := context.Background()
	tr := newTreeReader(s.pool)
	var built int64
	if err := tr.preloadWith(ctx, func(b *pgx.Batch) {
		b.Queue(`SELECT built FROM evidence_state`).QueryRow(func(row pgx.Row) error { return row.Scan(&built) })
	}, func(read evidence.NodeReader) error {
		_, err := compute(read)
		return err
	}); err != nil {
		return nil, storageErr(err)
	}
	if size > uint64(built) {
		return nil, fmt.Errorf("the log has fewer than %d entries", size)
	}
	p, err := compute(tr.reader(ctx))
	return p, storageErr(err)
}

// EvidenceFor returns a letter's evidence entries (of sender, or of any
// sender when sender is ""), in log order; entries still pending are
// given their place first.
func (s *Store) EvidenceFor(messageID, sender string) ([]store.EvidenceEntry, error) {
	ctx := context.Background()
	msgID := store.NormalizeMessageID(messageID)
	if err := s.settle(ctx, `SELECT EXISTS (SELECT 1 FROM evidence_pending WHERE message_id = $1)`, msgID); err != nil {
		return nil, err
	}
	return s.letterEvents(ctx, msgID, sender, false)
}

// letterEvents are a letter's entries in the log, in order, and with
// pending, after them those not yet placed (index 0, no Raw).
func (s *Store) letterEvents(ctx context.Context, msgID, sender string, pending bool) ([]store.EvidenceEntry, error) {
	q := `SELECT position, entry FROM evidence WHERE message_id = $1 AND ($2 = '' OR sender = $2) ORDER BY position`
	if pending {
		q = `(SELECT position, entry FROM evidence WHERE message_id = $1 AND ($2 = '' OR sender = $2) ORDER BY position)
			UNION ALL
			(SELECT NULL, entry FROM evidence_pending WHERE message_id = $1 AND ($2 = '' OR sender = $2) ORDER BY seq)`
	}
	rows, err := s.pool.Query(ctx, q, msgID, sender)
	if err != nil {
		return nil, storageErr(err)
	}
	return scanEntries(rows)
}

// EvidenceForAccount returns the evidence entries about an account (by
// its stable id), in log order, from index after on (0: from the
// start), at most limit of them (0: 1,000), and the index to continue
// from (0 when there is no more).
func (s *Store) EvidenceForAccount(acct, after uint64, limit int) ([]store.EvidenceEntry, uint64, error) {
	if limit <= 0 {
		limit = 1000
	}
	if acct == 0 {
		return nil, 0, nil // entries about no account are not indexed by account
	}
	ctx := context.Background()
	if err := s.settle(ctx, `SELECT EXISTS (SELECT 1 FROM evidence_pending WHERE account = $1)`, int64(acct)); err != nil {
		return nil, 0, err
	}
	rows, err := s.pool.Query(ctx, `SELECT position, entry FROM evidence WHERE account = $1 AND position >= $2
		ORDER BY position LIMIT $3`, int64(acct), int64(after), limit+1)
	if err != nil {
		return nil, 0, storageErr(err)
	}
	out, err := scanEntries(rows)
	if err != nil {
		return nil, 0, err
	}
	var next uint64
	if len(out) > limit {
		next = out[limit].Event.Index
		out = out[:limit]
	}
	return out, next, nil
}

// VerifyEvidence checks the whole evidence log against the signed tree
// heads, with the operator's public key only, exactly as the embedded
// store does (store.Store.VerifyEvidence): every head's signature,
// every entry's place and bytes (the tree is recomputed from the
// entries), every stored leaf hash and tree node, each head's root, and
// consistency between consecutive heads. It reads the log in batches of
// 10,000 entries by position. Entries still pending are not in the log
// yet and not checked.
func (s *Store) VerifyEvidence(pub ed25519.PublicKey, extra []evidence.SignedHead) (store.EvidenceReport, error) {
	ctx := context.Background()
	rep := store.EvidenceReport{OK: true, SignaturesChecked: pub != nil}
	heads, err := s.SignedHeads()
	if err != nil {
		return rep, err
	}
	heads, err = store.MergeSignedHeads(&rep, pub, append(heads, extra...))
	if err != nil {
		return rep, store.IgnoreEvidenceBad(err)
	}
	total, err := evidenceSize(ctx, s.pool)
	if err != nil {
		return rep, err
	}
	var (
		b    evidence.Builder
		next uint64 // next entry index expected
		hi   int    // next head to check
	)
	for ; hi < len(heads) && heads[hi].TreeSize == 0; hi++ {
		if err := store.CheckSignedHead(&rep, heads, hi, evidence.EmptyRoot); err != nil {
			return rep, store.IgnoreEvidenceBad(err)
		}
	}
	const batchSize = 10_000
	if total == 0 {
		return rep, store.IgnoreEvidenceBad(s.verifyEnd(&rep, heads, hi, next, total))
	}
	var hasher evidence.LeafHasher
	for {
		// Only the entries placed when verify started: a build running
		// meanwhile appends after them.
		batch, err := s.verifyBatch(ctx, next, min(total, next+batchSize))
		if err != nil {
			return rep, err
		}
		for _, e := range batch.entries {
			if err := checkEntry(&rep, &b, &hasher, batch.nodes, e, next); err != nil {
				return rep, store.IgnoreEvidenceBad(err)
			}
			next++
			for ; hi < len(heads) && heads[hi].TreeSize == next; hi++ {
				if err := store.CheckSignedHead(&rep, heads, hi, b.Root()); err != nil {
					return rep, store.IgnoreEvidenceBad(err)
				}
			}
		}
		if len(batch.entries) == 0 {
			// A whole batch gone: in the middle, an entry is missing;
			// at the end, verifyEnd says so.
			var later bool
			if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM evidence WHERE position >= $1 AND position < $2)`, int64(next), int64(total)).Scan(&later); err != nil {
				return rep, storageErr(err)
			}
			if later {
				return rep, store.IgnoreEvidenceBad(store.FailEvidence(&rep, &next, "entry %d is missing (deleted?)", next))
			}
			break
		}
		if batch.entries[len(batch.entries)-1].pos+1 >= total {
			break
		}
	}
	return rep, store.IgnoreEvidenceBad(s.verifyEnd(&rep, heads, hi, next, total))
}

// verifyEnd checks, once next entries verified, that none is missing at
// the end and no head covers more, then the heads' consistency.
func (s *Store) verifyEnd(rep *store.EvidenceReport, heads []evidence.SignedHead, hi int, next, total uint64) error {
	rep.Entries = next
	if next != total {
		return store.FailEvidence(rep, &next, "the log records %d entries but holds %d: entries were removed at the end", total, next)
	}
	if hi < len(heads) {
		return store.FailEvidence(rep, &next, "a head signed at %s covers %d entries; the log holds %d: entries were removed", heads[hi].Time().Format(time.RFC3339), heads[hi].TreeSize, next)
	}
	return s.checkConsistency(rep, heads)
}

type verifyEntry struct {
	pos   uint64
	entry []byte
	leaf  []byte
}

type verifyBatch struct {
	entries []verifyEntry
	nodes   map[nodeKey][]byte // stored nodes of level 6 and up the entries complete
}

// verifyBatch reads the entries at positions from..to-1, and the
// stored nodes they complete, in one round trip.
func (s *Store) verifyBatch(ctx context.Context, from, to uint64) (verifyBatch, error) {
	out := verifyBatch{nodes: map[nodeKey][]byte{}}
	var los, his []int64
	for l := uint8(leafBlockLevel); l < 63 && uint64(1)<<l <= to; l++ {
		// Node (l, i) is completed by entry (i+1)·2^l - 1.
		lo, hi := (from+uint64(1)<<l)>>l-1, to>>l-1
		if to>>l == 0 || hi < lo {
			continue
		}
		los, his = append(los, treeKey(l, lo)), append(his, treeKey(l, hi))
	}
	var b pgx.Batch
	b.Queue(`SELECT position, entry, leaf FROM evidence WHERE position >= $1 AND position < $2 ORDER BY position`, int64(from), int64(to)).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var e verifyEntry
			var pos int64
			if err := rows.Scan(&pos, &e.entry, &e.leaf); err != nil {
				return err
			}
			e.pos = uint64(pos)
			out.entries = append(out.entries, e)
		}
		return rows.Err()
	})
	if len(los) > 0 {
		b.Queue(`SELECT t.key, t.hash FROM unnest($1::bigint[], $2::bigint[]) AS u(lo, hi)
			JOIN evidence_tree t ON t.key >= u.lo AND t.key <= u.hi`, los, his).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var key int64
				var h []byte
				if err := rows.Scan(&key, &h); err != nil {
					return err
				}
				out.nodes[treeNode(key)] = h
			}
			return rows.Err()
		})
	}
	return out, storageErr(s.pool.SendBatch(ctx, &b).Close())
}

// checkEntry checks one entry's position, index, leaf and the tree
// nodes it completes, and adds it to the recomputed tree (the embedded
// store's checkEntry, with the same report texts).
func checkEntry(rep *store.EvidenceReport, b *evidence.Builder, hasher *evidence.LeafHasher, nodes map[nodeKey][]byte, e verifyEntry, want uint64) error {
	if e.pos != want {
		return store.FailEvidence(rep, &want, "entry %d is missing (deleted?)", want)
	}
	idx, ok := store.EvidenceEntryIndex(e.entry)
	if !ok {
		return store.FailEvidence(rep, &want, "entry %d cannot be decoded", want)
	}
	if idx != want {
		return store.FailEvidence(rep, &want, "entry %d says it is entry %d (moved?)", want, idx)
	}
	leaf := hasher.Sum(e.entry)
	return b.Add(leaf, func(level uint8, index uint64, h evidence.Hash) error {
		var v []byte
		switch {
		case level == 0:
			v = e.leaf
		case level >= leafBlockLevel:
			v = nodes[nodeKey{level, index}]
		default:
			return nil // not stored
		}
		if len(v) != evidence.HashSize || evidence.Hash(v) != h {
			if level == 0 {
				return store.FailEvidence(rep, &want, "entry %d does not match its recorded hash: its content was changed", want)
			}
			return store.FailEvidence(rep, &want, "the tree node %d/%d completed by entry %d does not match the entries", level, index, want)
		}
		return nil
	})
}

// checkConsistency proves each head's tree a prefix of the next one's
// with the stored nodes (the proofs senders are given come from them).
func (s *Store) checkConsistency(rep *store.EvidenceReport, heads []evidence.SignedHead) error {
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
			return store.FailEvidence(rep, nil, "heads of %d and %d entries are not consistent: %v", a.TreeSize, b.TreeSize, err)
		}
	}
	return nil
}
