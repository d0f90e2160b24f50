package pgstore

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// The embedded store counts the stored copies of each official letter
// per account (ledger.go: addOfficialCopy, dropOfficialCopy), so that
// the evidence log records its deletion when the last copy goes. COPY
// and EXPUNGE call these two hooks at the same places.

// officialCopyAdded counts one more copy of an official letter (a COPY).
func (s *Store) officialCopyAdded(ctx context.Context, tx pgx.Tx, acct, blob uint64) error {
	return addOfficialCopyTx(ctx, tx, acct, blob, 1)
}

// officialCopyDropped counts one copy less, recording the deletion in
// the evidence log when it was the last (an expunge).
func (s *Store) officialCopyDropped(ctx context.Context, tx pgx.Tx, acct, blob uint64) error {
	return dropOfficialCopyTx(ctx, tx, s.clock(), acct, blob, 1)
}
