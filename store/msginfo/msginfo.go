// Package msginfo computes, once at delivery, what IMAP FETCH needs
// about a message without reading it again (the envelope and the body
// structure of RFC 9051 §7.5.2), and encodes it compactly for the store
// to keep beside the body.
//
// It parses with its own envelope and address-list reader and
// go-message's header and multipart readers; it never touches the store
// or the network.
package msginfo

import (
	"bufio"
	"encoding/binary"
	"errors"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
)

// Info is a message's precomputed IMAP structure.
type Info struct {
	// Envelope is the envelope decoded, for SEARCH and SORT.
	Envelope *imap.Envelope
	// Own is the envelope as the header wrote it, for FETCH ENVELOPE;
	// nil in records written before version 3.
	Own       *Envelope
	Structure imap.BodyStructure
	// Parts holds what go-imap's part type has no field for: a part's
	// Content-MD5 and an attached message's own envelope (version 3).
	Parts map[*imap.BodyStructureSinglePart]*PartExtra
	// HeaderSize is the length of the header section including the
	// blank line that ends it.
	HeaderSize int64
	// PlainText says the message is a single text part stored as it
	// reads (7bit, 8bit or binary) in US-ASCII or UTF-8, so a text
	// search can scan its bytes directly.
	PlainText bool
	// Preview is the preview text (RFC 8970, see Preview); HasPreview
	// says the record holds one (records written before it do not).
	Preview    string
	HasPreview bool
}

// Compute parses msg and returns its encoded Info.
func Compute(msg []byte) []byte {
	return Encode(Parse(msg))
}

// Parse computes a message's Info. A malformed message still gets one:
// what cannot be parsed is served as text/plain, as RFC 9051 §7.5.2
// defaults.
func Parse(msg []byte) *Info {
	// The header ends at its first empty line (RFC 5322 §2.1), also
	// when a line before it is not a field (go-imap's structure then
	// counted the rest of the header as body); HEADER, TEXT and the
	// sizes in BODYSTRUCTURE all cut there.
	hs := HeaderEnd(msg)
	info := &Info{HeaderSize: int64(hs)}
	// The fields before a line that is not one still count (as
	// Dovecot reads them); go-imap gave such a message no envelope.
	hdr := readHeader(msg[:hs])
	parts := 0
	info.Structure = fixDefaults(structure(hdr, msg[hs:], 0, &parts, info))
	info.PlainText = plainText(info.Structure)
	info.Own = ParseEnvelope(hdr)
	info.Envelope = info.Own.Decoded()
	info.Preview, info.HasPreview = Preview(msg, info), true
	return info
}

// fastDate parses the Date form of RFC 5322 §3.3 with a numeric zone and
// nothing around it. Anything else is left to net/mail, which tries a
// dozen layouts (each failure allocates) before the one nearly every
// sender uses.
func fastDate(v string) (time.Time, bool) {
	if v == "" || strings.ContainsAny(v, "()") {
		return time.Time{}, false
	}
	t, err := time.Parse("Mon, 2 Jan 2006 15:04:05 -0700", strings.TrimSpace(v))
	return t, err == nil
}

func plainText(bs imap.BodyStructure) bool {
	p, ok := bs.(*imap.BodyStructureSinglePart)
	if !ok || !strings.EqualFold(p.Type, "text") {
		return false
	}
	switch strings.ToLower(p.Encoding) {
	case "", "7bit", "8bit", "binary":
	default:
		return false
	}
	switch strings.ToLower(p.Params["charset"]) {
	case "", "us-ascii", "utf-8", "utf8":
		return true
	}
	return false
}

// fixDefaults fills in what RFC 2045 §5.2 says a part without a
// Content-Type is: text/plain; charset=us-ascii, 7bit.
func fixDefaults(bs imap.BodyStructure) imap.BodyStructure {
	switch p := bs.(type) {
	case *imap.BodyStructureSinglePart:
		if p.Type == "" {
			p.Type, p.Subtype = "text", "plain"
			if p.Params == nil {
				p.Params = map[string]string{}
			}
			if p.Params["charset"] == "" {
				p.Params["charset"] = "us-ascii"
			}
			if p.Text == nil {
				p.Text = &imap.BodyStructureText{}
			}
		}
		if p.Encoding == "" {
			p.Encoding = "7bit"
		}
		if p.Extended == nil {
			p.Extended = &imap.BodyStructureSinglePartExt{}
		}
		if p.MessageRFC822 != nil {
			p.MessageRFC822.BodyStructure = fixDefaults(p.MessageRFC822.BodyStructure)
		}
	case *imap.BodyStructureMultiPart:
		for i, c := range p.Children {
			p.Children[i] = fixDefaults(c)
		}
		if len(p.Children) == 0 {
			// A multipart without parts cannot be written as one.
			return fixDefaults(&imap.BodyStructureSinglePart{})
		}
		if p.Extended == nil {
			p.Extended = &imap.BodyStructureMultiPartExt{}
		}
	case nil:
		return fixDefaults(&imap.BodyStructureSinglePart{})
	}
	return bs
}

