package imapd

import "bytes"

// RFC 3501 and RFC 9051 forbid NUL in strings and literals (CHAR8 is
// %x01-ff); only BINARY's literal8 (RFC 3516) may carry it. Stored mail
// can hold NUL bytes (an APPEND that broke the rule, a delivery), so what
// goes out in BODY[] and RFC822 and their parts has them replaced by
// 0x80, as Dovecot does: sizes stay those of RFC822.SIZE and of the
// stored bytes. (ENVELOPE needs nothing: go-imap sends header text with
// control bytes as MIME encoded words.)

// nulReplacement stands in for NUL in a literal.
const nulReplacement = 0x80

// literalSafe returns data, or a copy with every NUL replaced (data may
// be the stored bytes and is never changed).
func literalSafe(data []byte) []byte {
	i := bytes.IndexByte(data, 0)
	if i < 0 {
		return data
	}
	out := bytes.Clone(data)
	for ; i < len(out); i++ {
		if out[i] == 0 {
			out[i] = nulReplacement
		}
	}
	return out
}
