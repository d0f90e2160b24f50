package imapd

import (
	"github.com/emersion/go-imap/v2"

	"abox/imapd/wire"
	"abox/store/msginfo"
)

// writeEnvelope writes ENVELOPE (RFC 9051 §7.5.2) from the header's own
// text. A record stored before abox kept that text (msginfo version 2)
// has only the decoded envelope, which is written as before (its
// strings encoded again): recomputing it would read every body, and a
// client has cached what it was told already.
func (r *FetchResponseWriter) writeEnvelope(info *msginfo.Info) {
	if info.Own == nil {
		r.WriteEnvelope(info.Envelope)
		return
	}
	r.sep().Raw("ENVELOPE ").Envelope(wireEnvelope(info.Own))
}

// writeStructure writes BODY and/or BODYSTRUCTURE, as asked, with each
// part's Content-MD5 and each attached message's own envelope.
func (r *FetchResponseWriter) writeStructure(info *msginfo.Info) {
	extra := func(p *imap.BodyStructureSinglePart) (string, *wire.Envelope) {
		x := info.Extra(p)
		if x.Envelope == nil {
			return x.MD5, nil
		}
		return x.MD5, wireEnvelope(x.Envelope)
	}
	if r.f.body {
		r.sep().Raw("BODY ").BodyStructureWith(info.Structure, false, extra)
	}
	if r.f.bodyStr {
		r.sep().Raw("BODYSTRUCTURE ").BodyStructureWith(info.Structure, true, extra)
	}
}

// wireEnvelope converts an envelope for the writer; its address lists
// share one backing array (FETCH ENVELOPE does this for every message).
func wireEnvelope(e *msginfo.Envelope) *wire.Envelope {
	lists := [6][]msginfo.Address{e.From, e.Sender, e.ReplyTo, e.To, e.Cc, e.Bcc}
	n := 0
	for _, l := range lists {
		n += len(l)
	}
	all := make([]wire.Address, n)
	var out [6][]wire.Address
	at := 0
	for i, l := range lists {
		if len(l) == 0 {
			continue
		}
		out[i] = all[at : at+len(l) : at+len(l)]
		for j, a := range l {
			out[i][j] = wire.Address(a)
		}
		at += len(l)
	}
	return &wire.Envelope{
		Date: e.Date, Subject: e.Subject,
		From: out[0], Sender: out[1], ReplyTo: out[2], To: out[3], Cc: out[4], Bcc: out[5],
		InReplyTo: e.InReplyTo, MessageID: e.MessageID,
	}
}
