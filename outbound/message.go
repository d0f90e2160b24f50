package outbound

import (
	"strings"

	"github.com/emersion/go-smtp"
)

// Message is one message for one destination domain.
type Message struct {
	// From is the reverse-path; "" is the null reverse-path (bounces,
	// RFC 5321 §4.5.5).
	From string
	// Recipients all belong to the domain given to Deliver.
	Recipients []Recipient
	// Body is the message as it goes on the wire: CRLF lines, already
	// DKIM-signed. It is sent unchanged (dot-stuffed only).
	Body []byte
	// SMTPUTF8 says the envelope or the header has UTF-8 (RFC 6531);
	// a non-ASCII envelope address sets it implicitly.
	SMTPUTF8 bool
	// EightBit says the body has 8-bit octets (RFC 6152).
	EightBit bool
	// RequireTLS asks for REQUIRETLS (RFC 8689) to this hop and beyond.
	RequireTLS bool
	// Ret ("FULL" or "HDRS") and EnvID are RFC 3461's, passed on only
	// when the server advertises DSN.
	Ret, EnvID string
}

// Recipient is one forward-path with its RFC 3461 parameters.
type Recipient struct {
	Address string
	// Notify is NEVER, or some of SUCCESS, FAILURE, DELAY (RFC 3461
	// §4.1).
	Notify []string
	// ORcpt is the original recipient's address (RFC 3461 §4.2),
	// without the "rfc822;" type, which is added.
	ORcpt string
}

// envelope is a Message checked and turned into go-smtp's options.
type envelope struct {
	from     string
	rcpts    []rcpt // the recipients still to be sent, in order
	mail     smtp.MailOptions
	needUTF8 bool
	// dsn: RET, ENVID, NOTIFY or ORCPT is set (RFC 3461).
	dsn  bool
	body []byte
}

type rcpt struct {
	i    int // index in Message.Recipients
	addr string
	opts smtp.RcptOptions
}

// prepare checks m before any connection: what a server would refuse for
// syntax (or what go-smtp would refuse to send) is decided here, so that
// a caller's mistake costs no round trip and never reads as the remote
// side's reply. It fills out for each recipient it refuses; all is set
// when the whole message is refused.
func prepare(m *Message, out []Outcome) (env envelope, all *Outcome) {
	env = envelope{from: m.From, body: m.Body, needUTF8: m.SMTPUTF8 || !isASCII(m.From), dsn: m.Ret != "" || m.EnvID != ""}
	if !validAddress(m.From, true) {
		o := local(501, "5.1.7", "invalid sender address")
		return env, &o
	}
	env.mail = smtp.MailOptions{
		Size:       int64(len(m.Body)),
		RequireTLS: m.RequireTLS,
		Return:     smtp.DSNReturn(strings.ToUpper(m.Ret)),
		EnvelopeID: m.EnvID,
		Body:       smtp.Body7Bit,
	}
	if m.EightBit {
		env.mail.Body = smtp.Body8BitMIME
	}
	switch env.mail.Return {
	case "", smtp.DSNReturnFull, smtp.DSNReturnHeaders:
	default:
		o := local(501, "5.5.4", "invalid RET "+m.Ret+": want FULL or HDRS")
		return env, &o
	}
	// RFC 3461 §4.4: printable US-ASCII, at most 100 characters.
	if len(m.EnvID) > 100 || !isPrintableASCII(m.EnvID) {
		o := local(501, "5.5.4", "invalid ENVID")
		return env, &o
	}
	for i, r := range m.Recipients {
		if !validAddress(r.Address, false) {
			out[i] = local(501, "5.1.3", "invalid recipient address")
			continue
		}
		opts, ok := rcptOptions(r)
		if !ok {
			out[i] = local(501, "5.5.4", "invalid NOTIFY or ORCPT")
			continue
		}
		env.needUTF8 = env.needUTF8 || !isASCII(r.Address)
		env.dsn = env.dsn || len(opts.Notify) > 0 || opts.OriginalRecipient != ""
		env.rcpts = append(env.rcpts, rcpt{i: i, addr: r.Address, opts: opts})
	}
	env.mail.UTF8 = env.needUTF8
	return env, nil
}

func rcptOptions(r Recipient) (smtp.RcptOptions, bool) {
	var opts smtp.RcptOptions
	never := false
	for _, n := range r.Notify {
		v := smtp.DSNNotify(strings.ToUpper(n))
		switch v {
		case smtp.DSNNotifyNever:
			never = true
		case smtp.DSNNotifySuccess, smtp.DSNNotifyFailure, smtp.DSNNotifyDelayed:
		default:
			return opts, false
		}
		opts.Notify = append(opts.Notify, v)
	}
	// RFC 3461 §4.1: NEVER stands alone.
	if never && len(opts.Notify) > 1 {
		return opts, false
	}
	if r.ORcpt != "" {
		addr := r.ORcpt
		if t, a, ok := strings.Cut(addr, ";"); ok && (strings.EqualFold(t, "rfc822") || strings.EqualFold(t, "utf-8")) {
			addr = a
		}
		if addr == "" || strings.ContainsAny(addr, "\r\n") {
			return opts, false
		}
		opts.OriginalRecipient = addr
		opts.OriginalRecipientType = smtp.DSNAddressTypeRFC822
		if !isASCII(addr) {
			// RFC 6533 §3: a UTF-8 address travels as utf-8-addr; go-smtp
			// encodes it as unitext or xtext by the server's SMTPUTF8.
			opts.OriginalRecipientType = smtp.DSNAddressTypeUTF8
		}
	}
	return opts, true
}

// validAddress is a sanity check, not RFC 5321's grammar: the address
// must not be able to break out of the angle brackets of MAIL or RCPT.
func validAddress(a string, nullOK bool) bool {
	if a == "" {
		return nullOK
	}
	return len(a) <= 512 && !strings.ContainsAny(a, "<>\r\n\t ") && strings.Contains(a, "@")
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func isPrintableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
