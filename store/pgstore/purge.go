package pgstore

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"abox/accounts"
	"abox/store"
)

// Purging an account (store/sweep.go's PurgeAccount and DestroySealed):
// the tombstone first, then the content in bounded transactions, so no
// transaction holds locks long enough to stall delivery and a purge
// interrupted anywhere is finished by the next DestroySealed.

// purgeBatch bounds the rows one transaction of a purge deletes (the
// embedded store's deleteBatch).
const purgeBatch = 2000

// PurgeAccount ends an account's deletion grace (user agreement
// 2.12.1.2): its content is deleted in bounded batches, its personal
// data cleared, and it becomes a purged tombstone (address and dates)
// whose login is free to register again. With seal > 0 the content is
// kept sealed (invisible, its space still counted) until that much
// later and destroyed by DestroySealed.
func (s *Store) PurgeAccount(ctx context.Context, address string, at time.Time, seal time.Duration, a store.Audit) (accounts.Account, error) {
	// The tombstone is written first, before any content goes: a purge
	// that cannot happen (not pending deletion, grace not over)
	// destroys nothing. Without a hold the content is sealed until now,
	// so a purge interrupted before its content is gone is finished by
	// the next DestroySealed.
	if seal < 0 {
		seal = 0
	}
	acct, err := s.UpdateAccount(ctx, address, "user.purge", func(x *accounts.Account) error {
		if err := x.Purge(at); err != nil {
			return err
		}
		// The consent (the subscriber's name and IIN) stays sealed
		// with the content until it is destroyed.
		x.SealedUntil = at.Add(seal).UTC()
		return nil
	}, a)
	if err != nil || seal > 0 {
		return acct, err
	}
	if err := s.destroyContent(ctx, acct.ID); err != nil {
		return acct, err
	}
	return s.UpdateAccountByID(ctx, acct.ID, "", func(x *accounts.Account) error {
		x.SealedUntil, x.Consent = time.Time{}, nil
		return nil
	}, a)
}

// errDestroyed stops an update of a tombstone whose content another
// node destroyed meanwhile.
var errDestroyed = errors.New("sealed content already destroyed")

// DestroySealed destroys the content of purged accounts whose seal ended
// before at, and returns their addresses. It walks accounts_sealed (the
// tombstones still holding content), never every purged account.
func (s *Store) DestroySealed(ctx context.Context, at time.Time, a store.Audit) ([]string, error) {
	var done []string
	var after uint64
	for {
		rows, err := s.pool.Query(ctx, `SELECT data FROM accounts WHERE state = 'purged' AND data ? 'sealed_until' AND id > $1
			ORDER BY id LIMIT 500`, after)
		if err != nil {
			return done, storageErr(err)
		}
		page, err := scanAccounts(rows)
		if err != nil || len(page) == 0 {
			return done, err
		}
		for _, acct := range page {
			after = acct.ID
			if acct.SealedUntil.IsZero() || !acct.SealedUntil.Before(at) {
				continue
			}
			if err := s.destroyContent(ctx, acct.ID); err != nil {
				return done, err
			}
			_, err := s.UpdateAccountByID(ctx, acct.ID, "user.destroy-sealed", func(x *accounts.Account) error {
				if x.SealedUntil.IsZero() {
					return errDestroyed
				}
				x.SealedUntil, x.Consent = time.Time{}, nil
				return nil
			}, a)
			if errors.Is(err, errDestroyed) {
				continue
			}
			if err != nil {
				return done, err
			}
			done = append(done, acct.Address())
		}
	}
}

