package store

import "errors"

// Sentinel errors. Callers test them with errors.Is and map them to wire
// replies; the messages are written for an operator reading a CLI line.
var (
	ErrLocked         = errors.New("the data directory is in use by another abox process")
	ErrNewerSchema    = errors.New("the database was written by a newer abox")
	ErrCorrupt        = errors.New("the database is corrupt")
	ErrNotAbox        = errors.New("the file is not an abox database")
	ErrClosed         = errors.New("the store is closed")
	ErrExists         = errors.New("already exists")
	ErrNotFound       = errors.New("not found")
	ErrNoDomain       = errors.New("domain is not hosted")
	ErrNoAccount      = errors.New("no such account")
	ErrNoClass        = errors.New("no such class")
	ErrNoSender       = errors.New("no such sender")
	ErrNoMailbox      = errors.New("no such mailbox")
	ErrMailboxExists  = errors.New("mailbox already exists")
	ErrOverQuota      = errors.New("mailbox is over quota")
	ErrUnavailable    = errors.New("account is not active")
	ErrDomainInUse    = errors.New("domain still has accounts")
	ErrClassInUse     = errors.New("class still has accounts")
	ErrInvalidMailbox = errors.New("invalid mailbox name")
	ErrMailboxFull    = errors.New("mailbox UID space exhausted")
	ErrMailboxLimit   = errors.New("mailbox limit reached")
	// ErrAccountChanged: a delivery's recipient account changed since
	// the version the delivery was checked against (Recipient.AccountVersion).
	ErrAccountChanged = errors.New("the account changed since it was read")
	// ErrForeignFiles: a write-ahead log or body segments beside the
	// database belong to another database (or to one that is gone).
	ErrForeignFiles = errors.New("files of another database are in the data directory")
	// ErrStorageFailing: acknowledged writes cannot be checkpointed into
	// the file (a failing or full disk), so reads that need them fail
	// rather than show an older state.
	ErrStorageFailing = errors.New("the storage is failing; try again later")
	// ErrNoSpace: the disk holding the data directory is full (or too
	// close to full to accept more mail safely).
	ErrNoSpace = errors.New("insufficient system storage")
)
