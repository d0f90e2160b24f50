package msginfo

import "strings"

// The address-list grammar of RFC 5322 §3.4 with the obsolete forms of
// §4.4 (source routes, null list elements, phrases with dots), read the
// way Dovecot's envelope reads it where the RFC leaves a broken header
// open: what can be read is kept, a part that is missing gets a
// placeholder (MISSING_MAILBOX, MISSING_DOMAIN, SYNTAX_ERROR,
// INVALID_ROUTE), and reading stops at text it cannot place. The strings
// kept are the header's own: a phrase's words joined by one space (the
// quotes of a quoted-string and its quoted-pairs undone, since the IMAP
// string quotes again), encoded words and 8-bit bytes untouched.

// addrParser walks one unfolded field value.
type addrParser struct {
	s           string
	i           int
	lastComment string // the text of the last comment skipped
	sawComment  bool
	out         []Address
}

// ParseAddressList reads an unfolded address-list field value (From,
// Sender, Reply-To, To, Cc, Bcc).
func ParseAddressList(v string) []Address {
	p := &addrParser{s: v}
	p.skipCFWS()
	for p.more() {
		if p.peek() == ',' { // obs-addr-list: a null element
			p.i++
			p.skipCFWS()
			continue
		}
		if !p.address() {
			break
		}
		if !p.more() || p.peek() != ',' {
			break // text after an address that is not a list separator
		}
	}
	return p.out
}

func (p *addrParser) more() bool { return p.i < len(p.s) }
func (p *addrParser) peek() byte { return p.s[p.i] }

// skipCFWS skips white space and comments (RFC 5322 §3.2.2), noting the
// last comment's text (a name, after an addr-spec). It reports whether
// input is left.
func (p *addrParser) skipCFWS() bool {
	for p.more() {
		switch p.peek() {
		case ' ', '\t', '\r', '\n':
			p.i++
		case '(':
			p.comment()
		default:
			return true
		}
	}
	return false
}

// comment skips one comment, nested ones and quoted-pairs included.
func (p *addrParser) comment() {
	p.i++
	start, depth := p.i, 1
	for p.more() {
		switch p.peek() {
		case '\\':
			p.i++
		case '(':
			depth++
		case ')':
			depth--
			if depth == 0 {
				p.lastComment, p.sawComment = p.s[start:p.i], true
				p.i++
				return
			}
		}
		p.i++
	}
	p.lastComment, p.sawComment = p.s[start:min(p.i, len(p.s))], true
}

// isAtext is RFC 5322's atext; bytes above 127 count as text too
// (RFC 6532, and 8-bit names real mail carries).
func isAtext(c byte) bool {
	if c >= 0x80 || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
		return true
	}
	return strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0
}

// atom reads 1*atext (and dots when dots is set); "" if none.
func (p *addrParser) atom(dots bool) string {
	start := p.i
	for p.more() && (isAtext(p.peek()) || dots && p.peek() == '.') {
		p.i++
	}
	return p.s[start:p.i]
}

