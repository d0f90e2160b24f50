package imapd_test

// FETCH's sections, BINARY and ENVELOPE against the real binary, with
// the raw line client (exact bytes), go-imap's imapclient and python's
// imaplib; the corpus is testdata/fetch.

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
)

func fetchCorpus(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "fetch", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestFetchSectionsEchoed: the answer names each section exactly as the
// client wrote it (case, quotes and spacing kept), a partial answer
// carries its origin, nested message/rfc822 parts, MIME, HEADER and
// TEXT of parts come from the right bytes, BINARY undoes
// quoted-printable and base64, and an unknown encoding is NO
// [UNKNOWN-CTE] (RFC 9051 §6.4.5, §7.5.2; RFC 3516 §4.2, §4.3).
func TestFetchSectionsEchoed(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.addUser("alice")
	s := e.start()
	c := inInbox(t, s.imaps, "alice", alice)
	c.ok("APPEND INBOX %s", literal(fetchCorpus(t, "nested.eml")))

	lit := func(name, data string) string { return fmt.Sprintf("%s {%d}\r\n%s", name, len(data), data) }
	lit8 := func(name, data string) string { return fmt.Sprintf("%s ~{%d}\r\n%s", name, len(data), data) }
	for _, tc := range []struct{ ask, want string }{
		{`body.peek[header.fields (subject)]`, lit("BODY[header.fields (subject)]", "Subject: nested parts\r\n\r\n")},
		{`BODY.PEEK[HEADER.FIELDS ("Subject" From)]`, lit(`BODY[HEADER.FIELDS ("Subject" From)]`, "From: Outer <outer@example.kz>\r\nSubject: nested parts\r\n\r\n")},
		{`BODY.PEEK[HEADER.FIELDS.NOT (To From Subject Mime-Version Content-Type)]`,
			lit("BODY[HEADER.FIELDS.NOT (To From Subject Mime-Version Content-Type)]", "Content-Language: kk, ru\r\n\r\n")},
		{`BODY.PEEK[]<0.6>`, lit("BODY[]<0>", "From: ")},
		{`BODY.PEEK[1]<4.100>`, lit("BODY[1]<4>", "C3=A9 line=\r\n joined")},
		{`BODY.PEEK[3.1]`, lit("BODY[3.1]", "plain inner")},
		{`BODY.PEEK[3.2.MIME]`, lit("BODY[3.2.MIME]", "Content-Type: text/html\r\n\r\n")},
		{`BODY.PEEK[3.HEADER.FIELDS (DATE)]`, lit("BODY[3.HEADER.FIELDS (DATE)]", "Date: Sun, 1 Mar 2026 10:00:00 +0500\r\n\r\n")},
		{`BODY.PEEK[4.TEXT]`, lit("BODY[4.TEXT]", "single part inside")},
		{`BODY.PEEK[4.1]`, lit("BODY[4.1]", "single part inside")},
		{`BINARY.PEEK[1]`, lit8("BINARY[1]", "café line joined")},
		{`BINARY.PEEK[2]<2.3>`, lit8("BINARY[2]<2>", "\x02\x03\x04")},
		{`BINARY.SIZE[2]`, "BINARY.SIZE[2] 10"},
		{`BINARY.SIZE[1]`, fmt.Sprintf("BINARY.SIZE[1] %d", len("café line joined"))},
	} {
		r := c.ok("FETCH 1 (%s)", tc.ask)
		got := strings.Join(r.find("1 FETCH"), "\r\n")
		if !strings.Contains(got, tc.want) {
			t.Errorf("FETCH 1 (%s):\n got %q\nwant it to contain %q", tc.ask, got, tc.want)
		}
	}
	c.no("UNKNOWN-CTE", "FETCH 1 (BINARY.PEEK[5])")

	// go-imap's imapclient finds each answer under the section it asked.
	gc, _ := goClient(t, s.imaps, alice, false)
	if _, err := gc.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	fields := &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"Subject"}, Peek: true}
	inner := &imap.FetchItemBodySection{Part: []int{3, 1}, Peek: true}
	bin := &imap.FetchItemBinarySection{Part: []int{1}, Peek: true}
	msgs, err := gc.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{
		BodySection: []*imap.FetchItemBodySection{fields, inner}, BinarySection: []*imap.FetchItemBinarySection{bin},
	}).Collect()
	if err != nil || len(msgs) != 1 {
		t.Fatalf("imapclient FETCH sections: %v", err)
	}
	if got := string(msgs[0].FindBodySection(fields)); got != "Subject: nested parts\r\n\r\n" {
		t.Errorf("imapclient HEADER.FIELDS (Subject): %q", got)
	}
	if got := string(msgs[0].FindBodySection(inner)); got != "plain inner" {
		t.Errorf("imapclient BODY[3.1]: %q", got)
	}
	if got := string(msgs[0].FindBinarySection(bin)); got != "café line joined" {
		t.Errorf("imapclient BINARY[1]: %q", got)
	}
	if r := c.ok("FETCH 1 (FLAGS)"); strings.Contains(r.String(), `\Seen`) {
		t.Errorf("PEEK sections set \\Seen: %s", r)
	}
}

