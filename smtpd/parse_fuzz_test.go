package smtpd

// Fuzz targets for the command-line parsers of parse.go: the verb split
// (parseCommand), MAIL/RCPT parameter lists (parseParams), SIZE=
// (parseSizeParam) and mailbox syntax (validMailbox). Seeds: the f.Add
// calls here and ../testdata/smtp/{commands,params,mailboxes,paths}.txt.
//
// Not reachable from here without the session: the MAIL parameter
// switch in cmdMail (SIZE, BODY, SMTPUTF8, AUTH) and the RCPT
// "no parameters" rule live inside (*conn).cmdMail and cmdRcpt.

import (
	"maps"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

func FuzzParseCommand(f *testing.F) {
	for _, l := range seedLines(f, "commands.txt") {
		f.Add(l)
	}
	for _, l := range seedLines(f, "paths.txt") {
		f.Add("MAIL " + l)
	}
	f.Add("")
	f.Add(" ")
	f.Add("MAIL\x00FROM:<a@b.kz>")
	f.Add("\xff\xfe RSET")
	f.Fuzz(func(t *testing.T, line string) {
		verb, arg := parseCommand(line)
		word, rest, hasArg := strings.Cut(line, " ")
		if strings.Contains(verb, " ") {
			t.Fatalf("parseCommand(%q): verb %q holds a space", line, verb)
		}
		if verb != asciiUpper(word) {
			t.Fatalf("parseCommand(%q): verb %q is not the first word with its ASCII letters upper-cased", line, verb)
		}
		if arg != strings.TrimSpace(arg) {
			t.Fatalf("parseCommand(%q): argument %q not trimmed", line, arg)
		}
		if !hasArg && arg != "" {
			t.Fatalf("parseCommand(%q): argument %q from a line without a space", line, arg)
		}
		if len(arg) > len(rest) {
			t.Fatalf("parseCommand(%q): argument %q longer than the rest of the line", line, arg)
		}
		if isASCII(line) {
			// ASCII case folding keeps lengths, and the verb is the
			// first word folded.
			if len(verb) != len(word) || !strings.EqualFold(verb, word) {
				t.Fatalf("parseCommand(%q): verb %q, want %q folded", line, verb, word)
			}
			if arg != strings.TrimSpace(rest) {
				t.Fatalf("parseCommand(%q): argument %q, want %q", line, arg, strings.TrimSpace(rest))
			}
		}
		// Written back as "VERB arg", the line parses the same.
		canon := verb
		if arg != "" {
			canon += " " + arg
		}
		if v2, a2 := parseCommand(canon); v2 != verb || a2 != arg {
			t.Fatalf("parseCommand(%q) = %q %q, but %q gives %q %q", line, verb, arg, canon, v2, a2)
		}
	})
}

// TestParseCommandASCIIFold: SMTP verbs are ASCII and case-insensitive
// (RFC 5321 §2.4); parseCommand upper-cases with Unicode rules, so a
// dotless ı or a long ſ in a verb makes it another verb.
func TestParseCommandASCIIFold(t *testing.T) {
	for _, line := range []string{"maıl FROM:<a@b.kz>", "quıt", "rſet", "ſTARTTLS"} {
		if verb, _ := parseCommand(line); verb == "MAIL" || verb == "QUIT" || verb == "RSET" || verb == "STARTTLS" {
			t.Errorf("parseCommand(%q) = verb %q; a non-ASCII word is no SMTP verb", line, verb)
		}
	}
}

func FuzzParseParams(f *testing.F) {
	for _, l := range seedLines(f, "params.txt") {
		f.Add(l)
	}
	f.Add("")
	f.Add("a=b=c\tSIZE=1\x00")
	f.Add("ı=1 I=2")
	f.Fuzz(func(t *testing.T, s string) {
		params, err := parseParams(s)
		fields := strings.Fields(s)
		emptyKey := false
		for _, fl := range fields {
			if strings.HasPrefix(fl, "=") {
				emptyKey = true
			}
		}
		if (err != nil) != emptyKey {
			t.Fatalf("parseParams(%q) error %v; an empty key is the only error", s, err)
		}
		if err != nil {
			return
		}
		if len(params) > len(fields) {
			t.Fatalf("parseParams(%q): %d parameters from %d words", s, len(params), len(fields))
		}
		for k, v := range params {
			if k == "" || k != strings.ToUpper(k) || strings.ContainsAny(k, "=") || len(strings.Fields(k)) != 1 {
				t.Fatalf("parseParams(%q): bad key %q", s, k)
			}
			if v != "" && len(strings.Fields(v)) != 1 {
				t.Fatalf("parseParams(%q): value %q holds space", s, v)
			}
		}
		// Every word's key is there, with the value of its last word.
		for _, fl := range fields {
			k, _, _ := strings.Cut(fl, "=")
			if _, ok := params[strings.ToUpper(k)]; !ok {
				t.Fatalf("parseParams(%q) lost %q: %v", s, k, params)
			}
		}
		// Written back as "K=V ...", the list parses the same.
		var b strings.Builder
		for k, v := range params {
			b.WriteString(" " + k)
			if v != "" {
				b.WriteString("=" + v)
			}
		}
		back, err := parseParams(b.String())
		if err != nil || !maps.Equal(back, params) {
			t.Fatalf("parseParams(%q) = %v, but its canonical form %q gives %v (%v)", s, params, b.String(), back, err)
		}
	})
}

func FuzzParseSizeParam(f *testing.F) {
	for _, s := range []string{"0", "1024", "26214400", "007", "", "-1", "+1", " 1", "1 ", "1e3", "0x10",
		"9223372036854775807", "9223372036854775808", "99999999999999999999", "١٢٣"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		n, err := parseSizeParam(v)
		// RFC 1870: size-value ::= 1*20DIGIT; abox takes what fits int64.
		digits := v != ""
		for i := 0; i < len(v); i++ {
			if v[i] < '0' || v[i] > '9' {
				digits = false
			}
		}
		want, werr := strconv.ParseUint(v, 10, 64)
		fits := digits && werr == nil && want <= 1<<63-1
		if fits != (err == nil) {
			t.Fatalf("parseSizeParam(%q) = %d, %v; digits %v, fits %v", v, n, err, digits, fits)
		}
		if err != nil {
			if n != 0 {
				t.Fatalf("parseSizeParam(%q) = %d with error %v", v, n, err)
			}
			return
		}
		if n < 0 || uint64(n) != want {
			t.Fatalf("parseSizeParam(%q) = %d, want %d", v, n, want)
		}
		if back, err := parseSizeParam(strconv.FormatInt(n, 10)); err != nil || back != n {
			t.Fatalf("parseSizeParam(%q) = %d, but %d written back gives %d, %v", v, n, n, back, err)
		}
	})
}

