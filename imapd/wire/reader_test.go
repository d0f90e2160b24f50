package wire

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
)

// reader reads from in; continuations are counted.
func reader(in string, limit func(*Command, int64, bool) error) (*Reader, *int) {
	r := NewReader(bufio.NewReaderSize(strings.NewReader(in), 4096))
	n := 0
	r.Continue = func() error { n++; return nil }
	r.LiteralLimit = limit
	return r, &n
}

func TestReadCommand(t *testing.T) {
	tests := []struct {
		name, in  string
		tag, cmd  string
		args      []string // what Args yields as astrings
		conts     int
		restAfter string // what is left unread
	}{
		{"plain", "a1 NOOP\r\n", "a1", "NOOP", nil, 0, ""},
		{"lower case name", "a1 noop\r\nb", "a1", "NOOP", nil, 0, "b"},
		{"bare LF", "a1 LOGIN u p\n", "a1", "LOGIN", []string{"u", "p"}, 0, ""},
		{"quoted", "a2 LOGIN \"al ice\" \"p\\\"w\"\r\n", "a2", "LOGIN", []string{"al ice", `p"w`}, 0, ""},
		{"sync literal", "a3 LOGIN {5}\r\nalice {3}\r\npw!\r\n", "a3", "LOGIN", []string{"alice", "pw!"}, 2, ""},
		{"LITERAL+", "a4 LOGIN {5+}\r\nalice pw\r\nx", "a4", "LOGIN", []string{"alice", "pw"}, 0, "x"},
		{"empty literal", "a5 LOGIN {0}\r\n {0+}\r\n\r\n", "a5", "LOGIN", []string{"", ""}, 1, ""},
		{"literal holding CRLF and a fake command", "a6 LOGIN {13}\r\nx\r\nb7 EXPUNGE p\r\n", "a6", "LOGIN", []string{"x\r\nb7 EXPUNGE", "p"}, 1, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, conts := reader(tc.in, nil)
			c, err := r.ReadCommand()
			if err != nil {
				t.Fatal(err)
			}
			if c.Tag != tc.tag || c.Name != tc.cmd {
				t.Fatalf("tag %q name %q", c.Tag, c.Name)
			}
			a := c.Args()
			var got []string
			for !a.AtEnd() {
				if !a.SP() {
					t.Fatal(a.Err())
				}
				s, ok := a.AString()
				if !ok {
					t.Fatal(a.Err())
				}
				got = append(got, s)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.args) || *conts != tc.conts {
				t.Fatalf("args %q (continuations %d), want %q (%d)", got, *conts, tc.args, tc.conts)
			}
			rest, _ := io.ReadAll(r.br)
			if string(rest) != tc.restAfter {
				t.Fatalf("left unread %q, want %q", rest, tc.restAfter)
			}
		})
	}
}

