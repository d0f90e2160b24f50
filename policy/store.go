package policy

import (
	"context"
	"time"

	"abox/accounts"
	"abox/store"
)

// Store is what policy asks of the store (issue 18: decisions do not
// depend on which backend keeps the data). *store.Store is the embedded
// one.
type Store interface {
	Account(address string) (accounts.Account, error)
	AccountByID(id uint64) (accounts.Account, error)
	AccountWithUsage(address string) (accounts.Account, store.Usage, error)
	AccountsUnusedSince(before time.Time, afterUse time.Time, afterID uint64, limit int) ([]accounts.Account, error)
	AppendAudit(ctx context.Context, e store.AuditEntry) error
	AppendMessages(ctx context.Context, acct uint64, mailbox string, msgs []store.AppendMessage, maxBytes, maxMessages int64) ([]store.Delivered, error)
	BroadcastStep(ctx context.Context, id uint64, max int, pick store.Pick) (store.Broadcast, error)
	Classes() ([]accounts.Class, error)
	Copy(ctx context.Context, acct uint64, src uint32, uids []uint32, dst uint32, maxBytes, maxMessages int64) (store.CopyResult, error)
	CountState(st accounts.State) (int64, error)
	CreateAccount(ctx context.Context, in accounts.Account, a store.Audit) (accounts.Account, error)
	DKIMKeys(domain string) ([]store.DKIMKey, error)
	Deliver(ctx context.Context, d *store.Delivery) ([]store.Delivered, error)
	DestroySealed(ctx context.Context, at time.Time, a store.Audit) ([]string, error)
	DirectoryGeneration() uint64
	Domains() ([]accounts.Domain, error)
	Expunge(ctx context.Context, acct uint64, mbox uint32, uids []uint32) ([]uint32, error)
	ListAccounts(f store.AccountFilter) ([]accounts.Account, error)
	LowSpace() bool
	Mailboxes(acct uint64) ([]store.Mailbox, error)
	Move(ctx context.Context, acct uint64, src uint32, uids []uint32, dst uint32) (store.CopyResult, error)
	OlderThan(acct uint64, mbox uint32, cutoff time.Time, limit int) ([]uint32, error)
	PruneAudit(ctx context.Context, before time.Time, batch int) (int, error)
	PruneLogins(ctx context.Context, before time.Time, batch int) (int, error)
	PruneVanished(ctx context.Context, cutoff time.Time) (int, error)
	PurgeAccount(ctx context.Context, address string, at time.Time, seal time.Duration, a store.Audit) (accounts.Account, error)
	QueueBody(e *store.QueueEntry) ([]byte, error)
	QueueDueBefore(t time.Time) bool
	QueueLease(ctx context.Context, max int, lease time.Duration, skip func(domain string, taken int) bool) ([]store.QueueEntry, error)
	QueueReleaseBodies(ctx context.Context, max int) (int, error)
	QueueReleaseLeases(ctx context.Context) (int, error)
	QueueUpdate(ctx context.Context, upd *store.QueueEntry) error
	RecordLogin(ctx context.Context, acct uint64, r store.LoginRecord) error
	RecordRefusals(ctx context.Context, o *store.OfficialLetter) error
	Sender(name string) (accounts.Sender, error)
	StartBroadcast(ctx context.Context, b store.Broadcast, body, structure []byte, again bool) (store.Broadcast, bool, error)
	UpdateAccount(ctx context.Context, address, action string, fn func(*accounts.Account) error, a store.Audit) (accounts.Account, error)
	UpdateAccountByID(ctx context.Context, id uint64, action string, fn func(*accounts.Account) error, a store.Audit) (accounts.Account, error)
	Usage(id uint64) (store.Usage, error)
}

var _ Store = (*store.Store)(nil)