// --- encoding ---

// version 2 added the flags byte after the version; version 3 the
// envelope as the header wrote it (after the decoded one, which SEARCH,
// SORT and Subject read where they did) and, in the structure, an
// attached message's own envelope and each part's Content-MD5. Records
// of versions 1 and 2 stay readable: FETCH serves their decoded
// envelope as before (see Info.Own).
const version = 3

const flagPlainText = 1

// PartExtra is what a part has beyond go-imap's BodyStructure fields.
type PartExtra struct {
	MD5      string    // Content-MD5 (RFC 1864), body-fld-md5
	Envelope *Envelope // an attached message's own envelope
}

func (info *Info) part(p *imap.BodyStructureSinglePart) *PartExtra {
	if info.Parts == nil {
		info.Parts = map[*imap.BodyStructureSinglePart]*PartExtra{}
	}
	x := info.Parts[p]
	if x == nil {
		x = &PartExtra{}
		info.Parts[p] = x
	}
	return x
}

// Extra is p's extra data, or an empty one.
func (info *Info) Extra(p *imap.BodyStructureSinglePart) PartExtra {
	if x := info.Parts[p]; x != nil {
		return *x
	}
	return PartExtra{}
}

type writer struct {
	b    []byte
	v    byte // the record's version
	info *Info
}

func (w *writer) u8(v byte)    { w.b = append(w.b, v) }
func (w *writer) uv(v uint64)  { w.b = binary.AppendUvarint(w.b, v) }
func (w *writer) iv(v int64)   { w.b = binary.AppendVarint(w.b, v) }
func (w *writer) str(s string) { w.uv(uint64(len(s))); w.b = append(w.b, s...) }
func (w *writer) strs(l []string) {
	w.uv(uint64(len(l)))
	for _, s := range l {
		w.str(s)
	}
}
func (w *writer) params(m map[string]string) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	w.uv(uint64(len(keys)))
	for _, k := range keys {
		w.str(k)
		w.str(m[k])
	}
}

// Encode serialises an Info.
func Encode(info *Info) []byte { return encode(info, version) }

// encode writes a record of version v (2 or 3; tests write old ones).
func encode(info *Info, v byte) []byte {
	w := &writer{b: make([]byte, 0, 256), v: v, info: info}
	w.u8(v)
	var flags byte
	if info.PlainText {
		flags |= flagPlainText
	}
	if info.HasPreview {
		flags |= flagPreview
	}
	w.u8(flags)
	w.iv(info.HeaderSize)
	w.envelope(info.Envelope)
	if v >= 3 {
		w.own(info.Own)
	}
	w.structure(info.Structure)
	if info.HasPreview {
		w.str(info.Preview) // last, so readers without it stop before
	}
	return w.b
}

func (w *writer) envelope(e *imap.Envelope) {
	if e == nil {
		e = &imap.Envelope{}
	}
	if e.Date.IsZero() {
		w.u8(0)
	} else {
		w.u8(1)
		_, off := e.Date.Zone()
		w.iv(e.Date.Unix())
		w.iv(int64(off))
	}
	w.str(e.Subject)
	for _, l := range [][]imap.Address{e.From, e.Sender, e.ReplyTo, e.To, e.Cc, e.Bcc} {
		w.uv(uint64(len(l)))
		for _, a := range l {
			w.str(a.Name)
			w.str(a.Mailbox)
			w.str(a.Host)
		}
	}
	w.strs(e.InReplyTo)
	w.str(e.MessageID)
}

func (w *writer) disposition(d *imap.BodyStructureDisposition) {
	if d == nil {
		w.u8(0)
		return
	}
	w.u8(1)
	w.str(d.Value)
	w.params(d.Params)
}

