package msginfo

import (
	"bufio"
	"bytes"
	"io"
	"strings"
	"sync"

	"github.com/emersion/go-imap/v2"
	gomessage "github.com/emersion/go-message"
	"github.com/emersion/go-message/textproto"
)

// The body structure of RFC 9051 §7.5.2 (BODYSTRUCTURE), computed as
// go-imap's server package's ExtractBodyStructure does (TestStructureAsGoIMAP
// compares the two over a corpus) except where go-imap is wrong: an
// attached message's envelope is abox's own (groups and source routes
// kept), and a part's Content-MD5 is kept for body-fld-md5 (go-imap
// always sends NIL). Unlike go-imap it holds no part in memory:
// go-imap reads every leaf part into a new slice to measure it, which
// for a 64 KiB message was 5% of a delivery's CPU. Here the top-level
// body is measured in place, and a part inside a multipart is counted
// as it streams past. Only an embedded message (message/rfc822 or
// message/global) is read whole, since its own header and structure
// are parsed from it.

// structure computes the structure of an entity whose parsed header is
// hdr and whose body is body (when in memory) or r, at depth (the
// message itself is 0), having described *parts parts so far. Past
// MaxNesting levels or MaxParts parts, a multipart or attached message
// is described as one opaque application/octet-stream part (as Dovecot
// does), so that the work stays linear in the message's size.
func structure(hdr textproto.Header, body []byte, r io.Reader, depth int, parts *int, info *Info) imap.BodyStructure {
	*parts++
	h := gomessage.Header{Header: hdr}
	mediaType, params, _ := h.ContentType()
	typ, sub, _ := strings.Cut(mediaType, "/")
	opaque := depth >= MaxNesting || *parts >= MaxParts
	if opaque && (typ == "multipart" || mediaType == "message/rfc822" || mediaType == "message/global") {
		mediaType, typ, sub, params = "application/octet-stream", "application", "octet-stream", nil
	}
	if typ == "multipart" {
		if r == nil {
			r = bytes.NewReader(body)
		}
		cr := &countingReader{r: r}
		mp := &imap.BodyStructureMultiPart{Subtype: sub}
		mr := textproto.NewMultipartReader(cr, params["boundary"])
		for *parts < MaxParts {
			part, _ := mr.NextPart()
			if part == nil {
				break
			}
			mp.Children = append(mp.Children, structure(part.Header, nil, part, depth+1, parts, info))
		}
		if len(mp.Children) == 0 {
			// No parts (no boundary, or none found): a multipart
			// cannot be written without one, so it is described as
			// the text it is, with its real size, which BODY[1] and
			// BODY[TEXT] return (go-imap said 0 bytes).
			countLines(cr) // the rest, through cr's count
			size, lines := cr.n, cr.lines
			return &imap.BodyStructureSinglePart{Type: "text", Subtype: "plain",
				Params: map[string]string{"charset": "us-ascii"}, Encoding: "7bit", Size: uint32(size),
				Text: &imap.BodyStructureText{NumLines: lines}, Extended: &imap.BodyStructureSinglePartExt{}}
		}
		mp.Extended = &imap.BodyStructureMultiPartExt{
			Params:      params,
			Disposition: disposition(h),
			Language:    languages(h),
			Location:    h.Get("Content-Location"),
		}
		return mp
	}
	embedded := mediaType == "message/rfc822" || mediaType == "message/global"
	var size, lines int64
	switch {
	case body != nil:
		size, lines = int64(len(body)), int64(bytes.Count(body, newline))
	case embedded:
		body, _ = io.ReadAll(r)
		size, lines = int64(len(body)), int64(bytes.Count(body, newline))
	default:
		size, lines = countLines(r)
	}
	sp := &imap.BodyStructureSinglePart{
		Type:        typ,
		Subtype:     sub,
		Params:      params,
		ID:          h.Get("Content-Id"),
		Description: h.Get("Content-Description"),
		Encoding:    h.Get("Content-Transfer-Encoding"),
		Size:        uint32(size),
	}
	if embedded {
		br := bufio.NewReader(bytes.NewReader(body))
		inner, _ := textproto.ReadHeader(br)
		own := ParseEnvelope(inner)
		info.part(sp).Envelope = own
		sp.MessageRFC822 = &imap.BodyStructureMessageRFC822{
			Envelope:      own.Decoded(),
			BodyStructure: structure(inner, nil, br, depth+1, parts, info),
			NumLines:      lines,
		}
	}
	if md5 := strings.TrimSpace(h.Get("Content-Md5")); md5 != "" {
		info.part(sp).MD5 = md5
	}
	if typ == "text" {
		sp.Text = &imap.BodyStructureText{NumLines: lines}
	}
	sp.Extended = &imap.BodyStructureSinglePartExt{
		Disposition: disposition(h),
		Language:    languages(h),
		Location:    h.Get("Content-Location"),
	}
	return sp
}

var newline = []byte{'\n'}

// countingReader counts the bytes and LFs read through it.
type countingReader struct {
	r        io.Reader
	n, lines int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	c.lines += int64(bytes.Count(p[:n], newline))
	return n, err
}

// chunks are countLines' read buffers.
var chunks = sync.Pool{New: func() any { b := make([]byte, 16<<10); return &b }}

// countLines reads r to its end and returns its length and how many LFs
// it held. A read error ends the count where it happened, as a short
// read ends go-imap's.
func countLines(r io.Reader) (size, lines int64) {
	bp := chunks.Get().(*[]byte)
	defer chunks.Put(bp)
	buf := *bp
	for {
		n, err := r.Read(buf)
		size += int64(n)
		lines += int64(bytes.Count(buf[:n], newline))
		if err != nil {
			return size, lines
		}
	}
}

func disposition(h gomessage.Header) *imap.BodyStructureDisposition {
	value, params, _ := h.ContentDisposition()
	if value == "" {
		return nil
	}
	return &imap.BodyStructureDisposition{Value: value, Params: params}
}

// languages splits Content-Language (RFC 3282) at its commas.
func languages(h gomessage.Header) []string {
	v := h.Get("Content-Language")
	if v == "" {
		return nil
	}
	tags := strings.Split(v, ",")
	for i := range tags {
		tags[i] = strings.TrimSpace(tags[i])
	}
	return tags
}
