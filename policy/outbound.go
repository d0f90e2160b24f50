package policy

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-msgauth/dkim"
	"golang.org/x/net/idna"

	"abox/store"
)

// Outbound mail (issue 17): a subscriber's letter to an address outside
// the hosted domains is accepted on submission, DKIM-signed with its
// domain's key, and written to the store's queue in the same durable
// transaction as any local copies; the sender loop (sender.go) carries
// it through a Transport and reports failures and delays to the sender
// (dsn.go).

// OutboundConfig enables outbound mail. The zero durations and counts
// take the defaults named.
type OutboundConfig struct {
	// Transport carries messages to other domains (package outbound).
	Transport Transport
	// Hostname names this server in notifications (Reporting-MTA).
	Hostname string
	// Lifetime is how long a message is retried (5 days).
	Lifetime time.Duration
	// DelayWarning is when the sender hears a message is still waiting
	// (4 hours; negative: never).
	DelayWarning time.Duration
	// RetryMin and RetryMax bound the backoff between attempts (5
	// minutes doubling up to 1 hour).
	RetryMin, RetryMax time.Duration
	// Concurrency is how many deliveries run at once (64), PerDomain to
	// one destination domain (20), DomainRate new ones per second to
	// one domain (0: unlimited).
	Concurrency int
	PerDomain   int
	DomainRate  float64
	// HoldAfter is how many remote recipients one account may address
	// within an hour before its further outbound mail is held for the
	// operator (1,000; negative: never).
	HoldAfter int
	// ShowClientIP keeps a subscriber's IP address in the Received
	// field of mail it submits (default: left out).
	ShowClientIP bool
	// Lease is how long an attempt may take before another may start
	// (15 minutes; after a crash an entry waits at most this long).
	Lease time.Duration
	// Logger, when set, logs each attempt and notification.
	Logger *slog.Logger
}

func (c *OutboundConfig) withDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.Lifetime, 5*24*time.Hour)
	def(&c.DelayWarning, 4*time.Hour)
	def(&c.RetryMin, 5*time.Minute)
	def(&c.RetryMax, time.Hour)
	def(&c.Lease, 15*time.Minute)
	if c.Concurrency <= 0 {
		c.Concurrency = 64
	}
	if c.PerDomain <= 0 {
		c.PerDomain = 20
	}
	if c.HoldAfter == 0 {
		c.HoldAfter = 1000
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Outbound reports whether outbound mail is enabled.
func (e *Engine) Outbound() bool { return e.cfg.Outbound != nil }

// remoteRecipient checks an address outside the hosted domains for an
// authenticated subscriber's submission.
func remoteRecipient(address, domain string) (*Recipient, error) {
	login, _, _ := strings.Cut(address, "@")
	ascii, err := idna.Lookup.ToASCII(domain)
	if err != nil || !strings.Contains(ascii, ".") || len(ascii) > 253 {
		return nil, refuse(ErrUnknownUser, "%s is not a deliverable domain", domain)
	}
	return &Recipient{Address: login + "@" + strings.ToLower(ascii), Remote: true}, nil
}

// RcptParams are the DSN parameters of RCPT TO (RFC 3461 §4).
type RcptParams struct {
	Notify []string // NEVER, or some of SUCCESS, FAILURE, DELAY (upper case)
	ORcpt  string   // "rfc822;address" (decoded xtext)
}

// queueEntries groups the transaction's remote recipients into one
// queue entry per domain, in the order they came.
func (t *Transaction) queueEntries(msgID string, held string, body []byte) []*store.QueueEntry {
	var out []*store.QueueEntry
	byDomain := map[string]*store.QueueEntry{}
	// A client may ask for SMTPUTF8 or 8BITMIME without needing them
	// (Go's net/smtp asks for SMTPUTF8 whenever it is offered): the next
	// hop is asked only for what the letter needs, so an ASCII letter is
	// not refused by a server without them (RFC 6531 §3.2, RFC 6152).
	utf8 := t.env.SMTPUTF8 && t.needsUTF8(body)
	eightBit := (t.env.EightBit || utf8) && !isASCII(body)
	for i, r := range t.rcpts {
		if !r.Remote {
			continue
		}
		_, domain, _ := strings.Cut(r.Address, "@")
		qe := byDomain[domain]
		if qe == nil {
			qe = &store.QueueEntry{Domain: domain, From: t.env.MailFrom, MessageID: msgID,
				Ret: t.env.Ret, EnvID: t.env.EnvID, RequireTLS: t.env.RequireTLS, SMTPUTF8: utf8, EightBit: eightBit}
			if id := t.env.Identity; id != nil && id.Account != nil {
				qe.Account = id.Account.ID
			}
			if held != "" {
				qe.Held, qe.HeldReason = true, held
			}
			byDomain[domain] = qe
			out = append(out, qe)
		}
		p := t.params[i]
		qe.Recipients = append(qe.Recipients, store.QueueRecipient{Address: r.Address, Notify: p.Notify, ORcpt: p.ORcpt})
	}
	return out
}

// needsUTF8 says whether the envelope or the header has non-ASCII.
func (t *Transaction) needsUTF8(body []byte) bool {
	if !isASCII([]byte(t.env.MailFrom)) || !isASCII(headerBlock(body)) {
		return true
	}
	for _, r := range t.rcpts {
		if !isASCII([]byte(r.Address)) {
			return true
		}
	}
	return false
}

func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return false
		}
	}
	return true
}

