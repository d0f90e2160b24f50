package policy

import (
	"errors"
	"fmt"
	"slices"

	"abox/accounts"
	"abox/store"
)

// Recheck says whether a subscriber logged in as id, in a session of
// service ("imap" or "submission"), may go on. It reads the account as
// it is now: a block, a deletion, a password change or a class that no
// longer includes the service since the login ends the session (user
// agreement 2.7-2.8, 2.12.1: a subscriber who fears a stolen password
// changes it, and the thief's open sessions must end with it). On
// success it returns the current account; a trusted sender's identity
// is returned as it is. An error that is no *Refusal says the account
// could not be read (ErrStorageFailing): nothing was decided, and the
// session goes on.
func (e *Engine) Recheck(id *Identity, service string) (*accounts.Account, error) {
	if id == nil || id.Account == nil {
		return nil, nil
	}
	acct, err := e.store.AccountByID(id.Account.ID)
	if errors.Is(err, store.ErrStorageFailing) {
		// The account could not be read (the storage is out of reach):
		// no decision, so no Refusal; callers keep the session open.
		return nil, fmt.Errorf("policy: recheck: %w", err)
	}
	if err != nil {
		return nil, &Refusal{Kind: ErrAuthFailed, Reason: "the account no longer exists", Cause: err}
	}
	if err := acct.CanLogin(); err != nil {
		return nil, &Refusal{Kind: ErrAuthFailed, Reason: err.Error(), Cause: err}
	}
	if acct.PasswordHash != id.Account.PasswordHash {
		return nil, &Refusal{Kind: ErrAuthFailed, Reason: "the password was changed since this session logged in; log in again"}
	}
	if id.AppPassword != nil && !acct.HasAppPassword(id.AppPassword) {
		return nil, &Refusal{Kind: ErrAuthFailed, Reason: fmt.Sprintf("the app password %q was revoked", id.AppPassword.Name)}
	}
	if err := e.serviceRefusal(&acct, service); err != nil {
		return nil, err
	}
	return &acct, nil
}

// serviceRefusal says why the account may not use service, or nil: the
// account's own ban first, then its class.
func (e *Engine) serviceRefusal(acct *accounts.Account, service string) error {
	if slices.Contains(acct.BannedServices, service) {
		return &Refusal{Kind: ErrAuthFailed, Cause: ErrServiceDenied, Reason: fmt.Sprintf("account %s is barred from %s by the operator", acct.Address(), service)}
	}
	if lim, err := e.LimitsOf(acct); err == nil && !lim.Allows(service) {
		return &Refusal{Kind: ErrAuthFailed, Cause: ErrServiceDenied, Reason: fmt.Sprintf("the %s class does not include %s", acct.Class, service)}
	}
	return nil
}
