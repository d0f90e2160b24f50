package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The provisioning API's credentials (issue 16). A token is a random
// secret shown once when it is made; the store keeps only its SHA-256
// (the secret has 256 bits of entropy, so a fast hash loses nothing a
// slow one would protect), the name it is known by and its role. Tokens
// are few (one per portal, operator tool or auditor), so listing and
// revoking by name walk them all.

// APIToken is a token as stored (never the secret).
type APIToken struct {
	Name      string    `json:"name"`
	Role      string    `json:"role"`
	CreatedAt time.Time `json:"created_at"`
	CreatedBy string    `json:"created_by,omitempty"` // staff who made it
}

// TokenHash is how a token's secret is stored and looked up.
func TokenHash(secret string) [32]byte { return sha256.Sum256([]byte(secret)) }

// AddAPIToken stores a token under its hash; the name must be new.
func (s *Store) AddAPIToken(ctx context.Context, tok APIToken, hash [32]byte, a Audit) error {
	return s.update(ctx, func(t *txn) error {
		b := t.tx.Bucket(bAPITokens)
		err := b.ForEach(func(_, v []byte) error {
			var x APIToken
			if json.Unmarshal(v, &x) == nil && x.Name == tok.Name {
				return fmt.Errorf("token %s: %w", tok.Name, ErrExists)
			}
			return nil
		})
		if err != nil {
			return err
		}
		if b.Get(hash[:]) != nil {
			return fmt.Errorf("token secret: %w", ErrExists)
		}
		tok.CreatedAt = t.now.UTC().Truncate(time.Second)
		if err := putJSON(b, bytes.Clone(hash[:]), tok); err != nil {
			return err
		}
		a.Reason = tok.Role
		return t.audit(a, "token.add", "token:"+tok.Name)
	})
}

// APITokens lists the tokens by name.
func (s *Store) APITokens() ([]APIToken, error) {
	var out []APIToken
	err := s.viewNow(func(tx *bolt.Tx) error {
		return tx.Bucket(bAPITokens).ForEach(func(_, v []byte) error {
			var x APIToken
			if err := json.Unmarshal(v, &x); err != nil {
				return fmt.Errorf("api token: %w", ErrCorrupt)
			}
			out = append(out, x)
			return nil
		})
	})
	slices.SortFunc(out, func(a, b APIToken) int {
		if a.Name < b.Name {
			return -1
		}
		if a.Name > b.Name {
			return 1
		}
		return 0
	})
	return out, err
}

// RevokeAPIToken removes the token called name.
func (s *Store) RevokeAPIToken(ctx context.Context, name string, a Audit) error {
	return s.update(ctx, func(t *txn) error {
		b := t.tx.Bucket(bAPITokens)
		var key []byte
		err := b.ForEach(func(k, v []byte) error {
			var x APIToken
			if json.Unmarshal(v, &x) == nil && x.Name == name {
				key = bytes.Clone(k)
			}
			return nil
		})
		if err != nil {
			return err
		}
		if key == nil {
			return fmt.Errorf("token %s: %w", name, ErrNotFound)
		}
		if err := b.Delete(key); err != nil {
			return err
		}
		// Its idempotency records go with it: a new token of the same
		// name must not replay the old one's answers.
		prefix := append([]byte(name), 0)
		idem := t.tx.Bucket(bAPIIdem)
		c := idem.Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Seek(prefix) {
			if err := idem.Delete(k); err != nil {
				return err
			}
		}
		return t.audit(a, "token.revoke", "token:"+name)
	})
}

// APITokenByHash finds the token whose secret hashes to hash.
func (s *Store) APITokenByHash(hash [32]byte) (APIToken, bool, error) {
	var tok APIToken
	var ok bool
	err := s.viewNow(func(tx *bolt.Tx) error {
		v := tx.Bucket(bAPITokens).Get(hash[:])
		if v == nil {
			return nil
		}
		ok = true
		return json.Unmarshal(v, &tok)
	})
	return tok, ok, err
}

// IdempotentResult is the answer a creating call gave under an
// Idempotency-Key, replayed when the same key comes again. A success
// keeps only the account it made (its answer, with the subscriber's
// data, is rendered again when replayed), so no personal data waits
// here; a refusal keeps its problem document.
type IdempotentResult struct {
	At          time.Time `json:"at"`
	RequestHash string    `json:"request_hash"` // the request's fingerprint (the API's requestHash)
	Status      int       `json:"status"`
	Account     uint64    `json:"account,omitempty"` // made by a success
	ContentType string    `json:"content_type,omitempty"`
	Body        []byte    `json:"body,omitempty"` // a refusal's problem document
}

func idemKey(token, key string) []byte { return []byte(token + "\x00" + key) }

// Idempotent returns what a token's earlier call with key answered, if
// it is on record and newer than notBefore.
func (s *Store) Idempotent(token, key string, notBefore time.Time) (IdempotentResult, bool, error) {
	var r IdempotentResult
	var ok bool
	err := s.viewNow(func(tx *bolt.Tx) error {
		v := tx.Bucket(bAPIIdem).Get(idemKey(token, key))
		if v == nil {
			return nil
		}
		if err := json.Unmarshal(v, &r); err != nil {
			return fmt.Errorf("idempotency record: %w", ErrCorrupt)
		}
		ok = !r.At.Before(notBefore)
		return nil
	})
	return r, ok, err
}

// RecordIdempotent keeps the answer to a token's call with key.
func (s *Store) RecordIdempotent(ctx context.Context, token, key string, r IdempotentResult) error {
	return s.update(ctx, func(t *txn) error {
		r.At = t.now.UTC()
		return putJSON(t.tx.Bucket(bAPIIdem), idemKey(token, key), r)
	})
}

// PruneIdempotent removes answers recorded before cutoff, at most limit
// of them per call (a bounded write); it reports how many went.
func (s *Store) PruneIdempotent(ctx context.Context, cutoff time.Time, limit int) (int, error) {
	n := 0
	err := s.update(ctx, func(t *txn) error {
		n = 0
		b := t.tx.Bucket(bAPIIdem)
		var old [][]byte
		err := b.ForEach(func(k, v []byte) error {
			var r IdempotentResult
			if json.Unmarshal(v, &r) != nil || r.At.Before(cutoff) {
				if len(old) < limit {
					old = append(old, bytes.Clone(k))
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range old {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		n = len(old)
		return nil
	})
	return n, err
}
