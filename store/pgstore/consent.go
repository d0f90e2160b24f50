package pgstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"abox/accounts"
	"abox/store"
)

// Consent records (issue 15; store/consent.go): the signed CMS object
// of every consent an account gave, and the binding of an IIN to the
// accounts not purged whose verified consent carries it.

// iinLockClass is the first key of the transaction-scoped advisory
// lock RecordConsent takes on an IIN (the second is the IIN's hash):
// two nodes binding one IIN to two accounts at once take turns, and the
// second sees the first's binding. (PostgreSQL keeps the two-key locks
// apart from the one-key ones, such as the migration lock.)
const iinLockClass = 0x61626f78 // "abox"

// iinHolder returns the address (or "account N") of an account other
// than id that the IIN is bound to, or "" when none is. Like the
// embedded store's binding index, it counts only verified consents of
// accounts not purged: the iin column may name a sealed tombstone's or
// a vouched consent's IIN, which binds nothing.
func iinHolder(ctx context.Context, tx pgx.Tx, iin string, id uint64) (string, error) {
	var other uint64
	var login, domain string
	err := tx.QueryRow(ctx, `SELECT id, login, domain FROM accounts
		WHERE iin = $1 AND id <> $2 AND state <> 'purged' AND (data->'consent'->>'verified')::boolean
		ORDER BY id LIMIT 1`, iin, id).Scan(&other, &login, &domain)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	if login == "" {
		return fmt.Sprintf("account %d", other), nil
	}
	return login + "@" + domain, nil
}

// RecordConsent stores a verified consent and its CMS object for the
// account at address, which must still be account id (the statement
// named it), in one transaction with its audit entry. Unless shareIIN,
// an IIN already bound to another account refuses it with
// store.ErrIINBound, whichever node bound it.
func (s *Store) RecordConsent(ctx context.Context, address string, id uint64, c *accounts.Consent, cms []byte, shareIIN bool, a store.Audit) (accounts.Account, error) {
	var out accounts.Account
	err := s.tx(ctx, func(tx pgx.Tx) error {
		old, err := lockAccountByAddress(ctx, tx, address)
		if err != nil {
			return err
		}
		switch {
		case old.ID != id:
			return fmt.Errorf("%s is now account %d, the statement names %d: %w", address, old.ID, id, store.ErrNoAccount)
		case old.State == accounts.Purged:
			return fmt.Errorf("account %s is purged: %w", address, store.ErrNoAccount)
		}
		if c.IIN != "" {
			// Taken for a shared IIN too, so that a check on another
			// node never misses this binding while it commits.
			if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext($2))`, int32(iinLockClass), c.IIN); err != nil {
				return err
			}
		}
		if !shareIIN && c.IIN != "" {
			holder, err := iinHolder(ctx, tx, c.IIN, id)
			if err != nil {
				return err
			}
			if holder != "" {
				return fmt.Errorf("IIN %s is bound to %s: %w", c.IIN, holder, store.ErrIINBound)
			}
		}
		if cms == nil {
			cms = []byte{}
		}
		if _, err := tx.Exec(ctx, `INSERT INTO consent_cms (account, recorded, cms) VALUES ($1, $2, $3)
			ON CONFLICT (account, recorded) DO UPDATE SET cms = EXCLUDED.cms`, id, c.RecordedAt.UnixNano(), cms); err != nil {
			return err
		}
		acct := *old
		acct.Consent = c
		if err := putAccount(ctx, tx, &acct); err != nil {
			return err
		}
		if err := notify(ctx, tx, []store.Change{{Kind: store.AccountChanged, Account: id}}); err != nil {
			return err
		}
		out = acct
		return audit(ctx, tx, s.clock(), a, "user.consent", acct.Address())
	})
	return out, err
}

// ConsentCMS returns the stored CMS object of the consent an account
// recorded at recordedNanos (accounts.Consent.RecordedAt), for export
// and re-verification.
func (s *Store) ConsentCMS(id uint64, recordedNanos int64) ([]byte, error) {
	var out []byte
	err := s.pool.QueryRow(context.Background(), `SELECT cms FROM consent_cms WHERE account = $1 AND recorded = $2`, id, recordedNanos).Scan(&out)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("no signed consent stored for account %d: %w", id, store.ErrNotFound)
	}
	return out, storageErr(err)
}
