package policy

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"abox/accounts"
	"abox/store"
	"abox/store/msginfo"
)

// Config is what the operator sets for policy decisions.
type Config struct {
	// TrustedNetworks are exempt from per-IP limits (never from
	// per-account ones).
	TrustedNetworks []netip.Prefix
	// Per-IP limits; zero means the default.
	ConnectionsPerIP      int // concurrent, per protocol (default 50)
	MessagesPerMinute     int // per client IP (default 1,000)
	FailedLoginsPerMinute int // per client IP (default 10)
	// UnknownRecipientsPerHour a client IP may be told of before every
	// RCPT from it is deferred (default 100).
	UnknownRecipientsPerHour int
	// SenderMessagesPerMinute bounds each trusted sender (default 10,000).
	SenderMessagesPerMinute int
	// KnownLoginTTL is how long a successful login keeps its network
	// known to the account, exempt from the account's failure counter
	// (default 30 days); KnownLogins bounds how many such pairs are
	// remembered (default 100,000; the least recently used goes first).
	KnownLoginTTL time.Duration
	KnownLogins   int
	// LoginLockout is how long a failed-login counter past its limit
	// refuses the logins that count on it (default a minute).
	LoginLockout time.Duration
	// LoginHistory is how long each account's login records are kept
	// (default 90 days; negative: none are written).
	LoginHistory time.Duration
	// AuditRetention is how long audit entries are kept; older ones are
	// removed by the sweep (0: kept for ever).
	AuditRetention time.Duration
	// Hashing bounds the password checks running at once.
	Hashing HashLimits
	// Clock defaults to time.Now.
	Clock func() time.Time
	// Spam configures content scoring.
	Spam SpamConfig
	// Metrics, when set, count verdicts.
	Metrics *Metrics
	// Lifecycle configures the inactivity sweeps.
	Lifecycle LifecycleConfig
	// Postmaster is the address of the account that receives mail for
	// postmaster@ every hosted domain; empty: each domain's role account
	// (postmaster.go).
	Postmaster string
	// Consent checks, at each official delivery, that the recipient's
	// consent is in force; nil: none is.
	Consent ConsentChecker
	// Outbound enables subscribers' mail to other domains (nil: such a
	// recipient is refused, ErrNoRelay).
	Outbound *OutboundConfig
}

// Engine makes the decisions of the terms of service for the protocol
// sessions and the CLI.
type Engine struct {
	store  Store
	clock  func() time.Time
	cfg    Config
	Limits *RateLimits
	// Commands are the accounts' IMAP command budgets.
	Commands *CommandBudgets
	cache    dirCache

	metrics     *Metrics
	hashes      *hashGate
	extraChecks []check // DNS-based and external checks, when configured
	life        LifecycleConfig

	bulk bulkWatch              // remote recipients per account and hour
	dkim dkimKeys               // signing keys by domain
	out  atomic.Pointer[sender] // the outbound sender loop, once started
}

// New returns an engine deciding over st.
func New(st Store, cfg Config) *Engine {
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.ConnectionsPerIP == 0 {
		cfg.ConnectionsPerIP = 50
	}
	if cfg.MessagesPerMinute == 0 {
		cfg.MessagesPerMinute = 1000
	}
	if cfg.FailedLoginsPerMinute == 0 {
		cfg.FailedLoginsPerMinute = 10
	}
	if cfg.UnknownRecipientsPerHour == 0 {
		cfg.UnknownRecipientsPerHour = 100
	}
	if cfg.SenderMessagesPerMinute == 0 {
		cfg.SenderMessagesPerMinute = 10_000
	}
	if cfg.KnownLoginTTL == 0 {
		cfg.KnownLoginTTL = 30 * 24 * time.Hour
	}
	if cfg.KnownLogins == 0 {
		cfg.KnownLogins = 100_000
	}
	if cfg.LoginLockout == 0 {
		cfg.LoginLockout = time.Minute
	}
	if cfg.LoginHistory == 0 {
		cfg.LoginHistory = 90 * 24 * time.Hour
	}
	if cfg.Spam.JunkScore == 0 {
		cfg.Spam.JunkScore = 5
	}
	if cfg.Spam.RejectScore == 0 {
		cfg.Spam.RejectScore = 15
	}
	if cfg.Spam.MassRecipients == 0 {
		cfg.Spam.MassRecipients = 50
	}
	if cfg.Hashing.Concurrent == 0 {
		cfg.Hashing.Concurrent = 2 * runtime.NumCPU()
	}
	if cfg.Hashing.PerAddress == 0 {
		cfg.Hashing.PerAddress = 2
	}
	if cfg.Hashing.Wait == 0 {
		cfg.Hashing.Wait = 2 * time.Second
	}
	cfg.Spam = withExternalDefaults(cfg.Spam)
	if cfg.Outbound != nil {
		o := *cfg.Outbound
		o.withDefaults()
		cfg.Outbound = &o
	}
	limits := newRateLimits(cfg)
	if shared, ok := st.(SharedLogins); ok {
		limits.shared = shared // several nodes count failed logins together
	}
	return &Engine{store: st, clock: cfg.Clock, cfg: cfg, Limits: limits, Commands: newCommandBudgets(), metrics: cfg.Metrics, life: cfg.Lifecycle,
		extraChecks: externalChecks(cfg.Spam), hashes: newHashGate(cfg.Hashing, cfg.Metrics)}
}

