package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"

	bolt "go.etcd.io/bbolt"
)

// Messages returns up to limit messages of a mailbox with UID > afterUID,
// in UID order.
func (s *Store) Messages(acct uint64, mbox uint32, afterUID uint32, limit int) ([]Message, error) {
	var out []Message
	err := s.viewFor(acct, func(tx *bolt.Tx) error {
		end := mboxKey(acct, mbox)
		c := tx.Bucket(bMail).Cursor()
		for k, v := c.Seek(msgKey(acct, mbox, afterUID+1)); k != nil && bytes.Compare(k, end) < 0 && (limit <= 0 || len(out) < limit); k, v = c.Next() {
			m, err := decodeMessage(binary.BigEndian.Uint32(k[12:]), v)
			if err != nil {
				return err
			}
			out = append(out, *m)
		}
		return nil
	})
	return out, err
}

// Body returns a copy of a stored body and its precomputed structure.
func (s *Store) Body(blob uint64) (body, structure []byte, err error) {
	err = s.viewBlobs(blob, func(tx *bolt.Tx) error {
		v := tx.Bucket(bBodies).Get(u64(blob))
		if v == nil {
			return fmt.Errorf("body %d: %w", blob, ErrNotFound)
		}
		rec, err := decodeBody(v)
		if err != nil {
			return err
		}
		raw, inBuf, err := s.blobs.read(tx, blob, nil)
		if err != nil {
			return err
		}
		if body = raw; !inBuf {
			body = bytes.Clone(raw)
		}
		structure = rec.Structure
		return nil
	})
	return body, structure, err
}

// Structure returns a copy of a body's precomputed structure without
// reading the body.
func (s *Store) Structure(blob uint64) ([]byte, error) {
	var out []byte
	err := s.viewBlobs(blob, func(tx *bolt.Tx) error {
		v := tx.Bucket(bBodies).Get(u64(blob))
		if v == nil {
			return fmt.Errorf("body %d: %w", blob, ErrNotFound)
		}
		rec, err := decodeBody(v)
		if err == nil {
			out = rec.Structure
		}
		return err
	})
	return out, err
}

// FlagOp says how SetFlags combines flags with a message's own.
type FlagOp int

// The STORE operations of RFC 9051 §6.4.6.
const (
	FlagsReplace FlagOp = iota
	FlagsAdd
	FlagsRemove
)

// FlagUpdate is one message's flags after SetFlags.
type FlagUpdate struct {
	UID     uint32
	Flags   []string
	ModSeq  uint64
	Blob    uint64
	Changed bool // false when the message already had these flags
}

// SetFlags changes the flags of the given messages of one mailbox (UIDs
// that no longer exist are skipped) and returns the flags of every
// message it found, marking those it changed.
func (s *Store) SetFlags(ctx context.Context, acct uint64, mbox uint32, uids []uint32, op FlagOp, flags []string) ([]FlagUpdate, error) {
	out, _, err := s.setFlags(ctx, acct, mbox, uids, op, flags, nil)
	return out, err
}

// SetFlagsUnchangedSince is SetFlags for STORE (UNCHANGEDSINCE n) (RFC
// 7162 §3.1.3): a message whose modseq is above unchangedSince is left
// alone and returned in modified; the test and the change are one
// transaction, so no change can come between them.
func (s *Store) SetFlagsUnchangedSince(ctx context.Context, acct uint64, mbox uint32, uids []uint32, op FlagOp, flags []string, unchangedSince uint64) (updates []FlagUpdate, modified []uint32, err error) {
	return s.setFlags(ctx, acct, mbox, uids, op, flags, &unchangedSince)
}

