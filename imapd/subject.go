package imapd

import (
	"mime"
	"strings"
	"unicode"

	"github.com/emersion/go-message/charset"
	"golang.org/x/text/unicode/norm"
)

// wordDecoder decodes RFC 2047 encoded words in any charset go-message
// knows.
var wordDecoder = &mime.WordDecoder{CharsetReader: charset.Reader}

// baseSubject extracts the base subject of RFC 5256 §2.1 and reports
// whether the subject was a reply or forward (a subj-refwd leader or a
// [fwd: ...] wrapper was removed), which threading needs (§3, step 5).
// The stored envelope subject is already decoded; encoded words still
// present (a subject stored raw) are decoded here, step (1).
func baseSubject(s string) (string, bool) {
	if strings.Contains(s, "=?") {
		if d, err := wordDecoder.DecodeHeader(s); err == nil {
			s = d
		}
	}
	s = strings.Join(strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == '\t' || r == '\r' || r == '\n' }), " ")
	reply := false
	for {
		// (2) trailers: "(fwd)" and white space.
		for {
			t := strings.TrimRight(s, " ")
			if len(t) >= 5 && strings.EqualFold(t[len(t)-5:], "(fwd)") {
				t, reply = t[:len(t)-5], true
			}
			if t == s {
				break
			}
			s = t
		}
		// (3)-(5) leaders and blobs, until neither matches.
		for {
			t, refwd := stripLeader(s)
			reply = reply || refwd
			if b, ok := stripBlob(t); ok && strings.TrimSpace(b) != "" {
				t = b
			}
			if t == s {
				break
			}
			s = t
		}
		// (6) "[fwd:" subject "]".
		if len(s) >= 6 && strings.EqualFold(s[:5], "[fwd:") && s[len(s)-1] == ']' {
			s, reply = s[5:len(s)-1], true
			continue
		}
		return s, reply
	}
}

// stripLeader removes one subj-leader (RFC 5256 §5: *subj-blob
// subj-refwd, or white space) and reports whether it was a subj-refwd.
func stripLeader(s string) (string, bool) {
	if strings.HasPrefix(s, " ") {
		return strings.TrimLeft(s, " "), false
	}
	t := s
	for {
		b, ok := stripBlob(t)
		if !ok {
			break
		}
		t = b
	}
	if r, ok := stripRefwd(t); ok {
		return r, true
	}
	return s, false
}

// stripRefwd removes subj-refwd: ("re" / ("fw" ["d"])) *WSP [subj-blob] ":".
func stripRefwd(s string) (string, bool) {
	l := strings.ToLower(s)
	var n int
	switch {
	case strings.HasPrefix(l, "re"):
		n = 2
	case strings.HasPrefix(l, "fwd"):
		n = 3
	case strings.HasPrefix(l, "fw"):
		n = 2
	default:
		return s, false
	}
	t := strings.TrimLeft(s[n:], " ")
	if b, ok := stripBlob(t); ok {
		t = b
	}
	if !strings.HasPrefix(t, ":") {
		return s, false
	}
	return t[1:], true
}

// stripBlob removes subj-blob: "[" *BLOBCHAR "]" *WSP.
func stripBlob(s string) (string, bool) {
	if !strings.HasPrefix(s, "[") {
		return s, false
	}
	end := strings.IndexAny(s[1:], "[]")
	if end < 0 || s[1+end] != ']' {
		return s, false
	}
	return strings.TrimLeft(s[end+2:], " "), true
}

// collationKey is s under the i;unicode-casemap collation (RFC 5051):
// each character's titlecase, then Unicode NFKD; keys compare as bytes.
// It orders ASCII as i;ascii-casemap does (RFC 5256 §2's minimum) up to
// its choice of upper case.
func collationKey(s string) string {
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			ascii = false
			break
		}
	}
	if ascii {
		return strings.ToUpper(s)
	}
	// Titlecase again after NFKD: a compatibility character (the "ﬁ"
	// ligature) decomposes into letters that have a titlecase.
	return strings.Map(unicode.ToTitle, norm.NFKD.String(strings.Map(unicode.ToTitle, s)))
}
