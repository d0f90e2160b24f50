package imapd

import (
	"context"

	"abox/accounts"
	"abox/store"
)

// Store is what the IMAP layer asks of the store (issue 18: the
// protocol layer does not see which backend answers). *store.Store is
// the embedded one.
type Store interface {
	AccountByID(id uint64) (accounts.Account, error)
	Body(blob uint64) (body, structure []byte, err error)
	ClaimRecent(ctx context.Context, acct uint64, mbox uint32, upTo uint32) (from, to uint32, err error)
	CreateMailbox(ctx context.Context, acct uint64, name, specialUse string, lim store.MailboxLimits) (store.Mailbox, error)
	DeleteMailbox(ctx context.Context, acct uint64, name string) error
	ExpungeDeleted(ctx context.Context, acct uint64, mbox uint32, only func(uint32) bool) ([]uint32, error)
	FirstUnseen(acct uint64, mbox uint32) (uint32, error)
	GoneSubscriptions(acct uint64) ([]string, error)
	HasRetrievalRecord(acct, blob uint64, how string) bool
	Keywords(acct uint64, mbox uint32) ([]string, error)
	MailboxByName(acct uint64, name string) (store.Mailbox, error)
	Mailboxes(acct uint64) ([]store.Mailbox, error)
	Messages(acct uint64, mbox uint32, afterUID uint32, limit int) ([]store.Message, error)
	MessagesByUID(acct uint64, mbox uint32, uids []uint32) ([]store.Message, error)
	ReadBodies(ids []uint64, fn func(i int, body, structure []byte) error) error
	ReadStructures(ids []uint64, fn func(i int, body, structure []byte) error) error
	RecentBoundary(acct uint64, mbox uint32) (uint32, error)
	RecordRetrieval(ctx context.Context, acct, blob uint64, ip, how string) (bool, error)
	RenameMailbox(ctx context.Context, acct uint64, oldName, newName string, lim store.MailboxLimits) error
	SetFlags(ctx context.Context, acct uint64, mbox uint32, uids []uint32, op store.FlagOp, flags []string) ([]store.FlagUpdate, error)
	SetFlagsUnchangedSince(ctx context.Context, acct uint64, mbox uint32, uids []uint32, op store.FlagOp, flags []string, unchangedSince uint64) (updates []store.FlagUpdate, modified []uint32, err error)
	SetSubscribed(ctx context.Context, acct uint64, name string, on bool) error
	Structure(blob uint64) ([]byte, error)
	Structures(ids []uint64) ([][]byte, error)
	Subscribe(account uint64, wake func()) *store.Subscription
	UIDs(acct uint64, mbox uint32) ([]uint32, error)
	UIDsChangedSince(acct uint64, mbox uint32, since uint64) (uids []uint32, changed []store.Message, err error)
	UnclaimedRecent(acct uint64, mbox uint32) (uint32, error)
	Unsubscribe(ctx context.Context, acct uint64, name string) error
	Usage(id uint64) (store.Usage, error)
	Vanished(acct uint64, mbox uint32, since uint64) (uids []uint32, complete bool, err error)
}

var _ Store = (*store.Store)(nil)
