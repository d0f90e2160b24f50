package wire

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Args parses a command's arguments: text and the literals read with
// it. Every method either consumes what it names or leaves the position
// as it was and returns false or an error; Err keeps the first error.
type Args struct {
	segs []segment
	seg  int // current segment
	pos  int // in segs[seg].data (text segments only)
	err  error
}

func (a *Args) add(s segment) {
	if !s.literal && len(s.data) == 0 {
		return
	}
	a.segs = append(a.segs, s)
}

// ErrSyntax is wrapped by every parse error; the session answers BAD.
var ErrSyntax = errors.New("syntax error")

func (a *Args) fail(format string, args ...any) error {
	if a.err == nil {
		a.err = fmt.Errorf("%w: %s", ErrSyntax, fmt.Sprintf(format, args...))
	}
	return a.err
}

// Err is the first error met.
func (a *Args) Err() error { return a.err }

// peek returns the next byte of text, or 0 at a literal or the end.
func (a *Args) peek() byte {
	for a.seg < len(a.segs) {
		s := a.segs[a.seg]
		if s.literal {
			return 0
		}
		if a.pos < len(s.data) {
			return s.data[a.pos]
		}
		a.seg, a.pos = a.seg+1, 0
	}
	return 0
}

func (a *Args) atLiteral() bool {
	a.peek()
	return a.seg < len(a.segs) && a.segs[a.seg].literal
}

// AtEnd says every argument has been consumed.
func (a *Args) AtEnd() bool {
	return a.peek() == 0 && !a.atLiteral()
}

// End fails unless every argument has been consumed.
func (a *Args) End() error {
	if a.err != nil {
		return a.err
	}
	if !a.AtEnd() {
		return a.fail("unexpected %q at the end of the command", a.rest(20))
	}
	return nil
}

// rest shows what follows, for error messages.
func (a *Args) rest(n int) string {
	if a.atLiteral() {
		return "{literal}"
	}
	if a.seg >= len(a.segs) {
		return ""
	}
	d := a.segs[a.seg].data[a.pos:]
	if len(d) > n {
		d = d[:n]
	}
	return string(d)
}

// Peek returns the next character of text without consuming it (0 at a
// literal or the end).
func (a *Args) Peek() byte { return a.peek() }

// Accept consumes ch when it comes next.
func (a *Args) Accept(ch byte) bool {
	if a.peek() == ch && ch != 0 {
		a.pos++
		return true
	}
	return false
}

// Expect consumes ch or fails.
func (a *Args) Expect(ch byte, what string) bool {
	if a.Accept(ch) {
		return true
	}
	a.fail("expected %s, found %q", what, a.rest(20))
	return false
}

// SP consumes the one space between arguments.
func (a *Args) SP() bool { return a.Expect(' ', "a space") }

// Atom reads an atom (RFC 9051 ATOM-CHARs); extra are further
// characters allowed in it (e.g. "]" for an astring, "*%" for a list
// mailbox, "\\" for a flag).
func (a *Args) atomWith(extra string) (string, bool) {
	var b []byte
	for {
		ch := a.peek()
		if ch == 0 || !(isAtomChar(ch) || strings.IndexByte(extra, ch) >= 0) {
			break
		}
		b = append(b, ch)
		a.pos++
	}
	return string(b), len(b) > 0
}

// Atom reads an atom.
func (a *Args) Atom() (string, bool) {
	s, ok := a.atomWith("")
	if !ok {
		a.fail("expected an atom, found %q", a.rest(20))
	}
	return s, ok
}

