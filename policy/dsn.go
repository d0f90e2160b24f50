package policy

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"abox/store"
)

// Delivery status notifications (RFC 3464 in a multipart/report, RFC
// 6522) to the sender of outbound mail: failed (refused, or still
// deferred at the end of the lifetime), delayed (once, after the delay
// warning time), relayed (NOTIFY=SUCCESS to a server that does not take
// DSN parameters, RFC 3461 §6.2.6). A notification has the null
// reverse-path, so none is ever sent about one (RFC 3461 §6.2, RFC 5321
// §4.5.5).

type dsnAction string

const (
	dsnFailed  dsnAction = "failed"
	dsnDelayed dsnAction = "delayed"
	dsnRelayed dsnAction = "relayed"
	// dsnDelivered: NOTIFY=SUCCESS for a recipient hosted here.
	dsnDelivered dsnAction = "delivered"
)

// dsnFullLimit: a returned message larger than this comes back as its
// header only.
const dsnFullLimit = 1 << 20

// sendDSN builds the notification about recipients idx of en and
// delivers it to en.From: into its mailbox when hosted here, else
// through the queue.
func (e *Engine) sendDSN(ctx context.Context, en *store.QueueEntry, idx []int, action dsnAction, res OutResult) error {
	orig, err := e.store.QueueBody(en)
	if err != nil {
		return err
	}
	return e.deliverDSN(ctx, en, e.buildDSN(en, idx, action, res, stripReturnPath(orig)))
}

// deliverDSN delivers a notification about en to its sender.
func (e *Engine) deliverDSN(ctx context.Context, en *store.QueueEntry, msg []byte) error {
	return e.DeliverNotice(ctx, en.From, fmt.Sprintf("dsn-%d", en.ID), msg)
}

// DeliverNotice delivers a message the server itself writes (a delivery
// status notification, an evidence receipt) with the null reverse-path
// to one address: into its mailbox when hosted here, else through the
// outbound queue (refused when outbound mail is off). id names it in
// the Received field.
func (e *Engine) DeliverNotice(ctx context.Context, to, id string, msg []byte) error {
	r, err := e.CheckRecipient(to, RcptOptions{})
	if err == nil {
		trace := fmt.Appendf(nil, "Return-Path: <>\r\nReceived: by %s (abox) id %s;\r\n\t%s\r\n",
			e.hostname(), id, e.clock().Format(time.RFC1123Z))
		_, err = e.Deliver(ctx, &Message{Body: append(trace, msg...), Recipients: []*Recipient{r}})
		return err
	}
	_, domain, ok := strings.Cut(to, "@")
	if !ok {
		return err
	}
	if _, hosted := e.hostedDomain(domain); hosted || e.cfg.Outbound == nil {
		return err // a hosted address that cannot take it now, or no way out
	}
	_, err = e.Deliver(ctx, &Message{Body: msg, Queue: []*store.QueueEntry{{
		Domain: strings.ToLower(domain), From: "", Recipients: []store.QueueRecipient{{Address: to}},
	}}})
	return err
}

// hostname is this server's name in the notices it writes.
func (e *Engine) hostname() string {
	if e.cfg.Outbound != nil && e.cfg.Outbound.Hostname != "" {
		return e.cfg.Outbound.Hostname
	}
	return e.cfg.Spam.Hostname
}

// hostedDomain reports whether domain is hosted here.
func (e *Engine) hostedDomain(domain string) (string, bool) {
	d, err := e.dir()
	if err != nil {
		return "", false
	}
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	return domain, d.domains[domain]
}

