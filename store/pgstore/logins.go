package pgstore

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"abox/store"
)

// Login history (store/logins.go says why it is kept): one row per
// attempt, keyed by account and time, pruned in time order and deleted
// with the account's content.

// RecordLogin adds r to the account's login history. Two records of one
// account at the same nanosecond keep both (the second a nanosecond on).
func (s *Store) RecordLogin(ctx context.Context, acct uint64, r store.LoginRecord) error {
	r.At = r.At.UTC()
	raw, err := json.Marshal(r)
	if err != nil {
		return err
	}
	at := r.At.UnixNano()
	for {
		tag, err := s.pool.Exec(ctx, `INSERT INTO logins (account, at, data) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`, acct, at, raw)
		if err != nil {
			return storageErr(err)
		}
		if tag.RowsAffected() == 1 {
			return nil
		}
		at++
	}
}

// Logins returns the account's login history, newest first, at most
// limit records (0: all).
func (s *Store) Logins(acct uint64, limit int) ([]store.LoginRecord, error) {
	q := `SELECT data FROM logins WHERE account = $1 ORDER BY at DESC`
	args := []any{acct}
	if limit > 0 {
		q += ` LIMIT $2`
		args = append(args, limit)
	}
	rows, err := s.pool.Query(context.Background(), q, args...)
	if err != nil {
		return nil, storageErr(err)
	}
	defer rows.Close()
	var out []store.LoginRecord
	for rows.Next() {
		var raw []byte
		if err := rows.Scan(&raw); err != nil {
			return nil, storageErr(err)
		}
		var r store.LoginRecord
		if err := json.Unmarshal(raw, &r); err != nil {
			return nil, fmt.Errorf("login record of account %d: %w", acct, store.ErrCorrupt)
		}
		out = append(out, r)
	}
	return out, storageErr(rows.Err())
}

// PruneLogins removes login records older than before, at most batch per
// transaction (on logins_at), and returns how many it removed.
func (s *Store) PruneLogins(ctx context.Context, before time.Time, batch int) (int, error) {
	if batch <= 0 {
		return 0, nil
	}
	total := 0
	for {
		tag, err := s.pool.Exec(ctx, `DELETE FROM logins WHERE (account, at) IN
			(SELECT account, at FROM logins WHERE at < $1 ORDER BY at LIMIT $2)`, before.UnixNano(), batch)
		if err != nil {
			return total, storageErr(err)
		}
		n := int(tag.RowsAffected())
		total += n
		if n < batch {
			return total, nil
		}
	}
}

// deleteLogins removes an account's login history, a thousand rows per
// transaction (with its content: an address is personal data).
func deleteLogins(ctx context.Context, tx pgx.Tx, acct uint64) (more bool, err error) {
	tag, err := tx.Exec(ctx, `DELETE FROM logins WHERE (account, at) IN
		(SELECT account, at FROM logins WHERE account = $1 LIMIT 1000)`, acct)
	if err != nil {
		return false, err
	}
	return tag.RowsAffected() == 1000, nil
}
