package msginfo

import (
	"bufio"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-message/textproto"
)

// addrs writes an address list compactly: name/adl/mailbox/host, "(g"
// for a group start, ")" for its end.
func addrs(l []Address) string {
	var parts []string
	for _, a := range l {
		switch {
		case a.GroupStart:
			parts = append(parts, "(g "+a.Mailbox)
		case a.GroupEnd:
			parts = append(parts, ")")
		default:
			parts = append(parts, fmt.Sprintf("%s/%s/%s/%s", a.Name, a.ADL, a.Mailbox, a.Host))
		}
	}
	return strings.Join(parts, " | ")
}

// TestParseAddressList: RFC 5322 §3.4 address lists with groups,
// source routes, comments, quoted strings, encoded words and broken
// addresses (degraded as Dovecot degrades them).
func TestParseAddressList(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"bare", "user@domain", "//user/domain"},
		{"name-addr", "From Real <fromuser@fromdomain.org>", "From Real//fromuser/fromdomain.org"},
		{"angle only", "<user@domain>", "//user/domain"},
		{"comment as name", "user@domain (Real Name)", "Real Name//user/domain"},
		{"comments inside", "<user-from (comment)@ (comment) domain.org>", "//user-from/domain.org"},
		{"route", "<@route:user@domain>", "/@route/user/domain"},
		{"two hops", "Name <@a.example,@b.example:user@domain>", "Name/@a.example,@b.example/user/domain"},
		{"groups", "group: g1@d1.org, g2@d2.org;, group2: g3@d3.org;",
			"(g group | //g1/d1.org | //g2/d2.org | ) | (g group2 | //g3/d3.org | )"},
		{"empty group", "undisclosed-recipients:;", "(g undisclosed-recipients | )"},
		{"group not ended", "team: a@b.c", "(g team | //a/b.c | )"},
		{"quoted name", `"Doe, John" <j@d.example>`, "Doe, John//j/d.example"},
		{"quoted pair", `"a \"b\" c" <x@y>`, `a "b" c//x/y`},
		{"encoded word kept", "=?utf-8?B?0J/RgNC40LLQtdGC?= <p@kz.example>", "=?utf-8?B?0J/RgNC40LLQtdGC?=//p/kz.example"},
		{"8-bit name kept", "Алия <a@kz.example>", "Алия//a/kz.example"},
		{"words joined by one space", "A   B\tC <x@y>", "A B C//x/y"},
		{"dotted name", "John Q. Public <jqp@example>", "John Q. Public//jqp/example"},
		{"quoted local", `"john doe"@example.org`, "//john doe/example.org"},
		{"domain literal", "u@[192.0.2.1]", "//u/[192.0.2.1]"},
		{"two", "a@b.c, d@e.f", "//a/b.c | //d/e.f"},
		{"null elements", ", a@b.c,, d@e.f,", "//a/b.c | //d/e.f"},
		{"no domain", "user", "//user/MISSING_DOMAIN"},
		{"name without address", "Just A Name", "Just A Name//MISSING_MAILBOX/MISSING_DOMAIN"},
		{"at without domain", "user@", "user//MISSING_MAILBOX/MISSING_DOMAIN"},
		{"empty angle", "<>", "//MISSING_MAILBOX/MISSING_DOMAIN"},
		{"broken angle", "Name <user@>, b@c.d", "Name//user/SYNTAX_ERROR | //b/c.d"},
		{"route without colon", "<@route user@domain>", "/INVALID_ROUTE/user/domain"},
		{"garbage after", "a@b.c garbage", "//a/b.c"},
		{"empty", "", ""},
		{"only spaces", "   ", ""},
		{"unclosed comment", "a@b.c (oops", "oops//a/b.c"},
		{"unclosed quote", `"abc <a@b.c>`, "//MISSING_MAILBOX/MISSING_DOMAIN"},
	} {
		if got := addrs(ParseAddressList(tc.in)); got != tc.want {
			t.Errorf("%s: %q\n got %s\nwant %s", tc.name, tc.in, got, tc.want)
		}
	}
}

