package msginfo

import (
	"bufio"
	"bytes"
	"strings"

	"github.com/emersion/go-imap/v2"
	gomessage "github.com/emersion/go-message"
	"github.com/emersion/go-message/textproto"
)

// The body structure of RFC 9051 §7.5.2 (BODYSTRUCTURE), computed as
// go-imap's server package's ExtractBodyStructure does
// (TestStructureAsGoIMAP compares the two over a corpus) except where
// go-imap is wrong: an attached message's envelope is abox's own
// (groups and source routes kept), a part's Content-MD5 is kept for
// body-fld-md5 (go-imap always sends NIL), a header ends at its empty
// line even when a line before it is not a field, and a multipart in
// which no part is found is described with its real size. Parts are cut
// from the message's bytes in place, by the same splitter BODY[section]
// uses (section.go), so the part numbers and sizes a client reads in
// BODYSTRUCTURE are those of the bytes it then fetches
// (FuzzPartSizesMatchStructure); nothing is copied.

// structure computes the structure of an entity whose parsed header is
// hdr and whose body is body, at depth (the message itself is 0),
// having described *parts parts so far. Past MaxNesting levels or
// MaxParts parts, a multipart or attached message is described as one
// opaque application/octet-stream part (as Dovecot does), so that the
// work stays linear in the message's size.
func structure(hdr textproto.Header, body []byte, depth int, parts *int, info *Info) imap.BodyStructure {
	*parts++
	h := gomessage.Header{Header: hdr}
	mediaType, params, _ := h.ContentType()
	typ, sub, _ := strings.Cut(mediaType, "/")
	opaque := depth >= MaxNesting || *parts >= MaxParts
	if opaque && (typ == "multipart" || mediaType == "message/rfc822" || mediaType == "message/global") {
		mediaType, typ, sub, params = "application/octet-stream", "application", "octet-stream", nil
	}
	if typ == "multipart" {
		mp := &imap.BodyStructureMultiPart{Subtype: sub}
		for _, raw := range SplitMultipart(body, params["boundary"]) {
			if *parts >= MaxParts {
				break
			}
			ph, pb := splitHeader(raw)
			if strings.EqualFold(sub, "digest") && !ph.Has("Content-Type") {
				// RFC 2046 §5.1.5: a digest's parts are messages
				// unless they say otherwise.
				ph.Set("Content-Type", "message/rfc822")
			}
			mp.Children = append(mp.Children, structure(ph, pb, depth+1, parts, info))
		}
		if len(mp.Children) == 0 {
			// No parts (no boundary, or none found): a multipart
			// cannot be written without one, so it is described as
			// the text it is, with its real size, which BODY[1] and
			// BODY[TEXT] return (go-imap said 0 bytes).
			return &imap.BodyStructureSinglePart{Type: "text", Subtype: "plain",
				Params: map[string]string{"charset": "us-ascii"}, Encoding: "7bit", Size: uint32(len(body)),
				Text:     &imap.BodyStructureText{NumLines: int64(bytes.Count(body, newline))},
				Extended: &imap.BodyStructureSinglePartExt{}}
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
	lines := int64(bytes.Count(body, newline))
	sp := &imap.BodyStructureSinglePart{
		Type:        typ,
		Subtype:     sub,
		Params:      params,
		ID:          h.Get("Content-Id"),
		Description: h.Get("Content-Description"),
		Encoding:    h.Get("Content-Transfer-Encoding"),
		Size:        uint32(len(body)),
	}
	if embedded {
		ih, ib := splitHeader(body)
		own := ParseEnvelope(ih)
		info.part(sp).Envelope = own
		sp.MessageRFC822 = &imap.BodyStructureMessageRFC822{
			Envelope:      own.Decoded(),
			BodyStructure: structure(ih, ib, depth+1, parts, info),
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

// splitHeader cuts an entity at the end of its header and parses the
// header (as much of it as reads as fields).
func splitHeader(raw []byte) (textproto.Header, []byte) {
	n := HeaderEnd(raw)
	return readHeader(raw[:n]), raw[n:]
}

// readHeader parses header bytes; a line that is not a field ends it.
func readHeader(b []byte) textproto.Header {
	br := readers.Get().(*bufio.Reader)
	defer readers.Put(br)
	br.Reset(bytes.NewReader(b))
	hdr, _ := textproto.ReadHeader(br)
	br.Reset(nil)
	return hdr
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
