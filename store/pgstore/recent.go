package pgstore

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
)

// \Recent (RFC 3501 §2.3.2, store/recent.go): a message is recent in
// exactly one session, the first read-write one to see it. The mailbox
// row keeps recent_uid, the highest UID claimed so far; a session
// claims the UIDs above it under the row's lock, so two sessions, on
// one node or two, never both claim one.

// ClaimRecent claims for the calling session the messages of a mailbox
// with UIDs above its recent_uid and at most upTo (0: all of them), and
// returns the range claimed, (from, to]; from == to when another
// session claimed them first or there were none.
func (s *Store) ClaimRecent(ctx context.Context, acct uint64, mbox uint32, upTo uint32) (from, to uint32, err error) {
	err = s.tx(ctx, func(tx pgx.Tx) error {
		mb, err := getMailbox(ctx, tx, acct, mbox, true)
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
		_, err = tx.Exec(ctx, `UPDATE mailboxes SET recent_uid = $3 WHERE account = $1 AND id = $2`, acct, int32(mbox), int64(to))
		return err
	})
	return from, to, err
}

// UnclaimedRecent counts the messages of a mailbox no session has
// claimed as \Recent yet: what STATUS (RECENT) reports.
func (s *Store) UnclaimedRecent(acct uint64, mbox uint32) (uint32, error) {
	var n int64
	err := s.pool.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM messages m
			WHERE m.account = b.account AND m.mailbox = b.id AND m.uid > b.recent_uid)
		FROM mailboxes b WHERE b.account = $1 AND b.id = $2`, acct, int32(mbox)).Scan(&n)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, errNoMailbox(mbox)
	}
	return uint32(n), storageErr(err)
}

// RecentBoundary returns a mailbox's recent_uid without claiming.
func (s *Store) RecentBoundary(acct uint64, mbox uint32) (uint32, error) {
	mb, err := getMailbox(context.Background(), s.pool, acct, mbox, false)
	if err != nil {
		return 0, storageErr(err)
	}
	return mb.RecentUID, nil
}
