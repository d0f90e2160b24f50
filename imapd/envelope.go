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

func wireEnvelope(e *msginfo.Envelope) *wire.Envelope {
	return &wire.Envelope{
		Date: e.Date, Subject: e.Subject,
		From: wireAddrs(e.From), Sender: wireAddrs(e.Sender), ReplyTo: wireAddrs(e.ReplyTo),
		To: wireAddrs(e.To), Cc: wireAddrs(e.Cc), Bcc: wireAddrs(e.Bcc),
		InReplyTo: e.InReplyTo, MessageID: e.MessageID,
	}
}

func wireAddrs(l []msginfo.Address) []wire.Address {
	if len(l) == 0 {
		return nil
	}
	out := make([]wire.Address, len(l))
	for i, a := range l {
		out[i] = wire.Address(a)
	}
	return out
}