// Flag reads a flag or keyword: an atom with an optional leading "\"
// (flag-extension), or "\*" where allowed (star).
func (a *Args) Flag(star bool) (string, bool) {
	bs := a.Accept('\\')
	if bs && star && a.Accept('*') {
		return `\*`, true
	}
	s, ok := a.atomWith("")
	if !ok {
		a.fail("expected a flag, found %q", a.rest(20))
		return "", false
	}
	if bs {
		s = `\` + s
	}
	return s, true
}

// Number reads a number (up to 2^32-1; nz: not zero).
func (a *Args) Number(nz bool) (uint32, bool) {
	n, ok := a.number64()
	if !ok || n > 1<<32-1 || nz && n == 0 {
		if ok {
			a.fail("number %d out of range", n)
		}
		return 0, false
	}
	return uint32(n), true
}

// Number64 reads a number up to 2^63-1 (RFC 9051 number64).
func (a *Args) Number64() (int64, bool) {
	n, ok := a.number64()
	if !ok || n > 1<<63-1 {
		if ok {
			a.fail("number out of range")
		}
		return 0, false
	}
	return int64(n), true
}

func (a *Args) number64() (uint64, bool) {
	var b []byte
	for ch := a.peek(); ch >= '0' && ch <= '9'; ch = a.peek() {
		b = append(b, ch)
		a.pos++
	}
	if len(b) == 0 {
		a.fail("expected a number, found %q", a.rest(20))
		return 0, false
	}
	n, err := strconv.ParseUint(string(b), 10, 64)
	if err != nil {
		a.fail("number %s out of range", b)
		return 0, false
	}
	return n, true
}

// Quoted reads a quoted string (RFC 9051 quoted, with UTF-8 allowed as
// in RFC 6855 and IMAP4rev2).
func (a *Args) Quoted() (string, bool) {
	if !a.Accept('"') {
		return "", false
	}
	var b []byte
	for {
		ch := a.peek()
		switch {
		case ch == 0:
			a.fail("unterminated quoted string")
			return "", false
		case ch == '"':
			a.pos++
			if !utf8.Valid(b) {
				a.fail("quoted string is not UTF-8")
				return "", false
			}
			return string(b), true
		case ch == '\\':
			a.pos++
			esc := a.peek()
			if esc != '"' && esc != '\\' {
				a.fail("bad escape in a quoted string")
				return "", false
			}
			b = append(b, esc)
			a.pos++
		case ch == '\r' || ch == '\n':
			a.fail("line break in a quoted string")
			return "", false
		default:
			b = append(b, ch)
			a.pos++
		}
	}
}

// Literal reads a literal's bytes. binary says it was a literal8.
func (a *Args) Literal() (data []byte, binary, ok bool) {
	if !a.atLiteral() {
		return nil, false, false
	}
	s := a.segs[a.seg]
	a.seg, a.pos = a.seg+1, 0
	return s.data, s.binary, true
}

// String reads a string: quoted or literal (not literal8). Text literals
// must not hold NUL (RFC 9051 §4.3).
func (a *Args) String() (string, bool) {
	if s, ok := a.Quoted(); ok || a.err != nil {
		return s, ok
	}
	if data, binary, ok := a.Literal(); ok {
		if binary || bytes.IndexByte(data, 0) >= 0 {
			a.fail("NUL in a literal that is not literal8")
			return "", false
		}
		return string(data), true
	}
	a.fail("expected a string, found %q", a.rest(20))
	return "", false
}

// AString reads an astring: an atom (with "]") or a string.
func (a *Args) AString() (string, bool) {
	if ch := a.peek(); ch == '"' || a.atLiteral() {
		return a.String()
	}
	s, ok := a.atomWith("]")
	if !ok {
		a.fail("expected an atom or a string, found %q", a.rest(20))
	}
	return s, ok
}

// NString reads NIL or a string; nil is reported by isNil.
func (a *Args) NString() (s string, isNil, ok bool) {
	if a.acceptWord("NIL") {
		return "", true, true
	}
	s, ok = a.String()
	return s, false, ok
}

// ListMailbox reads a list-mailbox (RFC 9051: an atom with list
// wildcards, or a string).
func (a *Args) ListMailbox() (string, bool) {
	if ch := a.peek(); ch == '"' || a.atLiteral() {
		return a.String()
	}
	s, ok := a.atomWith("%*]")
	if !ok {
		a.fail("expected a mailbox pattern, found %q", a.rest(20))
	}
	return s, ok
}

// acceptWord consumes a case-insensitive word when it comes next as a
// whole atom.
func (a *Args) acceptWord(w string) bool {
	if a.atLiteral() || a.seg >= len(a.segs) {
		return false
	}
	d := a.segs[a.seg].data[a.pos:]
	if len(d) < len(w) || !strings.EqualFold(string(d[:len(w)]), w) {
		return false
	}
	if len(d) > len(w) && isAtomChar(d[len(w)]) {
		return false
	}
	a.pos += len(w)
	return true
}

// AcceptWord is acceptWord for callers (keywords such as "NIL", "UID").
func (a *Args) AcceptWord(w string) bool { return a.acceptWord(w) }

// List reads "(" item *(SP item) ")" calling item for each (empty
// allowed when empty is set).
func (a *Args) List(empty bool, item func() bool) bool {
	if !a.Expect('(', `"("`) {
		return false
	}
	if a.Accept(')') {
		if !empty {
			a.fail("empty list")
			return false
		}
		return true
	}
	for {
		if !item() {
			if a.err == nil {
				a.fail("bad list item at %q", a.rest(20))
			}
			return false
		}
		if a.Accept(')') {
			return true
		}
		if !a.SP() {
			return false
		}
	}
}

func isAtomChar(ch byte) bool {
	switch ch {
	case '(', ')', '{', ' ', '%', '*', '"', '\\', ']':
		return false
	}
	return ch > 0x1f && ch != 0x7f
}

func isAStringChar(ch byte) bool { return isAtomChar(ch) || ch == ']' }

func isAtom(b []byte) bool {
	for _, ch := range b {
		if !isAtomChar(ch) {
			return false
		}
	}
	return len(b) > 0
}

// Mark is a position in a command's arguments (see Since).
type Mark struct{ seg, pos int }

// Mark returns the current position.
func (a *Args) Mark() Mark { return Mark{a.seg, a.pos} }

// Since returns the text read from m to the current position, as the
// client wrote it; false when a literal lies in between (NOTIFY keeps
// MessageNew's fetch attributes this way, to run them later).
func (a *Args) Since(m Mark) (string, bool) {
	if m.seg >= len(a.segs) {
		return "", true
	}
	if m.seg == a.seg {
		return string(a.segs[m.seg].data[m.pos:a.pos]), true
	}
	var b []byte
	for i := m.seg; i <= a.seg && i < len(a.segs); i++ {
		s := a.segs[i]
		if s.literal {
			return "", false
		}
		from, to := 0, len(s.data)
		if i == m.seg {
			from = m.pos
		}
		if i == a.seg {
			to = a.pos
		}
		b = append(b, s.data[from:to]...)
	}
	return string(b), true
}

// Rewind goes back to m, taken by Mark on the same arguments.
func (a *Args) Rewind(m Mark) { a.seg, a.pos = m.seg, m.pos }
