package msginfo

import (
	"bytes"
	"encoding/base64"
	"html"
	"io"
	"mime/quotedprintable"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-message/charset"
)

// PreviewChars is the most characters a preview holds (RFC 8970 §3.1).
const PreviewChars = 256

// previewScan bounds the bytes of the text part a preview is made
// from: 256 characters of text rarely need more, and a delivery never
// decodes a whole large part for them.
const previewScan = 8 << 10

// flagPreview says the record ends with the preview text. Records
// written before it (version 1, or version 2 without the flag) have
// none: the reader computes it from the body (Preview).
const flagPreview = 2

// Preview computes a message's preview text (RFC 8970 §3.1): the start
// of its first text part (text/plain, else text/html without its
// markup) that is not an attachment, decoded to UTF-8, quoted lines
// ("> ...") left out, white space collapsed, at most PreviewChars
// characters. A message without such a part has an empty preview.
func Preview(msg []byte, info *Info) string {
	path, part := textPart(info.Structure, nil, "plain")
	if part == nil {
		path, part = textPart(info.Structure, nil, "html")
	}
	if part == nil {
		return ""
	}
	var raw []byte
	if len(path) == 0 {
		raw = msg[min(info.HeaderSize, int64(len(msg))):]
	} else {
		e, ok := MessageEntity(msg, info.Structure).Part(path)
		if !ok {
			return ""
		}
		raw = e.Body
	}
	text := decodeText(raw[:min(len(raw), previewScan)], part)
	if strings.EqualFold(part.Subtype, "html") {
		text = stripHTML(text)
	}
	return squeeze(text)
}

// textPart finds, depth first, the first inline text part of that
// subtype, and its part number (nil for a single-part message).
func textPart(bs imap.BodyStructure, path []int, subtype string) ([]int, *imap.BodyStructureSinglePart) {
	switch p := bs.(type) {
	case *imap.BodyStructureMultiPart:
		for i, c := range p.Children {
			if found, part := textPart(c, append(path[:len(path):len(path)], i+1), subtype); part != nil {
				return found, part
			}
		}
	case *imap.BodyStructureSinglePart:
		if !strings.EqualFold(p.Type, "text") || !strings.EqualFold(p.Subtype, subtype) {
			return nil, nil
		}
		if d := p.Disposition(); d != nil && strings.EqualFold(d.Value, "attachment") {
			return nil, nil
		}
		if len(path) == 0 {
			return []int{}, p
		}
		return path, p
	}
	return nil, nil
}

// decodeText undoes the part's transfer encoding and charset; what
// cannot be decoded is kept as far as it went.
func decodeText(raw []byte, p *imap.BodyStructureSinglePart) string {
	cs := p.Params["charset"]
	plain := cs == "" || strings.EqualFold(cs, "utf-8") || strings.EqualFold(cs, "us-ascii")
	var r io.Reader = bytes.NewReader(raw)
	switch strings.ToLower(p.Encoding) {
	case "base64":
		clean := bytes.Map(func(c rune) rune {
			if c == '\r' || c == '\n' || c == ' ' || c == '\t' {
				return -1
			}
			return c
		}, raw)
		clean = clean[:len(clean)/4*4] // the scan may cut a quantum
		r = base64.NewDecoder(base64.StdEncoding, bytes.NewReader(clean))
	case "quoted-printable":
		r = quotedprintable.NewReader(r)
	default:
		if plain {
			// Nothing to undo (most letters): the bytes are the text.
			return strings.ToValidUTF8(string(raw[:min(len(raw), 4*previewScan)]), "")
		}
	}
	if !plain {
		if cr, err := charset.Reader(cs, r); err == nil {
			r = cr
		}
	}
	var out bytes.Buffer
	out.Grow(min(2*len(raw), 4*previewScan))
	io.Copy(&out, io.LimitReader(r, 4*previewScan)) // an error keeps what was read
	return strings.ToValidUTF8(out.String(), "")
}

// stripHTML drops tags, comments, and script and style content, and
// decodes entities.
func stripHTML(s string) string {
	var b strings.Builder
	for len(s) > 0 {
		i := strings.IndexByte(s, '<')
		if i < 0 {
			b.WriteString(s)
			break
		}
		b.WriteString(s[:i])
		b.WriteByte(' ')
		s = s[i:]
		lower := strings.ToLower(s[:min(len(s), 8)])
		end := ">"
		switch {
		case strings.HasPrefix(lower, "<!--"):
			end = "-->"
		case strings.HasPrefix(lower, "<script"):
			end = "</script>"
		case strings.HasPrefix(lower, "<style"):
			end = "</style>"
		}
		j := strings.Index(strings.ToLower(s), end)
		if j < 0 {
			break
		}
		s = s[j+len(end):]
	}
	return html.UnescapeString(b.String())
}

// squeeze leaves out quoted lines, collapses
// white space and control characters to single spaces, and cuts at
// PreviewChars characters.
func squeeze(s string) string {
	var b strings.Builder
	n := 0
	space := false
	for line := range strings.Lines(s) {
		if strings.HasPrefix(strings.TrimLeft(line, " \t"), ">") {
			continue
		}
		for _, c := range line {
			if unicode.IsSpace(c) || unicode.IsControl(c) || c == utf8.RuneError {
				space = b.Len() > 0
				continue
			}
			if space {
				if n++; n > PreviewChars {
					return b.String()
				}
				b.WriteByte(' ')
				space = false
			}
			if n++; n > PreviewChars {
				return b.String()
			}
			b.WriteRune(c)
		}
	}
	return b.String()
}
