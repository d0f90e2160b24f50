package wire

import (
	"strings"

	"github.com/emersion/go-imap/v2"
)

// FetchKind is one FETCH data item (RFC 9051 §6.4.5 and extensions).
type FetchKind int

// The FETCH items.
const (
	FetchUID FetchKind = iota + 1
	FetchFlags
	FetchInternalDate
	FetchRFC822Size
	FetchEnvelope
	FetchBody          // BODY (the non-extensible BODYSTRUCTURE)
	FetchBodyStructure // BODYSTRUCTURE
	FetchSection       // BODY[...] and BODY.PEEK[...]
	FetchBinary        // BINARY[...] and BINARY.PEEK[...] (RFC 3516)
	FetchBinarySize    // BINARY.SIZE[...]
	FetchRFC822        // RFC822 (= BODY[])
	FetchRFC822Header  // RFC822.HEADER (= BODY.PEEK[HEADER])
	FetchRFC822Text    // RFC822.TEXT (= BODY[TEXT])
	FetchModSeq        // MODSEQ (RFC 7162)
	FetchSaveDate      // SAVEDATE (RFC 8514)
	FetchEmailID       // EMAILID (RFC 8474)
	FetchThreadID      // THREADID (RFC 8474)
	FetchPreview       // PREVIEW (RFC 8970)
)

// Section is the section of a BODY[], BINARY[] or BINARY.SIZE[] item.
type Section struct {
	Part      []int
	Specifier imap.PartSpecifier // HEADER, HEADER.FIELDS(.NOT) as HEADER with Fields, MIME, TEXT
	Fields    []string           // HEADER.FIELDS or, with Not, HEADER.FIELDS.NOT
	Not       bool
	Partial   *imap.SectionPartial
	Peek      bool
	// Spec is the section as the client wrote it between the brackets:
	// the response echoes it unchanged (RFC 9051 §7.5.2).
	Spec string
}

// FetchItem is one requested item.
type FetchItem struct {
	Kind    FetchKind
	Section *Section
	Lazy    bool // PREVIEW (LAZY)
}

// FetchItems reads FETCH's item argument: a macro (ALL, FAST, FULL), one
// item, or a parenthesised list of items.
func (a *Args) FetchItems() ([]FetchItem, bool) {
	switch {
	case a.acceptWord("ALL"):
		return []FetchItem{{Kind: FetchFlags}, {Kind: FetchInternalDate}, {Kind: FetchRFC822Size}, {Kind: FetchEnvelope}}, true
	case a.acceptWord("FAST"):
		return []FetchItem{{Kind: FetchFlags}, {Kind: FetchInternalDate}, {Kind: FetchRFC822Size}}, true
	case a.acceptWord("FULL"):
		return []FetchItem{{Kind: FetchFlags}, {Kind: FetchInternalDate}, {Kind: FetchRFC822Size}, {Kind: FetchEnvelope}, {Kind: FetchBody}}, true
	}
	var items []FetchItem
	one := func() bool {
		it, ok := a.fetchItem()
		if ok {
			items = append(items, it)
		}
		return ok
	}
	if a.peek() == '(' {
		if !a.List(false, one) {
			return nil, false
		}
		return items, true
	}
	if !one() {
		return nil, false
	}
	return items, true
}

func (a *Args) fetchItem() (FetchItem, bool) {
	name := a.word()
	if name == "" {
		a.fail("expected a FETCH item, found %q", a.rest(20))
		return FetchItem{}, false
	}
	upper := strings.ToUpper(name)
	simple := map[string]FetchKind{
		"UID": FetchUID, "FLAGS": FetchFlags, "INTERNALDATE": FetchInternalDate, "RFC822.SIZE": FetchRFC822Size,
		"ENVELOPE": FetchEnvelope, "BODYSTRUCTURE": FetchBodyStructure, "RFC822": FetchRFC822,
		"RFC822.HEADER": FetchRFC822Header, "RFC822.TEXT": FetchRFC822Text, "MODSEQ": FetchModSeq,
		"SAVEDATE": FetchSaveDate, "EMAILID": FetchEmailID, "THREADID": FetchThreadID,
	}
	if a.peek() != '[' {
		if k, ok := simple[upper]; ok {
			return FetchItem{Kind: k}, true
		}
		switch upper {
		case "BODY":
			return FetchItem{Kind: FetchBody}, true
		case "PREVIEW":
			it := FetchItem{Kind: FetchPreview}
			// "PREVIEW (LAZY)"; a list after PREVIEW that is not its
			// modifiers is FETCH's (CHANGEDSINCE ...).
			if a.peek() == ' ' && (a.lookahead(" (LAZY") || a.lookahead(" (lazy") || a.lookahead(" (Lazy")) {
				a.pos++
				ok := a.List(false, func() bool {
					m, ok := a.Atom()
					if ok && strings.EqualFold(m, "LAZY") {
						it.Lazy = true
						return true
					}
					if ok {
						a.fail("unknown PREVIEW modifier %s", m)
					}
					return false
				})
				return it, ok
			}
			return it, true
		}
		a.fail("unknown FETCH item %s", name)
		return FetchItem{}, false
	}
	var it FetchItem
	sec := &Section{}
	switch upper {
	case "BODY":
		it.Kind = FetchSection
	case "BODY.PEEK":
		it.Kind, sec.Peek = FetchSection, true
	case "BINARY":
		it.Kind = FetchBinary
	case "BINARY.PEEK":
		it.Kind, sec.Peek = FetchBinary, true
	case "BINARY.SIZE":
		it.Kind = FetchBinarySize
	default:
		a.fail("unknown FETCH item %s[", name)
		return FetchItem{}, false
	}
	it.Section = sec
	if !a.section(sec, it.Kind == FetchSection) {
		return FetchItem{}, false
	}
	if it.Kind != FetchBinarySize && a.Accept('<') {
		off, ok := a.Number64()
		if !ok || !a.Expect('.', `"."`) {
			return FetchItem{}, false
		}
		n, ok := a.Number(true)
		if !ok || !a.Expect('>', `">"`) {
			return FetchItem{}, false
		}
		sec.Partial = &imap.SectionPartial{Offset: off, Size: int64(n)}
	}
	return it, true
}

