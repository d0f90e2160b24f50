package smtpd

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"mime"
	"net/mail"
	"strings"
	"time"

	"github.com/emersion/go-message/charset"

	"abox/accounts"
	"abox/policy"
	"abox/store"
)

// deliverTimeout bounds how long the end of DATA may wait for the store.
const deliverTimeout = time.Minute

// finish stores a received message for the transaction's recipients and
// answers. 250 is sent only after policy.Deliver returned, i.e. after the
// message is durably committed for every recipient.
func (c *conn) finish(tx *transaction, body []byte, start time.Time) {
	// Whatever ends this DATA short of a delivery, the consent
	// refusals are logged (refusals.go).
	defer func() { c.logUndelivered(tx, body) }()
	now := c.s.cfg.Policy.Now()
	var keywords []string
	var sender *accounts.Account
	if c.submission() {
		if err := checkHeaderFrom(body, c.ident); err != nil {
			c.refuse(err)
			return
		}
		body = addMissingHeaders(body, c.s.cfg.Hostname, c.id, now)
		if c.ident.Account != nil {
			sender = c.ident.Account
		}
	}
	var official *store.OfficialLetter
	if c.official() {
		official = c.officialLetter(tx, body)
	}
	received := int64(len(body))
	junk := false
	var spamHeader, authHeaders []byte
	// The verdict goes on the message's one log line ("delivered"), or on
	// its own line when the message is not stored: one line per message
	// (each is a write system call; two were 7% of the CPU under load).
	v := c.score(tx, body)
	verdict := []any{"action", v.Action.String(), "score", v.Score, "reasons", v.Reasons(), "checks", v.Details()}
	switch v.Action {
	case policy.Reject:
		c.log.Info("content verdict", verdict...)
		kind := policy.ErrSpam
		for _, f := range v.Findings {
			if f.Check == "attachment" && f.Reject {
				kind = policy.ErrForbidden
			}
		}
		c.refuse(&policy.Refusal{Kind: kind, Reason: kind.Error() + ": " + v.Reasons()})
		return
	case policy.Junk:
		junk = true
		// Say why it is in Junk; accepted mail keeps its bytes.
		spamHeader = fmt.Appendf(nil, "X-Spam-Status: Yes, score=%.1f (%s)\r\n", v.Score, sanitizeHeader(v.Reasons()))
	}
	if len(v.Headers) > 0 {
		// Authentication-Results (MX mail): ours replaces any that
		// claims this server's name (RFC 8601 §5).
		authHeaders = bytes.Join(v.Headers, nil)
		body = c.s.cfg.Policy.StripAuthResults(body)
	}
	trace := c.traceHeaders(tx, now)
	stored := getDataBuf(len(trace) + len(authHeaders) + len(spamHeader) + len(body))
	stored = append(append(append(append(stored, trace...), authHeaders...), spamHeader...), body...)
	// The store copies what it keeps (or has committed it) by the time
	// Deliver returns.
	defer putDataBuf(stored)
	ctx, cancel := context.WithTimeout(context.Background(), deliverTimeout)
	defer cancel()
	_, err := c.s.cfg.Policy.Deliver(ctx, &policy.Message{
		Body: stored, Size: received, Recipients: tx.rcpts, Sender: sender, Keywords: keywords, Official: official,
		Junk: junk,
	})
	if err != nil {
		c.log.Info("content verdict", verdict...)
		c.refuse(err)
		return
	}
	tx.refusalsLogged = true
	m := c.s.cfg.Metrics
	m.accepted.WithLabelValues(c.s.cfg.Name).Inc()
	m.bytes.WithLabelValues(c.s.cfg.Name).Add(float64(len(stored)))
	m.latency.WithLabelValues(c.s.cfg.Name).Observe(time.Since(start).Seconds())
	msgID := ""
	if official != nil {
		msgID = official.MessageID
	} else {
		msgID = messageID(body)
	}
	to := make([]string, len(tx.rcpts))
	for i, r := range tx.rcpts {
		to[i] = r.Address
	}
	c.log.Info("delivered", append([]any{"from", tx.from, "to", to, "message_id", msgID, "bytes", len(stored)}, verdict...)...)
	c.writeReply(reply{250, "2.0.0", "OK: stored as " + c.id})
}

// score runs the content checks on a message from any sender: trusted
// senders are above the spam score, never above the content rules
// (forbidden attachments, GTUBE), see policy.Inspection.TrustedSender.
func (c *conn) score(tx *transaction, body []byte) policy.Verdict {
	rcptTo := make([]string, len(tx.rcpts))
	for i, r := range tx.rcpts {
		rcptTo[i] = r.Address
	}
	return c.s.cfg.Policy.Score(context.Background(), &policy.Inspection{
		Body: body, ClientIP: c.ip, Helo: c.helo, MailFrom: tx.from, Recipients: len(tx.rcpts),
		RcptTo: rcptTo, Authenticated: c.ident != nil, TrustedSender: c.ident != nil && c.ident.Sender != nil,
	})
}

