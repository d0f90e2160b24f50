package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Expunged UIDs are remembered per mailbox for QRESYNC's VANISHED
// (EARLIER) (RFC 7162 §3.2.5, §3.2.6): "which UIDs went since modseq M"
// is a seek and a short walk, never a scan of the mailbox.
//
// Bucket vanished:
//
//	acct(8) mbox(4) modseq(8) -> uid(4) unix(8)   one message expunged at modseq
//	acct(8) mbox(4) 0(8)      -> floor(8)         every expunge above floor is recorded
//
// Every expunge takes a modseq of its own (an expunge changes the
// mailbox, so it raises HIGHESTMODSEQ, RFC 7162 §3.2), so one key per
// expunged message, written in the expunge's own transaction. Records older than VanishedRetention are
// pruned by the sweep (PruneVanished), which raises the floor; a client
// whose modseq is below the floor is answered from what is missing
// below UIDNEXT instead (RFC 7162 §3.2.5.1 allows reporting UIDs that
// never existed). A mailbox created before schema 2 starts with its
// floor at its HIGHESTMODSEQ of the upgrade.
var bVanished = []byte("vanished")

// VanishedRetention is how long an expunge stays known exactly. A
// client that has not resynchronised a mailbox for longer gets the
// UIDs missing below UIDNEXT instead: more bytes, never a wrong answer.
const VanishedRetention = 90 * 24 * time.Hour

func vanishedKey(acct uint64, mbox uint32, modseq uint64) []byte {
	k := make([]byte, 20)
	binary.BigEndian.PutUint64(k, acct)
	binary.BigEndian.PutUint32(k[8:], mbox)
	binary.BigEndian.PutUint64(k[12:], modseq)
	return k
}

// recordVanished gives uid's expunge the mailbox's next modseq and
// remembers it. A mailbox being deleted remembers nothing (its records
// go with it). The caller writes mb back.
func (t *txn) recordVanished(acct uint64, mb *Mailbox, uid uint32) (uint64, error) {
	mb.HighestModSeq++
	if mb.Deleting {
		return mb.HighestModSeq, nil
	}
	v := make([]byte, 12)
	binary.BigEndian.PutUint32(v, uid)
	binary.BigEndian.PutUint64(v[4:], uint64(t.now.Unix()))
	return mb.HighestModSeq, t.tx.Bucket(bVanished).Put(vanishedKey(acct, mb.ID, mb.HighestModSeq), v)
}

// Vanished returns the UIDs expunged from a mailbox after modseq since,
// ascending. complete is false when since is older than what is still
// remembered (the records were pruned, or predate schema 2): then uids
// is nil and the caller must fall back (VanishedFallback).
func (s *Store) Vanished(acct uint64, mbox uint32, since uint64) (uids []uint32, complete bool, err error) {
	err = s.viewFor(acct, func(tx *bolt.Tx) error {
		b := tx.Bucket(bVanished)
		if b == nil {
			return nil // a schema 1 file opened read-only: nothing known
		}
		c := b.Cursor()
		prefix := vanishedKey(acct, mbox, 0)[:12]
		if k, v := c.Seek(vanishedKey(acct, mbox, 0)); k != nil && bytes.Equal(k, vanishedKey(acct, mbox, 0)) && len(v) == 8 {
			if since < decodeU64(v) {
				return nil
			}
		}
		complete = true
		for k, v := c.Seek(vanishedKey(acct, mbox, since+1)); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			if len(v) >= 4 {
				uids = append(uids, binary.BigEndian.Uint32(v))
			}
		}
		return nil
	})
	slices.Sort(uids)
	return uids, complete, err
}

// PruneVanished forgets the expunges recorded before cutoff, in bounded
// transactions, raising each mailbox's floor past them. It returns how
// many it forgot.
func (s *Store) PruneVanished(ctx context.Context, cutoff time.Time) (int, error) {
	total := 0
	var after []byte
	for {
		n, next, err := s.pruneVanishedBatch(ctx, cutoff, after)
		total += n
		if err != nil || next == nil {
			return total, err
		}
		after = next
	}
}

// pruneVanishedBatch walks up to deleteBatch*4 records from after and
// deletes the old ones; it returns where to go on (nil at the end).
func (s *Store) pruneVanishedBatch(ctx context.Context, cutoff time.Time, after []byte) (int, []byte, error) {
	var n int
	var next []byte
	err := s.update(ctx, func(t *txn) error {
		n, next = 0, nil
		b := t.tx.Bucket(bVanished)
		c := b.Cursor()
		k, v := c.First()
		if after != nil {
			k, v = c.Seek(after)
		}
		var doomed [][]byte
		floors := map[string]uint64{}
		for seen := 0; k != nil; k, v = c.Next() {
			if seen++; seen > deleteBatch*4 {
				next = bytes.Clone(k)
				break
			}
			if len(k) != 20 || len(v) != 12 || binary.BigEndian.Uint64(k[12:]) == 0 {
				continue
			}
			if int64(binary.BigEndian.Uint64(v[4:])) >= cutoff.Unix() {
				continue
			}
			doomed = append(doomed, bytes.Clone(k))
			floors[string(k[:12])] = max(floors[string(k[:12])], binary.BigEndian.Uint64(k[12:]))
		}
		for _, k := range doomed {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		for prefix, floor := range floors {
			fk := append([]byte(prefix), make([]byte, 8)...)
			if old := b.Get(fk); len(old) == 8 && decodeU64(old) >= floor {
				continue
			}
			if err := b.Put(fk, u64(floor)); err != nil {
				return err
			}
		}
		n = len(doomed)
		return nil
	})
	return n, next, err
}

// dropVanished deletes up to n of a mailbox's records (its floor
// included) and returns how many it deleted: a deleted mailbox's go
// with it, in batches.
func (t *txn) dropVanished(acct uint64, mbox uint32, n int) (int, error) {
	c := t.tx.Bucket(bVanished).Cursor()
	prefix := vanishedKey(acct, mbox, 0)[:12]
	var keys [][]byte
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) && len(keys) < n; k, _ = c.Next() {
		keys = append(keys, bytes.Clone(k))
	}
	for _, k := range keys {
		if err := t.tx.Bucket(bVanished).Delete(k); err != nil {
			return 0, err
		}
	}
	return len(keys), nil
}

