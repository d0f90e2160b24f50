package wire

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"testing"
)

// FuzzReadCommand: any bytes from a client give commands or errors,
// never a panic; a refused literal's bytes are never taken as part of a
// command; every argument parser stops at the end.
func FuzzReadCommand(f *testing.F) {
	for _, s := range []string{
		"a1 NOOP\r\n", "a1 LOGIN {5}\r\nalice {3+}\r\npw!\r\n", "a1 APPEND INBOX {104857601+}\r\na2 EXPUNGE\r\n",
		"a1 SEARCH (OR (FROM x) (TO \"y\")) UID 1:*,5\r\n", "* BAD\r\n", "a1 X ~{3}\r\na\x00b\r\n", "\r\n\r\n",
		"a1 FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT)]<0.100>)\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		r := NewReader(bufio.NewReaderSize(bytes.NewReader(in), 64))
		r.MaxText = 256
		r.LiteralLimit = func(_ *Command, n int64, _ bool) error {
			if n > 64 {
				return errors.New("too big")
			}
			return nil
		}
		for range 64 {
			c, err := r.ReadCommand()
			var lr *LiteralRefused
			switch {
			case errors.As(err, &lr) && lr.NonSync:
				return // the session closes the connection here
			case err != nil && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)):
				return
			case err != nil:
				continue
			}
			a := c.Args()
			for steps := 0; !a.AtEnd() && a.Err() == nil && steps < 1000; steps++ {
				a.Accept(' ')
				if a.Peek() == '(' {
					a.List(true, func() bool { _, ok := a.AString(); return ok })
				} else if _, ok := a.AString(); !ok {
					break
				}
			}
		}
	})
}
