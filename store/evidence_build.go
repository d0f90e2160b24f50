package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strconv"

	bolt "go.etcd.io/bbolt"

	"abox/evidence"
)

// The evidence log's derived parts (the Merkle tree's perfect subtrees
// and the Message-ID and account indexes) are not written by the
// transaction that appends an entry: writing them there, through the
// write-ahead log, was most of what an official delivery cost more than
// a billing one (issue 15's CPU budget; docs/BENCHMARKS.md). They are
// built in bulk by buildEvidence, in the transaction that commits them to
// the file: every checkpoint, the commit of a store without the log, and
// the commit that applies the log at Open. `meta/evidence_built` says how
// many entries they cover and is written in the same transaction, so a
// crash loses both together and the next commit builds them again from
// the entries; no reader sees one without the other, because every read
// of the tree or an index goes through a barrier that waits for the
// checkpoint.
var metaEvidenceBuilt = []byte("evidence_built")

// The tree is kept as leaf blocks and upper nodes: the leaf hashes of
// each run of 64 entries in one value (`evidence_tree` key 0xff
// block(8)), and every perfect subtree of 64 leaves or more under its
// level and index (key level(1) index(8)). A node below level 6 is
// computed from its block when a proof asks for it (at most 31 hashes);
// storing each of them, as schema 3 did, was two puts per entry.
const (
	leafBlockLevel = 6
	leafBlock      = 1 << leafBlockLevel
	leavesKeyLevel = 0xff
)

func evidenceLeavesKey(block uint64) []byte { return evidenceTreeKey(leavesKeyLevel, block) }

// buildEvidence writes the tree and index keys of the entries not yet
// built, directly into tx (never logged: they are derived data). A file
// from before schema 4 has no `evidence_built`: its entries, also those
// its write-ahead log replays, have schema 3's tree, which the first call
// converts (upgradeEvidenceTree).
func buildEvidence(tx *bolt.Tx) error {
	meta := tx.Bucket(bMeta)
	size := evidenceSize(tx)
	v := meta.Get(metaEvidenceBuilt)
	if v == nil {
		if err := upgradeEvidenceTree(tx, size); err != nil {
			return err
		}
		return meta.Put(metaEvidenceBuilt, u64(size))
	}
	built := decodeU64(v)
	if built >= size {
		return nil
	}
	tree := tx.Bucket(bEvidenceTree)
	tree.FillPercent = appendFill
	// Resume at the start of the last block, which may hold some leaves.
	start := built &^ (leafBlock - 1)
	tb, err := evidence.BuilderAt(start, nodeReader(tx))
	if err != nil {
		return err
	}
	block := start / leafBlock
	leaves := make([]byte, 0, leafBlock*evidence.HashSize)
	leaves = append(leaves, tree.Get(evidenceLeavesKey(block))...)
	want := (built - start) * evidence.HashSize
	if uint64(len(leaves)) < want {
		return fmt.Errorf("evidence leaf block %d holds %d bytes, want %d: %w", block, len(leaves), want, ErrCorrupt)
	}
	// More than built says: what a build that failed half way wrote
	// (derived from the entries, built again below).
	leaves = leaves[:want]
	for i := 0; i < len(leaves); i += evidence.HashSize {
		if err := tb.Add(evidence.Hash(leaves[i:i+evidence.HashSize]), nil); err != nil {
			return err
		}
	}
	putNode := func(level uint8, index uint64, h evidence.Hash) error {
		if level < leafBlockLevel {
			return nil
		}
		// bbolt keeps the slices it is given until commit: each its own.
		return tree.Put(evidenceTreeKey(level, index), bytes.Clone(h[:]))
	}
	b := evidenceBuilder{msgs: tx.Bucket(bEvidenceMsg), accts: tx.Bucket(bEvidenceAcct)}
	var hasher evidence.LeafHasher
	ec := newEntryCursor(tx)
	idx := built
	for i, raw, ok := ec.Seek(built); idx < size; i, raw, ok = ec.Next() {
		if !ok || i != idx {
			return fmt.Errorf("evidence entry %d is missing: %w", idx, ErrCorrupt)
		}
		h := hasher.Sum(raw)
		leaves = append(leaves, h[:]...)
		if err := tb.Add(h, putNode); err != nil {
			return err
		}
		if len(leaves) == leafBlock*evidence.HashSize {
			if err := tree.Put(evidenceLeavesKey(block), leaves); err != nil {
				return err
			}
			block++
			leaves = make([]byte, 0, leafBlock*evidence.HashSize)
		}
		if err := b.add(idx, raw); err != nil {
			return err
		}
		idx++
	}
	if len(leaves) > 0 {
		if err := tree.Put(evidenceLeavesKey(block), leaves); err != nil {
			return err
		}
	}
	if err := b.flush(&b.msg, b.msgs); err != nil {
		return err
	}
	if err := b.flush(&b.acct, b.accts); err != nil {
		return err
	}
	return meta.Put(metaEvidenceBuilt, u64(size))
}

