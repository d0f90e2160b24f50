package pgstore

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/jackc/pgx/v5"

	"abox/store"
)

// A body is written in two steps. Before the transaction, newBody puts
// a body larger than the inline limit in the object store (S3's PUT is
// durable when acknowledged), so the transaction holds no lock while
// the body travels. In the transaction, insert writes its row; a
// shareable body identical to one already stored takes a reference to
// that one instead, and its own object (if any) goes to blob_trash.
// If the transaction never commits, the object is an orphan that
// SweepObjects removes once it is old enough that no delivery can
// still be about to name it.

// newBody is a body ready for the transaction that stores it.
type newBody struct {
	body      []byte // nil when in the object store
	object    string
	sha       []byte // set for a shareable body
	size      int64
	structure []byte
}

// prepareBody hashes and uploads a body as needed.
func (s *Store) prepareBody(ctx context.Context, body, structure []byte, shareable bool) (*newBody, error) {
	nb := &newBody{size: int64(len(body)), structure: structure}
	if structure == nil {
		nb.structure = []byte{}
	}
	toObjects := s.objects != nil && s.inlineMax >= 0 && len(body) > s.inlineMax
	var sum [32]byte
	if shareable || toObjects {
		sum = sha256.Sum256(body)
	}
	if shareable {
		nb.sha = sum[:]
	}
	if !toObjects {
		nb.body = body
		return nb, nil
	}
	nb.object = newKey(sum)
	if err := s.objects.put(ctx, nb.object, body); err != nil {
		return nil, storageErr(err)
	}
	return nb, nil
}

// insert writes the body's row in tx holding refs references, or adds
// them to an identical shareable body's, and returns the row's id.
func (nb *newBody) insert(ctx context.Context, tx pgx.Tx, refs int) (uint64, error) {
	var id uint64
	var inserted bool
	var object *string
	if nb.object != "" {
		object = &nb.object
	}
	var body []byte
	if object == nil {
		body = nb.body
		if body == nil {
			body = []byte{}
		}
	}
	err := tx.QueryRow(ctx, `INSERT INTO blobs (id, sha256, size, structure, body, object, refs)
		VALUES (nextval('blob_ids'), $1, $2, $3, $4, $5, $6)
		ON CONFLICT (sha256) WHERE sha256 IS NOT NULL DO UPDATE SET refs = blobs.refs + EXCLUDED.refs
		RETURNING id, xmax = 0`, nb.sha, nb.size, nb.structure, body, object, refs).Scan(&id, &inserted)
	if err != nil {
		return 0, err
	}
	if !inserted && object != nil {
		// An identical body was already stored: ours is not needed.
		if _, err := tx.Exec(ctx, `INSERT INTO blob_trash (object) VALUES ($1) ON CONFLICT DO NOTHING`, *object); err != nil {
			return 0, err
		}
	}
	return id, nil
}

// addRefs takes n more references to an existing body.
func addRefs(ctx context.Context, tx pgx.Tx, id uint64, n int) error {
	tag, err := tx.Exec(ctx, `UPDATE blobs SET refs = refs + $2 WHERE id = $1`, id, n)
	if err == nil && tag.RowsAffected() == 0 {
		err = fmt.Errorf("body %d: %w", id, store.ErrNotFound)
	}
	return err
}

// dropRefs releases references (body id → count); a body no longer
// referenced is deleted, its object moved to blob_trash. It reports
// whether any object went to the trash (the caller then empties it
// after the commit).
func dropRefs(ctx context.Context, tx pgx.Tx, refs map[uint64]int) (trashed bool, err error) {
	// In id order, so that two transactions dropping the same bodies
	// lock them in the same order and never deadlock.
	for _, id := range slices.Sorted(maps.Keys(refs)) {
		n := refs[id]
		var left int
		var object *string
		err := tx.QueryRow(ctx, `UPDATE blobs SET refs = refs - $2 WHERE id = $1 RETURNING refs, object`, id, n).Scan(&left, &object)
		if errors.Is(err, pgx.ErrNoRows) {
			continue
		}
		if err != nil {
			return trashed, err
		}
		if left > 0 {
			continue
		}
		if _, err := tx.Exec(ctx, `DELETE FROM blobs WHERE id = $1`, id); err != nil {
			return trashed, err
		}
		if object != nil {
			if _, err := tx.Exec(ctx, `INSERT INTO blob_trash (object) VALUES ($1) ON CONFLICT DO NOTHING`, *object); err != nil {
				return trashed, err
			}
			trashed = true
		}
	}
	return trashed, nil
}

// EmptyTrash deletes the objects of bodies no longer referenced, at
// most max of them, and returns how many went.
func (s *Store) EmptyTrash(ctx context.Context, max int) (int, error) {
	if s.objects == nil {
		return 0, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT object FROM blob_trash ORDER BY at LIMIT $1`, max)
	if err != nil {
		return 0, storageErr(err)
	}
	keys, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return 0, storageErr(err)
	}
	n := 0
	for _, k := range keys {
		if err := s.objects.remove(ctx, k); err != nil {
			return n, storageErr(err)
		}
		if _, err := s.pool.Exec(ctx, `DELETE FROM blob_trash WHERE object = $1`, k); err != nil {
			return n, storageErr(err)
		}
		n++
	}
	return n, nil
}

// emptyTrashSoon empties the trash in the background after a commit
// that put objects in it; a failure leaves them for the next sweep.
func (s *Store) emptyTrashSoon() {
	if s.objects == nil {
		return
	}
	s.background(func(ctx context.Context) { s.EmptyTrash(ctx, 1000) })
}

// loadBody reads a stored body's bytes and structure, from its row or
// the object store.
func (s *Store) loadBody(ctx context.Context, id uint64, withBody bool) (body, structure []byte, err error) {
	var object *string
	q := `SELECT structure, body, object FROM blobs WHERE id = $1`
	if !withBody {
		q = `SELECT structure, NULL::bytea, NULL::text FROM blobs WHERE id = $1`
	}
	err = s.pool.QueryRow(ctx, q, id).Scan(&structure, &body, &object)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil, fmt.Errorf("body %d: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, nil, storageErr(err)
	}
	if withBody && object != nil {
		if s.objects == nil {
			return nil, nil, ErrNoObjectStore
		}
		body, err = s.objects.get(ctx, *object)
		if err != nil {
			return nil, nil, storageErr(err)
		}
	}
	return body, structure, nil
}
