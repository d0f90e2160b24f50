package msginfo

import (
	"mime"
	"net/mail"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-message/charset"
)

// wordDecoder decodes RFC 2047 encoded words in any charset go-message
// knows.
var wordDecoder = mime.WordDecoder{CharsetReader: charset.Reader}

// DecodeWords decodes the encoded words of a header text (RFC 2047);
// text it cannot decode is returned as it is.
func DecodeWords(s string) string {
	if !strings.Contains(s, "=?") {
		return s
	}
	d, err := wordDecoder.DecodeHeader(s)
	if err != nil {
		return s
	}
	return d
}

// Decoded is the envelope in the form SEARCH and SORT compare (RFC 5256
// §2.2, RFC 9051 §6.4.4): the date parsed, the subject and display
// names decoded, message IDs without their angle brackets, and only
// real mailboxes in the address lists (group markers and the
// placeholders of broken addresses left out, so the "first mailbox" of
// SORT is one).
func (e *Envelope) Decoded() *imap.Envelope {
	d := &imap.Envelope{Subject: DecodeWords(e.Subject), InReplyTo: msgIDs(e.InReplyTo)}
	if ids := msgIDs(e.MessageID); len(ids) > 0 {
		d.MessageID = ids[0]
	}
	if e.Date != "" {
		if t, ok := fastDate(e.Date); ok {
			d.Date = t
		} else if t, err := mail.ParseDate(e.Date); err == nil {
			d.Date = t
		}
	}
	d.From, d.Sender, d.ReplyTo = decodedList(e.From), decodedList(e.Sender), decodedList(e.ReplyTo)
	d.To, d.Cc, d.Bcc = decodedList(e.To), decodedList(e.Cc), decodedList(e.Bcc)
	return d
}

func decodedList(l []Address) []imap.Address {
	var out []imap.Address
	for _, a := range l {
		if a.GroupStart || a.GroupEnd || a.Mailbox == MissingMailbox || a.Host == MissingDomain || a.Host == SyntaxError {
			continue
		}
		out = append(out, imap.Address{Name: DecodeWords(a.Name), Mailbox: a.Mailbox, Host: a.Host})
	}
	return out
}

// msgIDs are the "<...>" message identifiers of a field (RFC 5322
// §3.6.4), without their brackets.
func msgIDs(v string) []string {
	var ids []string
	for {
		i := strings.IndexByte(v, '<')
		if i < 0 {
			return ids
		}
		j := strings.IndexByte(v[i:], '>')
		if j < 0 {
			return ids
		}
		if id := strings.TrimSpace(v[i+1 : i+j]); id != "" {
			ids = append(ids, id)
		}
		v = v[i+j+1:]
	}
}