// quoted reads a quoted-string's content, its quoted-pairs undone; ok
// is false when it does not end.
func (p *addrParser) quoted() (string, bool) {
	p.i++
	var b strings.Builder
	for p.more() {
		c := p.peek()
		p.i++
		switch c {
		case '"':
			return b.String(), true
		case '\\':
			if p.more() {
				b.WriteByte(p.peek())
				p.i++
			}
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), false
}

// phrase reads a display name (RFC 5322 phrase and obs-phrase): words
// and dots, the words joined by one space. ok is false if there is none.
func (p *addrParser) phrase() (string, bool) {
	var words []string
	for p.skipCFWS() {
		c := p.peek()
		switch {
		case c == '"':
			w, _ := p.quoted()
			words = append(words, w)
		case isAtext(c) || c == '.' && len(words) > 0:
			words = append(words, p.atom(true))
		default:
			return strings.Join(words, " "), len(words) > 0
		}
	}
	return strings.Join(words, " "), len(words) > 0
}

// address reads a group or a mailbox and reports whether the list may
// go on.
func (p *addrParser) address() bool {
	start := p.i
	if name, ok := p.phrase(); ok && p.more() && p.peek() == ':' {
		p.group(name)
		return true
	}
	p.i = start
	return p.mailbox()
}

// group reads the rest of `display-name ":" [mailbox-list] ";"` after
// the colon. A group that does not end is ended at the end of the
// field, so the client's group nesting stays balanced.
func (p *addrParser) group(name string) {
	p.i++ // ':'
	p.out = append(p.out, Address{GroupStart: true, Mailbox: name})
	for p.skipCFWS() && p.peek() != ';' {
		if p.peek() == ',' {
			p.i++
			continue
		}
		if !p.mailbox() {
			break
		}
		if !p.more() || p.peek() != ',' && p.peek() != ';' {
			break
		}
	}
	if p.more() && p.peek() == ';' {
		p.i++
		p.skipCFWS()
	}
	p.out = append(p.out, Address{GroupEnd: true})
}

// mailbox reads a name-addr or an addr-spec, appends it (with
// placeholders for what is missing) and reports whether the list may go
// on.
func (p *addrParser) mailbox() bool {
	start := p.i
	name, _ := p.phrase()
	if p.more() && p.peek() == '<' {
		a, ok := p.angleAddr()
		a.Name = name
		p.add(a)
		// Past a broken one, the list goes on at a comma.
		return ok || p.more() && p.peek() == ','
	}
	p.i = start
	return p.addrSpec()
}

// angleAddr reads `"<" [route ":"] addr-spec ">"`; ok is false when it
// is broken (its host is then SYNTAX_ERROR).
func (p *addrParser) angleAddr() (a Address, ok bool) {
	p.i++ // '<'
	broken := func() (Address, bool) {
		a.Host = SyntaxError
		// Resynchronise after the broken address, at its ">".
		if j := strings.IndexByte(p.s[p.i:], '>'); j >= 0 {
			p.i += j + 1
			p.skipCFWS()
		} else {
			p.i = len(p.s)
		}
		return a, false
	}
	if !p.skipCFWS() {
		return broken()
	}
	if p.peek() == '@' {
		route, ok := p.route()
		if ok {
			a.ADL = route
		} else {
			a.ADL = InvalidRoute
		}
		if !p.skipCFWS() {
			return broken()
		}
	}
	if p.peek() != '>' { // "<>" is no address: both parts missing
		local, ok := p.localPart()
		if !ok {
			return broken()
		}
		a.Mailbox = local
		if p.more() && p.peek() == '@' {
			p.i++
			d, ok := p.domain()
			if !ok {
				return broken()
			}
			a.Host = d
		}
	}
	if !p.more() || p.peek() != '>' {
		return broken()
	}
	p.i++
	p.skipCFWS()
	return a, true
}

// route reads obs-route's domain list up to its ":" ("@a,@b"); ok is
// false if the colon is missing.
func (p *addrParser) route() (string, bool) {
	var hops []string
	for p.more() && p.peek() == '@' {
		p.i++
		d, ok := p.domain()
		if !ok {
			return "", false
		}
		hops = append(hops, "@"+d)
		for p.skipCFWS() && p.peek() == ',' {
			p.i++
		}
	}
	if p.more() && p.peek() == ':' {
		p.i++
		return strings.Join(hops, ","), true
	}
	return "", false
}

// localPart reads a dot-atom (dots anywhere, as obs-local-part and real
// mail allow) or a quoted-string, comments around it skipped.
func (p *addrParser) localPart() (string, bool) {
	if !p.skipCFWS() {
		return "", false
	}
	var parts []string
	for {
		if p.peek() == '"' {
			w, ok := p.quoted()
			if !ok {
				return "", false
			}
			parts = append(parts, w)
		} else {
			w := p.atom(true)
			if w == "" {
				break
			}
			parts = append(parts, w)
		}
		// obs-local-part: words joined by dots, CFWS between them.
		if !p.skipCFWS() || p.peek() != '.' && p.peek() != '"' {
			break
		}
	}
	if len(parts) == 0 {
		return "", false
	}
	return strings.Join(parts, ""), true
}

// domain reads a dot-atom or a domain-literal ("[...]", kept whole).
func (p *addrParser) domain() (string, bool) {
	if !p.skipCFWS() {
		return "", false
	}
	if p.peek() == '[' {
		j := strings.IndexByte(p.s[p.i:], ']')
		if j < 0 {
			return "", false
		}
		d := p.s[p.i : p.i+j+1]
		p.i += j + 1
		p.skipCFWS()
		return d, true
	}
	var parts []string
	for {
		w := p.atom(true)
		if w == "" {
			break
		}
		parts = append(parts, w)
		if !p.skipCFWS() || p.peek() != '.' {
			break
		}
	}
	if len(parts) == 0 {
		return "", false
	}
	return strings.Join(parts, ""), true
}

// addrSpec reads `local-part ["@" domain]` with its trailing comment
// as the name ("user@host (Real Name)"). Without "@domain", a lone word
// is a mailbox with its domain missing, and words followed by more
// words are a display name whose address is missing.
func (p *addrParser) addrSpec() bool {
	p.sawComment = false
	local, ok := p.localPart()
	a := Address{Mailbox: local}
	hasDomain := false
	if ok && p.more() && p.peek() == '@' {
		p.i++
		d, dok := p.domain()
		a.Host, hasDomain = d, true
		ok = dok
	}
	if p.sawComment {
		a.Name = p.lastComment
	}
	if !hasDomain && ok {
		// Not an address after all if more words follow: a name.
		if rest, more := p.phrase(); more {
			a.Name, a.Mailbox = strings.TrimSpace(local+" "+rest), ""
		}
		ok = false
	} else if hasDomain && !ok && a.Name == "" {
		// "user@" with no domain: the word is taken for a name.
		a.Name, a.Mailbox, a.Host = a.Mailbox, "", ""
	}
	p.add(a)
	if !ok {
		// The list goes on only at a comma.
		return p.more() && p.peek() == ','
	}
	return true
}

// add appends a mailbox, filling in what is missing.
func (p *addrParser) add(a Address) {
	if a.Mailbox == "" {
		a.Mailbox = MissingMailbox
	}
	if a.Host == "" {
		a.Host = MissingDomain
	}
	p.out = append(p.out, a)
}