func TestReadCommandErrors(t *testing.T) {
	tooBig := errors.New("too big")
	limit := func(_ *Command, n int64, _ bool) error {
		if n > 10 {
			return tooBig
		}
		return nil
	}
	tests := []struct {
		name, in string
		check    func(t *testing.T, err error)
		rest     string
	}{
		{"no tag", " NOOP\r\nnext", func(t *testing.T, err error) {
			var se *SyntaxError
			if !errors.As(err, &se) || se.Tag != "" {
				t.Fatalf("%v", err)
			}
		}, "next"},
		{"plus in tag", "a+ NOOP\r\nnext", func(t *testing.T, err error) {
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("%v", err)
			}
		}, "next"},
		{"missing command", "a1\r\nnext", func(t *testing.T, err error) {
			var se *SyntaxError
			if !errors.As(err, &se) || se.Tag != "a1" {
				t.Fatalf("%v", err)
			}
		}, "next"},
		{"sync literal too big: nothing read, no continuation", "a1 APPEND INBOX {104857601}\r\nnext", func(t *testing.T, err error) {
			var lr *LiteralRefused
			if !errors.As(err, &lr) || lr.NonSync || lr.Tag != "a1" || lr.Size != 104857601 || !errors.Is(err, tooBig) {
				t.Fatalf("%v", err)
			}
		}, "next"},
		{"LITERAL+ too big: refused, its bytes never read", "a1 APPEND INBOX {104857601+}\r\na2 EXPUNGE\r\n", func(t *testing.T, err error) {
			var lr *LiteralRefused
			if !errors.As(err, &lr) || !lr.NonSync {
				t.Fatalf("%v", err)
			}
		}, "a2 EXPUNGE\r\n"},
		{"bad literal size", "a1 LOGIN {x}\r\nnext", func(t *testing.T, err error) {
			var se *SyntaxError
			if !errors.As(err, &se) || se.Tag != "a1" {
				t.Fatalf("%v", err)
			}
		}, "next"},
		{"eof inside a literal", "a1 LOGIN {5}\r\nab", func(t *testing.T, err error) {
			if !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("%v", err)
			}
		}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, conts := reader(tc.in, limit)
			_, err := r.ReadCommand()
			tc.check(t, err)
			var lr *LiteralRefused
			if errors.As(err, &lr) && *conts != 0 {
				t.Fatalf("%d continuation requests for a refused command", *conts)
			}
			rest, _ := io.ReadAll(r.br)
			if string(rest) != tc.rest {
				t.Fatalf("left unread %q, want %q", rest, tc.rest)
			}
		})
	}
}

// TestLineTooLong: the text of a command is bounded before it is kept;
// the rest of the line is read and dropped, and the next command reads.
func TestLineTooLong(t *testing.T) {
	in := "a1 SEARCH " + strings.Repeat("X", 100<<10) + "\r\na2 NOOP\r\n"
	r, _ := reader(in, nil)
	r.MaxText = 1024
	_, err := r.ReadCommand()
	var se *SyntaxError
	if !errors.As(err, &se) || se.Tag != "" && se.Tag != "a1" {
		t.Fatalf("%v", err)
	}
	c, err := r.ReadCommand()
	if err != nil || c.Tag != "a2" {
		t.Fatalf("next command: %+v %v", c, err)
	}
}

// TestLiteralMinus: without LITERAL+, a non-synchronizing literal may
// hold at most 4096 bytes (RFC 7888).
func TestLiteralMinus(t *testing.T) {
	r, _ := reader("a1 LOGIN {4097-}\r\n", nil)
	r.LiteralMinus = true
	var lr *LiteralRefused
	if _, err := r.ReadCommand(); !errors.As(err, &lr) || !lr.NonSync {
		t.Fatalf("%v", err)
	}
}

// TestTooManyLiterals bounds the literals of one command.
func TestTooManyLiterals(t *testing.T) {
	in := "a1 X" + strings.Repeat(" {1+}\r\nx", 20) + "\r\n"
	r, _ := reader(in, nil)
	r.MaxParts = 10
	var lr *LiteralRefused
	if _, err := r.ReadCommand(); !errors.As(err, &lr) {
		t.Fatalf("%v", err)
	}
}

// TestStringRefusesNUL: a text literal with NUL is a syntax error;
// literal8 is read by Literal.
func TestStringRefusesNUL(t *testing.T) {
	r, _ := reader("a1 X {3}\r\na\x00b ~{3}\r\na\x00b\r\n", nil)
	c, err := r.ReadCommand()
	if err != nil {
		t.Fatal(err)
	}
	a := c.Args()
	a.SP()
	if _, ok := a.String(); ok || !errors.Is(a.Err(), ErrSyntax) {
		t.Fatalf("a NUL in a text literal: %v", a.Err())
	}
	a = c.Args()
	a.SP()
	a.Literal()
	a.SP()
	if d, bin, ok := a.Literal(); !ok || !bin || string(d) != "a\x00b" {
		t.Fatalf("literal8: %q %v %v", d, bin, ok)
	}
	if a.End() != nil {
		t.Fatal(a.Err())
	}
}
