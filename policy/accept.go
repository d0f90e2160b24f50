package policy

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/mail"
	"net/netip"
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
// refusal for lack of consent is remembered for the evidence log.
func (t *Transaction) AddRecipient(address string) (*Recipient, error) {
	official := t.Official()
	r, err := t.e.CheckRecipient(address, RcptOptions{Size: t.env.DeclaredSize, Submission: t.env.Submission, Official: official})
	if err != nil {
		if errors.Is(err, ErrNoConsent) {
			t.refused = append(t.refused, strings.ToLower(address))
			t.refusedWhy = append(t.refusedWhy, ConsentCode(err))
		}
		return nil, err
	}
	if !t.seen[r.Address] {
		t.seen[r.Address] = true
		t.rcpts = append(t.rcpts, r)
		if t.acceptedAt.IsZero() {
			t.acceptedAt = t.e.clock()
		}
	}
	return r, nil
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
	buf       []byte
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
	trace := t.traceHeaders(now)
	n := len(trace) + len(authHeaders) + len(spamHeader) + len(body)
	var stored []byte
	if env.Buffer != nil {
		stored = env.Buffer(n)
	} else {
		stored = make([]byte, 0, n)
	}
	stored = append(append(append(append(stored, trace...), authHeaders...), spamHeader...), body...)
	out.buf, out.Stored = stored, len(stored)
	if _, err := e.Deliver(ctx, &Message{
		Body: stored, Size: received, Recipients: t.rcpts, Sender: sender, Official: official, Junk: junk,
	}); err != nil {
		out.RecordErr = t.abandon(ctx, hdr)
		return out, err
	}
	t.recorded = true // with the delivery (store.recordOfficial)
	return out, nil
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
	fmt.Fprintf(&b, "Received: from %s ([%s])\r\n\tby %s (abox) with %s id %s",
		sanitizeHeader(helo), env.ClientIP, env.Hostname, env.Protocol, env.SessionID)
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
