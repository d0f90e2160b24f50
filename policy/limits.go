package policy

import (
	"slices"
	"time"

	"abox/accounts"
	"abox/store"
)

// Limits are the limits that apply to one account: its class's, with the
// account's own overrides on top. Zero means unlimited.
type Limits struct {
	StorageBytes          int64
	Messages              int64
	MaxMessageSize        int64
	ReceivedPerDay        int64
	SentPerDay            int64
	RecipientsPerMessage  int64
	IMAPCommandsPerMinute int64
	IMAPCommandBurst      int64
	ConnectionsPerAccount int64
	MaxMailboxes          int64
	MaxMailboxDepth       int64
	MaxMailboxNameBytes   int64
	Services              []string // empty: every service
	Banned                []string // the account's own bans, on top of Services
	RetentionTrash        time.Duration
	RetentionJunk         time.Duration
	MaxAge                time.Duration
}

// EffectiveLimits combines a class and an account's overrides.
func EffectiveLimits(a *accounts.Account, c *accounts.Class) Limits {
	l := Limits{
		StorageBytes:          c.StorageBytes,
		Messages:              c.Messages,
		MaxMessageSize:        c.MaxMessageSize,
		ReceivedPerDay:        c.ReceivedPerDay,
		SentPerDay:            c.SentPerDay,
		RecipientsPerMessage:  c.RecipientsPerMessage,
		IMAPCommandsPerMinute: c.IMAPCommandsPerMinute,
		IMAPCommandBurst:      c.IMAPCommandBurst,
		ConnectionsPerAccount: c.ConnectionsPerAccount,
		MaxMailboxes:          c.MaxMailboxes,
		MaxMailboxDepth:       c.MaxMailboxDepth,
		MaxMailboxNameBytes:   c.MaxMailboxNameBytes,
		Services:              c.Services,
		RetentionTrash:        c.RetentionTrash,
		RetentionJunk:         c.RetentionJunk,
		MaxAge:                c.MaxAge,
	}
	if a.QuotaStorage != nil {
		l.StorageBytes = *a.QuotaStorage
	}
	if a.QuotaMessages != nil {
		l.Messages = *a.QuotaMessages
	}
	l.Banned = a.BannedServices
	return l
}

// Mailboxes are the limits on the account's mailboxes, for the store.
func (l Limits) Mailboxes() store.MailboxLimits {
	return store.MailboxLimits{Count: l.MaxMailboxes, Depth: l.MaxMailboxDepth, NameBytes: l.MaxMailboxNameBytes}
}

// Allows reports whether the account may use a service ("imap",
// "submission").
func (l Limits) Allows(service string) bool {
	if slices.Contains(l.Banned, service) {
		return false
	}
	c := accounts.Class{Services: l.Services}
	return c.Allows(service)
}
