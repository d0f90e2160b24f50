package policy

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/mail"
	"net/netip"
	"slices"
	"strings"
	"time"

	"abox/accounts"
	"abox/store"
)

// Accepting a message (issue 17, "one acceptance path"): the SMTP session
// opens a transaction when MAIL is accepted (Begin), adds the recipients
// it is given (AddRecipient), and hands over the body at the end of DATA
// (Deliver). Everything that decides what happens to the message is
// here: the recipients' checks and the consent refusals of an official
// letter, the header's own rules (a submitter's From:, the Date and
// Message-ID a submitting client left out), the content verdict (refuse,
// Junk, the X-Spam-Status and Authentication-Results fields), the trace
// fields, the official letter's record, and the one durable write. smtpd
// speaks SMTP: it turns an error into its reply and logs the outcome. As
// in maddy's delivery targets (AddRcpt, Body, Commit), a transaction is
// one message's life, and Abandon ends one that delivered nothing.

// Envelope is what the session knows when a transaction begins.
type Envelope struct {
	// Submission is the submission service (else MX).
	Submission bool
	// Hostname is this server's name (Received, a missing Message-ID).
	Hostname  string
	SessionID string
	ClientIP  netip.Addr
	Helo      string
	// Protocol is the Received field's "with" (RFC 3848, RFC 6531).
	Protocol string
	TLS      *tls.ConnectionState
	// Identity is the authenticated submitter (nil on MX).
	Identity *Identity
	// MailFrom is the reverse-path ("" is the null one).
	MailFrom string
	// DeclaredSize is MAIL's SIZE (0 when not given).
	DeclaredSize int64
	// MAIL parameters carried to other domains: RET and ENVID (RFC 3461
	// §4.3, §4.4), REQUIRETLS (RFC 8689), SMTPUTF8 (RFC 6531) and
	// BODY=8BITMIME (RFC 6152).
	Ret, EnvID                     string
	RequireTLS, SMTPUTF8, EightBit bool
	// Buffer, when set, lends the buffer the stored message is built in
	// (the caller gets it back from Accepted.Release); nil allocates.
	Buffer func(n int) []byte
}

// Transaction is one message being accepted. It is not safe for
// concurrent use (one session owns it).
type Transaction struct {
	e          *Engine
	env        Envelope
	rcpts      []*Recipient
	params     []RcptParams // parallel to rcpts
	seen       map[string]bool
	acceptedAt time.Time
	refused    []string // refused for lack of consent (official letters)
	refusedWhy []string // parallel: the evidence log's reason
	recorded   bool     // the refusals are in the evidence log
}

// Begin opens a transaction for env.
func (e *Engine) Begin(env Envelope) *Transaction {
	return &Transaction{e: e, env: env, seen: map[string]bool{}}
}

// Official says the submitter is an official sender, all of whose
// letters are official.
func (t *Transaction) Official() bool {
	id := t.env.Identity
	return id != nil && id.Sender != nil && id.Sender.Kind == accounts.Official
}

// Recipients are the recipients accepted so far.
func (t *Transaction) Recipients() []*Recipient { return t.rcpts }

// AddRecipient checks a recipient (CheckRecipient) and adds it once; a
// refusal for lack of consent is remembered for the evidence log. p
// are its DSN parameters (kept for a recipient on another domain).
func (t *Transaction) AddRecipient(address string, p RcptParams) (*Recipient, error) {
	official := t.Official()
	r, err := t.e.CheckRecipient(address, RcptOptions{Size: t.env.DeclaredSize, Submission: t.env.Submission, Official: official})
	if err != nil {
		if errors.Is(err, ErrNoConsent) {
			t.refused = append(t.refused, strings.ToLower(address))
			t.refusedWhy = append(t.refusedWhy, ConsentCode(err))
		}
		return nil, err
	}
	if r.Remote && !t.seen[r.Address] {
		if err := t.checkRemote(); err != nil {
			return nil, err
		}
	}
	if !t.seen[r.Address] {
		t.seen[r.Address] = true
		t.rcpts = append(t.rcpts, r)
		t.params = append(t.params, p)
		if t.acceptedAt.IsZero() {
			t.acceptedAt = t.e.clock()
		}
	}
	return r, nil
}