func (w *writer) structure(bs imap.BodyStructure) {
	switch p := bs.(type) {
	case *imap.BodyStructureMultiPart:
		w.u8('m')
		w.str(p.Subtype)
		w.uv(uint64(len(p.Children)))
		for _, c := range p.Children {
			w.structure(c)
		}
		if p.Extended == nil {
			w.u8(0)
			return
		}
		w.u8(1)
		w.params(p.Extended.Params)
		w.disposition(p.Extended.Disposition)
		w.strs(p.Extended.Language)
		w.str(p.Extended.Location)
	case *imap.BodyStructureSinglePart:
		w.u8('s')
		w.str(p.Type)
		w.str(p.Subtype)
		w.params(p.Params)
		w.str(p.ID)
		w.str(p.Description)
		w.str(p.Encoding)
		w.uv(uint64(p.Size))
		switch {
		case p.MessageRFC822 != nil:
			w.u8('r')
			w.envelope(p.MessageRFC822.Envelope)
			if w.v >= 3 {
				w.own(w.info.Extra(p).Envelope)
			}
			w.structure(p.MessageRFC822.BodyStructure)
			w.iv(p.MessageRFC822.NumLines)
		case p.Text != nil:
			w.u8('t')
			w.iv(p.Text.NumLines)
		default:
			w.u8(0)
		}
		if p.Extended == nil {
			w.u8(0)
			return
		}
		w.u8(1)
		w.disposition(p.Extended.Disposition)
		w.strs(p.Extended.Language)
		w.str(p.Extended.Location)
		if w.v >= 3 {
			w.str(w.info.Extra(p).MD5)
		}
	}
}

// --- decoding ---

// ErrMalformed is returned for bytes Encode did not write.
var ErrMalformed = errors.New("msginfo: malformed record")

type reader struct {
	b    []byte
	err  error
	v    byte  // the record's version
	info *Info // where part extras go
}

func (r *reader) fail() { r.err = ErrMalformed; r.b = nil }

