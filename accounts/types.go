package accounts

import (
	"strings"
	"time"

	"golang.org/x/net/idna"
)

// State is where an account stands in its lifecycle (user agreement
// clauses 2.10-2.12).
type State string

// The lifecycle states. Transitions between them are in lifecycle.go.
const (
	Active          State = "active"
	Blocked         State = "blocked"
	PendingDeletion State = "pending-deletion"
	Purged          State = "purged"
)

// States lists every state in lifecycle order.
var States = []State{Active, Blocked, PendingDeletion, Purged}

// ParseState accepts a state name as the CLI and SPEC spell it.
func ParseState(s string) (State, bool) {
	for _, st := range States {
		if string(st) == s {
			return st, true
		}
	}
	return "", false
}

// GraceEnd is when a deletion grace that starts at t ends: one calendar
// month later (clause 2.12.1: "blocked for one month").
func GraceEnd(t time.Time) time.Time { return t.AddDate(0, 1, 0) }

// Account is one subscriber mailbox. The zero time means "never".
type Account struct {
	ID           uint64    `json:"id"`
	Login        string    `json:"login"`  // lower case, validated by Rules.NormalizeLogin
	Domain       string    `json:"domain"` // lower case, a hosted domain
	Phone        string    `json:"phone"`  // normalised E.164
	Class        string    `json:"class"`
	PasswordHash string    `json:"password_hash"` // argon2id, PHC string format
	State        State     `json:"state"`
	BlockReason  string    `json:"block_reason,omitempty"`
	BlockedAt    time.Time `json:"blocked_at,omitzero"`
	// DeletionAt is when the deletion grace began; GraceUntil when it ends.
	DeletionAt time.Time `json:"deletion_at,omitzero"`
	GraceUntil time.Time `json:"grace_until,omitzero"`
	// DeletionReason says who started the grace and why (operator,
	// user request, inactivity).
	DeletionReason string    `json:"deletion_reason,omitempty"`
	CreatedAt      time.Time `json:"created_at"`
	// LastUseAt is the latest successful IMAP login or submission AUTH;
	// registration counts as a use. Incoming mail never does.
	LastUseAt time.Time `json:"last_use_at"`
	// WarnedAt is when the inactivity warning letter was last delivered.
	WarnedAt time.Time `json:"warned_at,omitzero"`
	PurgedAt time.Time `json:"purged_at,omitzero"`
	// SealedUntil is when a purged account's content, kept sealed for a
	// legal hold, is destroyed (zero: no content kept).
	SealedUntil time.Time `json:"sealed_until,omitzero"`
	// Exempt role accounts are never deleted for inactivity.
	Exempt bool `json:"exempt,omitempty"`
	// Consent is the digital-signature confirmation that enables official
	// letters (user agreement 3.2); nil when none is recorded.
	Consent *Consent `json:"consent,omitempty"`
	// Per-account overrides of the class limits; nil means "as the class".
	QuotaStorage  *int64 `json:"quota_storage,omitempty"`
	QuotaMessages *int64 `json:"quota_messages,omitempty"`
	// BannedServices are services ("imap", "submission") this account
	// may not use whatever its class allows (user agreement 2.9.2,
	// 2.10.1: the operator may bar an account from some services).
	BannedServices []string `json:"banned_services,omitempty"`
	// AppPasswords are the account's passwords for one device's mail
	// app each (apppasswords.go).
	AppPasswords []AppPassword `json:"app_passwords,omitempty"`
	// Version is the store's revision of this record when it was read,
	// for a delivery to check that the account did not change since
	// (store.Recipient.AccountVersion); 0 when the store keeps none.
	// It is not part of the record.
	Version uint64 `json:"-"`
}

// Address is login@domain.
func (a *Account) Address() string { return a.Login + "@" + a.Domain }

// SplitAddress splits an address at its last '@' and lower-cases both
// halves; a domain written in Unicode becomes its A-label (xn--) form,
// so пример.рф and xn--e1afmkfd.xn--p1ai are one domain everywhere
// (RFC 5890, RFC 6531 §3.2). It does not validate them.
func SplitAddress(addr string) (login, domain string, ok bool) {
	i := strings.LastIndexByte(addr, '@')
	if i <= 0 || i == len(addr)-1 {
		return "", "", false
	}
	return strings.ToLower(addr[:i]), ASCIIDomain(addr[i+1:]), true
}

// ASCIIDomain is a domain in lower-case A-label form: an ASCII one only
// lower-cased, a Unicode one mapped and converted as for a lookup
// (UTS #46). A name that does not convert is returned lower-cased, so it
// matches no hosted domain rather than a wrong one.
func ASCIIDomain(d string) string {
	for i := 0; i < len(d); i++ {
		if d[i] >= 0x80 {
			if a, err := idna.Lookup.ToASCII(d); err == nil {
				return strings.ToLower(a)
			}
			return strings.ToLower(d)
		}
	}
	return strings.ToLower(d)
}

// UnicodeDomain is how a hosted domain reads to people: its U-label
// form when it is internationalised, else itself.
func UnicodeDomain(d string) string {
	if !strings.Contains(d, "xn--") {
		return d
	}
	if u, err := idna.Lookup.ToUnicode(d); err == nil {
		return u
	}
	return d
}

