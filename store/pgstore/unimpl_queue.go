package pgstore

// Methods of area queue still to write; each goes from here to its own
// file as it is implemented, and this file goes when it is empty.

import (
	"context"
	"time"

	"abox/store"
)

// QueueBody is not yet implemented on PostgreSQL (issue 18, in progress).
func (s *Store) QueueBody(e *store.QueueEntry) (r0 []byte, err error) {
	err = errUnimplemented
	return
}

// QueueDueBefore is not yet implemented on PostgreSQL (issue 18, in progress).
func (s *Store) QueueDueBefore(t time.Time) (r0 bool) {
	return
}

// QueueLease is not yet implemented on PostgreSQL (issue 18, in progress).
func (s *Store) QueueLease(ctx context.Context, max int, lease time.Duration, skip func(domain string, taken int) bool) (r0 []store.QueueEntry, err error) {
	err = errUnimplemented
	return
}

// QueueReleaseBodies is not yet implemented on PostgreSQL (issue 18, in progress).
func (s *Store) QueueReleaseBodies(ctx context.Context, max int) (r0 int, err error) {
	err = errUnimplemented
	return
}

// QueueReleaseLeases is not yet implemented on PostgreSQL (issue 18, in progress).
func (s *Store) QueueReleaseLeases(ctx context.Context) (r0 int, err error) {
	err = errUnimplemented
	return
}

// QueueUpdate is not yet implemented on PostgreSQL (issue 18, in progress).
func (s *Store) QueueUpdate(ctx context.Context, upd *store.QueueEntry) (err error) {
	err = errUnimplemented
	return
}

// QueueStats is not yet implemented on PostgreSQL (issue 18, in progress).
func (s *Store) QueueStats() (r0 store.QueueStats, err error) {
	err = errUnimplemented
	return
}

// QueueList is not yet implemented on PostgreSQL (issue 18, in progress).
func (s *Store) QueueList(f store.QueueFilter) (r0 []store.QueueEntry, err error) {
	err = errUnimplemented
	return
}

// QueueGet is not yet implemented on PostgreSQL (issue 18, in progress).
func (s *Store) QueueGet(id uint64) (r0 store.QueueEntry, err error) {
	err = errUnimplemented
	return
}

// QueueChange is not yet implemented on PostgreSQL (issue 18, in progress).
func (s *Store) QueueChange(ctx context.Context, id uint64, act store.QueueAction, reason string, a store.Audit) (r0 store.QueueEntry, err error) {
	err = errUnimplemented
	return
}

// QueueChangeAll is not yet implemented on PostgreSQL (issue 18, in progress).
func (s *Store) QueueChangeAll(ctx context.Context, sel store.QueueSelect, act store.QueueAction, reason string, a store.Audit, account string) (r0 int, err error) {
	err = errUnimplemented
	return
}
