package store

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"abox/accounts"
)

// This file holds the small operator-managed records: hosted domains,
// account classes and trusted senders.

func getJSON(b *bolt.Bucket, key []byte, v any) (bool, error) {
	raw := b.Get(key)
	if raw == nil {
		return false, nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return false, fmt.Errorf("record %q: %w", key, ErrCorrupt)
	}
	return true, nil
}

func putJSON(b *bolt.Bucket, key []byte, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put(key, raw)
}

func listJSON[T any](s *Store, bucket []byte) ([]T, error) {
	var out []T
	err := s.viewNow(func(tx *bolt.Tx) error {
		return tx.Bucket(bucket).ForEach(func(k, v []byte) error {
			var x T
			if err := json.Unmarshal(v, &x); err != nil {
				return fmt.Errorf("record %q: %w", k, ErrCorrupt)
			}
			out = append(out, x)
			return nil
		})
	})
	return out, err
}

// AddDomain starts hosting a domain. name must already be normalised.
func (s *Store) AddDomain(ctx context.Context, name string, a Audit) error {
	return s.update(ctx, func(t *txn) error {
		t.dirChanged = true
		b := t.tx.Bucket(bDomains)
		if b.Get([]byte(name)) != nil {
			return fmt.Errorf("domain %s: %w", name, ErrExists)
		}
		if err := putJSON(b, []byte(name), accounts.Domain{Name: name, CreatedAt: t.now.UTC()}); err != nil {
			return err
		}
		return t.appendAudit(AuditEntry{Actor: a.Actor, Action: "domain.add", Reason: name})
	})
}

// RemoveDomain stops hosting a domain that no account uses any more
// (purged tombstones included, so their addresses stay explainable).
func (s *Store) RemoveDomain(ctx context.Context, name string, a Audit) error {
	return s.update(ctx, func(t *txn) error {
		t.dirChanged = true
		b := t.tx.Bucket(bDomains)
		if b.Get([]byte(name)) == nil {
			return fmt.Errorf("domain %s: %w", name, ErrNoDomain)
		}
		prefix := append([]byte(name), 0)
		for _, idx := range [][]byte{bAcctAddr, bAcctPurged} {
			if k, _ := t.tx.Bucket(idx).Cursor().Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) {
				return fmt.Errorf("domain %s: %w", name, ErrDomainInUse)
			}
		}
		if err := b.Delete([]byte(name)); err != nil {
			return err
		}
		// Its DKIM keys go with it.
		keys := t.tx.Bucket(bDKIM)
		for k, _ := keys.Cursor().Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = keys.Cursor().Seek(prefix) {
			if err := keys.Delete(k); err != nil {
				return err
			}
		}
		return t.appendAudit(AuditEntry{Actor: a.Actor, Action: "domain.remove", Reason: name})
	})
}

// Domains lists hosted domains in name order.
func (s *Store) Domains() ([]accounts.Domain, error) { return listJSON[accounts.Domain](s, bDomains) }

// HasDomain reports whether name is hosted.
func (s *Store) HasDomain(name string) (bool, error) {
	var ok bool
	err := s.viewNow(func(tx *bolt.Tx) error {
		ok = tx.Bucket(bDomains).Get([]byte(name)) != nil
		return nil
	})
	return ok, err
}

func seedClasses(tx *bolt.Tx) error {
	b := tx.Bucket(bClasses)
	for _, c := range accounts.DefaultClasses() {
		if err := putJSON(b, []byte(c.Name), c); err != nil {
			return err
		}
	}
	return nil
}

// Classes lists account classes in name order.
func (s *Store) Classes() ([]accounts.Class, error) { return listJSON[accounts.Class](s, bClasses) }

// Class returns one class.
func (s *Store) Class(name string) (accounts.Class, error) {
	var c accounts.Class
	err := s.viewNow(func(tx *bolt.Tx) error {
		ok, err := getJSON(tx.Bucket(bClasses), []byte(name), &c)
		if err == nil && !ok {
			err = fmt.Errorf("class %s: %w", name, ErrNoClass)
		}
		return err
	})
	return c, err
}

// SetClass changes a class with fn, creating it from the default class's
// limits when it does not exist yet. It returns the class as stored.
func (s *Store) SetClass(ctx context.Context, name string, fn func(*accounts.Class) error, a Audit) (accounts.Class, error) {
	var out accounts.Class
	err := s.update(ctx, func(t *txn) error {
		t.dirChanged = true
		b := t.tx.Bucket(bClasses)
		var c accounts.Class
		ok, err := getJSON(b, []byte(name), &c)
		if err != nil {
			return err
		}
		if !ok {
			if _, err := getJSON(b, []byte(accounts.DefaultClassName), &c); err != nil {
				return err
			}
		}
		c.Name = name
		if err := fn(&c); err != nil {
			return err
		}
		if err := putJSON(b, []byte(name), c); err != nil {
			return err
		}
		out = c
		return t.audit(a, "class.set", "")
	})
	return out, err
}

// AddSender registers a trusted submitting system.
func (s *Store) AddSender(ctx context.Context, snd accounts.Sender, a Audit) error {
	return s.update(ctx, func(t *txn) error {
		t.dirChanged = true
		b := t.tx.Bucket(bSenders)
		if b.Get([]byte(snd.Name)) != nil {
			return fmt.Errorf("sender %s: %w", snd.Name, ErrExists)
		}
		snd.CreatedAt = t.now.UTC()
		if err := putJSON(b, []byte(snd.Name), snd); err != nil {
			return err
		}
		return t.audit(a, "sender.add", "")
	})
}

// RemoveSender deletes a trusted sender. Letters it sent keep their
// records.
func (s *Store) RemoveSender(ctx context.Context, name string, a Audit) error {
	return s.update(ctx, func(t *txn) error {
		t.dirChanged = true
		b := t.tx.Bucket(bSenders)
		if b.Get([]byte(name)) == nil {
			return fmt.Errorf("sender %s: %w", name, ErrNoSender)
		}
		if err := b.Delete([]byte(name)); err != nil {
			return err
		}
		return t.audit(a, "sender.remove", "")
	})
}

// Sender returns one trusted sender.
func (s *Store) Sender(name string) (accounts.Sender, error) {
	var snd accounts.Sender
	err := s.viewNow(func(tx *bolt.Tx) error {
		ok, err := getJSON(tx.Bucket(bSenders), []byte(name), &snd)
		if err == nil && !ok {
			err = fmt.Errorf("sender %s: %w", name, ErrNoSender)
		}
		return err
	})
	return snd, err
}

// Senders lists trusted senders in name order.
func (s *Store) Senders() ([]accounts.Sender, error) { return listJSON[accounts.Sender](s, bSenders) }