// TestFetchEnvelopeOwnText: ENVELOPE carries the header's own text,
// groups and source routes (RFC 9051 §7.5.2; imaptest's fetch-envelope
// cases), through the raw client and go-imap's imapclient.
func TestFetchEnvelopeOwnText(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.addUser("alice")
	s := e.start()
	c := inInbox(t, s.imaps, "alice", alice)
	for _, f := range []string{"envelope-full.eml", "envelope-groups.eml", "envelope-routes.eml"} {
		c.ok("APPEND INBOX %s", literal(fetchCorpus(t, f)))
	}
	c.ok("APPEND INBOX %s", literal("Subject: =?utf-8?B?0J/RgNC40LLQtdGC?=\r\nFrom: \"Doe, John\" <j@d.example>\r\n\r\nx\r\n"))
	want := map[int]string{
		1: `ENVELOPE ("Sat, 01 Feb 2007 01:02:03 +0200" "subject header" (("From Real" NIL "fromuser" "fromdomain.org")) (("Sender Real" NIL "senderuser" "senderdomain.org")) (("ReplyTo Real" NIL "replytouser" "replytodomain.org")) (("To Real" NIL "touser" "todomain.org")) (("Cc Real" NIL "ccuser" "ccdomain.org")) (("Bcc Real" NIL "bccuser" "bccdomain.org")) "<reply@to.id>" "<msg@id>")`,
		2: `ENVELOPE ("Sat, 01 Feb 2007 01:02:03 +0200" NIL (("Real Name" NIL "user" "domain")) (("Real Name" NIL "user" "domain")) (("Real Name" NIL "user" "domain")) ((NIL NIL "group" NIL)(NIL NIL "g1" "d1.org")(NIL NIL "g2" "d2.org")(NIL NIL NIL NIL)(NIL NIL "group2" NIL)(NIL NIL "g3" "d3.org")(NIL NIL NIL NIL)) ((NIL NIL "undisclosed-recipients" NIL)(NIL NIL NIL NIL)) ((NIL NIL "=?utf-8?q?Gr=C3=BCppe?=" NIL)("Doe, John" NIL "john" "example.org")(NIL NIL NIL NIL)) NIL NIL)`,
		3: `ENVELOPE ("Sat, 01 Feb 2007 01:02:03 +0200" NIL ((NIL "@route" "user" "domain")) ((NIL "@route" "user" "domain")) ((NIL "@route" "user" "domain")) (("Relay Name" "@a.example,@b.example" "user" "c.example")) ((NIL "INVALID_ROUTE" "user" "domain")) NIL NIL NIL)`,
		4: `ENVELOPE (NIL "=?utf-8?B?0J/RgNC40LLQtdGC?=" (("Doe, John" NIL "j" "d.example"))`,
	}
	r := c.ok("FETCH 1:4 (ENVELOPE)")
	for n, w := range want {
		got := strings.Join(r.find(fmt.Sprintf("%d FETCH", n)), "")
		if !strings.Contains(got, w) {
			t.Errorf("message %d:\n got %s\nwant %s", n, got, w)
		}
	}

	gc, _ := goClient(t, s.imaps, alice, false)
	if _, err := gc.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	msgs, err := gc.Fetch(imap.SeqSetNum(2, 4), &imap.FetchOptions{Envelope: true}).Collect()
	if err != nil || len(msgs) != 2 {
		t.Fatalf("imapclient FETCH ENVELOPE: %v %d", err, len(msgs))
	}
	to := msgs[0].Envelope.To
	if len(to) != 7 || !to[0].IsGroupStart() || to[0].Mailbox != "group" || to[1].Addr() != "g1@d1.org" || !to[3].IsGroupEnd() {
		t.Errorf("imapclient reads the groups as %+v", to)
	}
	if msgs[0].Envelope.From[0].Name != "Real Name" {
		t.Errorf("imapclient From %+v", msgs[0].Envelope.From)
	}
	// imapclient decodes the encoded words itself: the text arrived whole.
	if msgs[1].Envelope.Subject != "Привет" || msgs[1].Envelope.From[0].Name != "Doe, John" {
		t.Errorf("imapclient subject %q from %+v", msgs[1].Envelope.Subject, msgs[1].Envelope.From)
	}
}