// upgradeEvidenceTree turns schema 3's tree (every node under its level
// and index) into leaf blocks and the nodes of level 6 and up, in
// bounded steps of one transaction.
func upgradeEvidenceTree(tx *bolt.Tx, size uint64) error {
	tree := tx.Bucket(bEvidenceTree)
	tree.FillPercent = appendFill
	for block := uint64(0); block*leafBlock < size; block++ {
		leaves := make([]byte, 0, leafBlock*evidence.HashSize)
		for i := block * leafBlock; i < min(size, (block+1)*leafBlock); i++ {
			v := tree.Get(evidenceTreeKey(0, i))
			if len(v) != evidence.HashSize {
				return fmt.Errorf("evidence tree leaf %d missing: %w", i, ErrCorrupt)
			}
			leaves = append(leaves, v...)
		}
		if err := tree.Put(evidenceLeavesKey(block), leaves); err != nil {
			return err
		}
	}
	for level := byte(0); level < leafBlockLevel; level++ {
		for {
			var keys [][]byte
			c := tree.Cursor()
			for k, _ := c.Seek([]byte{level}); k != nil && k[0] == level && len(keys) < 10_000; k, _ = c.Next() {
				keys = append(keys, bytes.Clone(k))
			}
			if len(keys) == 0 {
				break
			}
			for _, k := range keys {
				if err := tree.Delete(k); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// evidenceBuilder builds consecutive entries' index keys: one key per
// run of consecutive entries of the same letter (by Message-ID) or the
// same account, its value the run's length (a delivery to k recipients
// writes 2k entries, 1 + k index keys).
type evidenceBuilder struct {
	msgs, accts *bolt.Bucket
	msg, acct   indexRun
}

// indexRun is a run of consecutive entries under one index key.
type indexRun struct {
	key   []byte // prefix (Message-ID 0x00, or account(8)), room for 8 more; nil: no run
	first uint64
	count uint32
}

func (b *evidenceBuilder) add(n uint64, raw []byte) error {
	msgID, acct, ok := entryKeys(raw)
	if !ok {
		return fmt.Errorf("evidence entry %d cannot be decoded: %w", n, ErrCorrupt)
	}
	if m := &b.msg; !m.extends(n, msgID, 0) {
		if err := b.flush(m, b.msgs); err != nil {
			return err
		}
		*m = indexRun{key: append(append(make([]byte, 0, len(msgID)+9), msgID...), 0), first: n, count: 1}
	}
	if a := &b.acct; acct == 0 || !a.extends(n, nil, acct) {
		if err := b.flush(a, b.accts); err != nil {
			return err
		}
		if acct != 0 {
			*a = indexRun{key: binary.BigEndian.AppendUint64(make([]byte, 0, 16), acct), first: n, count: 1}
		}
	}
	return nil
}

// extends adds entry n to r when r is the run of the same Message-ID
// (msgID, with acct 0) or account (acct) that n comes right after.
func (r *indexRun) extends(n uint64, msgID []byte, acct uint64) bool {
	if r.key == nil || r.first+uint64(r.count) != n {
		return false
	}
	if acct != 0 {
		if len(r.key) != 8 || decodeU64(r.key) != acct {
			return false
		}
	} else if len(r.key) != len(msgID)+1 || !bytes.Equal(r.key[:len(msgID)], msgID) {
		return false
	}
	r.count++
	return true
}

// flush writes a run's index key: prefix, its first entry, and its
// length as the value (empty for one entry, as before runs existed).
func (b *evidenceBuilder) flush(r *indexRun, bucket *bolt.Bucket) error {
	if r.key == nil {
		return nil
	}
	var v []byte
	if r.count > 1 {
		v = binary.BigEndian.AppendUint32(nil, r.count)
	}
	k := binary.BigEndian.AppendUint64(r.key, r.first) // the run's own slice, with room
	*r = indexRun{}
	return bucket.Put(k, v)
}

// buildEvidence is called where a commit must not fail for it: a damaged
// log is `abox check`'s and `notice verify`'s to report, mail goes on.
func (s *Store) buildEvidence(tx *bolt.Tx) {
	if err := buildEvidence(tx); err != nil {
		s.log.Error("store: building the evidence log's tree and indexes", "err", err)
	}
}

// entryKeys reads an entry's Message-ID and account, which the indexes
// file it under. Entries as abox writes them are read in place (inside a
// JSON string a quote is always escaped, so `,"account":` outside one is
// the field; msgID is then a part of raw); anything else is decoded
// whole.
func entryKeys(raw []byte) (msgID []byte, acct uint64, ok bool) {
	if _, rest, found := bytes.Cut(raw, []byte(`,"message_id":"`)); found {
		if end := bytes.IndexByte(rest, '"'); end >= 0 && bytes.IndexByte(rest[:end], '\\') < 0 {
			if _, num, found := bytes.Cut(rest[end:], []byte(`,"account":`)); found {
				if stop := bytes.IndexAny(num, ",}"); stop > 0 {
					if n, err := strconv.ParseUint(string(num[:stop]), 10, 64); err == nil {
						return rest[:end], n, true
					}
				}
			}
		}
	}
	var e struct {
		MessageID string `json:"message_id"`
		Account   uint64 `json:"account"`
	}
	err := json.Unmarshal(raw, &e)
	return []byte(e.MessageID), e.Account, err == nil
}

// appendEvidenceJSON appends e as encoding/json would marshal it, byte
// for byte (the bytes are the Merkle leaf; TestEvidenceJSON and
// FuzzEvidenceJSON compare the two), without reflection: the encoding
// was a fifth of the log's cost on the delivery path.
func appendEvidenceJSON(b []byte, e *EvidenceEvent) ([]byte, error) {
	if y := e.At.Year(); y < 0 || y > 9999 {
		return nil, fmt.Errorf("evidence event time %v is out of range", e.At)
	}
	b = append(b, `{"index":`...)
	b = strconv.AppendUint(b, e.Index, 10)
	b = append(b, `,"at":"`...)
	b = e.At.AppendFormat(b, "2006-01-02T15:04:05.999999999Z07:00")
	b = append(b, `","kind":`...)
	b = appendJSONString(b, e.Kind)
	b = append(b, `,"message_id":`...)
	b = appendJSONString(b, e.MessageID)
	b = append(b, `,"sender":`...)
	b = appendJSONString(b, e.Sender)
	b = append(b, `,"recipient":`...)
	b = appendJSONString(b, e.Recipient)
	b = append(b, `,"account":`...)
	b = strconv.AppendUint(b, e.Account, 10)
	for _, f := range [...]struct{ key, val string }{
		{`,"message_sha256":`, e.MessageSHA}, {`,"consent_sha256":`, e.ConsentSHA},
		{`,"client_ip":`, e.ClientIP}, {`,"tls":`, e.TLS}, {`,"how":`, e.How}, {`,"reason":`, e.Reason},
	} {
		if f.val != "" {
			b = append(b, f.key...)
			b = appendJSONString(b, f.val)
		}
	}
	return append(b, '}'), nil
}

// evidenceJSONSize is about what appendEvidenceJSON writes for e: its
// names, numbers and time (at most 288 bytes) and its strings unescaped.
func evidenceJSONSize(e *EvidenceEvent) int {
	return 288 + len(e.Kind) + len(e.MessageID) + len(e.Sender) + len(e.Recipient) + len(e.MessageSHA) +
		len(e.ConsentSHA) + len(e.ClientIP) + len(e.TLS) + len(e.How) + len(e.Reason)
}

// appendJSONString appends s as a JSON string the way encoding/json
// does: printable ASCII other than what it escapes is copied, anything
// else goes through encoding/json itself.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			enc, _ := json.Marshal(s) // a string always marshals
			return append(b, enc...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
