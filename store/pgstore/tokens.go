package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"abox/store"
)

// The provisioning API's tokens (only the SHA-256 of each secret is
// kept, store/apitokens.go says why) and the answers given under an
// Idempotency-Key.

// AddAPIToken stores a token under its hash; the name must be new.
func (s *Store) AddAPIToken(ctx context.Context, tok store.APIToken, hash [32]byte, a store.Audit) error {
	return s.tx(ctx, func(tx pgx.Tx) error {
		now := s.clock()
		var nameTaken, secretTaken bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM api_tokens WHERE name = $1),
			EXISTS (SELECT 1 FROM api_tokens WHERE hash = $2)`, tok.Name, hash[:]).Scan(&nameTaken, &secretTaken); err != nil {
			return err
		}
		switch {
		case nameTaken:
			return fmt.Errorf("token %s: %w", tok.Name, store.ErrExists)
		case secretTaken:
			return fmt.Errorf("token secret: %w", store.ErrExists)
		}
		tok.CreatedAt = now.UTC().Truncate(time.Second)
		raw, err := json.Marshal(tok)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO api_tokens (hash, name, data) VALUES ($1, $2, $3)`, hash[:], tok.Name, raw); err != nil {
			if isUnique(err) { // another node made it since the check
				return fmt.Errorf("token %s: %w", tok.Name, store.ErrExists)
			}
			return err
		}
		a.Reason = tok.Role
		return audit(ctx, tx, now, a, "token.add", "token:"+tok.Name)
	})
}

// APITokens lists the tokens by name.
func (s *Store) APITokens() ([]store.APIToken, error) {
	return listJSON[store.APIToken](s.pool, `SELECT data FROM api_tokens ORDER BY name`, "api token")
}

// RevokeAPIToken removes the token called name, and the answers given
// under it: a new token of the same name must not replay them.
func (s *Store) RevokeAPIToken(ctx context.Context, name string, a store.Audit) error {
	return s.tx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM api_tokens WHERE name = $1`, name)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("token %s: %w", name, store.ErrNotFound)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM api_idempotent WHERE token = $1`, name); err != nil {
			return err
		}
		return audit(ctx, tx, s.clock(), a, "token.revoke", "token:"+name)
	})
}

// APITokenByHash finds the token whose secret hashes to hash.
func (s *Store) APITokenByHash(hash [32]byte) (store.APIToken, bool, error) {
	var tok store.APIToken
	ok, err := getJSON(context.Background(), s.pool, &tok, `SELECT data FROM api_tokens WHERE hash = $1`, hash[:])
	if errors.Is(err, store.ErrCorrupt) {
		return tok, false, fmt.Errorf("api token: %w", store.ErrCorrupt)
	}
	return tok, ok, storageErr(err)
}

// Idempotent returns what a token's earlier call with key answered, if
// it is on record and newer than notBefore.
func (s *Store) Idempotent(token, key string, notBefore time.Time) (store.IdempotentResult, bool, error) {
	var r store.IdempotentResult
	ok, err := getJSON(context.Background(), s.pool, &r, `SELECT data FROM api_idempotent WHERE token = $1 AND key = $2`, token, key)
	if errors.Is(err, store.ErrCorrupt) {
		return r, false, fmt.Errorf("idempotency record: %w", store.ErrCorrupt)
	}
	if err != nil || !ok {
		return r, false, storageErr(err)
	}
	return r, !r.At.Before(notBefore), nil
}

// RecordIdempotent keeps the answer to a token's call with key.
func (s *Store) RecordIdempotent(ctx context.Context, token, key string, r store.IdempotentResult) error {
	r.At = s.clock().UTC()
	raw, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = s.pool.Exec(ctx, `INSERT INTO api_idempotent (token, key, at, data) VALUES ($1, $2, $3, $4)
		ON CONFLICT (token, key) DO UPDATE SET at = EXCLUDED.at, data = EXCLUDED.data`, token, key, r.At, raw)
	return storageErr(err)
}

// PruneIdempotent removes answers recorded before cutoff, at most limit
// of them per call (a bounded write, on api_idempotent_at); it reports
// how many went.
func (s *Store) PruneIdempotent(ctx context.Context, cutoff time.Time, limit int) (int, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM api_idempotent WHERE (token, key) IN
		(SELECT token, key FROM api_idempotent WHERE at < $1 ORDER BY at LIMIT $2)`, cutoff, limit)
	if err != nil {
		return 0, storageErr(err)
	}
	return int(tag.RowsAffected()), nil
}