// AuthRetryAfter is how long a client refused with ErrAuthBusy should
// wait before trying again: the time a check may queue for a slot.
func (e *Engine) AuthRetryAfter() time.Duration { return max(e.cfg.Hashing.Wait, time.Second) }

// Now is the engine's clock.
func (e *Engine) Now() time.Time { return e.clock() }

// Trusted reports whether ip is in the trusted networks.
func (e *Engine) Trusted(ip netip.Addr) bool { return e.Limits.trusted(ip) }

// AdvertisedSize is the SIZE announced in EHLO: the default class's
// message size limit (other classes are enforced per recipient).
func (e *Engine) AdvertisedSize() int64 {
	d, err := e.dir()
	if err != nil {
		return 0
	}
	return d.advertised
}

// LargestMessageSize is the largest message any class accepts (0 when
// some class is unlimited): a declared SIZE above it can be refused at
// MAIL FROM already.
func (e *Engine) LargestMessageSize() int64 {
	d, err := e.dir()
	if err != nil {
		return 0
	}
	return d.largest
}

// Recipient is an accepted recipient and the limits its delivery must
// respect.
type Recipient struct {
	Address string // as stored: login@domain, lower case
	Account accounts.Account
	Limits  Limits
	// Remote marks a recipient on another domain (outbound mail): it
	// has no Account or Limits here.
	Remote bool
}

// LimitsOf returns the limits that apply to an account now (a class
// change applies to the next decision at once).
func (e *Engine) LimitsOf(a *accounts.Account) (Limits, error) {
	d, err := e.dir()
	if err != nil {
		return Limits{}, err
	}
	c, ok := d.classes[a.Class]
	if !ok {
		return Limits{}, fmt.Errorf("class %s: %w", a.Class, store.ErrNoClass)
	}
	return EffectiveLimits(a, &c), nil
}

// RcptOptions describe the message a recipient is checked for.
type RcptOptions struct {
	// Size is the size the client declared (0 if it did not).
	Size int64
	// Submission says the client is an authenticated submitter, for whom
	// a recipient outside the hosted domains is an outbound relay, not a
	// relay attempt.
	Submission bool
	// Official says the message is an official letter, which only an
	// account with digital-signature consent may receive.
	Official bool
}