func header(t testing.TB, s string) textproto.Header {
	h, err := textproto.ReadHeader(bufio.NewReader(strings.NewReader(s)))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestParseEnvelopeOwnText: strings are the header's own bytes,
// unfolded; repeated address fields are joined.
func TestParseEnvelopeOwnText(t *testing.T) {
	e := ParseEnvelope(header(t, "Date: Sat, 01 Feb 2007 01:02:03 +0200\r\n"+
		"Subject: =?utf-8?q?caf=C3=A9?= and\r\n\t more\r\n"+
		"Subject: second subject is ignored\r\n"+
		"From: a@b.example\r\nFrom: c@d.example\r\n"+
		"Sender: \r\n"+
		"In-Reply-To: <x@y>\r\n <z@w>\r\n"+
		"Message-ID:   <m@id>  \r\n\r\n"))
	want := &Envelope{
		Date: "Sat, 01 Feb 2007 01:02:03 +0200", Subject: "=?utf-8?q?caf=C3=A9?= and\t more",
		From:      []Address{{Mailbox: "a", Host: "b.example"}, {Mailbox: "c", Host: "d.example"}},
		InReplyTo: "<x@y> <z@w>", MessageID: "<m@id>",
	}
	if !reflect.DeepEqual(e, want) {
		t.Fatalf("\n got %+v\nwant %+v", e, want)
	}
	d := e.Decoded()
	if d.Subject != "café and\t more" || len(d.InReplyTo) != 2 || d.InReplyTo[1] != "z@w" || d.MessageID != "m@id" || d.Date.IsZero() {
		t.Fatalf("decoded %+v", d)
	}
}

// TestEnvelopeRoundTrip: the own envelope survives the record, at the
// top and in an attached message, and a version 2 record (without it)
// still decodes, with Own nil.
func TestEnvelopeRoundTrip(t *testing.T) {
	msg := crlf("From: G <@r.example:a@b.example>\nTo: team: x@y.example;\nSubject: =?utf-8?q?x?=\n" +
		"Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\nContent-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==\n\nhi\n" +
		"--b\nContent-Type: message/rfc822\n\nFrom: inner: i@j.example;\nSubject: inner\n\nbody\n--b--\n")
	info := Parse(msg)
	got, err := Decode(Encode(info))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Own, info.Own) {
		t.Fatalf("own envelope\n got %#v\nwant %#v", got.Own, info.Own)
	}
	if addrs(got.Own.From) != "G/@r.example/a/b.example" || addrs(got.Own.To) != "(g team | //x/y.example | )" {
		t.Fatalf("own envelope %+v", got.Own)
	}
	top := MessageEntity(msg, got.Structure)
	text, _ := top.Part([]int{1})
	inner, _ := top.Part([]int{2})
	if x := got.Extra(text.Structure.(*imap.BodyStructureSinglePart)); x.MD5 != "Q2hlY2sgSW50ZWdyaXR5IQ==" {
		t.Fatalf("MD5 %q", x.MD5)
	}
	if x := got.Extra(inner.Structure.(*imap.BodyStructureSinglePart)); x.Envelope == nil || addrs(x.Envelope.From) != "(g inner | //i/j.example | )" {
		t.Fatalf("attached envelope %+v", x.Envelope)
	}
	if both, err := DecodeEnvelopes(Encode(info)); err != nil || !reflect.DeepEqual(both.Own, info.Own) || both.Envelope.Subject != "x" {
		t.Fatalf("DecodeEnvelopes %+v %v", both, err)
	}
	own, err := DecodeOwnEnvelope(Encode(info))
	if err != nil || !reflect.DeepEqual(own.Own, info.Own) || own.HeaderSize != info.HeaderSize {
		t.Fatalf("DecodeOwnEnvelope %+v %v", own, err)
	}
	if s, err := Subject(Encode(info)); err != nil || string(s) != "x" {
		t.Fatalf("Subject %q %v", s, err)
	}

	old := encode(info, 2)
	for name, dec := range map[string]func([]byte) (*Info, error){"Decode": Decode, "DecodeEnvelope": DecodeEnvelope, "DecodeEnvelopes": DecodeEnvelopes, "DecodeOwnEnvelope": DecodeOwnEnvelope} {
		o, err := dec(old)
		if err != nil {
			t.Fatalf("%s of a version 2 record: %v", name, err)
		}
		if o.Own != nil || o.Envelope == nil || o.Envelope.Subject != "x" {
			t.Fatalf("%s of a version 2 record: %+v", name, o)
		}
	}
	if o, _ := Decode(old); o.Structure.MediaType() != info.Structure.MediaType() {
		t.Fatalf("version 2 structure %v", o.Structure.MediaType())
	}
}

func FuzzParseAddressList(f *testing.F) {
	for _, s := range []string{"a@b.c", "g: a@b;", "<@r:a@b>", `"x" <y@z>`, "a (b (c)) @ d", "<", "(", `"`, ":;", "@:"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		depth := 0
		for _, a := range ParseAddressList(s) {
			switch {
			case a.GroupStart:
				depth++
			case a.GroupEnd:
				depth--
			default:
				if a.Mailbox == "" || a.Host == "" {
					t.Fatalf("%q: an address without mailbox or host: %+v", s, a)
				}
			}
			if depth < 0 || depth > 1 {
				t.Fatalf("%q: groups unbalanced", s)
			}
		}
		if depth != 0 {
			t.Fatalf("%q: a group not ended", s)
		}
	})
}

func crlf(s string) []byte { return []byte(strings.ReplaceAll(s, "\n", "\r\n")) }
