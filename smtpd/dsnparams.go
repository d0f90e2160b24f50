package smtpd

import (
	"strconv"
	"strings"
)

// The parameters outbound mail carries on (issue 17), offered on the
// submission service when outbound mail is enabled: DSN (RFC 3461:
// RET and ENVID on MAIL, NOTIFY and ORCPT on RCPT) and REQUIRETLS
// (RFC 8689, under TLS only).

// offersDSN says whether EHLO advertises DSN (and takes its parameters).
func (c *conn) offersDSN() bool { return c.submission() && c.s.cfg.Policy.Outbound() }

// offersRequireTLS says whether EHLO advertises REQUIRETLS.
func (c *conn) offersRequireTLS() bool { return c.offersDSN() && c.tls != nil }

// decodeXtext decodes RFC 3461 §4 xtext ("+" and two upper-case hex
// digits for a character outside "!".."~" or "+" or "="), false when
// malformed.
func decodeXtext(s string) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case ch == '+':
			if i+2 >= len(s) {
				return "", false
			}
			v, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
			if err != nil || strings.ToUpper(s[i+1:i+3]) != s[i+1:i+3] {
				return "", false
			}
			b.WriteByte(byte(v))
			i += 2
		case ch < '!' || ch > '~' || ch == '=':
			return "", false
		default:
			b.WriteByte(ch)
		}
	}
	return b.String(), true
}

// parseNotify parses NOTIFY's value (RFC 3461 §4.1): NEVER alone, or
// some of SUCCESS, FAILURE, DELAY.
func parseNotify(v string) ([]string, bool) {
	parts := strings.Split(strings.ToUpper(v), ",")
	seen := map[string]bool{}
	for _, p := range parts {
		switch p {
		case "NEVER":
			if len(parts) != 1 {
				return nil, false
			}
		case "SUCCESS", "FAILURE", "DELAY":
		default:
			return nil, false
		}
		if seen[p] {
			return nil, false
		}
		seen[p] = true
	}
	return parts, true
}

// parseORcpt parses ORCPT's value (RFC 3461 §4.2): addr-type ";" xtext,
// kept as "type;address".
func parseORcpt(v string) (string, bool) {
	typ, addr, ok := strings.Cut(v, ";")
	if !ok || typ == "" || len(v) > 500 {
		return "", false
	}
	dec, ok := decodeXtext(addr)
	if !ok || dec == "" {
		return "", false
	}
	return strings.ToLower(typ) + ";" + dec, true
}
