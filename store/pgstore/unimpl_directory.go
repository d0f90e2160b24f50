package pgstore

// Methods of area directory still to write; each goes from here to its own
// file as it is implemented, and this file goes when it is empty.

import (
	"context"
	"time"

	"abox/accounts"
	"abox/store"
)

// AccountsUnusedSince is not yet implemented on PostgreSQL (issue 18, in progress).
func (s *Store) AccountsUnusedSince(before time.Time, afterUse time.Time, afterID uint64, limit int) (r0 []accounts.Account, err error) {
	err = errUnimplemented
	return
}

// Classes is not yet implemented on PostgreSQL (issue 18, in progress).
func (s *Store) Classes() (r0 []accounts.Class, err error) {
	err = errUnimplemented
	return
}

// CountState is not yet implemented on PostgreSQL (issue 18, in progress).
func (s *Store) CountState(st accounts.State) (r0 int64, err error) {
	err = errUnimplemented
	return
}

// DKIMKeys is not yet implemented on PostgreSQL (issue 18, in progress).
func (s *Store) DKIMKeys(domain string) (r0 []store.DKIMKey, err error) {
	err = errUnimplemented
	return
}

// DestroySealed is not yet implemented on PostgreSQL (issue 18, in progress).
func (s *Store) DestroySealed(ctx context.Context, at time.Time, a store.Audit) (r0 []string, err error) {
	err = errUnimplemented
	return
}

// Domains is not yet implemented on PostgreSQL (issue 18, in progress).
func (s *Store) Domains() (r0 []accounts.Domain, err error) {
	err = errUnimplemented
	return
}

// ListAccounts is not yet implemented on PostgreSQL (issue 18, in progress).
func (s *Store) ListAccounts(f store.AccountFilter) (r0 []accounts.Account, err error) {
	err = errUnimplemented
	return
}

// LowSpace is not yet implemented on PostgreSQL (issue 18, in progress).
func (s *Store) LowSpace() (r0 bool) {
	return
}

// PruneAudit is not yet implemented on PostgreSQL (issue 18, in progress).
func (s *Store) PruneAudit(ctx context.Context, before time.Time, batch int) (r0 int, err error) {
	err = errUnimplemented
	return
}

// PruneLogins is not yet implemented on PostgreSQL (issue 18, in progress).
func (s *Store) PruneLogins(ctx context.Context, before time.Time, batch int) (r0 int, err error) {
	err = errUnimplemented
	return
}

// PurgeAccount is not yet implemented on PostgreSQL (issue 18, in progress).
func (s *Store) PurgeAccount(ctx context.Context, address string, at time.Time, seal time.Duration, a store.Audit) (r0 accounts.Account, err error) {
	err = errUnimplemented
	return
}

// RecordLogin is not yet implemented on PostgreSQL (issue 18, in progress).
func (s *Store) RecordLogin(ctx context.Context, acct uint64, r store.LoginRecord) (err error) {
	err = errUnimplemented
	return
}

// Sender is not yet implemented on PostgreSQL (issue 18, in progress).
func (s *Store) Sender(name string) (r0 accounts.Sender, err error) {
	err = errUnimplemented
	return
}

// UpdateAccount is not yet implemented on PostgreSQL (issue 18, in progress).
func (s *Store) UpdateAccount(ctx context.Context, address, action string, fn func(*accounts.Account) error, a store.Audit) (r0 accounts.Account, err error) {
	err = errUnimplemented
	return
}

// UpdateAccountByID is not yet implemented on PostgreSQL (issue 18, in progress).
func (s *Store) UpdateAccountByID(ctx context.Context, id uint64, action string, fn func(*accounts.Account) error, a store.Audit) (r0 accounts.Account, err error) {
	err = errUnimplemented
	return
}

// HasDomain is not yet implemented on PostgreSQL (issue 18, in progress).
func (s *Store) HasDomain(name string) (r0 bool, err error) {
	err = errUnimplemented
	return
}

// RemoveDomain is not yet implemented on PostgreSQL (issue 18, in progress).
func (s *Store) RemoveDomain(ctx context.Context, name string, a store.Audit) (err error) {
	err = errUnimplemented
	return
}

