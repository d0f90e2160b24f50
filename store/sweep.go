package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"time"

	bolt "go.etcd.io/bbolt"

	"abox/accounts"
)

// Primitives for the sweeps policy runs (retention, inactivity, purge).
// Each works in bounded transactions so delivery never waits long.

// OlderThan returns up to limit UIDs of a mailbox whose message entered
// it before cutoff. Messages get UIDs in the order they enter a mailbox,
// so the scan stops at the first younger one.
func (s *Store) OlderThan(acct uint64, mbox uint32, cutoff time.Time, limit int) ([]uint32, error) {
	var out []uint32
	err := s.viewFor(acct, func(tx *bolt.Tx) error {
		end := mboxKey(acct, mbox)
		c := tx.Bucket(bMail).Cursor()
		for k, v := c.Seek(msgKey(acct, mbox, 1)); k != nil && bytes.Compare(k, end) < 0 && len(out) < limit; k, v = c.Next() {
			uid := binary.BigEndian.Uint32(k[12:])
			m, err := decodeMessage(uid, v)
			if err != nil {
				return err
			}
			if !m.AddedAt.Before(cutoff) {
				break
			}
			out = append(out, uid)
		}
		return nil
	})
	return out, err
}

// PurgeAccount ends an account's deletion grace (user agreement
// 2.12.1.2): its content is deleted in bounded batches, its personal data
// cleared, and it becomes a purged tombstone (address and dates) whose
// login is free to register again. With seal > 0 the content is kept
// sealed (invisible, its space still counted) until that much later and
// destroyed by DestroySealed: the law may require keeping deleted data
// (privacy policy 4.3).
func (s *Store) PurgeAccount(ctx context.Context, address string, at time.Time, seal time.Duration, a Audit) (accounts.Account, error) {
	acct, err := s.Account(address)
	if err != nil {
		return acct, err
	}
	// The tombstone is written first, before any content goes: a purge
	// that cannot happen (not pending deletion, grace not over) destroys
	// nothing, and no restore can bring an account back half emptied.
	// Without a hold the content is sealed until now, so a purge
	// interrupted before its content is gone is finished by the next
	// DestroySealed.
	if seal <= 0 {
		seal = 0
	}
	acct, err = s.UpdateAccount(ctx, address, "user.purge", func(x *accounts.Account) error {
		if err := x.Purge(at); err != nil {
			return err
		}
		// The consent (the subscriber's name and IIN) stays sealed with
		// the content until it is destroyed.
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

// destroyContent deletes every mailbox and message of an account, in
// batches, releasing body references.
func (s *Store) destroyContent(ctx context.Context, acct uint64) error {
	mbs, err := s.Mailboxes(acct)
	if err != nil {
		return err
	}
	for _, mb := range mbs {
		err := s.update(ctx, func(t *txn) error {
			if err := t.tx.Bucket(bMboxNames).Delete(mboxNameKey(acct, mb.Name)); err != nil {
				return err
			}
			m, err := t.getMailbox(acct, mb.ID)
			if errors.Is(err, ErrNoMailbox) {
				return nil // deleted meanwhile (resumeDeletes at Open)
			}
			if err != nil {
				return err
			}
			m.Deleting = true
			if err := t.tx.Bucket(bMboxDeleting).Put(mboxKey(acct, mb.ID), nil); err != nil {
				return err
			}
			return t.putMailbox(acct, m)
		})
		if err != nil {
			return err
		}
		if err := s.finishDelete(ctx, acct, mb.ID); err != nil {
			return err
		}
	}
	if err := s.deleteLogins(ctx, acct); err != nil {
		return err
	}
	// With no mailbox left, the usage record goes too, and the signed
	// consents (the certificate names the subscriber and carries the IIN).
	return s.update(ctx, func(t *txn) error {
		if err := t.dropSubscriptions(acct); err != nil {
			return err
		}
		cms := t.tx.Bucket(bConsents)
		c := cms.Cursor()
		for k, _ := c.Seek(u64(acct)); k != nil && bytes.HasPrefix(k, u64(acct)); k, _ = c.Seek(u64(acct)) {
			if err := cms.Delete(k); err != nil {
				return err
			}
		}
		return t.tx.Bucket(bMail).Delete(usageKey(acct))
	})
}

// DestroySealed destroys the content of purged accounts whose seal ended
// before at, and returns their addresses.
func (s *Store) DestroySealed(ctx context.Context, at time.Time, a Audit) ([]string, error) {
	var done []string
	var after uint64
	for {
		page, err := s.ListAccounts(AccountFilter{State: accounts.Purged, After: after, Limit: 500})
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
			if _, err := s.UpdateAccountByID(ctx, acct.ID, "user.destroy-sealed", func(x *accounts.Account) error {
				x.SealedUntil, x.Consent = time.Time{}, nil
				return nil
			}, a); err != nil {
				return done, err
			}
			done = append(done, acct.Address())
		}
	}
}
