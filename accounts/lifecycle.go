package accounts

import (
	"strings"
	"time"
)

// The transitions the user agreement allows (clauses 2.10-2.12), and no
// others:
//
//	active  --Block-->         blocked
//	blocked --Unblock-->       active
//	active, blocked --StartDeletion--> pending-deletion (grace: one month)
//	pending-deletion --Restore-->  active, or blocked if it was blocked
//	                               (only before the grace ends)
//	pending-deletion --Purge-->    purged (only once the grace has ended)
//
// Purged is final. Each method changes the account only when it returns
// nil; the caller stores the result. Times are the caller's clock.

// Block blocks an active account. The reason is required: the operator
// must be able to say later why a subscriber lost access.
func (a *Account) Block(reason string, at time.Time) error {
	reason = strings.TrimSpace(reason)
	if err := a.need("block", at, Active); err != nil {
		return err
	}
	if reason == "" {
		return newError(ErrTransition, "account %s: give a reason to block it", a.Address())
	}
	a.State, a.BlockReason, a.BlockedAt = Blocked, reason, at
	return nil
}

// Unblock gives a blocked account its access back.
func (a *Account) Unblock(at time.Time) error {
	if err := a.need("unblock", at, Blocked); err != nil {
		return err
	}
	a.State, a.BlockReason, a.BlockedAt = Active, "", time.Time{}
	return nil
}

// StartDeletion starts the one-month grace of clause 2.12.1 (requested by
// the user, the operator, or the inactivity sweep; reason says which).
// BlockReason and BlockedAt are kept, so Restore returns a blocked account
// to blocked rather than letting deletion-and-restore lift a block.
func (a *Account) StartDeletion(reason string, at time.Time) error {
	if err := a.need("delete", at, Active, Blocked); err != nil {
		return err
	}
	a.State = PendingDeletion
	a.DeletionAt, a.GraceUntil = at, GraceEnd(at)
	a.DeletionReason = strings.TrimSpace(reason)
	return nil
}

// Restore ends a deletion grace before it runs out. The account returns
// to blocked if it was blocked when deletion started, else to active.
//
// Restoring sets LastUseAt to at: the subscriber or operator acting to
// keep the mailbox is a use of it, and without this an account deleted
// for inactivity would be moved straight back to pending-deletion by the
// next inactivity sweep.
func (a *Account) Restore(at time.Time) error {
	if err := a.need("restore", at, PendingDeletion); err != nil {
		return err
	}
	// A pending-deletion record without a grace end is inconsistent;
	// restoring it is the direction that loses nothing.
	if !a.GraceUntil.IsZero() && !at.Before(a.GraceUntil) {
		return newError(ErrTransition, "account %s cannot be restored: its grace ended on %s",
			a.Address(), formatTime(a.GraceUntil))
	}
	a.State = Active
	if a.BlockReason != "" {
		a.State = Blocked
	}
	a.DeletionAt, a.GraceUntil, a.DeletionReason = time.Time{}, time.Time{}, ""
	a.LastUseAt = at
	return nil
}

// Purge ends an account whose grace has run out: its password, phone and
// block reason go (with the content, which the store deletes), its
// address and dates stay so it can still be listed until the login is
// registered again.
func (a *Account) Purge(at time.Time) error {
	if err := a.need("purge", at, PendingDeletion); err != nil {
		return err
	}
	if a.GraceUntil.IsZero() {
		return newError(ErrTransition, "account %s is pending-deletion with no grace end recorded: restore it or start deletion again",
			a.Address())
	}
	if at.Before(a.GraceUntil) {
		return newError(ErrTransition, "account %s cannot be purged before its grace ends on %s",
			a.Address(), formatTime(a.GraceUntil))
	}
	a.State, a.PurgedAt = Purged, at
	a.PasswordHash, a.Phone, a.BlockReason, a.AppPasswords = "", "", "", nil
	return nil
}

// CanLogin returns nil for an active account and otherwise an error
// wrapping ErrBlocked, ErrPendingDeletion, ErrPurged or ErrUnknownState.
func (a *Account) CanLogin() error {
	switch a.State {
	case Active:
		return nil
	case Blocked:
		return newError(ErrBlocked, "account %s is blocked", a.Address())
	case PendingDeletion:
		return newError(ErrPendingDeletion, "account %s is pending-deletion until %s",
			a.Address(), formatTime(a.GraceUntil))
	case Purged:
		return newError(ErrPurged, "account %s is purged", a.Address())
	}
	return newError(ErrUnknownState, "account %s has unknown state %q", a.Address(), a.State)
}

// MarkUsed records a use (a successful IMAP login or submission AUTH) at
// time at. Uses are coalesced to one an hour: it changes LastUseAt, and
// returns true, only when at is at least an hour after the recorded last
// use, so callers write the account at most once an hour. Inactivity is
// measured in months, so an hour of slack changes nothing.
func (a *Account) MarkUsed(at time.Time) bool {
	if !a.LastUseAt.IsZero() && at.Sub(a.LastUseAt) < time.Hour {
		return false
	}
	a.LastUseAt = at
	return true
}

// need checks that the account is in one of the states action is allowed
// from, and that at is a real time.
func (a *Account) need(action string, at time.Time, from ...State) error {
	if at.IsZero() {
		return newError(ErrTransition, "account %s: cannot %s at the zero time", a.Address(), action)
	}
	for _, s := range from {
		if a.State == s {
			return nil
		}
	}
	addr := a.Address()
	switch a.State {
	case Blocked:
		if action == "block" {
			return newError(ErrTransition, "account %s is already blocked (since %s)", addr, formatTime(a.BlockedAt))
		}
	case Active:
		if action == "unblock" {
			return newError(ErrTransition, "account %s is not blocked", addr)
		}
	case PendingDeletion:
		if action == "delete" {
			return newError(ErrTransition, "account %s is already pending-deletion (grace ends %s)",
				addr, formatTime(a.GraceUntil))
		}
		return newError(ErrTransition, "account %s is pending-deletion: restore it first", addr)
	case Purged:
		return newError(ErrTransition, "account %s is purged: nothing can be done with it", addr)
	default:
		return newError(ErrTransition, "account %s has unknown state %q: cannot %s it", addr, a.State, action)
	}
	switch action {
	case "restore":
		return newError(ErrTransition, "account %s is %s, not pending-deletion: nothing to restore", addr, a.State)
	case "purge":
		return newError(ErrTransition, "account %s is %s: only a pending-deletion account whose grace has ended can be purged",
			addr, a.State)
	}
	return newError(ErrTransition, "account %s is %s: cannot %s it", addr, a.State, action)
}

// formatTime writes times in messages as SPEC writes them: RFC 3339, UTC.
func formatTime(t time.Time) string {
	if t.IsZero() {
		return "an unknown time"
	}
	return t.UTC().Format(time.RFC3339)
}
