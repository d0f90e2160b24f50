package store

import (
	"encoding/binary"

	bolt "go.etcd.io/bbolt"
)

// How the evidence log's entries are kept in the `evidence` bucket
// (schema 5). An entry written alone is one value: its JSON, under its
// index(8). The entries one transaction writes together (an official
// delivery writes two per recipient) are one value, a group of at most
// maxGroupEntries, under the first one's index: the byte
// evidenceGroupMark, then each entry as its length (uvarint) and its
// JSON. Indexes run on without gaps from one value to the next, so a
// group's last entry is the one before the next key. One B+tree insert
// per letter instead of one per entry was part of what was left of the
// log's cost on the delivery path (issue 15's budget;
// docs/BENCHMARKS.md). An entry's JSON starts with '{', never with the
// mark, so schema 4's values read unchanged.
const evidenceGroupMark = 0x01

// entryCursor reads the log's entries in index order, across single
// values and groups. The slices it returns are bbolt's: valid for the
// transaction, never to be modified.
type entryCursor struct {
	c    *bolt.Cursor
	next uint64 // the index of the entry rest starts with
	rest []byte // a group's entries not yet returned
}

func newEntryCursor(tx *bolt.Tx) *entryCursor {
	return &entryCursor{c: tx.Bucket(bEvidence).Cursor()}
}

// load reads the value k, v: its first entry, and the rest of a group.
func (ec *entryCursor) load(k, v []byte) (uint64, []byte, bool) {
	ec.rest = nil
	if k == nil {
		return 0, nil, false
	}
	first := decodeU64(k)
	if len(v) > 0 && v[0] == evidenceGroupMark {
		ec.next, ec.rest = first, v[1:]
		return ec.take()
	}
	ec.next = first + 1
	return first, v, true
}

// take returns the group's next entry. A length that runs past the
// value (a damaged group) returns what is left as that entry, whose
// bytes then fail every check (and the entries after it are missing).
func (ec *entryCursor) take() (uint64, []byte, bool) {
	idx := ec.next
	ec.next++
	n, m := binary.Uvarint(ec.rest)
	if m <= 0 || n > uint64(len(ec.rest)-m) {
		raw := ec.rest
		ec.rest = nil
		return idx, raw, true
	}
	raw := ec.rest[m : m+int(n) : m+int(n)]
	ec.rest = ec.rest[m+int(n):]
	return idx, raw, true
}

// First returns the log's first entry.
func (ec *entryCursor) First() (uint64, []byte, bool) { return ec.load(ec.c.First()) }

// Next returns the entry after the one returned last.
func (ec *entryCursor) Next() (uint64, []byte, bool) {
	if len(ec.rest) > 0 {
		return ec.take()
	}
	return ec.load(ec.c.Next())
}

// Seek returns entry idx, or the first entry after it when there is
// none of that index (the caller compares).
func (ec *entryCursor) Seek(idx uint64) (uint64, []byte, bool) {
	k, v := ec.c.Seek(u64(idx))
	if k != nil && decodeU64(k) == idx {
		return ec.load(k, v)
	}
	// Inside the group before, if there is one that reaches idx.
	var pk, pv []byte
	if k == nil {
		pk, pv = ec.c.Last()
	} else {
		pk, pv = ec.c.Prev()
	}
	if pk != nil && decodeU64(pk) < idx && len(pv) > 0 && pv[0] == evidenceGroupMark {
		i, raw, ok := ec.load(pk, pv)
		for ok && i < idx && len(ec.rest) > 0 {
			i, raw, ok = ec.take()
		}
		if ok && i == idx {
			return i, raw, true
		}
	}
	return ec.load(ec.c.Seek(u64(idx)))
}

// evidenceEntry returns entry idx (nil when there is none).
func evidenceEntry(tx *bolt.Tx, idx uint64) []byte {
	i, raw, ok := newEntryCursor(tx).Seek(idx)
	if !ok || i != idx {
		return nil
	}
	return raw
}
