package msginfo

import (
	"strings"

	"github.com/emersion/go-message/textproto"
)

// Envelope is a message's ENVELOPE (RFC 3501 §7.4.2, RFC 9051 §7.5.2) as
// its header wrote it: every string is the header field's own text,
// unfolded (its CRLFs removed), encoded words (RFC 2047) and 8-bit
// bytes left as they are. Nothing is decoded and encoded again, so a
// client sees exactly what the sender wrote and decodes it itself. An
// empty string is NIL on the wire.
type Envelope struct {
	Date, Subject                      string
	From, Sender, ReplyTo, To, Cc, Bcc []Address
	InReplyTo, MessageID               string
}

// Address is one element of an ENVELOPE address list (RFC 9051
// §7.5.2): a mailbox, or the start (GroupStart, Mailbox is the group's
// display name) or end (GroupEnd) of a group (RFC 5322 §3.4). ADL is
// the obsolete source route (RFC 5322 §4.4 obs-route), "@a,@b".
type Address struct {
	Name, ADL, Mailbox, Host string
	GroupStart, GroupEnd     bool
}

// The placeholders an address that cannot be read whole is given, as
// Dovecot gives them, so that a client still sees an address where the
// header had one and can tell that it was broken (RFC 9051 leaves the
// case open).
const (
	MissingMailbox = "MISSING_MAILBOX"
	MissingDomain  = "MISSING_DOMAIN"
	SyntaxError    = "SYNTAX_ERROR"
	InvalidRoute   = "INVALID_ROUTE"
)

// ParseEnvelope reads a header's envelope fields. Date, Subject,
// In-Reply-To and Message-ID are taken from the first field of each
// name (the one go-message's Get, SEARCH and SORT read). Address fields
// that occur more than once are joined as if they were one
// comma-separated list, as Dovecot does, so that no From is hidden
// from the client behind another.
func ParseEnvelope(hdr textproto.Header) *Envelope {
	e := &Envelope{}
	first := func(k string) string {
		raw := hdr.FieldsByKey(k)
		if !raw.Next() {
			return ""
		}
		b, err := raw.Raw()
		if err != nil {
			return ""
		}
		return fieldValue(b)
	}
	e.Date, e.Subject = first("Date"), first("Subject")
	e.InReplyTo, e.MessageID = first("In-Reply-To"), first("Message-Id")
	lists := []struct {
		key string
		to  *[]Address
	}{{"From", &e.From}, {"Sender", &e.Sender}, {"Reply-To", &e.ReplyTo},
		{"To", &e.To}, {"Cc", &e.Cc}, {"Bcc", &e.Bcc}}
	for _, l := range lists {
		for fs := hdr.FieldsByKey(l.key); fs.Next(); {
			b, err := fs.Raw()
			if err != nil {
				continue
			}
			*l.to = append(*l.to, ParseAddressList(fieldValue(b))...)
		}
	}
	return e
}

// fieldValue is a raw header field's value ("Name: value CRLF", folded
// or not) unfolded: its CR and LF bytes taken out (RFC 5322 §2.2.3
// unfolding; a bare CR or LF goes too, since neither may stand in a
// quoted IMAP string) and the white space around it trimmed.
func fieldValue(raw []byte) string {
	i := 0
	for i < len(raw) && raw[i] != ':' {
		i++
	}
	if i < len(raw) {
		i++
	}
	v := raw[i:]
	var b strings.Builder
	b.Grow(len(v))
	for _, c := range v {
		if c != '\r' && c != '\n' {
			b.WriteByte(c)
		}
	}
	return strings.Trim(b.String(), " \t")
}
