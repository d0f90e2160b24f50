package pgstore

// Methods of area mail still to write; each goes from here to its own
// file as it is implemented, and this file goes when it is empty.

import (
	"context"
	"time"

	"abox/store"
)

// AppendMessages is not yet implemented on PostgreSQL (issue 18, in progress).
func (s *Store) AppendMessages(ctx context.Context, acct uint64, mailbox string, msgs []store.AppendMessage, maxBytes, maxMessages int64) (r0 []store.Delivered, err error) {
	err = errUnimplemented
	return
}

// Copy is not yet implemented on PostgreSQL (issue 18, in progress).
func (s *Store) Copy(ctx context.Context, acct uint64, src uint32, uids []uint32, dst uint32, maxBytes, maxMessages int64) (r0 store.CopyResult, err error) {
	err = errUnimplemented
	return
}

// Deliver is not yet implemented on PostgreSQL (issue 18, in progress).
func (s *Store) Deliver(ctx context.Context, d *store.Delivery) (r0 []store.Delivered, err error) {
	err = errUnimplemented
	return
}

// Expunge is not yet implemented on PostgreSQL (issue 18, in progress).
func (s *Store) Expunge(ctx context.Context, acct uint64, mbox uint32, uids []uint32) (r0 []uint32, err error) {
	err = errUnimplemented
	return
}

// Mailboxes is not yet implemented on PostgreSQL (issue 18, in progress).
func (s *Store) Mailboxes(acct uint64) (r0 []store.Mailbox, err error) {
	err = errUnimplemented
	return
}

// Move is not yet implemented on PostgreSQL (issue 18, in progress).
func (s *Store) Move(ctx context.Context, acct uint64, src uint32, uids []uint32, dst uint32) (r0 store.CopyResult, err error) {
	err = errUnimplemented
	return
}

// OlderThan is not yet implemented on PostgreSQL (issue 18, in progress).
func (s *Store) OlderThan(acct uint64, mbox uint32, cutoff time.Time, limit int) (r0 []uint32, err error) {
	err = errUnimplemented
	return
}

// PruneVanished is not yet implemented on PostgreSQL (issue 18, in progress).
func (s *Store) PruneVanished(ctx context.Context, cutoff time.Time) (r0 int, err error) {
	err = errUnimplemented
	return
}

// Body is not yet implemented on PostgreSQL (issue 18, in progress).
func (s *Store) Body(blob uint64) (r0 []byte, r1 []byte, err error) {
	err = errUnimplemented
	return
}

// ClaimRecent is not yet implemented on PostgreSQL (issue 18, in progress).
func (s *Store) ClaimRecent(ctx context.Context, acct uint64, mbox uint32, upTo uint32) (r0 uint32, r1 uint32, err error) {
	err = errUnimplemented
	return
}

// CreateMailbox is not yet implemented on PostgreSQL (issue 18, in progress).
func (s *Store) CreateMailbox(ctx context.Context, acct uint64, name, specialUse string, lim store.MailboxLimits) (r0 store.Mailbox, err error) {
	err = errUnimplemented
	return
}

// DeleteMailbox is not yet implemented on PostgreSQL (issue 18, in progress).
func (s *Store) DeleteMailbox(ctx context.Context, acct uint64, name string) (err error) {
	err = errUnimplemented
	return
}

// ExpungeDeleted is not yet implemented on PostgreSQL (issue 18, in progress).
func (s *Store) ExpungeDeleted(ctx context.Context, acct uint64, mbox uint32, only func(uint32) bool) (r0 []uint32, err error) {
	err = errUnimplemented
	return
}

// FirstUnseen is not yet implemented on PostgreSQL (issue 18, in progress).
func (s *Store) FirstUnseen(acct uint64, mbox uint32) (r0 uint32, err error) {
	err = errUnimplemented
	return
}

// GoneSubscriptions is not yet implemented on PostgreSQL (issue 18, in progress).
func (s *Store) GoneSubscriptions(acct uint64) (r0 []string, err error) {
	err = errUnimplemented
	return
}

// Keywords is not yet implemented on PostgreSQL (issue 18, in progress).
func (s *Store) Keywords(acct uint64, mbox uint32) (r0 []string, err error) {
	err = errUnimplemented
	return
}

