package pgstore

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"abox/store"
)

// The keywords a mailbox has ever held (store/keywords.go), in
// mailbox_keywords, written by abox_add_keywords
// (migrations/0003_mail.sql) under the mailbox's row lock.

// addKeywords records the keywords among flags that mailbox mbox did
// not have yet; ErrKeywordLimit (nothing written) past the limit. The
// caller holds the mailbox's row lock.
func addKeywords(ctx context.Context, tx pgx.Tx, acct uint64, mbox uint32, flags []string) error {
	has := false
	for _, f := range flags {
		if f != "" && f[0] != '\\' {
			has = true
			break
		}
	}
	if !has {
		return nil
	}
	var ok bool
	if err := tx.QueryRow(ctx, `SELECT abox_add_keywords($1, $2, $3)`, acct, int32(mbox), flags).Scan(&ok); err != nil {
		return err
	}
	if !ok {
		return store.ErrKeywordLimit
	}
	return nil
}

// Keywords returns the keywords a mailbox has held, in the order first
// seen.
func (s *Store) Keywords(acct uint64, mbox uint32) ([]string, error) {
	var kws []string
	err := s.pool.QueryRow(context.Background(), `SELECT coalesce((SELECT keywords FROM mailbox_keywords WHERE account = $1 AND mailbox = $2), '{}')`,
		acct, int32(mbox)).Scan(&kws)
	if err != nil {
		return nil, storageErr(err)
	}
	if len(kws) == 0 {
		return nil, nil
	}
	return kws, nil
}

func errNoUsage(acct uint64) error {
	return fmt.Errorf("usage of account %d: %w", acct, store.ErrNoAccount)
}

func errNoMailbox(id uint32) error { return fmt.Errorf("mailbox %d: %w", id, store.ErrNoMailbox) }

func errMailboxFull(name string) error {
	return fmt.Errorf("mailbox %s has used every UID: %w", name, store.ErrMailboxFull)
}
