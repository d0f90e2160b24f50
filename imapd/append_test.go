package imapd_test

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"
)

var appendUIDSetRE = regexp.MustCompile(`^\[APPENDUID (\d+) ([0-9:]+)\]`)

// appendUIDs returns the UIDVALIDITY and UID set of an APPEND's OK.
func appendUIDs(t *testing.T, r resp) (string, string) {
	t.Helper()
	m := appendUIDSetRE.FindStringSubmatch(r.text)
	if m == nil {
		t.Fatalf("%s: no APPENDUID in %q", trim(r.cmd), r.text)
	}
	return m[1], m[2]
}

// messages returns how many messages a mailbox holds (STATUS).
func (c *imapConn) messages(mailbox string) int {
	c.t.Helper()
	return int(c.status(mailbox, "MESSAGES"))
}

// bodyOf returns BODY.PEEK[] of a UID in the selected mailbox.
func (c *imapConn) bodyOf(uid string) string {
	c.t.Helper()
	r := c.ok("UID FETCH %s (BODY.PEEK[])", uid)
	for _, u := range r.untagged {
		if _, lit, ok := strings.Cut(u, "BODY[] {"); ok {
			_, body, _ := strings.Cut(lit, "}\r\n")
			return strings.TrimSuffix(body, ")")
		}
	}
	c.t.Fatalf("UID FETCH %s: no body:\n%s", uid, r)
	return ""
}

// expectNoContinuation sends a line announcing a synchronizing literal
// and wants the tagged answer (with code) instead of "+".
func (c *imapConn) expectNoContinuation(tag, line, code string) {
	c.t.Helper()
	c.send(line)
	got, err := c.readResponse(ioTimeout)
	if err != nil || !strings.HasPrefix(got, tag+" NO ["+code) {
		c.t.Fatalf("after %q: %q %v, want %s NO [%s] and no continuation", trim(line), got, err, tag, code)
	}
}

// expectContinuation sends a line announcing a synchronizing literal and
// wants "+".
func (c *imapConn) expectContinuation(line string) {
	c.t.Helper()
	c.send(line)
	if got, err := c.readResponse(ioTimeout); err != nil || !strings.HasPrefix(got, "+") {
		c.t.Fatalf("after %q: %q %v, want a continuation", trim(line), got, err)
	}
}