// destroyContent deletes every mailbox and message of an account, a
// batch per transaction, releasing body references; then its login
// history, its signed consents (the certificate names the subscriber
// and carries the IIN) and its usage record. Each step can be run again
// after an interruption.
func (s *Store) destroyContent(ctx context.Context, acct uint64) error {
	for {
		var mbox uint32
		err := s.pool.QueryRow(ctx, `SELECT id FROM mailboxes WHERE account = $1 ORDER BY id LIMIT 1`, acct).Scan(&mbox)
		if errors.Is(err, pgx.ErrNoRows) {
			break
		}
		if err != nil {
			return storageErr(err)
		}
		for {
			var done, trashed bool
			err := s.tx(ctx, func(tx pgx.Tx) error {
				var err error
				done, trashed, err = destroyMailboxBatch(ctx, tx, acct, mbox)
				return err
			})
			if err != nil {
				return err
			}
			if trashed {
				s.emptyTrashSoon()
			}
			if done {
				break
			}
		}
	}
	for {
		var more bool
		err := s.tx(ctx, func(tx pgx.Tx) error {
			var err error
			more, err = deleteLogins(ctx, tx, acct)
			return err
		})
		if err != nil || !more {
			if err != nil {
				return err
			}
			break
		}
	}
	return s.tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM consent_cms WHERE account = $1`, acct); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM subscriptions_gone WHERE account = $1`, acct); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DELETE FROM usage WHERE account = $1`, acct)
		return err
	})
}

// destroyMailboxBatch deletes up to purgeBatch expunge records or
// messages of a mailbox, and the mailbox itself once it is empty (done).
// The first batch marks it deleting, which frees its name and hides it,
// and tells every node it is gone. trashed says objects went to the
// trash.
func destroyMailboxBatch(ctx context.Context, tx pgx.Tx, acct uint64, mbox uint32) (done, trashed bool, err error) {
	// Locks in the order delivery and the mail area's mailbox deletion
	// take them: the account's usage row, then the mailbox's.
	if _, err := tx.Exec(ctx, `SELECT 1 FROM usage WHERE account = $1 FOR UPDATE`, acct); err != nil {
		return false, false, err
	}
	var deleting bool
	err = tx.QueryRow(ctx, `SELECT deleting FROM mailboxes WHERE account = $1 AND id = $2 FOR UPDATE`, acct, mbox).Scan(&deleting)
	if errors.Is(err, pgx.ErrNoRows) {
		return true, false, nil // another finisher got there first
	}
	if err != nil {
		return false, false, err
	}
	if !deleting {
		if _, err := tx.Exec(ctx, `UPDATE mailboxes SET deleting = true WHERE account = $1 AND id = $2`, acct, mbox); err != nil {
			return false, false, err
		}
		if err := notify(ctx, tx, []store.Change{{Kind: store.MailboxDeleted, Account: acct, Mailbox: mbox}}); err != nil {
			return false, false, err
		}
	}
	// The expunge records first, a batch at a time.
	tag, err := tx.Exec(ctx, `DELETE FROM vanished WHERE (account, mailbox, uid) IN
		(SELECT account, mailbox, uid FROM vanished WHERE account = $1 AND mailbox = $2 LIMIT $3)`, acct, mbox, purgeBatch)
	if err != nil || tag.RowsAffected() == purgeBatch {
		return false, false, err
	}
	rows, err := tx.Query(ctx, `DELETE FROM messages WHERE (account, mailbox, uid) IN
		(SELECT account, mailbox, uid FROM messages WHERE account = $1 AND mailbox = $2 ORDER BY uid LIMIT $3)
		RETURNING blob, size, seen`, acct, mbox, purgeBatch)
	if err != nil {
		return false, false, err
	}
	refs := map[uint64]int{}
	var n, unseen int
	var size int64
	for rows.Next() {
		var blob uint64
		var sz int64
		var seen bool
		if err := rows.Scan(&blob, &sz, &seen); err != nil {
			rows.Close()
			return false, false, err
		}
		refs[blob]++
		n++
		size += sz
		if !seen {
			unseen++
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return false, false, err
	}
	if n > 0 {
		if trashed, err = dropRefs(ctx, tx, refs); err != nil {
			return false, false, err
		}
		if _, err := tx.Exec(ctx, `UPDATE usage SET bytes = bytes - $2, messages = messages - $3 WHERE account = $1`, acct, size, n); err != nil {
			return false, false, err
		}
	}
	if n == purgeBatch {
		_, err := tx.Exec(ctx, `UPDATE mailboxes SET messages = messages - $3, size = size - $4, unseen = unseen - $5
			WHERE account = $1 AND id = $2`, acct, mbox, n, size, unseen)
		return false, trashed, err
	}
	_, err = tx.Exec(ctx, `DELETE FROM mailboxes WHERE account = $1 AND id = $2`, acct, mbox)
	return true, trashed, err
}
