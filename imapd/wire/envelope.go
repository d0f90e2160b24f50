package wire

// Envelope is a message's ENVELOPE (RFC 9051 §7.5.2) as its header
// wrote it: every string is the header's own text (encoded words and
// all), never decoded and encoded again, so a client sees what the
// sender wrote. An empty string goes out as NIL.
type Envelope struct {
	Date, Subject                      string
	From, Sender, ReplyTo, To, Cc, Bcc []Address
	InReplyTo, MessageID               string
}

// Address is one address of an ENVELOPE (RFC 9051 §7.5.2): a mailbox,
// or the start (Mailbox is the group's name, Host empty) or end (all
// empty) of a group (RFC 5322 §3.4). ADL is the obsolete source route.
type Address struct {
	Name, ADL, Mailbox, Host string
	GroupStart, GroupEnd     bool
}

// Envelope writes env.
func (w *Writer) Envelope(env *Envelope) *Writer {
	w.Open()
	w.NString(env.Date, true).SP()
	w.NString(env.Subject, true).SP()
	// RFC 9051: Sender and Reply-To default to From when absent.
	sender, replyTo := env.Sender, env.ReplyTo
	if len(sender) == 0 {
		sender = env.From
	}
	if len(replyTo) == 0 {
		replyTo = env.From
	}
	for _, l := range [][]Address{env.From, sender, replyTo, env.To, env.Cc, env.Bcc} {
		w.addresses(l).SP()
	}
	w.NString(env.InReplyTo, true).SP()
	w.NString(env.MessageID, true)
	return w.Close()
}

func (w *Writer) addresses(l []Address) *Writer {
	if len(l) == 0 {
		return w.NIL()
	}
	w.Open()
	for _, a := range l {
		w.Open()
		switch {
		case a.GroupEnd:
			w.Raw("NIL NIL NIL NIL")
		case a.GroupStart:
			w.Raw("NIL NIL ").String(a.Mailbox).Raw(" NIL")
		default:
			w.NString(a.Name, true).SP().NString(a.ADL, true).SP()
			w.NString(a.Mailbox, true).SP().NString(a.Host, true)
		}
		w.Close()
	}
	return w.Close()
}