// MailboxByName is not yet implemented on PostgreSQL (issue 18, in progress).
func (s *Store) MailboxByName(acct uint64, name string) (r0 store.Mailbox, err error) {
	err = errUnimplemented
	return
}

// Messages is not yet implemented on PostgreSQL (issue 18, in progress).
func (s *Store) Messages(acct uint64, mbox uint32, afterUID uint32, limit int) (r0 []store.Message, err error) {
	err = errUnimplemented
	return
}

// MessagesByUID is not yet implemented on PostgreSQL (issue 18, in progress).
func (s *Store) MessagesByUID(acct uint64, mbox uint32, uids []uint32) (r0 []store.Message, err error) {
	err = errUnimplemented
	return
}

// ReadBodies is not yet implemented on PostgreSQL (issue 18, in progress).
func (s *Store) ReadBodies(ids []uint64, fn func(i int, body, structure []byte) error) (err error) {
	err = errUnimplemented
	return
}

// ReadStructures is not yet implemented on PostgreSQL (issue 18, in progress).
func (s *Store) ReadStructures(ids []uint64, fn func(i int, body, structure []byte) error) (err error) {
	err = errUnimplemented
	return
}

// RecentBoundary is not yet implemented on PostgreSQL (issue 18, in progress).
func (s *Store) RecentBoundary(acct uint64, mbox uint32) (r0 uint32, err error) {
	err = errUnimplemented
	return
}

// RenameMailbox is not yet implemented on PostgreSQL (issue 18, in progress).
func (s *Store) RenameMailbox(ctx context.Context, acct uint64, oldName, newName string, lim store.MailboxLimits) (err error) {
	err = errUnimplemented
	return
}

// SetFlags is not yet implemented on PostgreSQL (issue 18, in progress).
func (s *Store) SetFlags(ctx context.Context, acct uint64, mbox uint32, uids []uint32, op store.FlagOp, flags []string) (r0 []store.FlagUpdate, err error) {
	err = errUnimplemented
	return
}

// SetFlagsUnchangedSince is not yet implemented on PostgreSQL (issue 18, in progress).
func (s *Store) SetFlagsUnchangedSince(ctx context.Context, acct uint64, mbox uint32, uids []uint32, op store.FlagOp, flags []string, unchangedSince uint64) (r0 []store.FlagUpdate, r1 []uint32, err error) {
	err = errUnimplemented
	return
}

// SetSubscribed is not yet implemented on PostgreSQL (issue 18, in progress).
func (s *Store) SetSubscribed(ctx context.Context, acct uint64, name string, on bool) (err error) {
	err = errUnimplemented
	return
}

// Structure is not yet implemented on PostgreSQL (issue 18, in progress).
func (s *Store) Structure(blob uint64) (r0 []byte, err error) {
	err = errUnimplemented
	return
}

// Structures is not yet implemented on PostgreSQL (issue 18, in progress).
func (s *Store) Structures(ids []uint64) (r0 [][]byte, err error) {
	err = errUnimplemented
	return
}

// UIDs is not yet implemented on PostgreSQL (issue 18, in progress).
func (s *Store) UIDs(acct uint64, mbox uint32) (r0 []uint32, err error) {
	err = errUnimplemented
	return
}

// UIDsChangedSince is not yet implemented on PostgreSQL (issue 18, in progress).
func (s *Store) UIDsChangedSince(acct uint64, mbox uint32, since uint64) (r0 []uint32, r1 []store.Message, err error) {
	err = errUnimplemented
	return
}

// UnclaimedRecent is not yet implemented on PostgreSQL (issue 18, in progress).
func (s *Store) UnclaimedRecent(acct uint64, mbox uint32) (r0 uint32, err error) {
	err = errUnimplemented
	return
}

// Unsubscribe is not yet implemented on PostgreSQL (issue 18, in progress).
func (s *Store) Unsubscribe(ctx context.Context, acct uint64, name string) (err error) {
	err = errUnimplemented
	return
}

// Vanished is not yet implemented on PostgreSQL (issue 18, in progress).
func (s *Store) Vanished(acct uint64, mbox uint32, since uint64) (r0 []uint32, r1 bool, err error) {
	err = errUnimplemented
	return
}

// BodyByHash is not yet implemented on PostgreSQL (issue 18, in progress).
func (s *Store) BodyByHash(hash [32]byte) (r0 uint64, err error) {
	err = errUnimplemented
	return
}