func FuzzValidMailbox(f *testing.F) {
	for _, l := range seedLines(f, "mailboxes.txt") {
		f.Add(l, false)
		f.Add(l, true)
	}
	f.Add(strings.Repeat("a", 64)+"@"+strings.Repeat("b", 63)+".kz", false)
	f.Add(strings.Repeat("a", 65)+"@example.kz", false)
	f.Add("a@"+strings.Repeat("b.", 127)+"kz", false)
	f.Fuzz(func(t *testing.T, addr string, utf8ok bool) {
		valid := validMailbox(addr, utf8ok)
		if valid {
			at := strings.LastIndexByte(addr, '@')
			switch {
			case at <= 0 || at == len(addr)-1:
				t.Fatalf("validMailbox(%q): accepted without local part and domain", addr)
			case !utf8.ValidString(addr):
				t.Fatalf("validMailbox(%q): accepted invalid UTF-8", addr)
			case !utf8ok && !isASCII(addr):
				t.Fatalf("validMailbox(%q, false): accepted non-ASCII without SMTPUTF8", addr)
			case strings.ContainsFunc(addr, func(r rune) bool { return r < 0x20 || r == 0x7f }):
				t.Fatalf("validMailbox(%q): accepted a control character", addr)
			case len(addr)-at-1 > 255:
				t.Fatalf("validMailbox(%q): accepted a %d-octet domain", addr, len(addr)-at-1)
			}
			if !utf8ok && !validMailbox(addr, true) {
				t.Fatalf("validMailbox(%q): valid without SMTPUTF8 but not with it", addr)
			}
		}
		// Case does not matter to validity (ASCII letters; RFC 5321
		// §2.4 leaves local-part case to the receiving host).
		if isASCII(addr) {
			if l := strings.ToLower(addr); validMailbox(l, utf8ok) != valid {
				t.Fatalf("validMailbox(%q) = %v, but %q gives %v", addr, valid, l, !valid)
			}
		}
		// What RFC 5321 §4.1.2 (RFC 6531 with SMTPUTF8) calls a Mailbox
		// is accepted, and survives a path.
		if strictMailbox(addr, utf8ok) {
			if !valid {
				t.Fatalf("validMailbox(%q, %v) = false for an RFC 5321 Mailbox", addr, utf8ok)
			}
			p, err := parsePath("TO:<"+addr+">", "TO:")
			if err != nil || p.addr != addr {
				t.Fatalf("RFC 5321 Mailbox %q in a path: %q, %v", addr, p.addr, err)
			}
		}
	})
}