// TestMultiAppend: RFC 3502 through the binary: one APPEND, several
// messages, one APPENDUID range, all or nothing.
func TestMultiAppend(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.addUser("alice")
	s := e.start()
	c := inInbox(t, s.imaps, "alice", alice)
	if caps := c.caps(); !caps["MULTIAPPEND"] {
		t.Fatalf("MULTIAPPEND not advertised: %v", caps)
	}
	m1, m2, m3 := simpleMessage(alice, "one", "first"), simpleMessage(alice, "two", "second"), simpleMessage(alice, "three", "third")

	r := c.ok(`APPEND Drafts (\Seen) "05-Jan-2026 09:00:00 +0000" %s ($Label) %s %s`, literal(m1), literal(m2), literal(m3))
	uv, uids := appendUIDs(t, r)
	if uids != "1:3" {
		t.Errorf("APPENDUID %s %s, want the range 1:3", uv, uids)
	}
	c.selectBox("EXAMINE", "Drafts")
	f := c.ok("UID FETCH 1:* (FLAGS INTERNALDATE)")
	// EXAMINE shows the new messages \Recent (no session claimed them;
	// RFC 3501 §2.3.2, an IMAP4rev1 session).
	want := []string{`* 1 FETCH (UID 1 FLAGS (\Seen \Recent) INTERNALDATE " 5-Jan-2026 09:00:00 +0000")`, `* 2 FETCH (UID 2 FLAGS ($Label \Recent)`, `* 3 FETCH (UID 3 FLAGS (\Recent)`}
	for i, w := range want {
		if i >= len(f.untagged) || !strings.HasPrefix(f.untagged[i], w) {
			t.Errorf("FETCH:\n%s\nwant line %d to start %q", f, i+1, w)
		}
	}
	for i, m := range []string{m1, m2, m3} {
		if got := c.bodyOf(fmt.Sprint(i + 1)); got != m {
			t.Errorf("message %d: %q, want %q", i+1, got, m)
		}
	}

	// Into the selected mailbox: the new messages are announced.
	c.selectBox("SELECT", "INBOX")
	r = c.ok("APPEND INBOX %s %s", literal(m1), literal(m2))
	if !r.has("2 EXISTS") {
		t.Errorf("MULTIAPPEND into the selected mailbox:\n%s\nwant * 2 EXISTS", r)
	}

	// A bad second message (a system flag that does not exist, a bad
	// date) stores nothing.
	c.do(`APPEND Drafts %s (\Bogus) %s`, literal(m1), literal(m2))
	c.do(`APPEND Drafts %s "31-Foo-2026 09:00:00 +0000" %s`, literal(m1), literal(m2))
	if n := c.messages("Drafts"); n != 3 {
		t.Errorf("Drafts holds %d after refused MULTIAPPENDs, want 3", n)
	}
	// A zero-length literal cancels the APPEND (RFC 3502 §6.3.11).
	if r := c.do("APPEND Drafts %s {0+}\r\n", literal(m1)); r.status != "NO" {
		t.Errorf("APPEND with a zero-length literal: %s, want NO", r)
	}
	if r := c.do("APPEND Drafts {0+}\r\n"); r.status != "NO" {
		t.Errorf("APPEND of a zero-length literal: %s, want NO", r)
	}
	if n := c.messages("Drafts"); n != 3 {
		t.Errorf("Drafts holds %d after cancelled APPENDs, want 3", n)
	}
	// Into a mailbox that does not exist: TRYCREATE, nothing stored.
	c.no("TRYCREATE", "APPEND Nowhere %s %s", literal(m1), literal(m2))

	// Over the message quota by the sum: none is stored, and the
	// connection goes on.
	e.OK("user", "set", alice, "--quota-messages", "7")
	c.no("OVERQUOTA", "APPEND Drafts %s %s %s", literal(m1), literal(m2), literal(m3))
	if n := c.messages("Drafts"); n != 3 {
		t.Errorf("Drafts holds %d after an over-quota MULTIAPPEND, want 3", n)
	}
	r = c.ok("APPEND Drafts %s %s", literal(m1), literal(m2))
	if _, uids := appendUIDs(t, r); uids != "4:5" {
		t.Errorf("APPENDUID %s after a refused MULTIAPPEND, want 4:5", uids)
	}
	e.Check()
}