// CheckRecipient decides whether mail for address may be accepted.
func (e *Engine) CheckRecipient(address string, o RcptOptions) (*Recipient, error) {
	size, submission := o.Size, o.Submission
	d, err := e.dir()
	if err != nil {
		return nil, err
	}
	if pm, ok, err := e.postmasterTarget(address, d); err != nil {
		return nil, err
	} else if ok {
		address = pm
	}
	login, domain, ok := accounts.SplitAddress(address)
	if !ok {
		return nil, refuse(ErrUnknownUser, "%s is not an address", address)
	}
	domain = strings.TrimSuffix(domain, ".")
	if !d.domains[domain] {
		if submission && e.cfg.Outbound != nil {
			return remoteRecipient(login+"@"+domain, domain)
		}
		if submission {
			return nil, refuse(ErrNoRelay, "outbound relay not enabled: %s is not hosted here", domain)
		}
		return nil, refuse(ErrRelayDenied, "%s is not hosted here", domain)
	}
	if e.store.LowSpace() {
		return nil, refuse(ErrNoStorage, "insufficient system storage; try again later")
	}
	addr := login + "@" + domain
	// The usage read with the account is advisory: it may lag acknowledged
	// deliveries by a checkpoint, and the store checks again exactly in the
	// delivery's transaction.
	acct, u, err := e.store.AccountWithUsage(addr)
	if errors.Is(err, store.ErrNoAccount) || err == nil && acct.State == accounts.Purged {
		return nil, refuse(ErrUnknownUser, "no mailbox %s here", addr)
	}
	if err != nil {
		return nil, err
	}
	if acct.State != accounts.Active {
		return nil, refuse(ErrDisabled, "mailbox %s is %s", addr, acct.State)
	}
	if o.Official {
		if r := e.consentInForce(&acct, addr); r != nil {
			return nil, r
		}
	}
	lim, err := e.LimitsOf(&acct)
	if err != nil {
		return nil, err
	}
	if size > 0 && lim.MaxMessageSize > 0 && size > lim.MaxMessageSize {
		return nil, refuse(ErrTooBig, "%s accepts messages up to %d bytes", addr, lim.MaxMessageSize)
	}
	// Written as differences: a declared SIZE near 2^63 would overflow a
	// sum and pass.
	if lim.StorageBytes > 0 && max(size, 0) > lim.StorageBytes-u.Bytes && (size > 0 || u.Bytes >= lim.StorageBytes) ||
		lim.Messages > 0 && u.Messages >= lim.Messages {
		return nil, refuse(ErrOverQuota, "mailbox %s is over its quota", addr)
	}
	if lim.ReceivedPerDay > 0 && u.Day == store.DayNumber(e.clock()) && u.Received >= lim.ReceivedPerDay {
		return nil, refuse(ErrRateLimited, "%s has received its %d messages for today", addr, lim.ReceivedPerDay)
	}
	return &Recipient{Address: addr, Account: acct, Limits: lim}, nil
}

// Message is a message ready to be stored for its accepted recipients.
type Message struct {
	Body []byte
	// Size is the message as the client sent it, which size limits
	// apply to (the trace headers the server adds do not count); 0
	// means len(Body).
	Size       int64
	Recipients []*Recipient
	// Sender is the authenticated subscriber submitting it, whose daily
	// sent counter it counts against; nil for inbound mail.
	Sender *accounts.Account
	// Keywords are set on every copy ($Official for an official
	// sender's letters).
	Keywords []string
	// Shareable bodies may arrive again byte for byte (see
	// store.Delivery.Shareable).
	Shareable bool
	// Structure is the precomputed envelope and body structure.
	Structure []byte
	// Official makes it an official letter, recorded in the evidence log.
	Official *store.OfficialLetter
	// Junk files it in each recipient's Junk folder with $Junk.
	Junk bool
	// Queue are outbound queue entries written with the delivery.
	Queue []*store.QueueEntry
}

// Deliver checks the message against each recipient's limits and stores
// it for all of them in one durable transaction, or for none.
//
// A quota, class or state changed since RCPT applies to this delivery.
// A store that versions its account records (PostgreSQL) checks that
// each recipient's account is still the version read at RCPT inside
// the delivery's own statement, and answers ErrAccountChanged when it
// is not; the accounts are then read again and the delivery retried.
// A store that keeps no versions (bbolt, where a read costs no round
// trip) has each account read again first.
func (e *Engine) Deliver(ctx context.Context, m *Message) ([]store.Delivered, error) {
	const attempts = 3
	var res []store.Delivered
	var err error
	for attempt := 1; ; attempt++ {
		d, perr := e.prepareDelivery(m, attempt > 1, attempt < attempts)
		if perr != nil {
			return nil, perr
		}
		res, err = e.store.Deliver(ctx, d)
		if !errors.Is(err, store.ErrAccountChanged) || attempt == attempts {
			break
		}
	}
	switch {
	case err == nil:
		if len(m.Queue) > 0 {
			e.wakeOutbound()
		}
		return res, nil
	case errors.Is(err, store.ErrOverQuota):
		return nil, refuse(ErrOverQuota, "%s", trimStoreErr(err))
	case errors.Is(err, store.ErrUnavailable):
		return nil, refuse(ErrDisabled, "%s", trimStoreErr(err))
	case errors.Is(err, store.ErrDailyLimit):
		return nil, refuse(ErrRateLimited, "%s", trimStoreErr(err))
	case errors.Is(err, store.ErrNoAccount):
		return nil, refuse(ErrUnknownUser, "%s", trimStoreErr(err))
	case errors.Is(err, store.ErrNoSpace):
		return nil, &Refusal{Kind: ErrNoStorage, Reason: "insufficient system storage; try again later", Cause: err}
	}
	return nil, fmt.Errorf("policy: deliver: %w", err)
}

