package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"abox/accounts"
	"abox/store"
)

// CreateAccount registers a new account with the default mailboxes
// (store.Store.CreateAccount says what the caller has checked). A
// purged account with the same address is forgotten, or, when its
// content is sealed for a legal hold, keeps its row without the
// address.
func (s *Store) CreateAccount(ctx context.Context, in accounts.Account, a store.Audit) (accounts.Account, error) {
	var out accounts.Account
	err := s.tx(ctx, func(tx pgx.Tx) error {
		acct := in
		now := s.clock()
		var ok bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM domains WHERE name = $1)`, acct.Domain).Scan(&ok); err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("domain %s: %w", acct.Domain, store.ErrNoDomain)
		}
		if acct.Class == "" {
			acct.Class = accounts.DefaultClassName
		}
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM classes WHERE name = $1)`, acct.Class).Scan(&ok); err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("class %s: %w", acct.Class, store.ErrNoClass)
		}
		var oldID uint64
		var oldState string
		var sealed bool
		err := tx.QueryRow(ctx, `SELECT id, state, (data->>'sealed_until') IS NOT NULL FROM accounts
			WHERE domain = $1 AND login = $2 AND address_held FOR UPDATE`, acct.Domain, acct.Login).Scan(&oldID, &oldState, &sealed)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
		case err != nil:
			return err
		case oldState != string(accounts.Purged):
			return fmt.Errorf("account %s: %w", acct.Address(), store.ErrExists)
		case sealed:
			if _, err := tx.Exec(ctx, `UPDATE accounts SET address_held = false WHERE id = $1`, oldID); err != nil {
				return err
			}
		default:
			if _, err := tx.Exec(ctx, `DELETE FROM accounts WHERE id = $1`, oldID); err != nil {
				return err
			}
		}
		if err := tx.QueryRow(ctx, `SELECT nextval('account_ids')`).Scan(&acct.ID); err != nil {
			return err
		}
		ts := now.UTC().Truncate(time.Second)
		acct.State = accounts.Active
		acct.CreatedAt = ts
		acct.LastUseAt = ts // registration counts as a use
		if err := putAccount(ctx, tx, &acct); err != nil {
			if isForeignKey(err) {
				// The domain was removed on another node meanwhile.
				return fmt.Errorf("domain %s: %w", acct.Domain, store.ErrNoDomain)
			}
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO usage (account) VALUES ($1)`, acct.ID); err != nil {
			return err
		}
		for _, d := range store.DefaultMailboxes {
			if _, err := createMailbox(ctx, tx, now, acct.ID, d.Name, d.SpecialUse); err != nil {
				return err
			}
		}
		out = acct
		return audit(ctx, tx, now, a, "user.add", acct.Address())
	})
	return out, err
}

// Account looks an account up by address (purged tombstones that still
// hold it included).
func (s *Store) Account(address string) (accounts.Account, error) {
	ctx := context.Background()
	id, err := lookupAddr(ctx, s.pool, address)
	if err != nil {
		return accounts.Account{}, storageErr(err)
	}
	return s.AccountByID(id)
}

// AccountByID looks an account up by its id. Its Version is the row's
// xmin (the transaction that last wrote it), which abox_deliver checks.
func (s *Store) AccountByID(id uint64) (accounts.Account, error) {
	var a accounts.Account
	var raw []byte
	err := s.pool.QueryRow(context.Background(), `SELECT data, xmin::text::bigint FROM accounts WHERE id = $1`, id).Scan(&raw, &a.Version)
	if errors.Is(err, pgx.ErrNoRows) {
		return a, fmt.Errorf("account %d: %w", id, store.ErrNoAccount)
	}
	if err != nil {
		return a, storageErr(err)
	}
	v := a.Version
	if err := json.Unmarshal(raw, &a); err != nil {
		return accounts.Account{}, fmt.Errorf("account %d: %w", id, store.ErrCorrupt)
	}
	a.Version = v
	return a, nil
}

// AccountWithUsage is Account and Usage in one query; the usage is zero
// for an account without a usage record (a purged one).
func (s *Store) AccountWithUsage(address string) (accounts.Account, store.Usage, error) {
	var a accounts.Account
	var u store.Usage
	login, domain, ok := accounts.SplitAddress(address)
	if !ok {
		return a, u, fmt.Errorf("%q: %w", address, store.ErrNoAccount)
	}
	var raw []byte
	var version uint64
	var bytes, msgs, recv, sent *int64
	var day *int32
	err := s.pool.QueryRow(context.Background(), `SELECT a.data, a.xmin::text::bigint, u.bytes, u.messages, u.day, u.received, u.sent
		FROM accounts a LEFT JOIN usage u ON u.account = a.id
		WHERE a.domain = $1 AND a.login = $2 AND a.address_held`, domain, login).Scan(&raw, &version, &bytes, &msgs, &day, &recv, &sent)
	if errors.Is(err, pgx.ErrNoRows) {
		return a, u, fmt.Errorf("%s: %w", address, store.ErrNoAccount)
	}
	if err != nil {
		return a, u, storageErr(err)
	}
	if err := json.Unmarshal(raw, &a); err != nil {
		return a, u, fmt.Errorf("%s: %w", address, store.ErrCorrupt)
	}
	a.Version = version
	if bytes != nil {
		u = store.Usage{Bytes: *bytes, Messages: *msgs, Day: *day, Received: *recv, Sent: *sent}
	}
	return a, u, nil
}

// Usage returns an account's exact usage.
func (s *Store) Usage(id uint64) (store.Usage, error) {
	var u store.Usage
	err := s.pool.QueryRow(context.Background(), `SELECT bytes, messages, day, received, sent FROM usage WHERE account = $1`, id).
		Scan(&u.Bytes, &u.Messages, &u.Day, &u.Received, &u.Sent)
	if errors.Is(err, pgx.ErrNoRows) {
		return u, fmt.Errorf("usage of account %d: %w", id, store.ErrNoAccount)
	}
	return u, storageErr(err)
}

// AddDomain starts hosting a domain.
func (s *Store) AddDomain(ctx context.Context, name string, a store.Audit) error {
	return s.tx(ctx, func(tx pgx.Tx) error {
		now := s.clock()
		raw, err := json.Marshal(accounts.Domain{Name: name, CreatedAt: now.UTC()})
		if err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `INSERT INTO domains (name, data) VALUES ($1, $2) ON CONFLICT DO NOTHING`, name, raw)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("domain %s: %w", name, store.ErrExists)
		}
		if err := directoryChanged(ctx, tx); err != nil {
			return err
		}
		return appendAudit(ctx, tx, now, store.AuditEntry{Actor: a.Actor, Action: "domain.add", Reason: name})
	})
}

// directoryChanged raises the directory generation and tells every
// node, at commit.
func directoryChanged(ctx context.Context, tx pgx.Tx) error {
	if _, err := tx.Exec(ctx, `UPDATE directory_generation SET gen = gen + 1`); err != nil {
		return err
	}
	return notifyDirectory(ctx, tx)
}

// seedClasses writes the default account classes into a new database.
func seedClasses(ctx context.Context, tx pgx.Tx) error {
	for _, c := range accounts.DefaultClasses() {
		raw, err := json.Marshal(c)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO classes (name, data) VALUES ($1, $2) ON CONFLICT DO NOTHING`, c.Name, raw); err != nil {
			return err
		}
	}
	return nil
}
