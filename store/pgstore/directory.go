package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"abox/accounts"
	"abox/store"
)

// The small operator-managed records: hosted domains, account classes,
// trusted senders and DKIM keys. Each change raises the directory
// generation (directoryChanged) so every node reloads what it caches.

// listJSON reads a table's JSON values in key order.
func listJSON[T any](q querier, sql string, what string) ([]T, error) {
	rows, err := q.Query(context.Background(), sql)
	if err != nil {
		return nil, storageErr(err)
	}
	var out []T
	for rows.Next() {
		var raw []byte
		if err := rows.Scan(&raw); err != nil {
			rows.Close()
			return nil, storageErr(err)
		}
		var x T
		if err := json.Unmarshal(raw, &x); err != nil {
			rows.Close()
			return nil, fmt.Errorf("%s record: %w", what, store.ErrCorrupt)
		}
		out = append(out, x)
	}
	return out, storageErr(rows.Err())
}

// getJSON reads one JSON value; ok is false when there is no row.
func getJSON(ctx context.Context, q querier, v any, sql string, args ...any) (ok bool, err error) {
	var raw []byte
	err = q.QueryRow(ctx, sql, args...).Scan(&raw)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return false, fmt.Errorf("record %v: %w", args, store.ErrCorrupt)
	}
	return true, nil
}

// isForeignKey reports a foreign-key violation.
func isForeignKey(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23503"
}

// RemoveDomain stops hosting a domain that no account uses any more
// (purged tombstones included, so their addresses stay explainable).
// Its DKIM keys go with it (dkim_keys' foreign key cascades).
func (s *Store) RemoveDomain(ctx context.Context, name string, a store.Audit) error {
	return s.tx(ctx, func(tx pgx.Tx) error {
		var inUse bool
		err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM accounts WHERE domain = $1 AND address_held)
			FROM domains WHERE name = $1 FOR UPDATE`, name).Scan(&inUse)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("domain %s: %w", name, store.ErrNoDomain)
		}
		if err != nil {
			return err
		}
		if inUse {
			return fmt.Errorf("domain %s: %w", name, store.ErrDomainInUse)
		}
		// A tombstone without its address, or an account another node
		// created since the check, still holds the domain: the foreign
		// key refuses the delete.
		if _, err := tx.Exec(ctx, `DELETE FROM domains WHERE name = $1`, name); err != nil {
			if isForeignKey(err) {
				return fmt.Errorf("domain %s: %w", name, store.ErrDomainInUse)
			}
			return err
		}
		if err := directoryChanged(ctx, tx); err != nil {
			return err
		}
		return appendAudit(ctx, tx, s.clock(), store.AuditEntry{Actor: a.Actor, Action: "domain.remove", Reason: name})
	})
}

// Domains lists hosted domains in name order.
func (s *Store) Domains() ([]accounts.Domain, error) {
	return listJSON[accounts.Domain](s.pool, `SELECT data FROM domains ORDER BY name`, "domain")
}

// HasDomain reports whether name is hosted.
func (s *Store) HasDomain(name string) (bool, error) {
	var ok bool
	err := s.pool.QueryRow(context.Background(), `SELECT EXISTS (SELECT 1 FROM domains WHERE name = $1)`, name).Scan(&ok)
	return ok, storageErr(err)
}

// Classes lists account classes in name order.
func (s *Store) Classes() ([]accounts.Class, error) {
	return listJSON[accounts.Class](s.pool, `SELECT data FROM classes ORDER BY name`, "class")
}

// Class returns one class.
func (s *Store) Class(name string) (accounts.Class, error) {
	var c accounts.Class
	ok, err := getJSON(context.Background(), s.pool, &c, `SELECT data FROM classes WHERE name = $1`, name)
	if err != nil {
		return c, storageErr(err)
	}
	if !ok {
		return c, fmt.Errorf("class %s: %w", name, store.ErrNoClass)
	}
	return c, nil
}

// SetClass changes a class with fn, creating it from the default class's
// limits when it does not exist yet. It returns the class as stored.
func (s *Store) SetClass(ctx context.Context, name string, fn func(*accounts.Class) error, a store.Audit) (accounts.Class, error) {
	var out accounts.Class
	err := s.tx(ctx, func(tx pgx.Tx) error {
		// A new class starts as a copy of the default one; inserting
		// it first gives two nodes creating the same class one row to
		// lock, so neither change is lost.
		if _, err := tx.Exec(ctx, `INSERT INTO classes (name, data)
			SELECT $1, data FROM classes WHERE name = $2 ON CONFLICT DO NOTHING`, name, accounts.DefaultClassName); err != nil {
			return err
		}
		var c accounts.Class
		if _, err := getJSON(ctx, tx, &c, `SELECT data FROM classes WHERE name = $1 FOR UPDATE`, name); err != nil {
			return err
		}
		c.Name = name
		if err := fn(&c); err != nil {
			return err
		}
		raw, err := json.Marshal(c)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO classes (name, data) VALUES ($1, $2)
			ON CONFLICT (name) DO UPDATE SET data = EXCLUDED.data`, name, raw); err != nil {
			return err
		}
		if err := directoryChanged(ctx, tx); err != nil {
			return err
		}
		out = c
		return audit(ctx, tx, s.clock(), a, "class.set", "")
	})
	return out, err
}