func (s *Store) setFlags(ctx context.Context, acct uint64, mbox uint32, uids []uint32, op FlagOp, flags []string, unchangedSince *uint64) ([]FlagUpdate, []uint32, error) {
	flags = normalizeFlags(flags)
	var out []FlagUpdate
	var modified []uint32
	err := s.update(ctx, func(t *txn) error {
		out, modified = out[:0], modified[:0]
		changed := false
		mb, err := t.getMailbox(acct, mbox)
		if err != nil {
			return err
		}
		msgs := t.tx.Bucket(bMail)
		for _, uid := range uids {
			if uid == 0 || uid >= mboxRecordUID {
				continue
			}
			k := msgKey(acct, mbox, uid)
			v := msgs.Get(k)
			if v == nil {
				continue
			}
			m, err := decodeMessage(uid, v)
			if err != nil {
				return err
			}
			if unchangedSince != nil && m.ModSeq > *unchangedSince {
				modified = append(modified, uid)
				continue
			}
			next := keepOfficial(m.Official(), applyFlags(m.Flags, op, flags))
			if sameFlags(m.Flags, next) {
				out = append(out, FlagUpdate{UID: uid, Flags: m.Flags, ModSeq: m.ModSeq, Blob: m.Blob})
				continue
			}
			if !changed && op != FlagsRemove {
				if err := t.addKeywords(acct, mbox, flags); err != nil {
					return err
				}
			}
			wasSeen := m.Seen()
			m.Flags = next
			mb.HighestModSeq++
			m.ModSeq = mb.HighestModSeq
			switch isSeen := m.Seen(); {
			case wasSeen && !isSeen:
				mb.Unseen++
			case !wasSeen && isSeen:
				mb.Unseen--
			}
			if err := msgs.Put(k, encodeMessage(m)); err != nil {
				return err
			}
			t.notify(Change{Kind: FlagsChanged, Account: acct, Mailbox: mbox, UID: uid, Flags: m.Flags, ModSeq: m.ModSeq})
			out = append(out, FlagUpdate{UID: uid, Flags: m.Flags, ModSeq: m.ModSeq, Blob: m.Blob, Changed: true})
			changed = true
		}
		if !changed {
			return nil
		}
		return t.putMailbox(acct, mb)
	})
	return out, modified, err
}

// keepOfficial makes $Official what it was: clients can neither set nor
// clear it.
func keepOfficial(was bool, flags []string) []string {
	flags = slices.DeleteFunc(flags, func(f string) bool { return strings.EqualFold(f, KeywordOfficial) })
	if was {
		flags = append(flags, KeywordOfficial)
	}
	return flags
}

func applyFlags(cur []string, op FlagOp, flags []string) []string {
	switch op {
	case FlagsAdd:
		return normalizeFlags(append(slices.Clone(cur), flags...))
	case FlagsRemove:
		return slices.DeleteFunc(slices.Clone(cur), func(f string) bool { return hasFlag(flags, f) })
	}
	return slices.Clone(flags)
}

func sameFlags(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for _, f := range a {
		if !hasFlag(b, f) {
			return false
		}
	}
	return true
}

// Expunge removes the given messages of one mailbox (UIDs that no longer
// exist are skipped), releases their bodies and quota, and returns the
// UIDs it removed in ascending order. Callers pass bounded batches.
func (s *Store) Expunge(ctx context.Context, acct uint64, mbox uint32, uids []uint32) ([]uint32, error) {
	return s.expungeIf(ctx, acct, mbox, uids, false)
}

// expungeIf is Expunge, restricted to messages flagged \Deleted when
// onlyDeleted is set (checked inside the transaction, so a flag cleared
// concurrently saves the message).
func (s *Store) expungeIf(ctx context.Context, acct uint64, mbox uint32, uids []uint32, onlyDeleted bool) ([]uint32, error) {
	var out []uint32
	err := s.update(ctx, func(t *txn) error {
		out = out[:0]
		mb, err := t.getMailbox(acct, mbox)
		if err != nil {
			return err
		}
		u, err := t.getUsage(acct)
		if err != nil {
			return err
		}
		sorted := slices.Clone(uids)
		slices.Sort(sorted)
		for _, uid := range slices.Compact(sorted) {
			if onlyDeleted {
				v := t.tx.Bucket(bMail).Get(msgKey(acct, mbox, uid))
				if len(v) < 3 || binary.BigEndian.Uint16(v[1:])&bitDeleted == 0 {
					continue
				}
			}
			removed, err := t.removeMessage(acct, mb, u, uid)
			if err != nil {
				return err
			}
			if removed {
				out = append(out, uid)
			}
		}
		if len(out) == 0 {
			return nil
		}
		// Each removal raised HIGHESTMODSEQ (recordVanished).
		if err := t.putMailbox(acct, mb); err != nil {
			return err
		}
		return t.putUsage(acct, u)
	})
	return out, err
}