// Class is not yet implemented on PostgreSQL (issue 18, in progress).
func (s *Store) Class(name string) (r0 accounts.Class, err error) {
	err = errUnimplemented
	return
}

// SetClass is not yet implemented on PostgreSQL (issue 18, in progress).
func (s *Store) SetClass(ctx context.Context, name string, fn func(*accounts.Class) error, a store.Audit) (r0 accounts.Class, err error) {
	err = errUnimplemented
	return
}

// AddSender is not yet implemented on PostgreSQL (issue 18, in progress).
func (s *Store) AddSender(ctx context.Context, snd accounts.Sender, a store.Audit) (err error) {
	err = errUnimplemented
	return
}

// Senders is not yet implemented on PostgreSQL (issue 18, in progress).
func (s *Store) Senders() (r0 []accounts.Sender, err error) {
	err = errUnimplemented
	return
}

// SetSenderReceipts is not yet implemented on PostgreSQL (issue 18, in progress).
func (s *Store) SetSenderReceipts(ctx context.Context, name, address string, a store.Audit) (err error) {
	err = errUnimplemented
	return
}

// RemoveSender is not yet implemented on PostgreSQL (issue 18, in progress).
func (s *Store) RemoveSender(ctx context.Context, name string, a store.Audit) (err error) {
	err = errUnimplemented
	return
}

// AddDKIMKey is not yet implemented on PostgreSQL (issue 18, in progress).
func (s *Store) AddDKIMKey(ctx context.Context, k store.DKIMKey, a store.Audit) (err error) {
	err = errUnimplemented
	return
}

// AddAPIToken is not yet implemented on PostgreSQL (issue 18, in progress).
func (s *Store) AddAPIToken(ctx context.Context, tok store.APIToken, hash [32]byte, a store.Audit) (err error) {
	err = errUnimplemented
	return
}

// APITokenByHash is not yet implemented on PostgreSQL (issue 18, in progress).
func (s *Store) APITokenByHash(hash [32]byte) (r0 store.APIToken, r1 bool, err error) {
	err = errUnimplemented
	return
}

// APITokens is not yet implemented on PostgreSQL (issue 18, in progress).
func (s *Store) APITokens() (r0 []store.APIToken, err error) {
	err = errUnimplemented
	return
}

// RevokeAPIToken is not yet implemented on PostgreSQL (issue 18, in progress).
func (s *Store) RevokeAPIToken(ctx context.Context, name string, a store.Audit) (err error) {
	err = errUnimplemented
	return
}

// Idempotent is not yet implemented on PostgreSQL (issue 18, in progress).
func (s *Store) Idempotent(token, key string, notBefore time.Time) (r0 store.IdempotentResult, r1 bool, err error) {
	err = errUnimplemented
	return
}

// RecordIdempotent is not yet implemented on PostgreSQL (issue 18, in progress).
func (s *Store) RecordIdempotent(ctx context.Context, token, key string, r store.IdempotentResult) (err error) {
	err = errUnimplemented
	return
}

// PruneIdempotent is not yet implemented on PostgreSQL (issue 18, in progress).
func (s *Store) PruneIdempotent(ctx context.Context, cutoff time.Time, limit int) (r0 int, err error) {
	err = errUnimplemented
	return
}

// ListAudit is not yet implemented on PostgreSQL (issue 18, in progress).
func (s *Store) ListAudit(f store.AuditFilter) (r0 []store.AuditEntry, err error) {
	err = errUnimplemented
	return
}

// Logins is not yet implemented on PostgreSQL (issue 18, in progress).
func (s *Store) Logins(acct uint64, limit int) (r0 []store.LoginRecord, err error) {
	err = errUnimplemented
	return
}

// ConsentCMS is not yet implemented on PostgreSQL (issue 18, in progress).
func (s *Store) ConsentCMS(id uint64, recordedNanos int64) (r0 []byte, err error) {
	err = errUnimplemented
	return
}

// RecordConsent is not yet implemented on PostgreSQL (issue 18, in progress).
func (s *Store) RecordConsent(ctx context.Context, address string, id uint64, c *accounts.Consent, cms []byte, shareIIN bool, a store.Audit) (r0 accounts.Account, err error) {
	err = errUnimplemented
	return
}
