package policy

// Fuzz target for stripAuthResults (RFC 8601 §5: a border MTA removes
// the Authentication-Results fields that claim its authserv-id). Seeds:
// the messages of ../testdata/spam/ with forged fields put in front, and
// the f.Add calls here.

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unsafe"
)

// headerFields splits the header of msg into its fields (each with its
// continuation lines and line ends) and returns where the header ends:
// at the first empty line (CRLF or LF), or at the end.
func headerFields(msg []byte) (fields [][]byte, end int) {
	for end < len(msg) {
		n := bytes.IndexByte(msg[end:], '\n') + 1
		if n == 0 {
			n = len(msg) - end
		}
		line := msg[end : end+n]
		if strings.Trim(string(line), "\r\n") == "" { // "\r\n", "\n", and odd "\r\r\n"
			return fields, end
		}
		if (line[0] == ' ' || line[0] == '\t') && len(fields) > 0 {
			last := fields[len(fields)-1]
			fields[len(fields)-1] = last[:len(last)+n]
		} else {
			fields = append(fields, line)
		}
		end += n
	}
	return fields, end
}

// rfcAuthservID reads an Authentication-Results field as RFC 8601 §2.2
// has it: "Authentication-Results:" [CFWS] authserv-id, authserv-id a
// token (RFC 2045) or a quoted-string; ok false when the field is not
// one or is malformed there.
func rfcAuthservID(field []byte) (id string, ok bool) {
	name, value, found := strings.Cut(strings.NewReplacer("\r\n", "", "\n", "").Replace(string(field)), ":")
	if !found || !strings.EqualFold(strings.TrimRight(name, " \t"), "Authentication-Results") {
		return "", false
	}
	v := value
	for { // [CFWS]
		v = strings.TrimLeft(v, " \t")
		if !strings.HasPrefix(v, "(") {
			break
		}
		depth, i := 0, 0
		for ; i < len(v); i++ {
			if v[i] == '\\' {
				i++
			} else if v[i] == '(' {
				depth++
			} else if v[i] == ')' {
				if depth--; depth == 0 {
					break
				}
			}
		}
		if i >= len(v) {
			return "", false
		}
		v = v[i+1:]
	}
	if strings.HasPrefix(v, `"`) {
		var b strings.Builder
		for i := 1; i < len(v); i++ {
			switch v[i] {
			case '\\':
				if i+1 == len(v) {
					return "", false
				}
				i++
				b.WriteByte(v[i])
			case '"':
				return b.String(), true
			default:
				b.WriteByte(v[i])
			}
		}
		return "", false
	}
	i := 0
	for i < len(v) && v[i] > ' ' && v[i] < 0x7f && !strings.ContainsRune(`()<>@,;:\"/[]?=`, rune(v[i])) {
		i++
	}
	if i == 0 || i < len(v) && !strings.ContainsRune(" \t(;", rune(v[i])) {
		return "", false
	}
	return v[:i], true
}

func sameID(a, b string) bool {
	return strings.EqualFold(strings.TrimSuffix(a, "."), strings.TrimSuffix(b, "."))
}

func FuzzStripAuthResults(f *testing.F) {
	const id = "mx.abox.test"
	forged := []string{
		"Authentication-Results: mx.abox.test; spf=pass smtp.mailfrom=bank.test\r\n",
		"authentication-results:\r\n\tMX.ABOX.TEST. 1;\r\n\tdkim=pass header.d=bank.test\r\n",
		"Authentication-Results: (forged) mx.abox.test; dmarc=pass\r\n",
		"Authentication-Results: \"mx.abox.test\"; dmarc=pass\r\n",
		"Authentication-Results: mx.abox.test(comment); dkim=pass\r\n",
		"Authentication-Results: mx.other.test; spf=pass\r\n",
		"Authentication-Results: mx.abox.test.evil; spf=pass\r\n",
		"X-Authentication-Results: mx.abox.test; spf=pass\r\n",
	}
	files, _ := filepath.Glob("../testdata/spam/*.eml")
	if len(files) == 0 {
		f.Fatal("no messages in ../testdata/spam")
	}
	for i, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(append([]byte(forged[i%len(forged)]), b...), id)
		f.Add(b, id)
	}
	for _, h := range forged {
		f.Add([]byte(h+"From: a@b.test\r\n\r\n"+h), id)
	}
	f.Add([]byte(" Authentication-Results: mx.abox.test; x\nFrom: a\n\nbody"), id)
	f.Add([]byte("Authentication-Results: mx.abox.test; none"), id)
	f.Add([]byte(""), id)
	f.Add([]byte("\r\n"+forged[0]), id)
	f.Add([]byte(forged[0]+"\r\n"), "MX.abox.test.")
	f.Fuzz(func(t *testing.T, msg []byte, authservID string) {
		if authservID == "" || strings.ContainsAny(authservID, " \t\r\n;()\"\\") {
			return // not a host name (the id is the configured hostname)
		}
		in := bytes.Clone(msg)
		out := stripAuthResults(msg, authservID)
		if !bytes.Equal(msg, in) {
			t.Fatalf("stripAuthResults changed its input %q to %q", in, msg)
		}
		if len(out) > len(msg) {
			t.Fatalf("stripAuthResults(%q) grew it to %q", msg, out)
		}
		if len(out) == len(msg) && len(msg) > 0 && unsafe.SliceData(out) != unsafe.SliceData(msg) {
			t.Fatalf("stripAuthResults(%q): nothing removed, but a copy returned", msg)
		}
		fields, end := headerFields(msg)
		if !bytes.HasSuffix(out, msg[end:]) {
			t.Fatalf("stripAuthResults(%q) = %q: the body changed", msg, out)
		}
		// out's header is msg's fields less those that claim the id.
		var kept []byte
		for _, fl := range fields {
			value := strings.ToLower(strings.ReplaceAll(string(fl), `\`, ""))
			rfcID, isAR := rfcAuthservID(fl)
			ours := isAR && sameID(rfcID, authservID)
			removed := claims(fl, authservID)
			if removed && !(strings.HasPrefix(strings.TrimLeft(value, " \t"), "authentication-results") &&
				strings.Contains(value, strings.ToLower(strings.TrimSuffix(authservID, ".")))) {
				t.Fatalf("stripAuthResults(%q, %q) removes %q, which does not claim it", msg, authservID, fl)
			}
			if ours && !removed {
				t.Fatalf("stripAuthResults(%q, %q) keeps %q, which claims it (RFC 8601 §2.2 authserv-id %q)", msg, authservID, fl, rfcID)
			}
			if !removed {
				kept = append(kept, fl...)
			}
		}
		if want := append(kept, msg[end:]...); !bytes.Equal(out, want) {
			t.Fatalf("stripAuthResults(%q, %q) = %q, want %q", msg, authservID, out, want)
		}
		if again := stripAuthResults(out, authservID); !bytes.Equal(again, out) {
			t.Fatalf("stripAuthResults not idempotent on %q: %q, then %q", msg, out, again)
		}
	})
}
