package smtpd

import (
	"errors"
	"net/netip"
	"strconv"
	"strings"
	"unicode/utf8"
)

// errSyntax is any malformed command argument (501 5.5.4).
var errSyntax = errors.New("syntax error")

// pathArgs is a parsed MAIL FROM or RCPT TO argument.
type pathArgs struct {
	addr   string            // without brackets; "" is the null path
	params map[string]string // upper-case keys
}

// parsePath reads `FROM:<path> params` (RFC 5321 §4.1.2 and §4.1.1.2).
// The brackets are required by the RFC; like Postfix, a bare address is
// accepted too. A source route (@a,@b:) is accepted and ignored
// (§4.1.1.3 says servers SHOULD NOT use it).
func parsePath(arg, keyword string) (pathArgs, error) {
	rest, ok := cutPrefixFold(arg, keyword)
	if !ok {
		return pathArgs{}, errSyntax
	}
	rest = strings.TrimLeft(rest, " ")
	var addr string
	if strings.HasPrefix(rest, "<") {
		end := closingBracket(rest)
		if end < 0 {
			return pathArgs{}, errSyntax
		}
		addr, rest = rest[1:end], rest[end+1:]
		if i := strings.IndexByte(addr, ':'); i >= 0 && strings.HasPrefix(addr, "@") {
			addr = addr[i+1:]
		}
	} else {
		addr, rest, _ = strings.Cut(rest, " ")
		if addr == "" {
			return pathArgs{}, errSyntax
		}
		rest = " " + rest
	}
	if rest != "" && rest[0] != ' ' {
		return pathArgs{}, errSyntax
	}
	params, err := parseParams(strings.TrimSpace(rest))
	if err != nil {
		return pathArgs{}, err
	}
	if len(addr) > 256 {
		return pathArgs{}, errSyntax
	}
	return pathArgs{addr: addr, params: params}, nil
}

// closingBracket finds the '>' that ends a path, skipping quoted parts.
func closingBracket(s string) int {
	quoted := false
	for i := 1; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' && quoted:
			i++
		case c == '"':
			quoted = !quoted
		case c == '>' && !quoted:
			return i
		}
	}
	return -1
}

func parseParams(s string) (map[string]string, error) {
	params := map[string]string{}
	for _, f := range strings.Fields(s) {
		k, v, _ := strings.Cut(f, "=")
		if k == "" {
			return nil, errSyntax
		}
		params[strings.ToUpper(k)] = v
	}
	return params, nil
}

// validMailbox checks an address (RFC 5321 §4.1.2 Mailbox; RFC 6531 when
// utf8 allows non-ASCII). It does not resolve anything.
func validMailbox(addr string, utf8ok bool) bool {
	at := strings.LastIndexByte(addr, '@')
	if at <= 0 || at == len(addr)-1 {
		return false
	}
	local, domain := addr[:at], addr[at+1:]
	if !utf8.ValidString(addr) || (!utf8ok && !isASCII(addr)) {
		return false
	}
	for i := 0; i < len(addr); i++ {
		if addr[i] < 0x20 || addr[i] == 0x7f {
			return false // no control characters, quoted or not
		}
	}
	if len(local) > 64 && !strings.HasPrefix(local, `"`) || len(domain) > 255 {
		return false
	}
	if strings.HasPrefix(local, `"`) {
		if !validQuotedLocal(local) {
			return false
		}
	} else {
		for _, atom := range strings.Split(local, ".") {
			if atom == "" {
				return false
			}
			for _, r := range atom {
				if r < 0x80 && !isAtext(byte(r)) {
					return false
				}
			}
		}
	}
	if strings.HasPrefix(domain, "[") {
		return validAddressLiteral(domain)
	}
	for _, label := range strings.Split(strings.TrimSuffix(domain, "."), ".") {
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

// validQuotedLocal checks a Quoted-string local part (RFC 5321 §4.1.2):
// qtextSMTP or a backslash before any printable character, between the
// quotes.
func validQuotedLocal(q string) bool {
	if len(q) < 2 || q[0] != '"' || q[len(q)-1] != '"' {
		return false
	}
	in := q[1 : len(q)-1]
	for i := 0; i < len(in); i++ {
		switch c := in[i]; {
		case c == '\\':
			if i+1 == len(in) || in[i+1] < 0x20 || in[i+1] == 0x7f {
				return false
			}
			i++
		case c == '"':
			return false
		}
	}
	return true
}

// validAddressLiteral checks an address literal (RFC 5321 §4.1.3):
// [IPv4], [IPv6:...], or a General-address-literal tag:content.
func validAddressLiteral(d string) bool {
	if len(d) < 3 || d[0] != '[' || d[len(d)-1] != ']' {
		return false
	}
	in := d[1 : len(d)-1]
	if ip, err := netip.ParseAddr(in); err == nil {
		return ip.Is4()
	}
	tag, content, ok := strings.Cut(in, ":")
	if !ok || tag == "" || content == "" {
		return false
	}
	if strings.EqualFold(tag, "IPv6") {
		ip, err := netip.ParseAddr(content)
		return err == nil && ip.Is6() && ip.Zone() == ""
	}
	for i := 0; i < len(tag); i++ {
		if c := tag[i]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	for i := 0; i < len(content); i++ {
		if c := content[i]; c < 33 || c > 126 || c == '[' || c == ']' || c == '\\' {
			return false
		}
	}
	return true
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// isAtext is RFC 5322 atext.
func isAtext(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) < len(prefix) || !strings.EqualFold(s[:len(prefix)], prefix) {
		return s, false
	}
	return s[len(prefix):], true
}

// parseSizeParam reads SIZE=n (RFC 1870).
func parseSizeParam(v string) (int64, error) {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 || v == "" || v[0] < '0' || v[0] > '9' {
		return 0, errSyntax
	}
	return n, nil
}

// parseBDAT reads `BDAT size [LAST]` (RFC 3030 §2).
func parseBDAT(arg string) (size int64, last bool, err error) {
	f := strings.Fields(arg)
	if len(f) == 0 || len(f) > 2 {
		return 0, false, errSyntax
	}
	size, err = parseSizeParam(f[0])
	if err != nil {
		return 0, false, err
	}
	if len(f) == 2 {
		if !strings.EqualFold(f[1], "LAST") {
			return 0, false, errSyntax
		}
		last = true
	}
	return size, last, nil
}

// parseCommand splits a command line into its upper-case verb and the
// argument.
func parseCommand(line string) (verb, arg string) {
	verb, arg, _ = strings.Cut(line, " ")
	return asciiUpper(verb), strings.TrimSpace(arg)
}

// asciiUpper upper-cases ASCII letters only: SMTP verbs are ASCII (RFC
// 5321 §2.4), and Unicode case rules would make "maıl" (dotless ı) MAIL.
func asciiUpper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'a' && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}
