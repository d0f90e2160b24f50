package msginfo

// The record form of an Envelope (version 3): a presence byte, then
// Date and Subject, the six address lists (each address a kind byte and
// its strings), In-Reply-To and Message-ID.

const (
	addrMailbox    = 0
	addrGroupStart = 1
	addrGroupEnd   = 2
)

func (w *writer) own(e *Envelope) {
	if e == nil {
		w.u8(0)
		return
	}
	w.u8(1)
	w.str(e.Date)
	w.str(e.Subject)
	for _, l := range [][]Address{e.From, e.Sender, e.ReplyTo, e.To, e.Cc, e.Bcc} {
		w.uv(uint64(len(l)))
		for _, a := range l {
			switch {
			case a.GroupEnd:
				w.u8(addrGroupEnd)
			case a.GroupStart:
				w.u8(addrGroupStart)
				w.str(a.Mailbox)
			default:
				w.u8(addrMailbox)
				w.str(a.Name)
				w.str(a.ADL)
				w.str(a.Mailbox)
				w.str(a.Host)
			}
		}
	}
	w.str(e.InReplyTo)
	w.str(e.MessageID)
}

func (r *reader) own() *Envelope {
	if r.u8() == 0 {
		return nil
	}
	e := &Envelope{Date: r.str(), Subject: r.str()}
	for _, l := range []*[]Address{&e.From, &e.Sender, &e.ReplyTo, &e.To, &e.Cc, &e.Bcc} {
		n := r.count()
		if n > 0 {
			*l = make([]Address, 0, n)
		}
		for range n {
			switch r.u8() {
			case addrGroupEnd:
				*l = append(*l, Address{GroupEnd: true})
			case addrGroupStart:
				*l = append(*l, Address{GroupStart: true, Mailbox: r.str()})
			case addrMailbox:
				*l = append(*l, Address{Name: r.str(), ADL: r.str(), Mailbox: r.str(), Host: r.str()})
			default:
				r.fail()
			}
			if r.err != nil {
				return nil
			}
		}
	}
	e.InReplyTo = r.str()
	e.MessageID = r.str()
	return e
}

// skip passes over a length-prefixed string.
func (r *reader) skip() {
	n := r.uv()
	if n > uint64(len(r.b)) {
		r.fail()
		return
	}
	r.b = r.b[n:]
}

// skipEnvelope passes over a decoded envelope without building it.
func (r *reader) skipEnvelope() {
	if r.u8() == 1 {
		r.iv()
		r.iv()
	}
	r.skip()
	for range 6 {
		n := r.count()
		for range 3 * n {
			r.skip()
		}
	}
	n := r.count()
	for range n {
		r.skip()
	}
	r.skip()
}
