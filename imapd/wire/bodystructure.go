package wire

import (
	"mime"
	"sort"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
)

// DecodedEnvelope writes an ENVELOPE held decoded (go-imap's type): the
// date is formatted, names and subjects that are not ASCII are written
// as encoded words (RFC 2047) unless UTF-8 may go out. Only records
// stored before the header's own text was kept (msginfo version 2) are
// written this way; Envelope writes the others.
func (w *Writer) DecodedEnvelope(e *imap.Envelope) *Writer {
	if e == nil {
		e = &imap.Envelope{}
	}
	text := func(s string) string {
		if w.UTF8 {
			return s
		}
		return mime.QEncoding.Encode("utf-8", s)
	}
	env := &Envelope{Subject: text(e.Subject), MessageID: angle(e.MessageID)}
	if !e.Date.IsZero() {
		env.Date = e.Date.Format("Mon, 02 Jan 2006 15:04:05 -0700")
	}
	if len(e.InReplyTo) > 0 {
		ids := make([]string, len(e.InReplyTo))
		for i, id := range e.InReplyTo {
			ids[i] = angle(id)
		}
		env.InReplyTo = strings.Join(ids, " ")
	}
	conv := func(l []imap.Address) []Address {
		var out []Address
		for _, a := range l {
			switch {
			case a.IsGroupEnd():
				out = append(out, Address{GroupEnd: true})
			case a.IsGroupStart():
				out = append(out, Address{GroupStart: true, Mailbox: a.Mailbox})
			default:
				out = append(out, Address{Name: text(a.Name), Mailbox: a.Mailbox, Host: a.Host})
			}
		}
		return out
	}
	env.From, env.Sender, env.ReplyTo = conv(e.From), conv(e.Sender), conv(e.ReplyTo)
	env.To, env.Cc, env.Bcc = conv(e.To), conv(e.Cc), conv(e.Bcc)
	return w.Envelope(env)
}

func angle(id string) string {
	if id == "" || strings.HasPrefix(id, "<") {
		return id
	}
	return "<" + id + ">"
}

// BodyStructure writes BODYSTRUCTURE (extended) or BODY (RFC 9051
// §7.5.2, body and its extension data).
func (w *Writer) BodyStructure(bs imap.BodyStructure, extended bool) *Writer {
	return w.BodyStructureWith(bs, extended, nil)
}

// PartExtra gives what go-imap's part type has no field for: a part's
// body-fld-md5 ("" is NIL) and an attached message's envelope as its
// header wrote it (nil: the decoded one is written).
type PartExtra func(p *imap.BodyStructureSinglePart) (md5 string, env *Envelope)

// BodyStructureWith is BodyStructure with each part's extra data from
// extra (nil: none).
func (w *Writer) BodyStructureWith(bs imap.BodyStructure, extended bool, extra PartExtra) *Writer {
	w.Open()
	switch p := bs.(type) {
	case *imap.BodyStructureMultiPart:
		for _, c := range p.Children {
			w.BodyStructureWith(c, extended, extra)
		}
		w.SP().String(strings.ToLower(p.Subtype))
		if extended {
			ext := p.Extended
			if ext == nil {
				ext = &imap.BodyStructureMultiPartExt{}
			}
			w.SP().params(ext.Params)
			w.SP().disposition(ext.Disposition)
			w.SP().languages(ext.Language)
			w.SP().NString(ext.Location, true)
		}
	case *imap.BodyStructureSinglePart:
		w.String(strings.ToLower(p.Type)).SP().String(strings.ToLower(p.Subtype)).SP()
		w.params(p.Params).SP()
		w.NString(p.ID, true).SP().NString(p.Description, true).SP()
		enc := strings.ToLower(p.Encoding)
		if enc == "" {
			enc = "7bit"
		}
		w.String(enc).SP().Number(uint64(p.Size))
		var md5 string
		var env *Envelope
		if extra != nil {
			md5, env = extra(p)
		}
		if m := p.MessageRFC822; m != nil {
			if env != nil {
				w.SP().Envelope(env).SP()
			} else {
				w.SP().DecodedEnvelope(m.Envelope).SP()
			}
			inner := m.BodyStructure
			if inner == nil {
				inner = &imap.BodyStructureSinglePart{Type: "text", Subtype: "plain"}
			}
			w.BodyStructureWith(inner, extended, extra).SP().Number(uint64(max(m.NumLines, 0)))
		} else if p.Text != nil {
			w.SP().Number(uint64(max(p.Text.NumLines, 0)))
		}
		if extended {
			ext := p.Extended
			if ext == nil {
				ext = &imap.BodyStructureSinglePartExt{}
			}
			w.SP().NString(md5, true) // body-fld-md5
			w.SP().disposition(ext.Disposition)
			w.SP().languages(ext.Language)
			w.SP().NString(ext.Location, true)
		}
	}
	return w.Close()
}

// params writes body-fld-param: NIL or ("name" "value" ...), sorted.
func (w *Writer) params(m map[string]string) *Writer {
	if len(m) == 0 {
		return w.NIL()
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	w.Open()
	for i, k := range keys {
		if i > 0 {
			w.SP()
		}
		w.String(k).SP().String(m[k])
	}
	return w.Close()
}

func (w *Writer) disposition(d *imap.BodyStructureDisposition) *Writer {
	if d == nil {
		return w.NIL()
	}
	return w.Open().String(d.Value).SP().params(d.Params).Close()
}

func (w *Writer) languages(l []string) *Writer {
	switch len(l) {
	case 0:
		return w.NIL()
	case 1:
		return w.String(l[0])
	}
	w.Open()
	for i, s := range l {
		if i > 0 {
			w.SP()
		}
		w.String(s)
	}
	return w.Close()
}

// DateTime writes a date-time (RFC 9051: "dd-Mon-yyyy hh:mm:ss +zzzz",
// the day space-padded).
func (w *Writer) DateTime(t time.Time) *Writer {
	return w.quoted(t.Format("_2-Jan-2006 15:04:05 -0700"))
}

// Flags writes a parenthesised list of flags.
func (w *Writer) Flags(flags []string) *Writer {
	w.Open()
	for i, f := range flags {
		if i > 0 {
			w.SP()
		}
		w.Raw(f)
	}
	return w.Close()
}
