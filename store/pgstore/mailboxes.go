package pgstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"abox/store"
)

// mailboxCols are the columns scanMailbox reads, in its order.
const mailboxCols = `id, name, special_use, uid_validity, uid_next, messages, size, unseen, highest_modseq,
	subscribed, deleting, created_at, recent_uid`

func scanMailbox(row pgx.Row) (store.Mailbox, error) {
	var mb store.Mailbox
	var id int32
	var uv, next, recent int64
	var msgs, unseen int32
	var created time.Time
	err := row.Scan(&id, &mb.Name, &mb.SpecialUse, &uv, &next, &msgs, &mb.Size, &unseen, &mb.HighestModSeq,
		&mb.Subscribed, &mb.Deleting, &created, &recent)
	mb.ID, mb.UIDValidity, mb.UIDNext, mb.RecentUID = uint32(id), uint32(uv), uint32(next), uint32(recent)
	mb.Messages, mb.Unseen = uint32(msgs), uint32(unseen)
	mb.CreatedAt = created.UTC()
	return mb, err
}

// getMailbox reads one mailbox by id (one being deleted included, as
// the embedded store's record is); forUpdate locks its row until the
// transaction ends. The caller that also changes usage locks the usage
// row first.
func getMailbox(ctx context.Context, q querier, acct uint64, id uint32, forUpdate bool) (store.Mailbox, error) {
	sql := `SELECT ` + mailboxCols + ` FROM mailboxes WHERE account = $1 AND id = $2`
	if forUpdate {
		sql += ` FOR UPDATE`
	}
	mb, err := scanMailbox(q.QueryRow(ctx, sql, acct, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return mb, fmt.Errorf("mailbox %d: %w", id, store.ErrNoMailbox)
	}
	return mb, err
}

// mailboxByName reads one mailbox by name (not one being deleted).
func mailboxByName(ctx context.Context, q querier, acct uint64, name string, forUpdate bool) (store.Mailbox, error) {
	name, err := store.CanonicalMailboxName(name)
	if err != nil {
		return store.Mailbox{}, err
	}
	sql := `SELECT ` + mailboxCols + ` FROM mailboxes WHERE account = $1 AND name = $2 AND NOT deleting`
	if forUpdate {
		sql += ` FOR UPDATE`
	}
	mb, err := scanMailbox(q.QueryRow(ctx, sql, acct, name))
	if errors.Is(err, pgx.ErrNoRows) {
		return mb, fmt.Errorf("%s: %w", name, store.ErrNoMailbox)
	}
	return mb, err
}

// Mailboxes lists an account's mailboxes in id order.
func (s *Store) Mailboxes(acct uint64) ([]store.Mailbox, error) {
	rows, err := s.pool.Query(context.Background(), `SELECT `+mailboxCols+` FROM mailboxes
		WHERE account = $1 AND NOT deleting ORDER BY id`, acct)
	if err != nil {
		return nil, storageErr(err)
	}
	defer rows.Close()
	var out []store.Mailbox
	for rows.Next() {
		mb, err := scanMailbox(rows)
		if err != nil {
			return nil, storageErr(err)
		}
		out = append(out, mb)
	}
	return out, storageErr(rows.Err())
}

// MailboxByName returns one mailbox of an account.
func (s *Store) MailboxByName(acct uint64, name string) (store.Mailbox, error) {
	mb, err := mailboxByName(context.Background(), s.pool, acct, name, false)
	return mb, storageErr(err)
}

// lockUsage locks an account's usage row, the lock every change to its
// counters takes first (before any mailbox row).
func lockUsage(ctx context.Context, tx pgx.Tx, acct uint64) error {
	var one int
	err := tx.QueryRow(ctx, `SELECT 1 FROM usage WHERE account = $1 FOR UPDATE`, acct).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("usage of account %d: %w", acct, store.ErrNoAccount)
	}
	return err
}
