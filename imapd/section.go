package imapd

import (
	"bytes"
	"encoding/base64"
	"io"
	"mime/quotedprintable"
	"strings"

	"github.com/emersion/go-imap/v2"

	"abox/store/msginfo"
)

// Section extraction (RFC 3501 §6.4.5, RFC 9051 §6.4.5 BODY[section],
// RFC 3516 BINARY[section]) on the stored bytes, cut in place: the part
// numbers follow the stored structure (the one BODYSTRUCTURE gave the
// client), and nothing is decoded but BINARY's transfer encoding.

// bodySection extracts BODY[section]<partial>. info may be nil when the
// section names no part (the whole message, HEADER, TEXT and the
// HEADER.FIELDS of the message need no structure). A part that does not
// exist, or HEADER/TEXT of a part that is not a message, is empty, as
// Dovecot answers it.
func bodySection(body []byte, info *msginfo.Info, sec *imap.FetchItemBodySection) []byte {
	if len(sec.Part) == 0 && sec.Specifier == imap.PartSpecifierNone {
		return partial(body, sec.Partial) // BODY[], the most asked: no scan
	}
	var bs imap.BodyStructure
	if info != nil {
		bs = info.Structure
	}
	e := msginfo.MessageEntity(body, bs)
	if len(sec.Part) > 0 {
		var ok bool
		if e, ok = e.Part(sec.Part); !ok {
			return []byte{}
		}
	}
	var data []byte
	switch sec.Specifier {
	case imap.PartSpecifierNone:
		data = e.Body
	case imap.PartSpecifierMIME:
		data = e.Header
	case imap.PartSpecifierHeader, imap.PartSpecifierText:
		if len(sec.Part) > 0 {
			if !isAttachedMessage(e) {
				return []byte{}
			}
			e = e.Attached()
		}
		switch {
		case sec.Specifier == imap.PartSpecifierText:
			data = e.Body
		case sec.HeaderFields != nil:
			data = headerFields(e.Header, sec.HeaderFields, false)
		case sec.HeaderFieldsNot != nil:
			data = headerFields(e.Header, sec.HeaderFieldsNot, true)
		default:
			data = e.Header
		}
	}
	return partial(data, sec.Partial)
}

// isAttachedMessage says e is a message/rfc822 (or message/global)
// part, whose HEADER and TEXT are those of the message it holds.
func isAttachedMessage(e msginfo.Entity) bool {
	p, ok := e.Structure.(*imap.BodyStructureSinglePart)
	return ok && p.MessageRFC822 != nil
}

// headerFields is HEADER.FIELDS (not set) or HEADER.FIELDS.NOT (not
// true): the header's fields whose names are (are not) in names, as
// they were written and in their order, then the empty line that ends
// a header (RFC 9051 §6.4.5).
func headerFields(header []byte, names []string, not bool) []byte {
	var out []byte
	for rest := header; len(rest) > 0; {
		n := fieldLen(rest)
		field := rest[:n]
		rest = rest[n:]
		if isEmptyLine(field) {
			break
		}
		name, _, hasColon := bytes.Cut(field, []byte{':'})
		name = bytes.TrimRight(name, " \t")
		named := false
		if hasColon {
			for _, want := range names {
				if strings.EqualFold(string(name), want) {
					named = true
					break
				}
			}
		}
		if hasColon && named != not {
			out = append(out, field...)
			if field[len(field)-1] != '\n' { // the header's last line, unended
				out = append(out, '\r', '\n')
			}
		}
	}
	return append(out, '\r', '\n')
}

// fieldLen is the length of the header field at the start of b: its
// first line and every continuation line (one starting with a space or
// a tab).
func fieldLen(b []byte) int {
	n := 0
	for n < len(b) {
		i := bytes.IndexByte(b[n:], '\n')
		if i < 0 {
			return len(b)
		}
		n += i + 1
		if n == len(b) || (b[n] != ' ' && b[n] != '\t') || isEmptyLine(b[:n]) {
			return n
		}
	}
	return n
}

func isEmptyLine(b []byte) bool {
	return len(b) == 1 && b[0] == '\n' || len(b) == 2 && b[0] == '\r' && b[1] == '\n'
}

// binarySection is BINARY[part] (RFC 3516 §4.2): the part's content
// with its transfer encoding undone and nothing else (no charset
// conversion). ok is false for an encoding abox cannot undo: the FETCH
// then fails NO [UNKNOWN-CTE] (RFC 3516 §4.3). BINARY[] is the whole
// message as stored.
func binarySection(body []byte, info *msginfo.Info, part []int) (data []byte, ok bool) {
	if len(part) == 0 {
		return body, true
	}
	e, found := msginfo.MessageEntity(body, info.Structure).Part(part)
	if !found {
		return []byte{}, true
	}
	enc := ""
	if p, single := e.Structure.(*imap.BodyStructureSinglePart); single {
		enc = strings.ToLower(strings.TrimSpace(p.Encoding))
	}
	switch enc {
	case "", "7bit", "8bit", "binary":
		return e.Body, true
	case "base64":
		out, err := io.ReadAll(base64.NewDecoder(base64.StdEncoding, newlineStripper{bytes.NewReader(e.Body)}))
		return out, err == nil
	case "quoted-printable":
		out, err := io.ReadAll(quotedprintable.NewReader(bytes.NewReader(e.Body)))
		return out, err == nil
	}
	return nil, false
}

// newlineStripper drops line breaks and white space so base64 lines
// decode as one stream.
type newlineStripper struct{ r io.Reader }

func (n newlineStripper) Read(p []byte) (int, error) {
	for {
		k, err := n.r.Read(p)
		j := 0
		for _, c := range p[:k] {
			if c != '\r' && c != '\n' && c != ' ' && c != '\t' {
				p[j] = c
				j++
			}
		}
		if j > 0 || err != nil {
			return j, err
		}
	}
}

// partial cuts <origin.octets> out of data (RFC 9051 §6.4.5): an origin
// past the end gives an empty string.
func partial(data []byte, p *imap.SectionPartial) []byte {
	if p == nil {
		return data
	}
	if p.Offset >= int64(len(data)) {
		return []byte{}
	}
	data = data[p.Offset:]
	if p.Size < int64(len(data)) {
		data = data[:p.Size]
	}
	return data
}