// checkRemote decides whether the submitter may add one more recipient
// on another domain: only a subscriber may (a trusted sender writes to
// subscribers), within its class's daily sent limit (the store checks
// it again exactly at delivery).
func (t *Transaction) checkRemote() error {
	id := t.env.Identity
	if id == nil || id.Account == nil {
		return refuse(ErrNoRelay, "outbound relay is for subscribers; trusted senders write to hosted mailboxes only")
	}
	lim, err := t.e.LimitsOf(id.Account)
	if err != nil {
		return err
	}
	if lim.SentPerDay > 0 {
		u, err := t.e.store.Usage(id.Account.ID)
		if err != nil {
			return err
		}
		sent := int64(0)
		if u.Day == store.DayNumber(t.e.clock()) {
			sent = u.Sent
		}
		if sent+int64(len(t.rcpts))+1 > lim.SentPerDay {
			return refuse(ErrRateLimited, "%s has sent its %d messages for today", id.Account.Address(), lim.SentPerDay)
		}
	}
	return nil
}

// Accepted is the outcome of Deliver: what was stored and the content
// verdict (also on a refusal, when the content was scored).
type Accepted struct {
	MessageID string
	Stored    int // bytes stored (the trace fields included)
	Scored    bool
	Verdict   Verdict
	// RecordErr says the consent refusals of an official letter could
	// not be put in the evidence log (the caller logs it).
	RecordErr error
	// Queued is how many outbound queue entries (destination domains)
	// were written; Held says they wait for the operator.
	Queued int
	Held   bool
	buf    []byte
}

// Release gives back the buffer the stored message was built in (see
// Envelope.Buffer); the caller calls it once it no longer needs Stored.
func (a *Accepted) Release() []byte { b := a.buf; a.buf = nil; return b }

// Deliver stores body (as received after DATA or BDAT) for the accepted
// recipients in one durable transaction, or refuses it; a returned
// refusal is a *Refusal (its kind says the reply). Whatever happens,
// the consent refusals are in the evidence log when it returns (or
// Abandon records them later, for a delivery that never came).
func (t *Transaction) Deliver(ctx context.Context, body []byte) (Accepted, error) {
	var out Accepted
	e, env := t.e, t.env
	now := e.clock()
	// The header block, parsed once for the submitter's From:, the
	// Message-ID and the fields a submitting client left out.
	hdr, hdrErr := parseHeader(body)
	var sender *accounts.Account
	if env.Submission {
		if err := checkHeaderFrom(hdr, hdrErr, env.Identity); err != nil {
			out.RecordErr = t.abandon(ctx, hdr)
			return out, err
		}
		if added := missingHeaders(hdr, env.Hostname, env.SessionID, now); len(added) > 0 {
			body = append(added, body...)
			hdr, hdrErr = parseHeader(body)
		}
		if env.Identity.Account != nil {
			sender = env.Identity.Account
		}
	}
	msgID := ""
	if hdrErr == nil {
		msgID = store.NormalizeMessageID(hdr.Get("Message-ID"))
	}
	out.MessageID = msgID
	var official *store.OfficialLetter
	if t.Official() {
		official = t.officialLetter(msgID)
	}
	remote := t.remoteCount()
	received := int64(len(body))
	rcptTo := make([]string, len(t.rcpts))
	for i, r := range t.rcpts {
		rcptTo[i] = r.Address
	}
	v := e.Score(context.Background(), &Inspection{
		Body: body, ClientIP: env.ClientIP, Helo: env.Helo, MailFrom: env.MailFrom, Recipients: len(t.rcpts),
		RcptTo: rcptTo, Authenticated: env.Identity != nil, TrustedSender: env.Identity != nil && env.Identity.Sender != nil,
	})
	out.Scored, out.Verdict = true, v
	junk := false
	var spamHeader, authHeaders []byte
	switch v.Action {
	case Reject:
		kind := ErrSpam
		for _, f := range v.Findings {
			if f.Check == "attachment" && f.Reject {
				kind = ErrForbidden
			}
		}
		out.RecordErr = t.abandon(ctx, hdr)
		return out, &Refusal{Kind: kind, Reason: kind.Error() + ": " + v.Reasons()}
	case Junk:
		junk = true
		// Say why it is in Junk; accepted mail keeps its bytes.
		spamHeader = fmt.Appendf(nil, "X-Spam-Status: Yes, score=%.1f (%s)\r\n", v.Score, sanitizeHeader(v.Reasons()))
	}
	if len(v.Headers) > 0 {
		// Authentication-Results (MX mail): ours replaces any that
		// claims this server's name (RFC 8601 §5).
		authHeaders = bytes.Join(v.Headers, nil)
		body = e.StripAuthResults(body)
	}
	var signature []byte
	var queue []*store.QueueEntry
	if remote > 0 {
		// Signed as it leaves: our trace fields go above the signature.
		var err error
		if signature, err = e.signDKIM(body, fromDomain(hdr)); err != nil {
			e.cfg.Outbound.Logger.Error("DKIM signing failed; the message leaves unsigned", "session", env.SessionID, "err", err)
		}
		queue = t.queueEntries(msgID, t.holdReason(now), body)
	}
	trace := t.traceHeaders(now)
	n := len(trace) + len(authHeaders) + len(spamHeader) + len(signature) + len(body)
	var stored []byte
	if env.Buffer != nil {
		stored = env.Buffer(n)
	} else {
		stored = make([]byte, 0, n)
	}
	stored = append(append(append(append(append(stored, trace...), authHeaders...), spamHeader...), signature...), body...)
	out.buf, out.Stored = stored, len(stored)
	local := t.rcpts
	if remote > 0 {
		local = make([]*Recipient, 0, len(t.rcpts)-remote)
		for _, r := range t.rcpts {
			if !r.Remote {
				local = append(local, r)
			}
		}
	}
	out.Queued, out.Held = len(queue), len(queue) > 0 && queue[0].Held
	if _, err := e.Deliver(ctx, &Message{
		Body: stored, Size: received, Recipients: local, Sender: sender, Official: official, Junk: junk, Queue: queue,
	}); err != nil {
		out.RecordErr = t.abandon(ctx, hdr)
		return out, err
	}
	t.recorded = true // with the delivery (store.recordOfficial)
	t.reportLocalSuccess(ctx, msgID, stored, now)
	return out, nil
}