// remoteCount is how many recipients are on other domains.
func (t *Transaction) remoteCount() int {
	n := 0
	for _, r := range t.rcpts {
		if r.Remote {
			n++
		}
	}
	return n
}

// bulkWatch counts each account's remote recipients over the last hour,
// so that an account that suddenly writes to thousands of addresses is
// held before the operator's address lands on blocklists. It is kept in
// memory: a restart forgets the hour (the daily limit is in the store).
type bulkWatch struct {
	mu   sync.Mutex
	accs map[uint64]*bulkCount
}

type bulkCount struct {
	hour       int64 // the current hour (unix hours)
	prev, this int
}

// add counts n more recipients for acct at now and returns the count
// over the last hour (the previous hour weighted by what of it is left).
func (w *bulkWatch) add(acct uint64, n int, now time.Time) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.accs == nil {
		w.accs = map[uint64]*bulkCount{}
	}
	h := now.Unix() / 3600
	c := w.accs[acct]
	if c == nil {
		c = &bulkCount{hour: h}
		w.accs[acct] = c
		if len(w.accs) > 100_000 {
			w.prune(h)
		}
	}
	switch {
	case c.hour == h-1:
		c.prev, c.this, c.hour = c.this, 0, h
	case c.hour < h-1:
		c.prev, c.this, c.hour = 0, 0, h
	}
	c.this += n
	left := 1 - float64(now.Unix()%3600)/3600
	return c.this + int(float64(c.prev)*left)
}

// prune forgets accounts quiet for two hours. Caller holds mu.
func (w *bulkWatch) prune(h int64) {
	for id, c := range w.accs {
		if c.hour < h-1 {
			delete(w.accs, id)
		}
	}
}

// holdReason says whether this transaction's remote mail must be held.
func (t *Transaction) holdReason(now time.Time) string {
	o := t.e.cfg.Outbound
	id := t.env.Identity
	if o.HoldAfter < 0 || id == nil || id.Account == nil {
		return ""
	}
	if n := t.e.bulk.add(id.Account.ID, t.remoteCount(), now); n > o.HoldAfter {
		return fmt.Sprintf("%s addressed %d remote recipients within an hour (more than %d)", id.Account.Address(), n, o.HoldAfter)
	}
	return ""
}

// dkimKeys caches each domain's signing key for a minute, so a rotation
// takes effect within a minute without a read per message.
type dkimKeys struct {
	mu   sync.Mutex
	keys map[string]dkimEntry
}

type dkimEntry struct {
	selector string
	signer   crypto.Signer // nil: the domain has no key
	loaded   time.Time
}

const dkimCacheTTL = time.Minute