// lookahead says the text at the position starts with s.
func (a *Args) lookahead(s string) bool {
	if a.atLiteral() || a.seg >= len(a.segs) {
		return false
	}
	return strings.HasPrefix(string(a.segs[a.seg].data[a.pos:]), s)
}

// section reads "[" section-spec "]" (RFC 9051 section). Binary sections
// (text false) are part numbers only.
func (a *Args) section(sec *Section, text bool) bool {
	if !a.Expect('[', `"["`) {
		return false
	}
	startSeg, startPos := a.seg, a.pos
	if c := a.peek(); c >= '0' && c <= '9' {
		for {
			n, ok := a.Number(true)
			if !ok {
				return false
			}
			sec.Part = append(sec.Part, int(n))
			if !a.Accept('.') {
				return a.endSection(sec, startSeg, startPos)
			}
			if c := a.peek(); c < '0' || c > '9' {
				break // part.HEADER, part.TEXT, part.MIME
			}
		}
	} else if a.peek() == ']' {
		return a.endSection(sec, startSeg, startPos)
	}
	if !text {
		a.fail("a BINARY section is part numbers only")
		return false
	}
	return a.sectionText(sec, startSeg, startPos)
}

// sectionText reads HEADER, HEADER.FIELDS (...), HEADER.FIELDS.NOT
// (...), TEXT or MIME (MIME only after a part number).
func (a *Args) sectionText(sec *Section, startSeg, startPos int) bool {
	name := a.word()
	if name == "" {
		a.fail("bad section %q", a.rest(20))
		return false
	}
	switch strings.ToUpper(name) {
	case "HEADER":
		sec.Specifier = imap.PartSpecifierHeader
	case "TEXT":
		sec.Specifier = imap.PartSpecifierText
	case "MIME":
		if len(sec.Part) == 0 {
			a.fail("MIME needs a part number")
			return false
		}
		sec.Specifier = imap.PartSpecifierMIME
	case "HEADER.FIELDS", "HEADER.FIELDS.NOT":
		sec.Specifier = imap.PartSpecifierHeader
		sec.Not = len(name) > len("HEADER.FIELDS")
		if !a.SP() {
			return false
		}
		if !a.List(false, func() bool {
			f, ok := a.AString()
			if ok {
				sec.Fields = append(sec.Fields, f)
			}
			return ok
		}) {
			return false
		}
	default:
		a.fail("unknown section %s", name)
		return false
	}
	return a.endSection(sec, startSeg, startPos)
}

// endSection reads "]" and keeps the section's text as written.
func (a *Args) endSection(sec *Section, startSeg, startPos int) bool {
	if a.seg != startSeg {
		// A literal inside the section (a header field name sent as a
		// literal): echo a normalised form.
		sec.Spec = normalSpec(sec)
	} else {
		sec.Spec = string(a.segs[a.seg].data[startPos:a.pos])
	}
	return a.Expect(']', `"]"`)
}

// normalSpec writes a section in the canonical form.
func normalSpec(sec *Section) string {
	var b strings.Builder
	for i, p := range sec.Part {
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(itoa(p))
	}
	if sec.Specifier != imap.PartSpecifierNone {
		if len(sec.Part) > 0 {
			b.WriteByte('.')
		}
		b.WriteString(string(sec.Specifier))
		if sec.Fields != nil {
			b.WriteString(".FIELDS")
			if sec.Not {
				b.WriteString(".NOT")
			}
			b.WriteString(" (")
			for i, f := range sec.Fields {
				if i > 0 {
					b.WriteByte(' ')
				}
				b.WriteString(f)
			}
			b.WriteByte(')')
		}
	}
	return b.String()
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[i:])
}

// word reads letters, digits, "." and "-": an item or section name,
// which "[" ends (it is an atom character).
func (a *Args) word() string {
	var b []byte
	for {
		ch := a.peek()
		if !(ch >= 'A' && ch <= 'Z' || ch >= 'a' && ch <= 'z' || ch >= '0' && ch <= '9' || ch == '.' || ch == '-') {
			return string(b)
		}
		b = append(b, ch)
		a.pos++
	}
}
