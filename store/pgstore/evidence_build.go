package pgstore

import (
	"bytes"
	"context"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"abox/evidence"
)

// The builder gives pending entries (evidence_pending) their positions:
// in seq order, after the log's last, in one transaction per batch that
// moves them into evidence with their leaf hashes, stores the tree's
// nodes they complete and raises evidence_state.built. Builders take an
// advisory lock, so two never build at once, and the state row's lock
// besides. A build in READ COMMITTED sees every entry committed before
// it started; one committed while it runs is left for the next build and
// gets a later position. An event caused by another (the retrieval of a
// stored letter) is written by a transaction that starts after the
// first committed, so it can never get an earlier position.
//
// The tree is kept as in the embedded store: every leaf hash (here in
// its entry's row) and every perfect subtree of 64 leaves or more; a
// node below is computed from its leaves when a proof asks for it (at
// most 63 hashes), so no read ever rehashes the log.

const (
	// evidenceBuildLock is the advisory lock key of the builder.
	evidenceBuildLock = 0x61626f78_0005 // "abox", 5
	leafBlockLevel    = 6
	leafBlock         = 1 << leafBlockLevel
	// buildBatch bounds the entries one build transaction moves.
	buildBatch = 10_000
)

// BuildEvidence gives every pending evidence entry its place in the log
// and builds the tree over them, in batches, and returns how many it
// placed. When another caller (another node) is building, it returns at
// once with 0: call it on one node at a time (under a lease), often;
// EvidenceHead, EvidenceFor and EvidenceForAccount also build what they
// need, waiting for a running build.
func (s *Store) BuildEvidence(ctx context.Context) (int, error) { return s.build(ctx, false) }

func (s *Store) build(ctx context.Context, wait bool) (int, error) {
	total := 0
	for {
		n, busy, err := s.buildBatch(ctx, wait)
		total += n
		if err != nil || busy || n < buildBatch {
			return total, err
		}
	}
}

// settle builds the pending entries when cond (a query of one boolean)
// says some matter to the caller, waiting for a build under way.
func (s *Store) settle(ctx context.Context, cond string, args ...any) error {
	var pending bool
	if err := s.pool.QueryRow(ctx, cond, args...).Scan(&pending); err != nil {
		return storageErr(err)
	}
	if !pending {
		return nil
	}
	// A build holds the lock for one bounded batch; a node that hangs
	// holding it must not hang every reader with it.
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_, err := s.build(ctx, true)
	return err
}

type pendingEntry struct {
	seq           int64
	msgID, sender string
	account       int64
	entry         []byte
}

func (s *Store) buildBatch(ctx context.Context, wait bool) (n int, busy bool, err error) {
	err = s.tx(ctx, func(tx pgx.Tx) error {
		n, busy = 0, false
		if wait {
			if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(evidenceBuildLock)); err != nil {
				return err
			}
		} else {
			var ok bool
			if err := tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock($1)`, int64(evidenceBuildLock)).Scan(&ok); err != nil {
				return err
			}
			if !ok {
				busy = true
				return nil
			}
		}
		var built int64
		if err := tx.QueryRow(ctx, `SELECT built FROM evidence_state FOR UPDATE`).Scan(&built); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT seq, message_id, sender, account, entry FROM evidence_pending ORDER BY seq LIMIT $1`, buildBatch)
		if err != nil {
			return err
		}
		var batch []pendingEntry
		for rows.Next() {
			var p pendingEntry
			if err := rows.Scan(&p.seq, &p.msgID, &p.sender, &p.account, &p.entry); err != nil {
				return err
			}
			batch = append(batch, p)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if len(batch) == 0 {
			return nil
		}
		tb, err := resumeBuilder(ctx, tx, uint64(built))
		if err != nil {
			return err
		}
		var keys []int64
		var hashes [][]byte
		putNode := func(level uint8, index uint64, h evidence.Hash) error {
			if level >= leafBlockLevel {
				keys, hashes = append(keys, treeKey(level, index)), append(hashes, bytes.Clone(h[:]))
			}
			return nil
		}
		out := make([][]any, len(batch))
		seqs := make([]int64, len(batch))
		var hasher evidence.LeafHasher
		for i, p := range batch {
			pos := built + int64(i)
			raw, err := placeEntry(p.entry, uint64(pos))
			if err != nil {
				return errEvidenceCorrupt("pending evidence entry %d", p.seq)
			}
			leaf := hasher.Sum(raw)
			if err := tb.Add(leaf, putNode); err != nil {
				return err
			}
			out[i] = []any{pos, p.msgID, p.sender, p.account, raw, leaf[:]}
			seqs[i] = p.seq
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"evidence"}, []string{"position", "message_id", "sender", "account", "entry", "leaf"},
			pgx.CopyFromRows(out)); err != nil {
			return err
		}
		b := &pgx.Batch{}
		if len(keys) > 0 {
			b.Queue(`INSERT INTO evidence_tree (key, hash) SELECT * FROM unnest($1::bigint[], $2::bytea[])`, keys, hashes)
		}
		b.Queue(`DELETE FROM evidence_pending WHERE seq = ANY($1)`, seqs)
		b.Queue(`UPDATE evidence_state SET built = $1`, built+int64(len(batch)))
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return err
		}
		n = len(batch)
		return nil
	})
	return n, busy, err
}

