package pgstore

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"abox/accounts"
	"abox/store"
)

// Accounts' administration: changes to one account, and the paged
// lists the operator and the sweeps walk (each on an index, a page at
// a time).

// lockAccountByAddress reads and locks the account holding address (a
// purged tombstone that still holds it included) in one round trip.
func lockAccountByAddress(ctx context.Context, tx pgx.Tx, address string) (*accounts.Account, error) {
	login, domain, ok := accounts.SplitAddress(address)
	if !ok {
		return nil, fmt.Errorf("%q: %w", address, store.ErrNoAccount)
	}
	return scanAccount(tx.QueryRow(ctx, `SELECT data FROM accounts WHERE domain = $1 AND login = $2 AND address_held FOR UPDATE`,
		domain, login), address)
}

// UpdateAccount applies fn to an account in one transaction and writes
// the result with the audit entry action (none when action is ""). fn
// may run more than once (a transaction PostgreSQL aborts on a
// conflict is run again) and must only change the account it is given.
// The change is published on the feed (AccountChanged), on every node.
func (s *Store) UpdateAccount(ctx context.Context, address, action string, fn func(*accounts.Account) error, a store.Audit) (accounts.Account, error) {
	return s.updateAccount(ctx, func(tx pgx.Tx) (*accounts.Account, error) {
		return lockAccountByAddress(ctx, tx, address)
	}, action, fn, a)
}

// UpdateAccountByID is UpdateAccount for an account known by id (a
// purged tombstone whose login was registered again has only that).
func (s *Store) UpdateAccountByID(ctx context.Context, id uint64, action string, fn func(*accounts.Account) error, a store.Audit) (accounts.Account, error) {
	return s.updateAccount(ctx, func(tx pgx.Tx) (*accounts.Account, error) {
		return getAccount(ctx, tx, id, true)
	}, action, fn, a)
}

func (s *Store) updateAccount(ctx context.Context, find func(pgx.Tx) (*accounts.Account, error), action string, fn func(*accounts.Account) error, a store.Audit) (accounts.Account, error) {
	var out accounts.Account
	err := s.tx(ctx, func(tx pgx.Tx) error {
		old, err := find(tx)
		if err != nil {
			return err
		}
		acct := *old
		if err := fn(&acct); err != nil {
			return err
		}
		acct.ID, acct.Login, acct.Domain = old.ID, old.Login, old.Domain
		if acct.Class != old.Class {
			var ok bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM classes WHERE name = $1)`, acct.Class).Scan(&ok); err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("class %s: %w", acct.Class, store.ErrNoClass)
			}
		}
		if err := putAccount(ctx, tx, &acct); err != nil {
			return err
		}
		if err := notify(ctx, tx, []store.Change{{Kind: store.AccountChanged, Account: acct.ID}}); err != nil {
			return err
		}
		out = acct
		if action == "" {
			return nil
		}
		// The entry names the account by id as well: a tombstone whose
		// login was registered again (UpdateAccountByID) shares its
		// address with the new account, which a lookup would find.
		return appendAudit(ctx, tx, s.clock(), store.AuditEntry{Actor: a.Actor, Action: action, Account: acct.Address(),
			AccountID: acct.ID, Reason: a.Reason, Staff: a.Staff})
	})
	return out, err
}

// scanAccounts reads rows of one data column into accounts.
func scanAccounts(rows pgx.Rows) ([]accounts.Account, error) {
	var out []accounts.Account
	defer rows.Close()
	for rows.Next() {
		var raw []byte
		if err := rows.Scan(&raw); err != nil {
			return nil, storageErr(err)
		}
		var a accounts.Account
		if err := json.Unmarshal(raw, &a); err != nil {
			return nil, fmt.Errorf("account record: %w", store.ErrCorrupt)
		}
		out = append(out, a)
	}
	return out, storageErr(rows.Err())
}

// ListAccounts returns accounts in id order, at most f.Limit; pass the
// last ID as f.After for the next page. Without a State it walks the
// primary key, with one the state index (accounts_state): a page reads
// its own rows, never the table.
func (s *Store) ListAccounts(f store.AccountFilter) ([]accounts.Account, error) {
	if f.Limit <= 0 {
		f.Limit = 1000
	}
	ctx := context.Background()
	var rows pgx.Rows
	var err error
	if f.State == "" {
		rows, err = s.pool.Query(ctx, `SELECT data FROM accounts WHERE id > $1 ORDER BY id LIMIT $2`, f.After, f.Limit)
	} else {
		rows, err = s.pool.Query(ctx, `SELECT data FROM accounts WHERE state = $1 AND id > $2 ORDER BY state, id LIMIT $3`,
			string(f.State), f.After, f.Limit)
	}
	if err != nil {
		return nil, storageErr(err)
	}
	return scanAccounts(rows)
}

// AccountsUnusedSince returns up to limit accounts (not purged) whose
// last use is before the second of before, oldest first, starting after
// the cursor (afterUse, afterID) that the previous page ended on. It
// walks the last-use index (accounts_last_use).
func (s *Store) AccountsUnusedSince(before time.Time, afterUse time.Time, afterID uint64, limit int) ([]accounts.Account, error) {
	// The embedded store keys its index by whole seconds: a use in the
	// second of before is not before it.
	bound := time.Unix(before.Unix(), 0)
	// The column keeps microseconds; the cursor, from a page's last
	// account, has nanoseconds.
	from := afterUse.Truncate(time.Microsecond)
	rows, err := s.pool.Query(context.Background(), `SELECT data FROM accounts
		WHERE state <> 'purged' AND last_use_at < $1 AND (last_use_at, id) > ($2, $3)
		ORDER BY last_use_at, id LIMIT $4`, bound, from, afterID, limit)
	if err != nil {
		return nil, storageErr(err)
	}
	return scanAccounts(rows)
}

// CountState counts the accounts in a state from its index.
func (s *Store) CountState(st accounts.State) (int64, error) {
	var n int64
	err := s.pool.QueryRow(context.Background(), `SELECT count(*) FROM accounts WHERE state = $1`, string(st)).Scan(&n)
	return n, storageErr(err)
}

// LowSpace is always false here. The embedded store watches the free
// space of the disk its file is on, and refuses deliveries before a
// full disk could corrupt it; PostgreSQL and the object store have no
// local disk this process could watch (they are other machines), and a
// full one fails the transaction cleanly: storageErr turns PostgreSQL's
// disk-full error (class 53) into store.ErrStorageFailing, which the
// protocol layers answer with a temporary error.
func (s *Store) LowSpace() bool { return false }
