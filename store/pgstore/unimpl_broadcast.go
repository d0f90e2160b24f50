package pgstore

// Methods of area broadcast still to write; each goes from here to its own
// file as it is implemented, and this file goes when it is empty.

import (
	"context"

	"abox/store"
)

// BroadcastStep is not yet implemented on PostgreSQL (issue 18, in progress).
func (s *Store) BroadcastStep(ctx context.Context, id uint64, max int, pick store.Pick) (r0 store.Broadcast, err error) {
	err = errUnimplemented
	return
}

// StartBroadcast is not yet implemented on PostgreSQL (issue 18, in progress).
func (s *Store) StartBroadcast(ctx context.Context, b store.Broadcast, body, structure []byte, again bool) (r0 store.Broadcast, r1 bool, err error) {
	err = errUnimplemented
	return
}