// resumeBuilder is the tree builder at size built: the perfect subtrees
// of the last full block and before, then the leaves of the last block
// so far.
func resumeBuilder(ctx context.Context, tx pgx.Tx, built uint64) (*evidence.Builder, error) {
	start := built &^ (leafBlock - 1)
	tr := newTreeReader(tx)
	if err := tr.preload(ctx, func(read evidence.NodeReader) error {
		_, err := evidence.BuilderAt(start, read)
		return err
	}); err != nil {
		return nil, err
	}
	tb, err := evidence.BuilderAt(start, tr.reader(ctx))
	if err != nil {
		return nil, err
	}
	rows, err := tx.Query(ctx, `SELECT position, leaf FROM evidence WHERE position >= $1 AND position < $2 ORDER BY position`, int64(start), int64(built))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	next := start
	for rows.Next() {
		var pos int64
		var leaf []byte
		if err := rows.Scan(&pos, &leaf); err != nil {
			return nil, err
		}
		if uint64(pos) != next || len(leaf) != evidence.HashSize {
			return nil, errEvidenceCorrupt("evidence entry %d is missing or its leaf hash is", next)
		}
		if err := tb.Add(evidence.Hash(leaf), nil); err != nil {
			return nil, err
		}
		next++
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if next != built {
		return nil, errEvidenceCorrupt("evidence entry %d is missing", next)
	}
	return tb, nil
}

// indexPrefix is how every pending entry starts: the index the builder
// replaces with the entry's position.
var indexPrefix = []byte(`{"index":0,`)

// placeEntry is a pending entry's bytes at position pos: what the
// embedded store's encoder writes for the same event with that index.
func placeEntry(entry []byte, pos uint64) ([]byte, error) {
	rest, ok := bytes.CutPrefix(entry, indexPrefix)
	if !ok {
		return nil, errEvidenceCorrupt("pending evidence entry does not start with its index")
	}
	raw := make([]byte, 0, len(entry)+20)
	raw = append(raw, `{"index":`...)
	raw = strconv.AppendUint(raw, pos, 10)
	raw = append(raw, ',')
	return append(raw, rest...), nil
}

// treeReader reads the tree's perfect subtrees: stored from level 6 up,
// computed from their leaves below it. preload fetches, in one round
// trip, every node and leaf a computation will ask for (it is run first
// against a reader that records the requests: which nodes a proof needs
// depends on the sizes alone); anything else is read when asked.
type treeReader struct {
	q      querier
	nodes  map[nodeKey]evidence.Hash
	leaves map[uint64]evidence.Hash
}

type nodeKey struct {
	level uint8
	index uint64
}

func newTreeReader(q querier) *treeReader {
	return &treeReader{q: q, nodes: map[nodeKey]evidence.Hash{}, leaves: map[uint64]evidence.Hash{}}
}

func (r *treeReader) preload(ctx context.Context, compute func(evidence.NodeReader) error) error {
	return r.preloadWith(ctx, nil, compute)
}

// preloadWith is preload with more queries (queue) in its round trip.
func (r *treeReader) preloadWith(ctx context.Context, queue func(*pgx.Batch), compute func(evidence.NodeReader) error) error {
	var keys, positions []int64
	seen := map[nodeKey]bool{}
	// The recording pass's error is the real pass's, answered there.
	_ = compute(func(level uint8, index uint64) (evidence.Hash, error) {
		k := nodeKey{level, index}
		if seen[k] {
			return evidence.Hash{}, nil
		}
		seen[k] = true
		if level >= leafBlockLevel {
			keys = append(keys, treeKey(level, index))
		} else {
			for p := index << level; p < (index+1)<<level; p++ {
				positions = append(positions, int64(p))
			}
		}
		return evidence.Hash{}, nil
	})
	var b pgx.Batch
	if queue != nil {
		queue(&b)
	}
	if len(keys) > 0 {
		b.Queue(`SELECT key, hash FROM evidence_tree WHERE key = ANY($1)`, keys).Query(func(rows pgx.Rows) error {
			return r.scanNodes(rows)
		})
	}
	if len(positions) > 0 {
		b.Queue(`SELECT position, leaf FROM evidence WHERE position = ANY($1)`, positions).Query(func(rows pgx.Rows) error {
			return r.scanLeaves(rows)
		})
	}
	if b.Len() == 0 {
		return nil
	}
	return sendBatch(ctx, r.q, &b)
}

// sendBatch runs b on a pool or a transaction.
func sendBatch(ctx context.Context, q querier, b *pgx.Batch) error {
	type batcher interface {
		SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
	}
	return q.(batcher).SendBatch(ctx, b).Close()
}

func (r *treeReader) scanNodes(rows pgx.Rows) error {
	for rows.Next() {
		var key int64
		var h []byte
		if err := rows.Scan(&key, &h); err != nil {
			return err
		}
		if len(h) == evidence.HashSize {
			r.nodes[treeNode(key)] = evidence.Hash(h)
		}
	}
	return rows.Err()
}

// treeKey is evidence_tree's key of a node: level·2^56 + index.
func treeKey(level uint8, index uint64) int64 { return int64(uint64(level)<<56 | index) }

func treeNode(key int64) nodeKey { return nodeKey{uint8(uint64(key) >> 56), uint64(key) & (1<<56 - 1)} }

func (r *treeReader) scanLeaves(rows pgx.Rows) error {
	for rows.Next() {
		var pos int64
		var h []byte
		if err := rows.Scan(&pos, &h); err != nil {
			return err
		}
		if len(h) == evidence.HashSize {
			r.leaves[uint64(pos)] = evidence.Hash(h)
		}
	}
	return rows.Err()
}

func (r *treeReader) reader(ctx context.Context) evidence.NodeReader {
	return func(level uint8, index uint64) (evidence.Hash, error) {
		if level >= leafBlockLevel {
			k := nodeKey{level, index}
			if h, ok := r.nodes[k]; ok {
				return h, nil
			}
			rows, err := r.q.Query(ctx, `SELECT key, hash FROM evidence_tree WHERE key = $1`, treeKey(level, index))
			if err != nil {
				return evidence.Hash{}, err
			}
			if err := r.scanNodes(rows); err != nil {
				return evidence.Hash{}, err
			}
			if h, ok := r.nodes[k]; ok {
				return h, nil
			}
			return evidence.Hash{}, errEvidenceCorrupt("evidence tree node %d/%d", level, index)
		}
		first, n := index<<level, uint64(1)<<level
		if _, ok := r.leaves[first+n-1]; !ok {
			rows, err := r.q.Query(ctx, `SELECT position, leaf FROM evidence WHERE position >= $1 AND position < $2`, int64(first), int64(first+n))
			if err != nil {
				return evidence.Hash{}, err
			}
			if err := r.scanLeaves(rows); err != nil {
				return evidence.Hash{}, err
			}
		}
		hs := make([]evidence.Hash, n)
		for i := range hs {
			h, ok := r.leaves[first+uint64(i)]
			if !ok {
				return evidence.Hash{}, errEvidenceCorrupt("evidence tree node %d/%d: its leaves are missing", level, index)
			}
			hs[i] = h
		}
		return perfectRoot(hs), nil
	}
}

// perfectRoot is the root of the perfect subtree over leaf hashes (a
// power of two of them).
func perfectRoot(leaves []evidence.Hash) evidence.Hash {
	if len(leaves) == 1 {
		return leaves[0]
	}
	half := len(leaves) / 2
	return evidence.NodeHash(perfectRoot(leaves[:half]), perfectRoot(leaves[half:]))
}
