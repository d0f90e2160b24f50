package store

import (
	"bytes"
	"context"

	bolt "go.etcd.io/bbolt"
)

// \Recent (RFC 3501 §2.3.2): a message is recent in exactly one session,
// the first read-write session to see it (the one that had the mailbox
// selected when it arrived, or else the next to SELECT it), as Dovecot
// decides. The mailbox record keeps one number, RecentUID, the highest
// UID claimed so far; a session claims the UIDs above it in the same
// write as it moves it, so two sessions never both claim one.
//
// A mailbox record written before RecentUID existed reads as "every
// message there is old" (RecentUID = UIDNEXT-1): after an upgrade no
// client sees a whole mailbox turn \Recent, and mail delivered after it
// is recent as usual, since the first write of the record stores the
// number taken at that read.
func decodeRecentUID(d *dec, mb *Mailbox) uint32 {
	if len(d.b) < 4 {
		return mb.UIDNext - 1
	}
	return d.u32()
}

// ClaimRecent claims for the calling session the messages of a mailbox
// with UIDs above its RecentUID and at most upTo (0: all of them), and
// returns the range claimed, (from, to]; from == to when another
// session claimed them first or there were none. The caller is a
// read-write session (SELECT, or the arrival of new messages).
func (s *Store) ClaimRecent(ctx context.Context, acct uint64, mbox uint32, upTo uint32) (from, to uint32, err error) {
	err = s.updateLogged(ctx, func(t *txn) error {
		mb, err := t.getMailbox(acct, mbox)
		if err != nil {
			return err
		}
		from, to = mb.RecentUID, mb.UIDNext-1
		if upTo != 0 {
			to = min(to, upTo)
		}
		if to <= from {
			to = from
			return nil
		}
		mb.RecentUID = to
		return t.putMailbox(acct, mb)
	})
	return from, to, err
}

// UnclaimedRecent counts the messages of a mailbox no session has
// claimed as \Recent yet: what STATUS (RECENT) reports.
func (s *Store) UnclaimedRecent(acct uint64, mbox uint32) (uint32, error) {
	var n uint32
	err := s.viewFor(acct, func(tx *bolt.Tx) error {
		mb, err := (&txn{tx: tx}).getMailbox(acct, mbox)
		if err != nil {
			return err
		}
		end := mboxKey(acct, mbox)
		c := tx.Bucket(bMail).Cursor()
		for k, _ := c.Seek(msgKey(acct, mbox, mb.RecentUID+1)); k != nil && bytes.Compare(k, end) < 0; k, _ = c.Next() {
			n++
		}
		return nil
	})
	return n, err
}

// RecentBoundary returns a mailbox's RecentUID without claiming: a
// read-only session shows the messages above it as \Recent and leaves
// them to the next read-write one.
func (s *Store) RecentBoundary(acct uint64, mbox uint32) (uint32, error) {
	var n uint32
	err := s.viewFor(acct, func(tx *bolt.Tx) error {
		mb, err := (&txn{tx: tx}).getMailbox(acct, mbox)
		if err == nil {
			n = mb.RecentUID
		}
		return err
	})
	return n, err
}