// prepareDelivery builds the store.Delivery of one of Deliver's
// attempts. reread has every recipient's account read again first
// (always when the store keeps no versions); checked passes the
// versions for the store to check (the last attempt does not, so that
// an account changing again and again still gets its letter, with the
// limits read just before).
func (e *Engine) prepareDelivery(m *Message, reread, checked bool) (*store.Delivery, error) {
	size := m.Size
	if size == 0 {
		size = int64(len(m.Body))
	}
	for _, r := range m.Recipients {
		if r.Account.Version == 0 || reread {
			if acct, err := e.store.AccountByID(r.Account.ID); err == nil {
				if lim, err := e.LimitsOf(&acct); err == nil {
					r.Account, r.Limits = acct, lim
				}
			}
		} else if lim, err := e.LimitsOf(&r.Account); err == nil {
			// The class's own limits may have changed since RCPT.
			r.Limits = lim
		}
	}
	if m.Structure == nil {
		m.Structure = msginfo.Compute(m.Body)
	}
	d := &store.Delivery{Body: m.Body, Structure: m.Structure, AllOrNothing: true, Shareable: m.Shareable, Official: m.Official, Queue: m.Queue}
	for _, r := range m.Recipients {
		if r.Limits.MaxMessageSize > 0 && size > r.Limits.MaxMessageSize {
			return nil, refuse(ErrTooBig, "%s accepts messages up to %d bytes", r.Address, r.Limits.MaxMessageSize)
		}
		rcpt := store.Recipient{
			Account: r.Account.ID, Flags: m.Keywords,
			MaxBytes: r.Limits.StorageBytes, MaxMessages: r.Limits.Messages,
			MaxReceivedPerDay: r.Limits.ReceivedPerDay,
		}
		if checked {
			rcpt.AccountVersion = r.Account.Version
		}
		if m.Junk {
			rcpt.SpecialUse = `\Junk`
			rcpt.Flags = append(slices.Clone(rcpt.Flags), "$Junk")
		}
		d.Recipients = append(d.Recipients, rcpt)
	}
	if m.Sender != nil {
		lim, err := e.LimitsOf(m.Sender)
		if err != nil {
			return nil, err
		}
		d.Sender = &store.SenderCount{Account: m.Sender.ID, MaxSentPerDay: lim.SentPerDay}
	}
	return d, nil
}

// trimStoreErr drops the internal "recipient N: " prefix.
func trimStoreErr(err error) string {
	s := err.Error()
	if i := strings.Index(s, ": "); strings.HasPrefix(s, "recipient ") && i > 0 {
		return s[i+2:]
	}
	return s
}

// CheckAppend decides whether a message of size bytes may be added to an
// account's mailbox by the subscriber (IMAP APPEND), before it is read.
func (e *Engine) CheckAppend(a *accounts.Account, size int64) error {
	lim, err := e.LimitsOf(a)
	if err != nil {
		return err
	}
	if lim.MaxMessageSize > 0 && size > lim.MaxMessageSize {
		return refuse(ErrTooBig, "messages are limited to %d bytes", lim.MaxMessageSize)
	}
	u, err := e.store.Usage(a.ID)
	if err != nil {
		return err
	}
	if lim.StorageBytes > 0 && size > lim.StorageBytes-u.Bytes || lim.Messages > 0 && u.Messages >= lim.Messages {
		return refuse(ErrOverQuota, "the mailbox is over its quota")
	}
	return nil
}

// Append stores a message a subscriber adds to one of its mailboxes. It
// counts against quota (checked again in the store transaction) but not
// against the daily received limit.
func (e *Engine) Append(ctx context.Context, a *accounts.Account, mailbox string, flags []string, date time.Time, body []byte) (store.Delivered, error) {
	lim, err := e.LimitsOf(a)
	if err != nil {
		return store.Delivered{}, err
	}
	// A client cannot make a letter official by APPENDing it.
	flags = slices.DeleteFunc(slices.Clone(flags), func(f string) bool { return strings.EqualFold(f, store.KeywordOfficial) })
	res, err := e.store.Deliver(ctx, &store.Delivery{
		Body: body, Structure: msginfo.Compute(body), InternalDate: date, Shareable: true, AllOrNothing: true,
		Recipients: []store.Recipient{{Account: a.ID, Mailbox: mailbox, Flags: flags,
			MaxBytes: lim.StorageBytes, MaxMessages: lim.Messages, NotReceived: true}},
	})
	if err != nil {
		return store.Delivered{}, ownMailErr(err)
	}
	return res[0], nil
}
