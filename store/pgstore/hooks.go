package pgstore

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"abox/store"
)

// enqueueTx writes a delivery's outbound queue entries in its
// transaction, each holding a reference to the body blob.
func (s *Store) enqueueTx(ctx context.Context, tx pgx.Tx, q []*store.QueueEntry, blob uint64, size int64, now time.Time) error {
	return errUnimplemented
}