// TestMultiAppendLiteralLimits: a literal over APPENDLIMIT, or literals
// past the storage left, are refused before they are read; nothing of
// the command is stored; the session goes on after a synchronizing
// literal and ends after a non-synchronizing one (RFC 3502 §6.3.11,
// RFC 7888 §4).
func TestMultiAppendLiteralLimits(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.addUser("alice")
	s := e.start()
	e.OK("class", "set", "standard", "--max-message-size", "4KiB")
	small := simpleMessage(alice, "small", "small")
	big := crlf("Subject: big\n\n" + strings.Repeat("0123456789\n", 500))

	c := dialIMAPS(t, s.imaps, "alice")
	c.login(alice)
	// The second literal is over the limit: NO [TOOBIG] instead of its
	// continuation.
	c.expectContinuation(fmt.Sprintf("t1 APPEND Drafts {%d}\r\n", len(small)))
	c.expectNoContinuation("t1", fmt.Sprintf("%s {%d}\r\n", small, len(big)), "TOOBIG")
	c.ok("NOOP")
	if n := c.messages("Drafts"); n != 0 {
		t.Errorf("Drafts holds %d after a refused MULTIAPPEND, want 0", n)
	}

	// The storage left (6 KiB) is passed by the literals together.
	e.OK("user", "set", alice, "--quota-storage", "6KiB")
	third := simpleMessage(alice, "third", strings.Repeat("x", 2500))
	c.expectContinuation(fmt.Sprintf("t2 APPEND Drafts {%d}\r\n", len(third)))
	c.expectContinuation(fmt.Sprintf("%s {%d}\r\n", third, len(third)))
	c.expectNoContinuation("t2", fmt.Sprintf("%s {%d}\r\n", third, len(third)), "OVERQUOTA")
	c.ok("NOOP")
	if n := c.messages("Drafts"); n != 0 {
		t.Errorf("Drafts holds %d after a refused MULTIAPPEND, want 0", n)
	}
	// Two of them fit.
	if r := c.ok("APPEND Drafts %s %s", literal(third), literal(third)); !strings.Contains(r.text, " 1:2]") {
		t.Errorf("APPEND of two that fit: %s", r.text)
	}

	// A non-synchronizing literal over the limit: NO [TOOBIG], BYE, and
	// its bytes are never read as commands.
	d := dialIMAPS(t, s.imaps, "alice2")
	d.login(alice)
	// The server may close before the client has written it all (it
	// answers BYE as soon as it sees the size): a failed write is fine.
	d.nc.SetWriteDeadline(time.Now().Add(ioTimeout))
	d.nc.Write([]byte(fmt.Sprintf("n1 APPEND Drafts %s {%d+}\r\n%s\r\n", literal(small), len(big), big)))
	var lines []string
	for {
		l, err := d.readResponse(ioTimeout)
		if err != nil {
			break
		}
		lines = append(lines, l)
	}
	if len(lines) < 2 || !strings.HasPrefix(lines[0], "n1 NO [TOOBIG]") || !strings.HasPrefix(lines[1], "* BYE") {
		t.Errorf("LITERAL+ over the limit: %q, want n1 NO [TOOBIG] then * BYE", lines)
	}
	if n := c.messages("Drafts"); n != 2 {
		t.Errorf("Drafts holds %d, want 2", n)
	}
	e.Check()
}

// TestMultiAppendCommandBound: the literals of one APPEND together may
// not pass 64 MiB (the command is held in memory until it is stored):
// the literal that would pass it is refused NO [LIMIT] before it is
// sent.
func TestMultiAppendCommandBound(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.addUser("alice")
	s := e.start()
	e.OK("class", "set", "standard", "--max-message-size", "40MiB")
	c := dialIMAPS(t, s.imaps, "alice")
	c.login(alice)
	first := crlf("Subject: large\n\n") + strings.Repeat("0123456789abcdef0123456789abcde\r\n", (33<<20)/33)
	c.expectContinuation(fmt.Sprintf("b1 APPEND Drafts {%d}\r\n", len(first)))
	c.expectNoContinuation("b1", fmt.Sprintf("%s {%d}\r\n", first, 32<<20), "LIMIT")
	c.ok("NOOP")
	if n := c.messages("Drafts"); n != 0 {
		t.Errorf("Drafts holds %d, want 0", n)
	}
	e.Check()
}

// sectionOf returns BODY.PEEK[section] of a UID in the selected mailbox.
func (c *imapConn) sectionOf(uid, section string) string {
	c.t.Helper()
	r := c.ok("UID FETCH %s (BODY.PEEK[%s])", uid, section)
	for _, u := range r.untagged {
		if _, lit, ok := strings.Cut(u, "BODY["+section+"] {"); ok {
			_, body, _ := strings.Cut(lit, "}\r\n")
			return strings.TrimSuffix(body, ")")
		}
	}
	c.t.Fatalf("UID FETCH %s BODY.PEEK[%s]: no data:\n%s", uid, section, r)
	return ""
}

// nestedMessage has a message/rfc822 part (part 2) whose body is
// multipart (parts 2.1, 2.2).
func nestedMessage(to string) string {
	return crlf(fmt.Sprintf(`From: <fwd@example.org>
To: <%s>
Subject: forwarded
Message-ID: <nested-%d@example.org>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="outer"

--outer
Content-Type: text/plain

See the letter below.
--outer
Content-Type: message/rfc822

From: <inner@example.org>
Subject: inner
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary="inner"

--inner
Content-Type: text/plain

inner plain
--inner
Content-Type: text/html

<p>inner html</p>
--inner--
--outer--
`, to, msgSeq.Add(1)))
}