// signer returns the newest key of a hosted domain, or nil.
func (e *Engine) dkimSigner(domain string, now time.Time) (string, crypto.Signer, error) {
	c := &e.dkim
	c.mu.Lock()
	ent, ok := c.keys[domain]
	c.mu.Unlock()
	if ok && now.Sub(ent.loaded) < dkimCacheTTL {
		return ent.selector, ent.signer, nil
	}
	keys, err := e.store.DKIMKeys(domain)
	if err != nil {
		return "", nil, err
	}
	ent = dkimEntry{loaded: now}
	if len(keys) == 0 && e.cfg.Outbound != nil {
		// Once a minute at most per domain (the cache's life).
		e.cfg.Outbound.Logger.Warn("outbound mail of this domain leaves unsigned: it has no DKIM key (abox domain dkim DOMAIN)", "domain", domain)
	}
	if len(keys) > 0 {
		k := keys[len(keys)-1]
		block, _ := pem.Decode([]byte(k.PrivatePEM))
		if block == nil {
			return "", nil, fmt.Errorf("DKIM key %s of %s: not PEM", k.Selector, domain)
		}
		priv, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return "", nil, fmt.Errorf("DKIM key %s of %s: %w", k.Selector, domain, err)
		}
		s, ok := priv.(crypto.Signer)
		if !ok {
			return "", nil, fmt.Errorf("DKIM key %s of %s: not a signing key", k.Selector, domain)
		}
		ent.selector, ent.signer = k.Selector, s
	}
	c.mu.Lock()
	if c.keys == nil {
		c.keys = map[string]dkimEntry{}
	}
	c.keys[domain] = ent
	c.mu.Unlock()
	return ent.selector, ent.signer, nil
}

// dkimHeaders are the fields signed (RFC 6376 §5.4.1), each listed once
// more than it may appear so that an added one breaks the signature.
var dkimHeaders = []string{"From", "From", "Reply-To", "Subject", "Date", "To", "Cc", "Message-ID", "In-Reply-To", "References",
	"MIME-Version", "Content-Type", "Content-Transfer-Encoding", "Content-Disposition", "List-Unsubscribe"}

// signDKIM returns the DKIM-Signature field for msg on behalf of the
// domain of its From: address, or nil when that domain has no key.
func (e *Engine) signDKIM(msg []byte, fromDomain string) ([]byte, error) {
	selector, signer, err := e.dkimSigner(fromDomain, e.clock())
	if err != nil || signer == nil {
		return nil, err
	}
	s, err := dkim.NewSigner(&dkim.SignOptions{Domain: fromDomain, Selector: selector, Signer: signer,
		HeaderCanonicalization: dkim.CanonicalizationRelaxed, BodyCanonicalization: dkim.CanonicalizationRelaxed,
		HeaderKeys: dkimHeaders})
	if err != nil {
		return nil, err
	}
	if _, err := s.Write(msg); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.Close(); err != nil {
		return nil, err
	}
	return []byte(s.Signature()), nil
}

// stripReturnPath drops a leading Return-Path field: it is added at
// final delivery (RFC 5321 §4.4), and a queued copy shares its body
// with the local ones.
func stripReturnPath(msg []byte) []byte {
	if len(msg) >= 12 && strings.EqualFold(string(msg[:12]), "Return-Path:") {
		if i := bytes.Index(msg, []byte("\r\n")); i >= 0 {
			return msg[i+2:]
		}
	}
	return msg
}

// notifyWants says whether a recipient's NOTIFY asks for kind (SUCCESS,
// FAILURE, DELAY); with none given, failures and delays are reported
// (RFC 3461 §4.1 leaves the default to the MTA; this is Postfix's).
func notifyWants(notify []string, kind string) bool {
	if len(notify) == 0 {
		return kind != "SUCCESS"
	}
	return slices.Contains(notify, kind)
}

// WakeOutbound tells the sender loop entries may be due now (new mail,
// an operator's release or retry).
func (e *Engine) WakeOutbound() { e.wakeOutbound() }

func (e *Engine) wakeOutbound() {
	if q := e.out.Load(); q != nil {
		select {
		case q.wake <- struct{}{}:
		default:
		}
	}
}
