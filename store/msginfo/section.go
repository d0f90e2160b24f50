package msginfo

import (
	"bytes"
	"strings"

	"github.com/emersion/go-imap/v2"
)

// Entity is a message or one of its MIME parts, cut from the stored
// bytes in place (no copy): its header (with the blank line that ends
// it), its body and its described structure.
type Entity struct {
	Header, Body []byte
	Structure    imap.BodyStructure
	// Message says the entity is a whole message (the top one or one
	// attached as message/rfc822), not a body part.
	Message bool
}

// MessageEntity is the message msg whose structure is bs.
func MessageEntity(msg []byte, bs imap.BodyStructure) Entity {
	h := HeaderEnd(msg)
	return Entity{Header: msg[:h:h], Body: msg[h:], Structure: bs, Message: true}
}

// HeaderEnd is where a header section ends: after the first empty line
// (CRLF, or a bare LF), or at the end of b if it has none.
func HeaderEnd(b []byte) int {
	for at := 0; at < len(b); {
		switch {
		case b[at] == '\n':
			return at + 1
		case b[at] == '\r' && at+1 < len(b) && b[at+1] == '\n':
			return at + 2
		}
		i := bytes.IndexByte(b[at:], '\n')
		if i < 0 {
			return len(b)
		}
		at += i + 1
	}
	return len(b)
}

// Part finds the part numbered path (RFC 3501 §6.4.5, RFC 9051 §6.4.5)
// from e: in a multipart, n is its n-th part; in an attached message,
// its body's parts; in any other part, 1 is the part itself. The
// numbering follows the described structure, so it is the one
// BODYSTRUCTURE gave the client (parts past MaxNesting or MaxParts,
// described as opaque, have no parts of their own).
func (e Entity) Part(path []int) (Entity, bool) {
	for _, n := range path {
		var ok bool
		if e, ok = e.step(n); !ok {
			return Entity{}, false
		}
	}
	return e, true
}

func (e Entity) step(n int) (Entity, bool) {
	switch p := e.Structure.(type) {
	case *imap.BodyStructureMultiPart:
		bounds := ""
		if p.Extended != nil {
			bounds = p.Extended.Params["boundary"]
		}
		parts := SplitMultipart(e.Body, bounds)
		if n < 1 || n > len(parts) || n > len(p.Children) {
			return Entity{}, false
		}
		raw := parts[n-1]
		h := HeaderEnd(raw) // as structure's splitHeader cuts it
		return Entity{Header: raw[:h:h], Body: raw[h:], Structure: p.Children[n-1]}, true
	case *imap.BodyStructureSinglePart:
		if !e.Message && p.MessageRFC822 != nil {
			return e.Attached().step(n)
		}
		if n != 1 {
			return Entity{}, false
		}
		e.Message = false
		return e, true
	}
	return Entity{}, false
}

// Attached is the message a message/rfc822 part holds (or e itself if
// it is not one).
func (e Entity) Attached() Entity {
	p, ok := e.Structure.(*imap.BodyStructureSinglePart)
	if !ok || p.MessageRFC822 == nil {
		return e
	}
	return MessageEntity(e.Body, p.MessageRFC822.BodyStructure)
}

// SplitMultipart cuts a multipart body into its parts' bytes (RFC 2046
// §5.1.1): each part runs from after its delimiter line to before the
// line break that precedes the next delimiter; the preamble and the
// epilogue belong to no part. A body without a close delimiter ends its
// last part at its end.
func SplitMultipart(body []byte, boundary string) [][]byte {
	if boundary == "" {
		return nil
	}
	dash := "--" + boundary
	var parts [][]byte
	start := -1 // where the current part began, -1 before the first
	for at := 0; at < len(body); {
		end := bytes.IndexByte(body[at:], '\n')
		next := len(body)
		if end >= 0 {
			next = at + end + 1
		}
		line := body[at:next]
		if kind := delimiter(line, dash); kind != 0 {
			if start >= 0 {
				parts = append(parts, body[start:lineBreakBefore(body, start, at)])
			}
			if kind == 2 {
				return parts
			}
			start = next
		}
		at = next
	}
	if start >= 0 {
		parts = append(parts, body[start:])
	}
	return parts
}

// delimiter says whether line is a delimiter (1) or close delimiter
// (2) of dash ("--boundary"), transport padding allowed after it.
func delimiter(line []byte, dash string) int {
	if !bytes.HasPrefix(line, []byte(dash)) {
		return 0
	}
	rest := line[len(dash):]
	kind := 1
	if bytes.HasPrefix(rest, []byte("--")) {
		kind, rest = 2, rest[2:]
	}
	if strings.TrimRight(string(rest), " \t\r\n") != "" {
		return 0
	}
	return kind
}

// lineBreakBefore is where the CRLF (or LF) before a delimiter at at
// begins: it belongs to the delimiter, not to the part before it.
func lineBreakBefore(body []byte, start, at int) int {
	end := at
	if end > start && body[end-1] == '\n' {
		end--
		if end > start && body[end-1] == '\r' {
			end--
		}
	}
	return end
}