// TestSearchAddresses: FROM, TO, CC and BCC match display names,
// comments standing for names, addresses in part, and group names and
// members, case-insensitively (imaptest's search-addresses cases, as
// Dovecot answers them).
func TestSearchAddresses(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.addUser("alice")
	s := e.start()
	c := inInbox(t, s.imaps, "alice", alice)
	for _, m := range []string{
		"From: user-from@domain.org\r\nTo: user-to@domain.org\r\nCc: user-cc@domain.org\r\nBcc: user-bcc@domain.org\r\n\r\nbody\r\n",
		"From: RealFrom <user-from@domain.org>\r\nTo: RealTo <user-to@domain.org>\r\nCc: RealCc <user-cc@domain.org>\r\nBcc: RealBcc <user-bcc@domain.org>\r\n\r\nbody2\r\n",
		"From: <user-from (comment)@ (comment) domain.org>\r\nTo: <user-to@domain.org>\r\nCc: <user-cc@domain.org>\r\nBcc: <user-bcc@domain.org>\r\n\r\nbody3\r\n",
		"From: user-from@domain.org (RealFrom)\r\nTo: user-to@domain.org (RealTo)\r\nCc: user-cc@domain.org (RealCc)\r\nBcc: user-bcc@domain.org (RealBcc)\r\n\r\nbody4\r\n",
		"From: user-from1@domain.org, user-from2@domain.org\r\nCc: user-cc@domain.org\r\n\r\nbody5\r\n",
		"To: groupname: groupuser1@domain.org, groupuser2@domain.org;,\r\n  groupname2: groupuser3@domain.org;\r\n\r\nbody6\r\n",
		"From: =?utf-8?q?Gr=C3=BCn?= <g@domain.org>\r\n\r\nbody7\r\n",
	} {
		c.ok("APPEND INBOX %s", literal(m))
	}
	for _, tc := range []struct{ search, want string }{
		{"FROM user-from@domain.org", "1 2 3 4"},
		{"TO user-to@domain.org", "1 2 3 4"},
		{"CC user-cc@domain.org", "1 2 3 4 5"},
		{"BCC user-bcc@domain.org", "1 2 3 4"},
		{"FROM realfrom", "2 4"},
		{"TO realto", "2 4"},
		{"BCC ealbc", "2 4"},
		{"FROM ser-fro", "1 2 3 4 5"},
		{"FROM comment", ""},
		{"FROM user-from2", "5"},
		{"TO groupname", "6"},
		{"TO groupname2", "6"},
		{"TO groupuser3", "6"},
		{"TO groupuser4", ""},
		{"HEADER TO \"\"", "1 2 3 4 6"},
		{"CHARSET UTF-8 FROM " + literal("GRÜN"), "7"}, // the decoded name, folded
		{"CHARSET UTF-8 FROM " + literal("grün"), "7"},
	} {
		r := c.ok("SEARCH %s", tc.search)
		got := strings.TrimSpace(strings.TrimPrefix(strings.Join(r.find("SEARCH"), ""), "* SEARCH"))
		if got != tc.want {
			t.Errorf("SEARCH %s: %q, want %q", tc.search, got, tc.want)
		}
	}
}
