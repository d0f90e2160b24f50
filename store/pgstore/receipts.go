package pgstore

import (
	"context"
	"encoding/json"

	"github.com/jackc/pgx/v5"

	"abox/store"
)

// ReceiptsMailed is the log size up to which receipts were mailed; ok
// is false before the first time.
func (s *Store) ReceiptsMailed() (n uint64, ok bool, err error) {
	var v *int64
	if err := s.pool.QueryRow(context.Background(), `SELECT receipts_mailed FROM evidence_state`).Scan(&v); err != nil {
		return 0, false, storageErr(err)
	}
	if v == nil {
		return 0, false, nil
	}
	return uint64(*v), true, nil
}

// SetReceiptsMailed records that receipts were mailed up to log size n.
func (s *Store) SetReceiptsMailed(ctx context.Context, n uint64) error {
	return s.tx(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE evidence_state SET receipts_mailed = $1`, int64(n))
		return err
	})
}

// EvidenceBetween calls fn for the log's entries from index from up to
// (not including) to, in order, reading at most 1,000 at a time (fn
// runs between reads, never inside a query).
func (s *Store) EvidenceBetween(from, to uint64, fn func(store.EvidenceEntry) error) error {
	ctx := context.Background()
	for from < to {
		rows, err := s.pool.Query(ctx, `SELECT position, entry FROM evidence WHERE position >= $1 AND position < $2
			ORDER BY position LIMIT 1000`, int64(from), int64(to))
		if err != nil {
			return storageErr(err)
		}
		batch, err := scanEntries(rows)
		if err != nil {
			return err
		}
		if len(batch) == 0 {
			return nil
		}
		for _, en := range batch {
			if err := fn(en); err != nil {
				return err
			}
		}
		from = batch[len(batch)-1].Event.Index + 1
	}
	return nil
}

// scanEntries reads rows of (position, entry) as evidence entries; a
// pending entry (position NULL) has index 0.
func scanEntries(rows pgx.Rows) ([]store.EvidenceEntry, error) {
	defer rows.Close()
	var out []store.EvidenceEntry
	for rows.Next() {
		var pos *int64
		var raw []byte
		if err := rows.Scan(&pos, &raw); err != nil {
			return nil, storageErr(err)
		}
		var e store.EvidenceEvent
		if err := json.Unmarshal(raw, &e); err != nil {
			if pos != nil {
				return nil, errEvidenceCorrupt("evidence entry %d", *pos)
			}
			return nil, errEvidenceCorrupt("pending evidence entry")
		}
		en := store.EvidenceEntry{Event: e, Raw: raw}
		if pos == nil {
			en.Raw = nil // not yet in the log: no leaf yet
		}
		out = append(out, en)
	}
	return out, storageErr(rows.Err())
}
