package wire

import (
	"encoding/base64"
	"errors"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// Modified UTF-7 (RFC 3501 §5.1.3): how IMAP4rev1 clients name
// mailboxes outside ASCII. Printable ASCII stands for itself ("&" as
// "&-"); anything else is "&" base64(UTF-16BE) "-" with "," for "/".

var mutf7 = base64.NewEncoding("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,").WithPadding(base64.NoPadding)

// ErrMUTF7 is a name that is not valid modified UTF-7.
var ErrMUTF7 = errors.New("not valid modified UTF-7")

// EncodeMUTF7 writes a UTF-8 mailbox name in modified UTF-7.
func EncodeMUTF7(s string) string {
	var b strings.Builder
	var run []rune
	flush := func() {
		if len(run) == 0 {
			return
		}
		u := utf16.Encode(run)
		raw := make([]byte, 2*len(u))
		for i, c := range u {
			raw[2*i], raw[2*i+1] = byte(c>>8), byte(c)
		}
		b.WriteByte('&')
		b.WriteString(mutf7.EncodeToString(raw))
		b.WriteByte('-')
		run = run[:0]
	}
	for _, r := range s {
		if r >= 0x20 && r <= 0x7e {
			flush()
			if r == '&' {
				b.WriteString("&-")
			} else {
				b.WriteRune(r)
			}
			continue
		}
		run = append(run, r)
	}
	flush()
	return b.String()
}

// DecodeMUTF7 reads a modified UTF-7 mailbox name as UTF-8.
func DecodeMUTF7(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e {
			return "", ErrMUTF7
		}
		if c != '&' {
			b.WriteByte(c)
			continue
		}
		end := strings.IndexByte(s[i+1:], '-')
		if end < 0 {
			return "", ErrMUTF7
		}
		enc := s[i+1 : i+1+end]
		i += end + 1
		if enc == "" {
			b.WriteByte('&')
			continue
		}
		raw, err := mutf7.DecodeString(enc)
		if err != nil || len(raw)%2 != 0 {
			return "", ErrMUTF7
		}
		u := make([]uint16, len(raw)/2)
		for j := range u {
			u[j] = uint16(raw[2*j])<<8 | uint16(raw[2*j+1])
		}
		rs := utf16.Decode(u)
		for _, r := range rs {
			// An encoded run must not hold what could stand for itself,
			// nor broken surrogates.
			if r >= 0x20 && r <= 0x7e || r == utf8.RuneError {
				return "", ErrMUTF7
			}
			b.WriteRune(r)
		}
	}
	return b.String(), nil
}

func utf8Valid(s string) bool { return utf8.ValidString(s) && !strings.ContainsRune(s, utf8.RuneError) }