// migrateVanished is the step from schema 1 to 2: expunges before it
// were not recorded, so every existing mailbox's floor is its
// HIGHESTMODSEQ now.
func migrateVanished(tx *bolt.Tx) error {
	b, err := tx.CreateBucketIfNotExists(bVanished)
	if err != nil {
		return err
	}
	return tx.Bucket(bMail).ForEach(func(k, v []byte) error {
		if len(k) != 16 {
			return nil
		}
		acct, mbox, uid := parseMsgKey(k)
		if uid != mboxRecordUID || mbox == 0 {
			return nil
		}
		mb, err := decodeMailbox(mbox, v)
		if err != nil {
			return err
		}
		return b.Put(vanishedKey(acct, mbox, 0), u64(mb.HighestModSeq))
	})
}

// checkVanished verifies the records against the mailboxes: each names
// an existing mailbox, a modseq it has reached, a UID below its UIDNEXT
// that is no longer there.
func (c *checker) checkVanished() {
	mail := c.tx.Bucket(bMail)
	_ = c.tx.Bucket(bVanished).ForEach(func(k, v []byte) error {
		if len(k) != 20 {
			c.problem("vanished record with malformed key %x", k)
			return nil
		}
		acct, mbox := binary.BigEndian.Uint64(k), binary.BigEndian.Uint32(k[8:])
		modseq := binary.BigEndian.Uint64(k[12:])
		raw := mail.Get(mboxKey(acct, mbox))
		if raw == nil {
			c.problem("vanished record for mailbox %d/%d, which does not exist", acct, mbox)
			return nil
		}
		mb, err := decodeMailbox(mbox, raw)
		if err != nil {
			return nil // reported by the mailbox walk
		}
		switch {
		case modseq == 0 && len(v) != 8, modseq != 0 && len(v) != 12:
			c.problem("mailbox %d/%s: malformed vanished record at modseq %d", acct, mb.Name, modseq)
		case modseq == 0 && decodeU64(v) > mb.HighestModSeq:
			c.problem("mailbox %d/%s: vanished floor %d above HIGHESTMODSEQ %d", acct, mb.Name, decodeU64(v), mb.HighestModSeq)
		case modseq > mb.HighestModSeq:
			c.problem("mailbox %d/%s: expunge at modseq %d above HIGHESTMODSEQ %d", acct, mb.Name, modseq, mb.HighestModSeq)
		case modseq != 0:
			uid := binary.BigEndian.Uint32(v)
			if uid == 0 || uid >= mb.UIDNext {
				c.problem("mailbox %d/%s: expunged UID %d not below UIDNEXT %d", acct, mb.Name, uid, mb.UIDNext)
			} else if mail.Get(msgKey(acct, mbox, uid)) != nil {
				c.problem("mailbox %d/%s: UID %d recorded as expunged is still there", acct, mb.Name, uid)
			}
		}
		return nil
	})
}

// msgModSeqAt is where a version 1 message record keeps its modseq
// (records.go: version, flag bits, date, zone, added, size, blob).
const msgModSeqAt = 1 + 2 + 8 + 2 + 8 + 8 + 8

// UIDsChangedSince returns every UID of a mailbox and the messages
// whose modseq is above since, in UID order, in one walk: what a SELECT
// (QRESYNC ...) needs (RFC 7162 §3.2.5), for about the cost of a plain
// SELECT's read. Each record's modseq is read in place and only the
// changed ones are decoded.
func (s *Store) UIDsChangedSince(acct uint64, mbox uint32, since uint64) (uids []uint32, changed []Message, err error) {
	err = s.viewFor(acct, func(tx *bolt.Tx) error {
		end := mboxKey(acct, mbox)
		c := tx.Bucket(bMail).Cursor()
		for k, v := c.Seek(msgKey(acct, mbox, 1)); k != nil && bytes.Compare(k, end) < 0; k, v = c.Next() {
			uid := binary.BigEndian.Uint32(k[12:])
			uids = append(uids, uid)
			if len(v) >= msgModSeqAt+8 && v[0] == msgRecordV1 && binary.BigEndian.Uint64(v[msgModSeqAt:]) <= since {
				continue
			}
			var m Message
			if err := decodeMessageInto(&m, uid, v); err != nil {
				return err
			}
			if m.ModSeq > since {
				changed = append(changed, m)
			}
		}
		return nil
	})
	return uids, changed, err
}