// Domain is a hosted mail domain.
type Domain struct {
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
}

// Class is a category of account with its limits (user agreement clause
// 3.1). Zero means unlimited for every numeric limit.
type Class struct {
	Name                 string `json:"name"`
	StorageBytes         int64  `json:"storage_bytes"`
	Messages             int64  `json:"messages"`
	MaxMessageSize       int64  `json:"max_message_size"`
	ReceivedPerDay       int64  `json:"received_per_day"`
	SentPerDay           int64  `json:"sent_per_day"`
	RecipientsPerMessage int64  `json:"recipients_per_message"`
	// IMAPCommandsPerMinute is the sustained rate of an account's IMAP
	// commands (all its sessions together); IMAPCommandBurst how many it
	// may send at once above that rate, enough for a client's first full
	// sync of a mailbox at its message quota. Past the burst a command
	// waits for its turn (policy.CommandBudgets).
	IMAPCommandsPerMinute int64 `json:"imap_commands_per_minute"`
	IMAPCommandBurst      int64 `json:"imap_command_burst"`
	// ConnectionsPerAccount bounds an account's open IMAP sessions.
	ConnectionsPerAccount int64 `json:"connections_per_account"`
	// MaxMailboxes bounds how many mailboxes an account has (the
	// superiors a CREATE makes count), MaxMailboxDepth how many levels a
	// mailbox name has ("a/b/c" has 3), MaxMailboxNameBytes how long a
	// whole name is in bytes (UTF-8). They keep LIST cheap: one CREATE
	// of a 505-level name once made 505 mailboxes.
	MaxMailboxes        int64 `json:"max_mailboxes"`
	MaxMailboxDepth     int64 `json:"max_mailbox_depth"`
	MaxMailboxNameBytes int64 `json:"max_mailbox_name_bytes"`
	// Services lists what the class may use ("imap", "submission");
	// empty means every service.
	Services       []string      `json:"services,omitempty"`
	RetentionTrash time.Duration `json:"retention_trash"`
	RetentionJunk  time.Duration `json:"retention_junk"`
	MaxAge         time.Duration `json:"max_age"`
}

// Services a class can allow.
const (
	ServiceIMAP       = "imap"
	ServiceSubmission = "submission"
)

// Allows reports whether the class includes a service.
func (c *Class) Allows(service string) bool {
	if len(c.Services) == 0 {
		return true
	}
	for _, s := range c.Services {
		if s == service {
			return true
		}
	}
	return false
}

// DefaultClassName is the class a new account gets unless told otherwise.
const DefaultClassName = "standard"

const (
	kib = int64(1) << 10
	mib = kib << 10
	gib = mib << 10
	day = 24 * time.Hour
)

// DefaultClasses are the classes a new store starts with (SPEC "Defaults
// and exact rules").
func DefaultClasses() []Class {
	return []Class{
		{
			Name: "standard", StorageBytes: 1 * gib, Messages: 100_000,
			MaxMessageSize: 25 * mib, ReceivedPerDay: 5_000, SentPerDay: 500,
			RecipientsPerMessage: 100, IMAPCommandsPerMinute: 600, IMAPCommandBurst: 150_000, ConnectionsPerAccount: 50,
			MaxMailboxes: 1_000, MaxMailboxDepth: 16, MaxMailboxNameBytes: 512,
			RetentionTrash: 30 * day, RetentionJunk: 30 * day,
		},
		{
			Name: "organization", StorageBytes: 10 * gib, Messages: 1_000_000,
			MaxMessageSize: 50 * mib, ReceivedPerDay: 100_000, SentPerDay: 10_000,
			RecipientsPerMessage: 100, IMAPCommandsPerMinute: 600, IMAPCommandBurst: 1_500_000, ConnectionsPerAccount: 200,
			MaxMailboxes: 5_000, MaxMailboxDepth: 16, MaxMailboxNameBytes: 512,
			RetentionTrash: 30 * day, RetentionJunk: 30 * day,
		},
	}
}

// SenderKind says what a trusted submitting system sends (user agreement
// clauses 3.3-3.7).
type SenderKind string

// The kinds of trusted sender.
const (
	Official      SenderKind = "official"
	Billing       SenderKind = "billing"
	Informational SenderKind = "informational"
)

// ParseSenderKind accepts a kind as the CLI spells it.
func ParseSenderKind(s string) (SenderKind, bool) {
	switch k := SenderKind(s); k {
	case Official, Billing, Informational:
		return k, true
	}
	return "", false
}

// Sender is a trusted submitting system (a government body, a biller).
type Sender struct {
	Name         string     `json:"name"`
	Kind         SenderKind `json:"kind"`
	From         []string   `json:"from"`     // lower-cased addresses it may use
	AllowIP      []string   `json:"allow_ip"` // CIDR prefixes; empty = anywhere
	PasswordHash string     `json:"password_hash"`
	CreatedAt    time.Time  `json:"created_at"`
	// ReceiptsTo, when set, is where the evidence receipts of its
	// official letters are mailed after each signed tree head.
	ReceiptsTo string `json:"receipts_to,omitempty"`
}
