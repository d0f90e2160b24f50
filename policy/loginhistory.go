package policy

import (
	"context"
	"errors"
	"net/netip"
	"time"

	"abox/store"
)

// noteLogin adds one attempt to the account's login history (user
// agreement 2.7-2.8), unless history is off. A full disk must not keep a
// subscriber from logging in, so ErrNoSpace is not an error here.
func (e *Engine) noteLogin(ctx context.Context, acct uint64, r store.LoginRecord) error {
	if e.cfg.LoginHistory < 0 {
		return nil
	}
	err := e.store.RecordLogin(ctx, acct, r)
	if errors.Is(err, store.ErrNoSpace) {
		return nil
	}
	return err
}

// NoteClientID records what a logged-in client said it is (IMAP ID, RFC
// 2971) when it says so after its login, in the account's login history.
func (e *Engine) NoteClientID(ctx context.Context, acct uint64, service string, ip netip.Addr, client string) error {
	return e.noteLogin(ctx, acct, store.LoginRecord{At: e.clock(), Service: service,
		Address: ip.Unmap().String(), Client: client, Outcome: "id"})
}

// pruneLoginHistory removes login records older than the configured
// period, in bounded batches.
func (e *Engine) pruneLoginHistory(ctx context.Context, at time.Time) (int, error) {
	if e.cfg.LoginHistory < 0 {
		// None are written; any written before the setting changed go.
		return e.store.PruneLogins(ctx, at.Add(time.Nanosecond), sweepBatch)
	}
	return e.store.PruneLogins(ctx, at.Add(-e.cfg.LoginHistory), sweepBatch)
}
