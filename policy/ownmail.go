package policy

import (
	"context"
	"errors"

	"abox/accounts"
	"abox/store"
)

// A subscriber's own mail (IMAP APPEND, MULTIAPPEND, COPY, MOVE) is
// under the same quota rules as a delivery, in one place: the account's
// storage and message limits from its class and overrides (LimitsOf),
// enforced by the store in the write itself, and the same refusal when
// they would be passed.

// Copy copies messages of an account's mailbox into another of its
// mailboxes (IMAP COPY): the copies count against the quota.
func (e *Engine) Copy(ctx context.Context, a *accounts.Account, src uint32, uids []uint32, dst uint32) (store.CopyResult, error) {
	lim, err := e.LimitsOf(a)
	if err != nil {
		return store.CopyResult{}, err
	}
	res, err := e.store.Copy(ctx, a.ID, src, uids, dst, lim.StorageBytes, lim.Messages)
	return res, ownMailErr(err)
}

// Move moves messages between an account's mailboxes (IMAP MOVE): the
// account's usage does not grow, so no quota applies.
func (e *Engine) Move(ctx context.Context, a *accounts.Account, src uint32, uids []uint32, dst uint32) (store.CopyResult, error) {
	res, err := e.store.Move(ctx, a.ID, src, uids, dst)
	return res, ownMailErr(err)
}

// ownMailErr is the refusal a subscriber's own write gets when it would
// pass the quota or finds the disk full; other errors pass unchanged.
func ownMailErr(err error) error {
	switch {
	case errors.Is(err, store.ErrOverQuota):
		return refuse(ErrOverQuota, "the mailbox is over its quota")
	case errors.Is(err, store.ErrNoSpace):
		return &Refusal{Kind: ErrNoStorage, Reason: "the server's storage is full; try again later", Cause: err}
	}
	return err
}