// traceHeaders are the Return-Path and Received fields of RFC 5321 §4.4,
// added at final delivery. "for" names the recipient only when there is
// one, so that several recipients share one stored body.
func (c *conn) traceHeaders(tx *transaction, now time.Time) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "Return-Path: <%s>\r\n", tx.from)
	helo := c.helo
	if helo == "" {
		helo = "unknown"
	}
	fmt.Fprintf(&b, "Received: from %s ([%s])\r\n\tby %s (abox) with %s id %s",
		sanitizeHeader(helo), c.ip, c.s.cfg.Hostname, c.withProtocol(tx), c.id)
	if c.tls != nil {
		fmt.Fprintf(&b, "\r\n\t(using %s with cipher %s)", tls.VersionName(c.tls.Version), tls.CipherSuiteName(c.tls.CipherSuite))
	}
	if c.ident != nil {
		fmt.Fprintf(&b, "\r\n\t(authenticated sender: %s)", sanitizeHeader(c.ident.Name()))
	}
	if len(tx.rcpts) == 1 {
		fmt.Fprintf(&b, "\r\n\tfor <%s>", tx.rcpts[0].Address)
	}
	fmt.Fprintf(&b, ";\r\n\t%s\r\n", now.Format(time.RFC1123Z))
	return b.Bytes()
}

// withProtocol is the "with" clause of RFC 3848 and RFC 6531 §4.3.
func (c *conn) withProtocol(tx *transaction) string {
	p := "SMTP"
	if c.esmtp {
		p = "ESMTP"
		if tx.utf8 {
			p = "UTF8SMTP"
		}
		if c.tls != nil {
			p += "S"
		}
		if c.ident != nil {
			p += "A"
		}
	}
	return p
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

var addressParser = mail.AddressParser{WordDecoder: &mime.WordDecoder{CharsetReader: charset.Reader}}

// headerBlock returns the header section of a message (without the blank
// line), or the whole message when it has no body.
func headerBlock(msg []byte) []byte {
	if i := bytes.Index(msg, []byte("\r\n\r\n")); i >= 0 {
		return msg[:i+2]
	}
	return msg
}

// checkHeaderFrom makes sure every From: address belongs to the
// authenticated submitter (SPEC: 553 5.7.1 at the end of DATA).
func checkHeaderFrom(msg []byte, id *policy.Identity) error {
	m, err := mail.ReadMessage(bytes.NewReader(append(headerBlock(msg), '\r', '\n')))
	if err != nil {
		return &policy.Refusal{Kind: policy.ErrSenderDenied, Reason: "the message header cannot be parsed"}
	}
	froms := m.Header["From"]
	if len(froms) == 0 {
		return &policy.Refusal{Kind: policy.ErrSenderDenied, Reason: "the message has no From: header"}
	}
	// Every From: field counts, not only the first.
	for _, from := range froms {
		list, err := addressParser.ParseList(from)
		if err != nil || len(list) == 0 {
			return &policy.Refusal{Kind: policy.ErrSenderDenied, Reason: "the From: header cannot be parsed"}
		}
		for _, a := range list {
			if !id.Owns(a.Address) {
				return &policy.Refusal{Kind: policy.ErrSenderDenied, Reason: fmt.Sprintf("%s may not send as From: %s", id.Name(), a.Address)}
			}
		}
	}
	return nil
}

// messageID is the Message-ID header value without angle brackets.
func messageID(msg []byte) string {
	m, err := mail.ReadMessage(bytes.NewReader(append(headerBlock(msg), '\r', '\n')))
	if err != nil {
		return ""
	}
	return store.NormalizeMessageID(m.Header.Get("Message-ID"))
}

// addMissingHeaders adds Date and Message-ID when the submitting client
// left them out (RFC 6409 §8.2, §8.3).
func addMissingHeaders(msg []byte, hostname, id string, now time.Time) []byte {
	hdr := headerBlock(msg)
	has := func(name string) bool {
		for _, line := range bytes.Split(hdr, []byte("\r\n")) {
			if len(line) > 0 && (line[0] == ' ' || line[0] == '\t') {
				continue // a folded continuation, not a field
			}
			if k, _, ok := bytes.Cut(line, []byte(":")); ok && strings.EqualFold(strings.TrimSpace(string(k)), name) {
				return true
			}
		}
		return false
	}
	var add bytes.Buffer
	if !has("Date") {
		fmt.Fprintf(&add, "Date: %s\r\n", now.Format(time.RFC1123Z))
	}
	if !has("Message-ID") {
		fmt.Fprintf(&add, "Message-ID: <%s.%d@%s>\r\n", id, now.UnixNano(), hostname)
	}
	if add.Len() == 0 {
		return msg
	}
	return append(add.Bytes(), msg...)
}