// reportLocalSuccess sends the "delivered" notification that recipients
// hosted here with NOTIFY=SUCCESS asked for (RFC 3461 §5.2.2); DSN is
// offered only with outbound mail enabled.
func (t *Transaction) reportLocalSuccess(ctx context.Context, msgID string, stored []byte, now time.Time) {
	o := t.e.cfg.Outbound
	if o == nil || t.env.MailFrom == "" {
		return
	}
	en := &store.QueueEntry{From: t.env.MailFrom, MessageID: msgID, EnvID: t.env.EnvID, Ret: t.env.Ret, CreatedAt: now.UTC()}
	var idx []int
	for i, r := range t.rcpts {
		if !r.Remote && slices.Contains(t.params[i].Notify, "SUCCESS") {
			idx = append(idx, len(en.Recipients))
			en.Recipients = append(en.Recipients, store.QueueRecipient{Address: r.Address, ORcpt: t.params[i].ORcpt,
				Status: store.QueueDelivered, Reply: "250 2.0.0 delivered to the mailbox", At: now.UTC()})
		}
	}
	if len(idx) == 0 {
		return
	}
	msg := t.e.buildDSN(en, idx, dsnDelivered, OutResult{}, stripReturnPath(stored))
	if err := t.e.deliverDSN(ctx, en, msg); err != nil {
		o.Logger.Error("a delivery notification could not be sent", "session", t.env.SessionID, "to", t.env.MailFrom, "err", err)
		return
	}
	t.e.metrics.outDSN(dsnDelivered)
}

// Abandon ends a transaction that delivered nothing (RSET, QUIT, a
// dropped connection, a refused or failed DATA): the consent refusals
// of an official letter are recorded so one always leaves a record
// (issue 15). body is the message when it is known, else nil. Calling
// it after Deliver (or again) does nothing.
func (t *Transaction) Abandon(ctx context.Context, body []byte) error {
	var hdr mail.Header
	if body != nil {
		hdr, _ = parseHeader(body)
	}
	return t.abandon(ctx, hdr)
}

// RefusedForConsent is how many recipients were refused for lack of
// consent.
func (t *Transaction) RefusedForConsent() int { return len(t.refused) }

func (t *Transaction) abandon(ctx context.Context, hdr mail.Header) error {
	if len(t.refused) == 0 || t.recorded || !t.Official() {
		return nil
	}
	t.recorded = true
	msgID := ""
	if hdr != nil {
		msgID = store.NormalizeMessageID(hdr.Get("Message-ID"))
	}
	o := t.officialLetter(msgID)
	if o.AcceptedAt.IsZero() {
		o.AcceptedAt = t.e.clock()
	}
	return t.e.RecordRefusals(ctx, o)
}

// officialLetter describes the transaction's official letter for the
// store.
func (t *Transaction) officialLetter(msgID string) *store.OfficialLetter {
	o := &store.OfficialLetter{Sender: t.env.Identity.Sender.Name, MessageID: msgID,
		AcceptedAt: t.acceptedAt, Refused: t.refused, Reason: "no-consent", RefusedReasons: t.refusedWhy,
		ClientIP: t.env.ClientIP.String(), TLS: "none"}
	if t.env.TLS != nil {
		o.TLS = tls.VersionName(t.env.TLS.Version) + " " + tls.CipherSuiteName(t.env.TLS.CipherSuite)
	}
	for _, r := range t.rcpts {
		o.Addresses = append(o.Addresses, r.Address)
	}
	return o
}