// removeMessage deletes one message record, its index entry and body
// reference, takes it off the counters mb and u, and records its
// expunge at a new modseq of mb (vanished.go); the caller writes mb and
// u back.
func (t *txn) removeMessage(acct uint64, mb *Mailbox, u *Usage, uid uint32) (bool, error) {
	msgs := t.tx.Bucket(bMail)
	if uid == 0 || uid >= mboxRecordUID {
		return false, nil
	}
	k := msgKey(acct, mb.ID, uid)
	v := msgs.Get(k)
	if v == nil {
		return false, nil
	}
	m, err := decodeMessage(uid, v)
	if err != nil {
		return false, err
	}
	if err := msgs.Delete(k); err != nil {
		return false, err
	}
	if m.Official() {
		if err := t.dropOfficialCopy(acct, m.Blob); err != nil {
			return false, err
		}
	}
	if err := t.dropBodyRef(m.Blob); err != nil {
		return false, err
	}
	mb.Messages--
	mb.Size -= m.Size
	if !m.Seen() {
		mb.Unseen--
	}
	u.Bytes -= m.Size
	u.Messages--
	modseq, err := t.recordVanished(acct, mb, uid)
	if err != nil {
		return false, err
	}
	t.notify(Change{Kind: MessageRemoved, Account: acct, Mailbox: mb.ID, UID: uid, ModSeq: modseq})
	return true, nil
}

// BodyByHash finds a stored body's blob id by its SHA-256.
func (s *Store) BodyByHash(hash [32]byte) (uint64, error) {
	var id uint64
	err := s.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bBodyHash).Get(hash[:])
		if v == nil {
			return fmt.Errorf("body %x: %w", hash[:8], ErrNotFound)
		}
		id = decodeU64(v)
		return nil
	})
	return id, err
}

// UIDs returns every UID of a mailbox in ascending order, reading keys
// only.
func (s *Store) UIDs(acct uint64, mbox uint32) ([]uint32, error) {
	var out []uint32
	err := s.viewFor(acct, func(tx *bolt.Tx) error {
		end := mboxKey(acct, mbox)
		c := tx.Bucket(bMail).Cursor()
		for k, _ := c.Seek(msgKey(acct, mbox, 1)); k != nil && bytes.Compare(k, end) < 0; k, _ = c.Next() {
			out = append(out, binary.BigEndian.Uint32(k[12:]))
		}
		return nil
	})
	return out, err
}

// FirstUnseen returns the lowest UID without \Seen, or 0.
func (s *Store) FirstUnseen(acct uint64, mbox uint32) (uint32, error) {
	var uid uint32
	err := s.viewFor(acct, func(tx *bolt.Tx) error {
		end := mboxKey(acct, mbox)
		c := tx.Bucket(bMail).Cursor()
		for k, v := c.Seek(msgKey(acct, mbox, 1)); k != nil && bytes.Compare(k, end) < 0; k, v = c.Next() {
			// The system flag bits follow the version byte.
			if len(v) >= 3 && binary.BigEndian.Uint16(v[1:])&bitSeen == 0 {
				uid = binary.BigEndian.Uint32(k[12:])
				return nil
			}
		}
		return nil
	})
	return uid, err
}

// MessagesByUID returns the messages among uids (ascending, distinct) that
// still exist, in UID order.
func (s *Store) MessagesByUID(acct uint64, mbox uint32, uids []uint32) ([]Message, error) {
	out := make([]Message, 0, len(uids))
	if len(uids) == 0 {
		return out, nil
	}
	err := s.viewFor(acct, func(tx *bolt.Tx) error {
		c := tx.Bucket(bMail).Cursor()
		end := mboxKey(acct, mbox)
		i := 0
		k, v := c.Seek(msgKey(acct, mbox, uids[0]))
		for i < len(uids) && k != nil && bytes.Compare(k, end) < 0 {
			switch uid := binary.BigEndian.Uint32(k[12:]); {
			case uid < uids[i]:
				// A cursor step is cheaper than a seek for near UIDs.
				if uids[i]-uid > 64 {
					k, v = c.Seek(msgKey(acct, mbox, uids[i]))
				} else {
					k, v = c.Next()
				}
			case uid == uids[i]:
				out = append(out, Message{})
				if err := decodeMessageInto(&out[len(out)-1], uid, v); err != nil {
					return err
				}
				i++
				k, v = c.Next()
			default: // uids[i] no longer exists
				i++
			}
		}
		return nil
	})
	return out, err
}