// AddSender registers a trusted submitting system.
func (s *Store) AddSender(ctx context.Context, snd accounts.Sender, a store.Audit) error {
	return s.tx(ctx, func(tx pgx.Tx) error {
		now := s.clock()
		x := snd
		x.CreatedAt = now.UTC()
		raw, err := json.Marshal(x)
		if err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `INSERT INTO senders (name, data) VALUES ($1, $2) ON CONFLICT DO NOTHING`, x.Name, raw)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("sender %s: %w", x.Name, store.ErrExists)
		}
		if err := directoryChanged(ctx, tx); err != nil {
			return err
		}
		return audit(ctx, tx, now, a, "sender.add", "")
	})
}

// RemoveSender deletes a trusted sender. Letters it sent keep their
// records.
func (s *Store) RemoveSender(ctx context.Context, name string, a store.Audit) error {
	return s.tx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM senders WHERE name = $1`, name)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("sender %s: %w", name, store.ErrNoSender)
		}
		if err := directoryChanged(ctx, tx); err != nil {
			return err
		}
		return audit(ctx, tx, s.clock(), a, "sender.remove", "")
	})
}

// Sender returns one trusted sender.
func (s *Store) Sender(name string) (accounts.Sender, error) {
	var snd accounts.Sender
	ok, err := getJSON(context.Background(), s.pool, &snd, `SELECT data FROM senders WHERE name = $1`, name)
	if err != nil {
		return snd, storageErr(err)
	}
	if !ok {
		return snd, fmt.Errorf("sender %s: %w", name, store.ErrNoSender)
	}
	return snd, nil
}

// Senders lists trusted senders in name order.
func (s *Store) Senders() ([]accounts.Sender, error) {
	return listJSON[accounts.Sender](s.pool, `SELECT data FROM senders ORDER BY name`, "sender")
}

// SetSenderReceipts sets (or, with "", clears) the address a trusted
// sender's receipts are mailed to.
func (s *Store) SetSenderReceipts(ctx context.Context, name, address string, a store.Audit) error {
	return s.tx(ctx, func(tx pgx.Tx) error {
		var snd accounts.Sender
		ok, err := getJSON(ctx, tx, &snd, `SELECT data FROM senders WHERE name = $1 FOR UPDATE`, name)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("sender %s: %w", name, store.ErrNoSender)
		}
		snd.ReceiptsTo = strings.ToLower(address)
		raw, err := json.Marshal(snd)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE senders SET data = $2 WHERE name = $1`, name, raw); err != nil {
			return err
		}
		if err := directoryChanged(ctx, tx); err != nil {
			return err
		}
		a.Reason = "receipts to " + address
		if address == "" {
			a.Reason = "no receipts by mail"
		}
		return audit(ctx, tx, s.clock(), a, "sender.set", "")
	})
}

// AddDKIMKey stores a new key for a hosted domain; the selector must be
// new for it.
func (s *Store) AddDKIMKey(ctx context.Context, k store.DKIMKey, a store.Audit) error {
	return s.tx(ctx, func(tx pgx.Tx) error {
		now := s.clock()
		var ok bool
		// The key-share lock keeps the domain until the commit (a
		// RemoveDomain on another node waits, then takes the key
		// with it).
		err := tx.QueryRow(ctx, `SELECT true FROM domains WHERE name = $1 FOR KEY SHARE`, k.Domain).Scan(&ok)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%s: %w", k.Domain, store.ErrNoDomain)
		}
		if err != nil {
			return err
		}
		k.CreatedAt = now.UTC()
		raw, err := json.Marshal(k)
		if err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `INSERT INTO dkim_keys (domain, selector, data) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`,
			k.Domain, k.Selector, raw)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("DKIM selector %s of %s: %w", k.Selector, k.Domain, store.ErrExists)
		}
		if err := directoryChanged(ctx, tx); err != nil {
			return err
		}
		a.Reason = "selector " + k.Selector
		return audit(ctx, tx, now, a, "domain.dkim", "")
	})
}

// DKIMKeys returns a domain's keys, oldest first (the last one signs).
func (s *Store) DKIMKeys(domain string) ([]store.DKIMKey, error) {
	rows, err := s.pool.Query(context.Background(), `SELECT data FROM dkim_keys WHERE domain = $1 ORDER BY selector`, domain)
	if err != nil {
		return nil, storageErr(err)
	}
	var out []store.DKIMKey
	for rows.Next() {
		var raw []byte
		if err := rows.Scan(&raw); err != nil {
			rows.Close()
			return nil, storageErr(err)
		}
		var k store.DKIMKey
		if err := json.Unmarshal(raw, &k); err != nil {
			rows.Close()
			return nil, fmt.Errorf("DKIM key of %s: %w", domain, store.ErrCorrupt)
		}
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, storageErr(err)
	}
	// Selectors sort by their date; equal dates by creation.
	slices.SortStableFunc(out, func(a, b store.DKIMKey) int { return a.CreatedAt.Compare(b.CreatedAt) })
	return out, nil
}
