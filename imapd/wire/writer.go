package wire

import (
	"bufio"
	"strconv"
	"unicode/utf8"
)

// Writer writes IMAP response data (RFC 9051 §7, §9). It never fails on
// its own: a write error is kept and returned by Err and Flush.
type Writer struct {
	bw *bufio.Writer
	// UTF8 allows UTF-8 in quoted strings (IMAP4rev2, UTF8=ACCEPT);
	// otherwise a non-ASCII string goes out as a literal.
	UTF8 bool
	err  error
}

// NewWriter returns a Writer on bw.
func NewWriter(bw *bufio.Writer) *Writer { return &Writer{bw: bw} }

// Reset makes the Writer write to bw (nil: none until the next Reset),
// keeping its UTF8 setting and clearing its error.
func (w *Writer) Reset(bw *bufio.Writer) { w.bw, w.err = bw, nil }

// Err is the first write error.
func (w *Writer) Err() error { return w.err }

// Flush sends what is buffered.
func (w *Writer) Flush() error {
	if w.err == nil {
		w.err = w.bw.Flush()
	}
	return w.err
}

// Raw writes s as it is (protocol text the caller built).
func (w *Writer) Raw(s string) *Writer {
	if w.err == nil {
		_, w.err = w.bw.WriteString(s)
	}
	return w
}

// Bytes writes b as it is.
func (w *Writer) Bytes(b []byte) *Writer {
	if w.err == nil {
		_, w.err = w.bw.Write(b)
	}
	return w
}

func (w *Writer) byte1(c byte) *Writer {
	if w.err == nil {
		w.err = w.bw.WriteByte(c)
	}
	return w
}

// SP writes a space.
func (w *Writer) SP() *Writer { return w.byte1(' ') }

// CRLF ends a response line.
func (w *Writer) CRLF() *Writer { return w.Raw("\r\n") }

// Open and Close write the parentheses of a list.
func (w *Writer) Open() *Writer  { return w.byte1('(') }
func (w *Writer) Close() *Writer { return w.byte1(')') }

// Number writes a number.
func (w *Writer) Number(n uint64) *Writer {
	if w.err == nil {
		var b [20]byte
		_, w.err = w.bw.Write(strconv.AppendUint(b[:0], n, 10))
	}
	return w
}

// NIL writes NIL.
func (w *Writer) NIL() *Writer { return w.Raw("NIL") }

// Atom writes an atom (the caller knows it is one).
func (w *Writer) Atom(s string) *Writer { return w.Raw(s) }

// String writes s as a quoted string when it can be one, otherwise as a
// literal. NUL never goes out in a string (RFC 9051 §4.3): it is
// written as a literal8 only by Literal8.
func (w *Writer) String(s string) *Writer {
	if w.quotable(s) {
		return w.quoted(s)
	}
	return w.Literal([]byte(s))
}

// NString writes s, or NIL when it is empty and nilIfEmpty is set.
func (w *Writer) NString(s string, nilIfEmpty bool) *Writer {
	if s == "" && nilIfEmpty {
		return w.NIL()
	}
	return w.String(s)
}

// AString writes s as an atom when it is one, otherwise as a string.
func (w *Writer) AString(s string) *Writer {
	if s != "" && isAtomString(s) {
		return w.Raw(s)
	}
	return w.String(s)
}

// quotable: short, no CR, LF or NUL, and ASCII unless UTF8.
func (w *Writer) quotable(s string) bool {
	if len(s) > 1024 {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == 0 || c == '\r' || c == '\n':
			return false
		case c >= 0x80 && !w.UTF8:
			return false
		}
	}
	return !w.UTF8 || utf8.ValidString(s)
}

func (w *Writer) quoted(s string) *Writer {
	w.byte1('"')
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			w.Raw(s[start:i]).byte1('\\')
			start = i
		}
	}
	return w.Raw(s[start:]).byte1('"')
}

// Literal writes a text literal: {n} CRLF and the bytes. Bytes with NUL
// must go out with Literal8 instead; a NUL here is replaced by a space
// (the caller asked for text).
func (w *Writer) Literal(b []byte) *Writer {
	w.byte1('{').Number(uint64(len(b))).Raw("}\r\n")
	for {
		i := indexNUL(b)
		if i < 0 {
			return w.Bytes(b)
		}
		w.Bytes(b[:i]).byte1(' ')
		b = b[i+1:]
	}
}

// Literal8 writes a literal8 (RFC 3516): ~{n} CRLF and the bytes.
func (w *Writer) Literal8(b []byte) *Writer {
	return w.Raw("~{").Number(uint64(len(b))).Raw("}\r\n").Bytes(b)
}

func indexNUL(b []byte) int {
	for i, c := range b {
		if c == 0 {
			return i
		}
	}
	return -1
}

func isAtomString(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isAStringChar(s[i]) || s[i] >= 0x80 {
			return false
		}
	}
	return true
}