// strictMailbox is RFC 5321 §4.1.2 Mailbox (with RFC 6531's UTF-8 when
// utf8ok), with the §4.5.3.1 lengths, written from the grammar. Two
// narrowings, both abox's and both documented: no trailing dot on the
// domain, and a General-address-literal without "@" (abox splits the
// mailbox at its last "@").
func strictMailbox(addr string, utf8ok bool) bool {
	if !utf8.ValidString(addr) || (!utf8ok && !isASCII(addr)) {
		return false
	}
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return false
	}
	local, domain := addr[:at], addr[at+1:]
	if len(local) == 0 || len(local) > 64 || len(domain) == 0 || len(domain) > 255 {
		return false
	}
	if local[0] == '"' {
		if !strictQuoted(local) {
			return false
		}
	} else {
		for _, atom := range strings.Split(local, ".") {
			if atom == "" || strings.ContainsFunc(atom, func(r rune) bool { return r < 0x80 && !isAtext(byte(r)) }) {
				return false
			}
		}
	}
	if domain[0] == '[' {
		return strictAddressLiteral(domain)
	}
	for _, label := range strings.Split(domain, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if r < 0x80 && !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}

// strictQuoted is RFC 5321 Quoted-string: qtextSMTP, quoted-pairSMTP
// (and UTF-8 beyond ASCII, RFC 6531).
func strictQuoted(s string) bool {
	if len(s) < 2 || s[0] != '"' || s[len(s)-1] != '"' {
		return false
	}
	in := s[1 : len(s)-1]
	for i := 0; i < len(in); i++ {
		c := in[i]
		switch {
		case c == '\\':
			if i+1 >= len(in) || in[i+1] < 32 || in[i+1] > 126 {
				return false
			}
			i++
		case c == '"' || c < 32 || c == 127:
			return false
		}
	}
	return true
}

// strictAddressLiteral is RFC 5321 address-literal.
func strictAddressLiteral(s string) bool {
	if len(s) < 3 || s[len(s)-1] != ']' {
		return false
	}
	in := s[1 : len(s)-1]
	if a, err := netip.ParseAddr(in); err == nil && a.Is4() && !strings.Contains(in, ":") {
		return true
	}
	if v6, ok := strings.CutPrefix(in, "IPv6:"); ok {
		a, err := netip.ParseAddr(v6)
		return err == nil && a.Is6() && a.Zone() == ""
	}
	tag, content, ok := strings.Cut(in, ":")
	if !ok || tag == "" || content == "" || tag[len(tag)-1] == '-' {
		return false
	}
	for i := 0; i < len(tag); i++ {
		if c := tag[i]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' && i > 0) {
			return false
		}
	}
	for i := 0; i < len(content); i++ {
		if c := content[i]; c < 33 || c > 126 || c >= 91 && c <= 93 || c == '@' {
			return false
		}
	}
	return true
}

// TestValidMailboxStrictSyntax: validMailbox checks only that a quoted
// local part starts and ends with a quote, and that an address literal
// is bracketed, so it accepts mailboxes that are not RFC 5321 Mailboxes.
// A bare-address MAIL FROM or RCPT TO (parsePath's Postfix leniency)
// carries them in.
func TestValidMailboxStrictSyntax(t *testing.T) {
	for _, addr := range []string{`"a\"@example.kz`, `"a"b"@example.kz`, `"\"@example.kz`, `"""@0`, "a@[]", "a@[not an address]"} {
		if validMailbox(addr, false) {
			t.Errorf("validMailbox(%q) = true; not an RFC 5321 Mailbox", addr)
		}
	}
	// Found by FuzzParsePath: a bare `MAIL FROM:"""@0` is accepted, and
	// the same address in brackets is a syntax error.
	if p, err := parsePath(`FROM:"""@0`, "FROM:"); err == nil && validMailbox(p.addr, false) {
		if _, err := parsePath("FROM:<"+p.addr+">", "FROM:"); err != nil {
			t.Errorf("bare %q accepted, but <%s> is %v", p.addr, p.addr, err)
		}
	}
}