// TestCatenate: RFC 4469 through the binary: TEXT literals and URLs of
// the user's own messages (whole, HEADER, TEXT, MIME, part numbers,
// inside an attached message, PARTIAL), alone and in a MULTIAPPEND; bad
// URLs are NO [BADURL url] and store nothing; too large is NO [TOOBIG].
func TestCatenate(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.addUser("alice")
	bob := e.addUser("bob")
	s := e.start()
	s.deliverCorpus(alice) // UIDs 1 plain, 2 multipart, 3 big
	c := dialIMAPS(t, s.imaps, "alice")
	c.login(alice)
	if caps := c.caps(); !caps["CATENATE"] {
		t.Fatalf("CATENATE not advertised: %v", caps)
	}
	c.ok("APPEND INBOX %s", literal(nestedMessage(alice))) // UID 4
	in := c.selectBox("SELECT", "INBOX")
	v := fmt.Sprint(in.uidValidity)

	head := crlf("From: <alice@example.kz>\nSubject: forwarding\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"cat\"\n\n--cat\n")
	tail := crlf("\n--cat--\n")
	r := c.ok(`APPEND Drafts (\Draft) CATENATE (TEXT %s URL "/INBOX;UIDVALIDITY=%s/;UID=2/;SECTION=1.MIME" URL "/INBOX;UIDVALIDITY=%s/;UID=2/;SECTION=1" TEXT %s)`,
		literal(head), v, v, literal(tail))
	_, uid := appendUIDs(t, r)
	want := head + c.sectionOf("2", "1.MIME") + c.sectionOf("2", "1") + tail

	cases := []struct{ url, section, uid string }{
		{"/INBOX/;UID=1", "", "1"}, // no UIDVALIDITY: the mailbox's current one
		{"/inbox;UIDVALIDITY=" + v + "/;UID=3/;SECTION=HEADER", "HEADER", "3"},
		{"/INBOX;UIDVALIDITY=" + v + "/;UID=3/;SECTION=text", "TEXT", "3"},
		{"/INBOX;UIDVALIDITY=" + v + "/;UID=2/;SECTION=2", "2", "2"},
		{"/INBOX;UIDVALIDITY=" + v + "/;UID=4/;SECTION=2.HEADER", "2.HEADER", "4"},
		{"/INBOX;UIDVALIDITY=" + v + "/;UID=4/;SECTION=2.TEXT", "2.TEXT", "4"},
		{"/INBOX;UIDVALIDITY=" + v + "/;UID=4/;SECTION=2.2", "2.2", "4"},
		{"/INBOX;UIDVALIDITY=" + v + "/;UID=4/;SECTION=2.1.MIME", "2.1.MIME", "4"},
	}
	c.selectBox("EXAMINE", "INBOX")
	wants := make([]string, len(cases))
	for i, tc := range cases {
		wants[i] = c.sectionOf(tc.uid, tc.section)
	}
	wantPartial := c.sectionOf("3", "")[100:150]
	c.selectBox("EXAMINE", "Drafts")
	if got := c.bodyOf(uid); got != want {
		t.Errorf("CATENATE of TEXT, 1.MIME, 1, TEXT:\n%q\nwant\n%q", got, want)
	}
	for i, tc := range cases {
		r := c.ok(`APPEND Drafts CATENATE (URL %q)`, tc.url)
		_, uid := appendUIDs(t, r)
		if got := c.bodyOf(uid); got != wants[i] {
			t.Errorf("CATENATE of %s:\n%q\nwant\n%q", tc.url, got, wants[i])
		}
	}
	r = c.ok(`APPEND Drafts CATENATE (URL "/INBOX/;UID=3/;PARTIAL=100.50")`)
	if _, uid := appendUIDs(t, r); c.bodyOf(uid) != wantPartial {
		t.Errorf("CATENATE of a PARTIAL: %q, want %q", c.bodyOf(uid), wantPartial)
	}

	// With MULTIAPPEND: a plain message and a CATENATE one, one range.
	plain := simpleMessage(alice, "plain", "plain")
	r = c.ok(`APPEND Drafts %s (\Seen) CATENATE (URL "/INBOX/;UID=1" TEXT %s)`, literal(plain), literal("\r\nappended\r\n"))
	if _, uids := appendUIDs(t, r); !strings.Contains(uids, ":") {
		t.Errorf("APPENDUID %s, want a range", uids)
	}
	before := c.messages("Drafts")

	// Bad URLs: NO [BADURL url], the URL echoed, nothing stored (also
	// not the good message before it).
	bad := []string{
		"/INBOX;UIDVALIDITY=1/;UID=1",                              // wrong UIDVALIDITY
		"/INBOX/;UID=99",                                           // no such message
		"/Nowhere/;UID=1",                                          // no such mailbox
		"/INBOX/;UID=2/;SECTION=9",                                 // no such part
		"/INBOX/;UID=2/;SECTION=1.HEADER",                          // HEADER of a part that is no message
		"/INBOX/;UID=1/;SECTION=HEADER.FIELDS%20(Subject)",         // unsupported section
		"/INBOX/;UID=1/;URLAUTH=anonymous:internal:0123456789abcd", // URLAUTH: not offered
		"imap://alice%40example.kz@localhost/INBOX/;UID=1",         // absolute
		"imap://bob@elsewhere.example/INBOX/;UID=1",                // another host and user
		"INBOX/;UID=1",                                             // relative to what?
		"/INBOX",                                                   // no UID
	}
	for _, u := range bad {
		r := c.no("BADURL", `APPEND Drafts %s CATENATE (URL %q)`, literal(plain), u)
		if !strings.HasPrefix(r.text, "[BADURL "+urlEcho(u)+"]") {
			t.Errorf("URL %s: %q, want the URL in the code", u, r.text)
		}
	}
	if n := c.messages("Drafts"); n != before {
		t.Errorf("Drafts holds %d after refused CATENATEs, want %d", n, before)
	}

	// bob's URLs resolve in his own mailboxes only.
	b := dialIMAPS(t, s.imaps, "bob")
	b.login(bob)
	b.no("BADURL", `APPEND INBOX CATENATE (URL "/INBOX;UIDVALIDITY=%s/;UID=1")`, v)
	b.no("BADURL", `APPEND INBOX CATENATE (URL "/INBOX/;UID=1")`)

	// Over APPENDLIMIT once put together: TOOBIG.
	e.OK("class", "set", "standard", "--max-message-size", "4KiB")
	c.no("TOOBIG", `APPEND Drafts CATENATE (URL "/INBOX/;UID=3" TEXT %s)`, literal("x"))
	c.no("TOOBIG", `APPEND Drafts CATENATE (URL "/INBOX/;UID=1" URL "/INBOX/;UID=1" URL "/INBOX/;UID=1" URL "/INBOX/;UID=1" URL "/INBOX/;UID=1" URL "/INBOX/;UID=1" URL "/INBOX/;UID=1" URL "/INBOX/;UID=1" URL "/INBOX/;UID=1" URL "/INBOX/;UID=1" URL "/INBOX/;UID=1" URL "/INBOX/;UID=1" URL "/INBOX/;UID=1" URL "/INBOX/;UID=1" URL "/INBOX/;UID=1" URL "/INBOX/;UID=1" URL "/INBOX/;UID=1" URL "/INBOX/;UID=1" URL "/INBOX/;UID=1" URL "/INBOX/;UID=1")`)
	if n := c.messages("Drafts"); n != before {
		t.Errorf("Drafts holds %d after TOOBIG, want %d", n, before)
	}
	// Syntax: an empty list, an unknown part kind.
	if r := c.do(`APPEND Drafts CATENATE ()`); r.status != "BAD" {
		t.Errorf("CATENATE (): %s, want BAD", r)
	}
	if r := c.do(`APPEND Drafts CATENATE (FILE "/etc/passwd")`); r.status != "BAD" {
		t.Errorf("CATENATE (FILE ...): %s, want BAD", r)
	}
	e.Check()
}

// urlEcho is a URL as BADURL echoes it (url-resp-text).
func urlEcho(u string) string {
	return strings.NewReplacer(" ", "%20", "]", "%5D").Replace(u)
}
