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
)