// traceHeaders are the Return-Path and Received fields of RFC 5321 §4.4,
// added at final delivery. "for" names the recipient only when there is
// one, so that several recipients share one stored body.
func (t *Transaction) traceHeaders(now time.Time) []byte {
	env := t.env
	var b bytes.Buffer
	fmt.Fprintf(&b, "Return-Path: <%s>\r\n", env.MailFrom)
	helo := env.Helo
	if helo == "" {
		helo = "unknown"
	}
	if env.Submission && t.e.cfg.Outbound != nil && !t.e.cfg.Outbound.ShowClientIP {
		// A subscriber's address and machine name stay inside the
		// operator's network (issue 17, privacy).
		fmt.Fprintf(&b, "Received: by %s (abox) with %s id %s", env.Hostname, env.Protocol, env.SessionID)
	} else {
		fmt.Fprintf(&b, "Received: from %s ([%s])\r\n\tby %s (abox) with %s id %s",
			sanitizeHeader(helo), env.ClientIP, env.Hostname, env.Protocol, env.SessionID)
	}
	if env.TLS != nil {
		fmt.Fprintf(&b, "\r\n\t(using %s with cipher %s)", tls.VersionName(env.TLS.Version), tls.CipherSuiteName(env.TLS.CipherSuite))
	}
	if env.Identity != nil {
		fmt.Fprintf(&b, "\r\n\t(authenticated sender: %s)", sanitizeHeader(env.Identity.Name()))
	}
	if len(t.rcpts) == 1 {
		fmt.Fprintf(&b, "\r\n\tfor <%s>", t.rcpts[0].Address)
	}
	fmt.Fprintf(&b, ";\r\n\t%s\r\n", now.Format(time.RFC1123Z))
	return b.Bytes()
}

// sanitizeHeader keeps client-chosen text from breaking a header line.
func sanitizeHeader(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == '(' || r == ')' {
			return '_'
		}
		return r
	}, s)
}

// headerBlock returns the header section of a message (without the blank
// line), or the whole message when it has no body.
func headerBlock(msg []byte) []byte {
	if i := bytes.Index(msg, []byte("\r\n\r\n")); i >= 0 {
		return msg[:i+2]
	}
	return msg
}

// parseHeader parses a message's header block.
func parseHeader(msg []byte) (mail.Header, error) {
	m, err := mail.ReadMessage(bytes.NewReader(append(bytes.Clone(headerBlock(msg)), '\r', '\n')))
	if err != nil {
		return nil, err
	}
	return m.Header, nil
}

// checkHeaderFrom makes sure every From: address belongs to the
// authenticated submitter (SPEC: 553 5.7.1 at the end of DATA).
func checkHeaderFrom(hdr mail.Header, hdrErr error, id *Identity) error {
	if hdrErr != nil {
		return &Refusal{Kind: ErrSenderDenied, Reason: "the message header cannot be parsed"}
	}
	froms := hdr["From"]
	if len(froms) == 0 {
		return &Refusal{Kind: ErrSenderDenied, Reason: "the message has no From: header"}
	}
	// Every From: field counts, not only the first.
	for _, from := range froms {
		list, err := addressParser.ParseList(from)
		if err != nil || len(list) == 0 {
			return &Refusal{Kind: ErrSenderDenied, Reason: "the From: header cannot be parsed"}
		}
		for _, a := range list {
			if !id.Owns(a.Address) {
				return &Refusal{Kind: ErrSenderDenied, Reason: fmt.Sprintf("%s may not send as From: %s", id.Name(), a.Address)}
			}
		}
	}
	return nil
}

// missingHeaders are the Date and Message-ID fields a submitting client
// left out (RFC 6409 §8.2, §8.3), to put before the message.
func missingHeaders(hdr mail.Header, hostname, id string, now time.Time) []byte {
	var add bytes.Buffer
	if hdr == nil || len(hdr["Date"]) == 0 {
		fmt.Fprintf(&add, "Date: %s\r\n", now.Format(time.RFC1123Z))
	}
	if hdr == nil || len(hdr["Message-Id"]) == 0 {
		fmt.Fprintf(&add, "Message-ID: <%s.%d@%s>\r\n", id, now.UnixNano(), hostname)
	}
	return add.Bytes()
}
