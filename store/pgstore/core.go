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

// The primitives every area of the store shares: accounts read and
// written with their indexed columns, the audit log, mailbox creation.

// getAccount reads one account in tx; forUpdate locks its row until tx
// ends (every change to an account, its usage or its mailboxes' UID
// counters is ordered by this lock or the mailbox row's).
func getAccount(ctx context.Context, tx pgx.Tx, id uint64, forUpdate bool) (*accounts.Account, error) {
	q := `SELECT data FROM accounts WHERE id = $1`
	if forUpdate {
		q += ` FOR UPDATE`
	}
	return scanAccount(tx.QueryRow(ctx, q, id), fmt.Sprintf("account %d", id))
}

// scanAccount reads the one account a query of its data column found;
// name says which in the errors (no such account, a record that does
// not decode).
func scanAccount(row pgx.Row, name string) (*accounts.Account, error) {
	var raw []byte
	err := row.Scan(&raw)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("%s: %w", name, store.ErrNoAccount)
	}
	if err != nil {
		return nil, err
	}
	var a accounts.Account
	if err := json.Unmarshal(raw, &a); err != nil {
		return nil, fmt.Errorf("%s: %w", name, store.ErrCorrupt)
	}
	return &a, nil
}

// lookupAddr finds the account holding an address (a purged tombstone
// that still holds it included).
func lookupAddr(ctx context.Context, q querier, address string) (uint64, error) {
	login, domain, ok := accounts.SplitAddress(address)
	if !ok {
		return 0, fmt.Errorf("%q: %w", address, store.ErrNoAccount)
	}
	var id uint64
	err := q.QueryRow(ctx, `SELECT id FROM accounts WHERE domain = $1 AND login = $2 AND address_held`, domain, login).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, fmt.Errorf("%s: %w", address, store.ErrNoAccount)
	}
	return id, err
}

// querier is a pool, a connection or a transaction.
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// boundIIN is the IIN an account's consent binds, as the embedded
// store has it: none for a purged account or a consent not verified.
func boundIIN(a *accounts.Account) string {
	if a == nil || a.State == accounts.Purged || a.Consent == nil || !a.Consent.Verified {
		return ""
	}
	return a.Consent.IIN
}

// putAccount writes an account (insert or update) with its indexed
// columns.
func putAccount(ctx context.Context, tx pgx.Tx, a *accounts.Account) error {
	raw, err := json.Marshal(a)
	if err != nil {
		return err
	}
	var iin *string
	if v := boundIIN(a); v != "" {
		iin = &v
	}
	_, err = tx.Exec(ctx, `INSERT INTO accounts (id, login, domain, state, class, last_use_at, iin, data)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT (id) DO UPDATE SET login = EXCLUDED.login, domain = EXCLUDED.domain, state = EXCLUDED.state,
			class = EXCLUDED.class, last_use_at = EXCLUDED.last_use_at, iin = EXCLUDED.iin, data = EXCLUDED.data`,
		a.ID, a.Login, a.Domain, string(a.State), a.Class, a.LastUseAt, iin, raw)
	return err
}

// appendAudit writes an audit entry in tx.
func appendAudit(ctx context.Context, tx pgx.Tx, now time.Time, e store.AuditEntry) error {
	if e.At.IsZero() {
		e.At = now
	}
	e.At = e.At.UTC().Truncate(time.Millisecond)
	if e.AccountID == 0 && e.Account != "" {
		if id, err := lookupAddr(ctx, tx, e.Account); err == nil {
			e.AccountID = id
		}
	}
	raw, err := json.Marshal(e)
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `INSERT INTO audit (seq, at, account, account_id, data) VALUES (nextval('audit_seq'), $1, $2, $3, $4)`,
		e.At, e.Account, e.AccountID, raw)
	return err
}

// audit writes the entry for an action on account.
func audit(ctx context.Context, tx pgx.Tx, now time.Time, a store.Audit, action, account string) error {
	return appendAudit(ctx, tx, now, store.AuditEntry{Actor: a.Actor, Action: action, Account: account, Reason: a.Reason, Staff: a.Staff})
}

// AppendAudit writes one audit entry.
func (s *Store) AppendAudit(ctx context.Context, e store.AuditEntry) error {
	return s.tx(ctx, func(tx pgx.Tx) error { return appendAudit(ctx, tx, s.clock(), e) })
}

// createMailbox creates a mailbox of acct in tx (the caller holds the
// account's row lock) and queues its MailboxCreated change.
func createMailbox(ctx context.Context, tx pgx.Tx, now time.Time, acct uint64, name, specialUse string) (store.Mailbox, error) {
	name, err := store.CanonicalMailboxName(name)
	if err != nil {
		return store.Mailbox{}, err
	}
	var exists bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM mailboxes WHERE account = $1 AND name = $2 AND NOT deleting)`, acct, name).Scan(&exists); err != nil {
		return store.Mailbox{}, err
	}
	if exists {
		return store.Mailbox{}, fmt.Errorf("%s: %w", name, store.ErrMailboxExists)
	}
	var id uint32
	if err := tx.QueryRow(ctx, `INSERT INTO mailbox_ids (account, next) VALUES ($1, 2)
		ON CONFLICT (account) DO UPDATE SET next = mailbox_ids.next + 1 RETURNING next - 1`, acct).Scan(&id); err != nil {
		return store.Mailbox{}, err
	}
	mb := store.Mailbox{ID: id, Name: name, SpecialUse: specialUse, UIDNext: 1, Subscribed: true,
		CreatedAt: now.UTC().Truncate(time.Second), HighestModSeq: 1}
	var uv int64
	if err := tx.QueryRow(ctx, `SELECT nextval('uidvalidity')`).Scan(&uv); err != nil {
		return store.Mailbox{}, err
	}
	mb.UIDValidity = uint32(uv)
	if _, err := tx.Exec(ctx, `INSERT INTO mailboxes (account, id, name, special_use, uid_validity, subscribed, created_at)
		VALUES ($1, $2, $3, $4, $5, true, $6)`, acct, id, name, specialUse, uv, mb.CreatedAt); err != nil {
		return store.Mailbox{}, err
	}
	return mb, notify(ctx, tx, []store.Change{{Kind: store.MailboxCreated, Account: acct, Mailbox: id}})
}