// ExpungeDeleted removes the messages flagged \Deleted (only those among
// uids when uids is not nil), in bounded transactions, and returns the
// UIDs removed.
func (s *Store) ExpungeDeleted(ctx context.Context, acct uint64, mbox uint32, only func(uint32) bool) ([]uint32, error) {
	var all []uint32
	after := uint32(0)
	for {
		var batch []uint32
		var last uint32
		err := s.viewFor(acct, func(tx *bolt.Tx) error {
			end := mboxKey(acct, mbox)
			c := tx.Bucket(bMail).Cursor()
			n := 0
			for k, v := c.Seek(msgKey(acct, mbox, after+1)); k != nil && bytes.Compare(k, end) < 0 && n < deleteBatch*4; k, v = c.Next() {
				n++
				uid := binary.BigEndian.Uint32(k[12:])
				last = uid
				if len(v) >= 3 && binary.BigEndian.Uint16(v[1:])&bitDeleted != 0 && (only == nil || only(uid)) {
					batch = append(batch, uid)
					if len(batch) == deleteBatch {
						break
					}
				}
			}
			return nil
		})
		if err != nil {
			return all, err
		}
		if len(batch) > 0 {
			// Expunge checks \Deleted again inside its transaction.
			removed, err := s.expungeIf(ctx, acct, mbox, batch, true)
			all = append(all, removed...)
			if err != nil {
				return all, err
			}
		}
		if last == 0 || last == after {
			return all, nil
		}
		after = last
	}
}

// ReadBodies calls fn for each blob with its bytes and stored structure,
// all inside one read transaction: the slices are valid only while fn
// runs and must not be kept. It is for scanning (SEARCH), where copying
// every body would cost more than the scan. Callers pass bounded batches
// and fn must not block.
func (s *Store) ReadBodies(ids []uint64, fn func(i int, body, structure []byte) error) error {
	return s.readBodies(ids, true, fn)
}

// ReadStructures is ReadBodies without the bodies: fn gets a nil body.
func (s *Store) ReadStructures(ids []uint64, fn func(i int, body, structure []byte) error) error {
	return s.readBodies(ids, false, fn)
}

// bodyRecordHead is the fixed part of a body record before its structure:
// version, refs, size, hash.
const bodyRecordHead = 1 + 8 + 8 + 32

func (s *Store) readBodies(ids []uint64, withBody bool, fn func(i int, body, structure []byte) error) error {
	return s.viewBlobs(slices.Max(append([]uint64{0}, ids...)), func(tx *bolt.Tx) error {
		bodies := lookup{tx.Bucket(bBodies).Cursor()}
		blobs := s.blobs.reader(tx)
		var scratch []byte // segment bodies, one at a time
		for i, id := range ids {
			v := bodies.get(u64(id))
			if v == nil {
				continue
			}
			if len(v) < bodyRecordHead || v[0] != bodyRecordV1 {
				return fmt.Errorf("body %d: %w", id, ErrCorrupt)
			}
			var raw []byte
			if withBody {
				var err error
				var inBuf bool
				if raw, inBuf, err = blobs.read(id, scratch); errors.Is(err, ErrCorrupt) {
					// A damaged body costs its own message only: the
					// caller sees it as missing.
					s.log.Error("store: a body cannot be read; its message is skipped (abox check names it)", "body", id, "err", err)
					continue
				} else if err != nil {
					return err
				}
				if inBuf {
					scratch = raw
				}
			}
			if err := fn(i, raw, v[bodyRecordHead:]); err != nil {
				return err
			}
		}
		return nil
	})
}

// Structures returns copies of the precomputed structures of several
// bodies, read in one transaction (nil where a body is missing).
func (s *Store) Structures(ids []uint64) ([][]byte, error) {
	out := make([][]byte, len(ids))
	err := s.viewBlobs(slices.Max(append([]uint64{0}, ids...)), func(tx *bolt.Tx) error {
		bodies := lookup{tx.Bucket(bBodies).Cursor()}
		for i, id := range ids {
			v := bodies.get(u64(id))
			if v == nil {
				continue
			}
			rec, err := decodeBody(v)
			if err != nil {
				return err
			}
			out[i] = rec.Structure
		}
		return nil
	})
	return out, err
}

// lookup reads many keys of one bucket through one cursor. bbolt's
// Bucket.Get makes a cursor per call and grows its search stack each
// time: in SEARCH HEADER over 10,000 messages those allocations were a
// quarter of the CPU. A cursor's Seek reuses its stack.
type lookup struct{ c *bolt.Cursor }

// get returns the value of key, or nil.
func (l lookup) get(key []byte) []byte {
	k, v := l.c.Seek(key)
	if !bytes.Equal(k, key) {
		return nil
	}
	return v
}