func (r *reader) u8() byte {
	if len(r.b) < 1 {
		r.fail()
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *reader) uv() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) iv() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) str() string {
	n := r.uv()
	if n > uint64(len(r.b)) {
		r.fail()
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

// count reads a length and refuses one larger than the bytes left.
func (r *reader) count() int {
	n := r.uv()
	if n > uint64(len(r.b)) {
		r.fail()
		return 0
	}
	return int(n)
}

func (r *reader) strs() []string {
	n := r.count()
	if n == 0 {
		return nil
	}
	l := make([]string, n)
	for i := range l {
		l[i] = r.str()
	}
	return l
}

func (r *reader) params() map[string]string {
	n := r.count()
	m := make(map[string]string, n)
	for range n {
		k := r.str()
		m[k] = r.str()
	}
	return m
}

// Decode reads what Encode wrote.
func Decode(b []byte) (*Info, error) {
	r, info, err := head(b)
	if err != nil {
		return nil, err
	}
	info.Envelope = r.envelope()
	if r.v >= 3 {
		info.Own = r.own()
	}
	info.Structure = r.structure(0)
	if info.HasPreview {
		info.Preview = r.str()
	}
	if r.err != nil {
		return nil, r.err
	}
	if v := b[0]; v == 1 {
		info.PlainText = plainText(info.Structure)
	}
	return info, nil
}

// DecodeEnvelope reads the header size, the plain-text flag and the
// decoded envelope, and skips the rest (for SORT and THREAD).
func DecodeEnvelope(b []byte) (*Info, error) {
	r, info, err := head(b)
	if err != nil {
		return nil, err
	}
	info.Envelope = r.envelope()
	if r.err != nil {
		return nil, r.err
	}
	return info, nil
}

// DecodeEnvelopes is DecodeEnvelope with the header's own envelope too
// (for SEARCH, whose address keys match group names).
func DecodeEnvelopes(b []byte) (*Info, error) {
	r, info, err := head(b)
	if err != nil {
		return nil, err
	}
	info.Envelope = r.envelope()
	if r.v >= 3 {
		info.Own = r.own()
	}
	if r.err != nil {
		return nil, r.err
	}
	return info, nil
}

// DecodeOwnEnvelope reads the header size and the envelope as the header
// wrote it, skipping the decoded one and the structure (for FETCH
// ENVELOPE). Own is nil in a record older than version 3; Envelope is
// then set instead.
func DecodeOwnEnvelope(b []byte) (*Info, error) {
	r, info, err := head(b)
	if err != nil {
		return nil, err
	}
	if r.v < 3 {
		info.Envelope = r.envelope()
	} else {
		r.skipEnvelope()
		info.Own = r.own()
	}
	if r.err != nil {
		return nil, r.err
	}
	return info, nil
}

// Peek reads only the header size and the plain-text flag (a version 1
// record, without the flag, is decoded in full to learn it).
func Peek(b []byte) (headerSize int64, plainText bool, err error) {
	if len(b) > 0 && b[0] == 1 {
		info, err := Decode(b)
		if err != nil {
			return 0, false, err
		}
		return info.HeaderSize, info.PlainText, nil
	}
	r, info, err := head(b)
	if err != nil || r.err != nil {
		return 0, false, ErrMalformed
	}
	return info.HeaderSize, info.PlainText, nil
}

// Subject reads only the envelope's (decoded) subject; the bytes are b's, not
// a copy.
func Subject(b []byte) ([]byte, error) {
	r := reader{b: b}
	switch r.u8() {
	case 1:
	case 2, 3:
		r.u8()
	default:
		return nil, ErrMalformed
	}
	r.iv() // header size
	if r.u8() == 1 {
		r.iv()
		r.iv()
	}
	n := r.uv()
	if r.err != nil || n > uint64(len(r.b)) {
		return nil, ErrMalformed
	}
	return r.b[:n], nil
}

func head(b []byte) (*reader, *Info, error) {
	info := &Info{}
	r := &reader{b: b, info: info}
	r.v = r.u8()
	switch r.v {
	case 1:
	case 2, 3:
		flags := r.u8()
		info.PlainText = flags&flagPlainText != 0
		info.HasPreview = flags&flagPreview != 0
	default:
		return nil, nil, ErrMalformed
	}
	info.HeaderSize = r.iv()
	if r.err != nil {
		return nil, nil, r.err
	}
	return r, info, nil
}

func (r *reader) envelope() *imap.Envelope {
	e := &imap.Envelope{}
	if r.u8() == 1 {
		secs, off := r.iv(), r.iv()
		e.Date = time.Unix(secs, 0).In(time.FixedZone("", int(off)))
	}
	e.Subject = r.str()
	lists := []*[]imap.Address{&e.From, &e.Sender, &e.ReplyTo, &e.To, &e.Cc, &e.Bcc}
	for _, l := range lists {
		n := r.count()
		for range n {
			*l = append(*l, imap.Address{Name: r.str(), Mailbox: r.str(), Host: r.str()})
		}
	}
	e.InReplyTo = r.strs()
	e.MessageID = r.str()
	return e
}

func (r *reader) disposition() *imap.BodyStructureDisposition {
	if r.u8() == 0 {
		return nil
	}
	return &imap.BodyStructureDisposition{Value: r.str(), Params: r.params()}
}

// maxDepth bounds nesting so a corrupt record cannot exhaust the stack;
// structures are computed to MaxNesting levels, well within it.
const maxDepth = 2 * MaxNesting

func (r *reader) structure(depth int) imap.BodyStructure {
	if depth > maxDepth {
		r.fail()
		return nil
	}
	switch r.u8() {
	case 'm':
		p := &imap.BodyStructureMultiPart{Subtype: r.str()}
		n := r.count()
		for range n {
			c := r.structure(depth + 1)
			if r.err != nil {
				return nil
			}
			p.Children = append(p.Children, c)
		}
		if r.u8() == 1 {
			p.Extended = &imap.BodyStructureMultiPartExt{Params: r.params(), Disposition: r.disposition(), Language: r.strs(), Location: r.str()}
		}
		return p
	case 's':
		p := &imap.BodyStructureSinglePart{Type: r.str(), Subtype: r.str(), Params: r.params(),
			ID: r.str(), Description: r.str(), Encoding: r.str(), Size: uint32(r.uv())}
		switch r.u8() {
		case 'r':
			env := r.envelope()
			if r.v >= 3 {
				if own := r.own(); own != nil && r.err == nil {
					r.info.part(p).Envelope = own
				}
			}
			inner := r.structure(depth + 1)
			p.MessageRFC822 = &imap.BodyStructureMessageRFC822{Envelope: env, BodyStructure: inner, NumLines: r.iv()}
		case 't':
			p.Text = &imap.BodyStructureText{NumLines: r.iv()}
		}
		if r.u8() == 1 {
			p.Extended = &imap.BodyStructureSinglePartExt{Disposition: r.disposition(), Language: r.strs(), Location: r.str()}
			if r.v >= 3 {
				if md5 := r.str(); md5 != "" {
					r.info.part(p).MD5 = md5
				}
			}
		}
		return p
	}
	r.fail()
	return nil
}

// MediaType returns a lower-case "type/subtype" of a part.
func MediaType(bs imap.BodyStructure) string { return strings.ToLower(bs.MediaType()) }

// readers recycles the header readers' 4 KiB buffers: every delivery
// parses a header, and ReadHeader keeps nothing of its reader.
var readers = sync.Pool{New: func() any { return bufio.NewReader(nil) }}
