package pgstore

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"abox/store"
)

// recordOfficialTx writes an official letter's evidence events and
// ledger entries for the recipients stored (res) and refused, in the
// delivery's transaction.
func (s *Store) recordOfficialTx(ctx context.Context, tx pgx.Tx, o *store.OfficialLetter, res []store.Delivered, blob uint64, now time.Time) error {
	return errUnimplemented
}