// buildDSN renders the notification.
func (e *Engine) buildDSN(en *store.QueueEntry, idx []int, action dsnAction, res OutResult, orig []byte) []byte {
	o := e.cfg.Outbound
	now := e.clock()
	var rnd [12]byte
	_, _ = rand.Read(rnd[:])
	boundary := "dsn-" + hex.EncodeToString(rnd[:])
	var b bytes.Buffer
	subject := map[dsnAction]string{
		dsnFailed:    "Undelivered Mail Returned to Sender",
		dsnDelayed:   "Delayed Mail (still being retried)",
		dsnRelayed:   "Successful Mail Delivery Report",
		dsnDelivered: "Successful Mail Delivery Report",
	}[action]
	fmt.Fprintf(&b, "From: Mail Delivery System <MAILER-DAEMON@%s>\r\n", o.Hostname)
	fmt.Fprintf(&b, "To: <%s>\r\n", en.From)
	fmt.Fprintf(&b, "Subject: %s\r\n", subject)
	fmt.Fprintf(&b, "Date: %s\r\n", now.Format(time.RFC1123Z))
	fmt.Fprintf(&b, "Message-ID: <dsn.%s@%s>\r\n", hex.EncodeToString(rnd[:]), o.Hostname)
	b.WriteString("Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n")
	fmt.Fprintf(&b, "Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"%s\"\r\n\r\n", boundary)
	b.WriteString("This is a MIME-encapsulated delivery status notification.\r\n\r\n")

	// The human-readable part.
	fmt.Fprintf(&b, "--%s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n", boundary)
	fmt.Fprintf(&b, "This is the mail system at %s.\r\n\r\n", o.Hostname)
	switch action {
	case dsnFailed:
		b.WriteString("Your message could not be delivered to the recipients below. It\r\nwill not be tried again.\r\n")
	case dsnDelayed:
		fmt.Fprintf(&b, "Your message has not been delivered yet to the recipients below.\r\nIt is still being tried, until %s; you do not need to\r\nsend it again.\r\n",
			en.CreatedAt.Add(o.Lifetime).UTC().Format(time.RFC1123Z))
	case dsnRelayed:
		b.WriteString("Your message was handed to the recipients' mail server, which does\r\nnot report deliveries any further.\r\n")
	case dsnDelivered:
		b.WriteString("Your message was delivered to the mailboxes below.\r\n")
	}
	if en.MessageID != "" {
		fmt.Fprintf(&b, "\r\nMessage-ID: <%s>\r\n", en.MessageID)
	}
	b.WriteString("\r\n")
	for _, i := range idx {
		r := en.Recipients[i]
		fmt.Fprintf(&b, "<%s>: %s\r\n", r.Address, oneLine(r.Reply))
	}
	b.WriteString("\r\n")

	// The machine-readable part (RFC 3464 §2).
	fmt.Fprintf(&b, "--%s\r\nContent-Type: message/delivery-status\r\n\r\n", boundary)
	fmt.Fprintf(&b, "Reporting-MTA: dns; %s\r\n", o.Hostname)
	if en.EnvID != "" {
		fmt.Fprintf(&b, "Original-Envelope-Id: %s\r\n", xtext(en.EnvID))
	}
	fmt.Fprintf(&b, "Arrival-Date: %s\r\n", en.CreatedAt.Format(time.RFC1123Z))
	for _, i := range idx {
		r := en.Recipients[i]
		code, enh, text := splitReply(r.Reply)
		if enh == "" {
			enh = map[dsnAction]string{dsnFailed: "5.0.0", dsnDelayed: "4.0.0", dsnRelayed: "2.0.0", dsnDelivered: "2.0.0"}[action]
		}
		b.WriteString("\r\n")
		fmt.Fprintf(&b, "Final-Recipient: rfc822; %s\r\n", r.Address)
		if r.ORcpt != "" {
			fmt.Fprintf(&b, "Original-Recipient: %s\r\n", strings.Replace(r.ORcpt, ";", "; ", 1))
		}
		fmt.Fprintf(&b, "Action: %s\r\n", action)
		fmt.Fprintf(&b, "Status: %s\r\n", enh)
		if res.Host != "" {
			fmt.Fprintf(&b, "Remote-MTA: dns; %s\r\n", res.Host)
		}
		if code != 0 {
			fmt.Fprintf(&b, "Diagnostic-Code: smtp; %s\r\n", oneLine(text))
		}
		if !en.LastAttempt.IsZero() {
			fmt.Fprintf(&b, "Last-Attempt-Date: %s\r\n", en.LastAttempt.Format(time.RFC1123Z))
		}
		if action == dsnDelayed {
			fmt.Fprintf(&b, "Will-Retry-Until: %s\r\n", en.CreatedAt.Add(o.Lifetime).Format(time.RFC1123Z))
		}
	}
	b.WriteString("\r\n")

	// The message, or its header (RET=HDRS, or too large).
	full := en.Ret != "HDRS" && len(orig) <= dsnFullLimit && action == dsnFailed
	if full {
		fmt.Fprintf(&b, "--%s\r\nContent-Type: message/rfc822\r\n\r\n", boundary)
		b.Write(orig)
		if !bytes.HasSuffix(orig, []byte("\r\n")) {
			b.WriteString("\r\n")
		}
	} else {
		fmt.Fprintf(&b, "--%s\r\nContent-Type: text/rfc822-headers\r\n\r\n", boundary)
		b.Write(headerBlock(orig))
	}
	fmt.Fprintf(&b, "\r\n--%s--\r\n", boundary)
	return b.Bytes()
}

// replyPattern finds the SMTP reply in a recorded Reply, which may be
// prefixed with the answering host and our own words ("gave up after
// 120h: mx.example.org: 451 4.7.1 ...").
var replyPattern = regexp.MustCompile(`(?:^|: )([245][0-9][0-9])(?: ([245]\.[0-9]{1,3}\.[0-9]{1,3}))?(?: |$)`)

// splitReply returns the reply code, enhanced code and the reply from
// its code on; code is 0 when the Reply holds none.
func splitReply(s string) (code int, enhanced, text string) {
	m := replyPattern.FindStringSubmatchIndex(s)
	if m == nil {
		return 0, "", s
	}
	code, _ = strconv.Atoi(s[m[2]:m[3]])
	if m[4] >= 0 {
		enhanced = s[m[4]:m[5]]
	}
	return code, enhanced, s[m[2]:]
}

// oneLine keeps a reply on one header line.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}

// xtext encodes s as RFC 3461 §4 xtext.
func xtext(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < '!' || c > '~' || c == '+' || c == '=' {
			fmt.Fprintf(&b, "+%02X", c)
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}
