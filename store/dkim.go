package store

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// DKIM keys (RFC 6376) of the hosted domains, kept in the store so a
// backup and every node of a cluster carry them (issue 17). The newest
// key of a domain signs; older ones stay published until the operator
// removes them, so mail signed before a rotation still verifies.
//
// Bucket dkim_keys: domain 0x00 selector -> JSON DKIMKey.
var bDKIM = []byte("dkim_keys")

// DKIMKey is one domain key.
type DKIMKey struct {
	Domain     string    `json:"domain"`
	Selector   string    `json:"selector"`
	Algorithm  string    `json:"algorithm"` // "rsa"
	PrivatePEM string    `json:"private_pem"`
	CreatedAt  time.Time `json:"created_at"`
}

func dkimKey(domain, selector string) []byte { return []byte(domain + "\x00" + selector) }

// AddDKIMKey stores a new key for a hosted domain; the selector must be
// new for it.
func (s *Store) AddDKIMKey(ctx context.Context, k DKIMKey, a Audit) error {
	return s.update(ctx, func(t *txn) error {
		if t.tx.Bucket(bDomains).Get([]byte(k.Domain)) == nil {
			return fmt.Errorf("%s: %w", k.Domain, ErrNoDomain)
		}
		b := t.tx.Bucket(bDKIM)
		key := dkimKey(k.Domain, k.Selector)
		if b.Get(key) != nil {
			return fmt.Errorf("DKIM selector %s of %s: %w", k.Selector, k.Domain, ErrExists)
		}
		k.CreatedAt = t.now.UTC()
		if err := putJSON(b, key, k); err != nil {
			return err
		}
		a.Reason = "selector " + k.Selector
		return t.audit(a, "domain.dkim", "")
	})
}

// DKIMKeys returns a domain's keys, oldest first (the last one signs).
func (s *Store) DKIMKeys(domain string) ([]DKIMKey, error) {
	var out []DKIMKey
	err := s.viewNow(func(tx *bolt.Tx) error {
		prefix := []byte(domain + "\x00")
		c := tx.Bucket(bDKIM).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			var key DKIMKey
			if err := json.Unmarshal(v, &key); err != nil {
				return fmt.Errorf("DKIM key %q: %w", k, ErrCorrupt)
			}
			out = append(out, key)
		}
		return nil
	})
	// Selectors sort by their date; equal dates by creation.
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j].CreatedAt.Before(out[j-1].CreatedAt); j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out, err
}
