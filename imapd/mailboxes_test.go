package imapd_test

// Mailbox names and hierarchy (RFC 9051 §6.3.4-§6.3.9, RFC 3501 §5.1.3),
// nested messages, APPENDLIMIT and the per-account session limit.

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"
)

// listNames returns the mailbox names (as sent, quotes removed) and their
// attributes from LIST or LSUB responses.
func listNames(r resp) map[string]string {
	out := map[string]string{}
	re := regexp.MustCompile(`^\* (?:LIST|LSUB) \(([^)]*)\) (?:"[^"]*"|NIL) (.*)$`)
	for _, l := range r.untagged {
		if m := re.FindStringSubmatch(l); m != nil {
			out[strings.Trim(m[2], `"`)] = m[1]
		}
	}
	return out
}

func TestMailboxHierarchy(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.addUser("alice")
	s := e.start()
	c := dialIMAPS(t, s.imaps, "alice")
	c.login(alice)

	// CREATE makes the superiors it needs.
	c.ok(`CREATE "Projects/2027/Q1"`)
	names := listNames(c.ok(`LIST "" "Projects*"`))
	if _, ok := names["Projects/2027"]; !ok || !strings.Contains(names["Projects"], `\HasChildren`) {
		t.Errorf(`after CREATE "Projects/2027/Q1": %v, want Projects and Projects/2027 with \HasChildren`, names)
	}
	c.ok(`CREATE "Projects/2026"`)
	c.ok(`APPEND "Projects/2026" %s`, literal(crlf("Subject: filed\n\nfiled away\n")))

	// RENAME takes the inferiors along (RFC 9051 §6.3.6).
	c.ok("RENAME Projects Work")
	names = listNames(c.ok(`LIST "" "*"`))
	for _, want := range []string{"Work", "Work/2026", "Work/2027", "Work/2027/Q1"} {
		if _, ok := names[want]; !ok {
			t.Errorf("after RENAME Projects Work: no %s in %v", want, names)
		}
	}
	for n := range names {
		if strings.HasPrefix(n, "Projects") {
			t.Errorf("after RENAME Projects Work: %s is still listed", n)
		}
	}
	if n := c.status("Work/2026", "MESSAGES"); n != 1 {
		t.Errorf("Work/2026 holds %d messages after the RENAME, want 1", n)
	}

	// "%" lists one level; a superior without its own mailbox must still
	// be listed when it has children (RFC 9051 §6.3.9: \NonExistent or
	// \Noselect), or a client walking the tree never finds them.
	c.ok(`DELETE Work`)
	r := c.ok(`LIST "" "%%"`)
	names = listNames(r)
	if attrs, ok := names["Work"]; !ok || !strings.Contains(attrs, `\HasChildren`) ||
		!(strings.Contains(attrs, `\Noselect`) || strings.Contains(attrs, `\NonExistent`)) {
		t.Errorf(`after DELETE Work (which has children), LIST "" "%%":`+"\n%s\nwant Work with \\Noselect or \\NonExistent and \\HasChildren", r)
	}
	if r := c.do("SELECT Work"); r.status == "OK" {
		t.Errorf("SELECT of the deleted Work: %s", r)
	}
	if n := c.status("Work/2026", "MESSAGES"); n != 1 {
		t.Errorf("Work/2026 holds %d messages after DELETE Work, want 1", n)
	}

	// A deleted and re-created name gets a new UIDVALIDITY (RFC 9051
	// §2.3.1.1), so a client's cached UIDs cannot match the new mailbox.
	c.ok("CREATE Foo")
	c.ok("APPEND Foo %s", literal(crlf("Subject: one\n\n1\n")))
	v1 := c.status("Foo", "UIDVALIDITY")
	c.ok("DELETE Foo")
	c.ok("CREATE Foo")
	if v2 := c.status("Foo", "UIDVALIDITY"); v2 == v1 {
		t.Errorf("Foo re-created with the UIDVALIDITY %d of the deleted one", v1)
	}
	c.ok("RENAME Foo Bar")
	if v3 := c.status("Bar", "UIDVALIDITY"); v3 == v1 {
		t.Errorf("renamed Bar has the UIDVALIDITY %d of the first Foo", v1)
	}

	// A renamed special-use mailbox keeps its attribute.
	c.ok(`RENAME Sent "Sent Items"`)
	names = listNames(c.ok(`LIST "" "*"`))
	if !strings.Contains(names["Sent Items"], `\Sent`) {
		t.Errorf(`"Sent Items" after RENAME Sent: attributes %q, want \Sent`, names["Sent Items"])
	}
	c.ok(`RENAME "Sent Items" Sent`)

	// Names outside ASCII: modified UTF-7 (RFC 3501 §5.1.3), and UTF-8
	// after ENABLE UTF8=ACCEPT (RFC 6855).
	const mutf7, utf8 = "&BB4EQgRHBDUEQgRL-", "Отчеты"
	c.ok(`CREATE "%s/2026"`, mutf7)
	names = listNames(c.ok(`LIST "" "*"`))
	if _, ok := names[mutf7]; !ok {
		t.Errorf("LIST after CREATE %q: %v", mutf7, names)
	}
	if _, ok := names[mutf7+"/2026"]; !ok {
		t.Errorf("LIST after CREATE %q: %v", mutf7+"/2026", names)
	}
	c.ok(`APPEND "%s" %s`, mutf7, literal(crlf("Subject: report\n\nreport\n")))
	c.ok(`ENABLE UTF8=ACCEPT`)
	r = c.ok(`LIST "" "*"`)
	names = listNames(r)
	if _, ok := names[utf8]; !ok {
		t.Errorf("LIST after ENABLE UTF8=ACCEPT:\n%s\nwant %q in UTF-8", r, utf8)
	}
	if si := c.selectBox("SELECT", utf8); si.exists != 1 {
		t.Errorf("SELECT %q: %d EXISTS, want 1", utf8, si.exists)
	}
	c.ok("LOGOUT")

	// The mailboxes survive as named.
	c = dialIMAPS(t, s.imaps, "alice-2")
	c.login(alice)
	if n := c.status(mutf7, "MESSAGES"); n != 1 {
		t.Errorf("STATUS %q: MESSAGES %d, want 1", mutf7, n)
	}
	c.ok("LOGOUT")
	e.Check()
}

// TestNestedMessage: a forwarded letter (message/rfc822) and a text part
// in a legacy charset.
func TestNestedMessage(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.addUser("alice")
	s := e.start()
	s.mustDeliver(alice, crlf(`From: "Forwarder" <fwd@gov.kz>
To: <`+alice+`>
Subject: forwarded letter
Date: Tue, 03 Feb 2026 10:00:00 +0500
Message-ID: <fwd-1@gov.kz>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="OUT"

--OUT
Content-Type: text/plain; charset=koi8-r
Content-Transfer-Encoding: quoted-printable

=F0=D2=C9=D7=C5=D4, see the attached letter.
--OUT
Content-Type: message/rfc822

From: "Inner" <inner@gov.kz>
To: <x@example.kz>
Subject: inner subject
Date: Mon, 02 Feb 2026 10:00:00 +0000
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary="IN"

--IN
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

the inner caf=C3=A9 letter
--IN
Content-Type: text/html; charset=utf-8

<p>inner html only</p>
--IN--

--OUT--
`))
	c := dialIMAPS(t, s.imaps, "alice")
	c.login(alice)
	c.selectBox("EXAMINE", "INBOX")

	r := c.ok("FETCH 1 (BODYSTRUCTURE)")
	bs := strings.Join(r.find("1 FETCH"), "")
	if !strings.Contains(bs, `("message" "rfc822" NIL NIL NIL "7bit"`) || !strings.Contains(bs, `"inner subject"`) ||
		!strings.Contains(bs, `"alternative"`) || !strings.Contains(bs, `"koi8-r"`) {
		t.Errorf("BODYSTRUCTURE of a forwarded letter:\n%s", r)
	}
	for _, tc := range []struct{ item, want string }{
		{"BODY.PEEK[2.HEADER.FIELDS (SUBJECT)]", "Subject: inner subject\r\n\r\n"},
		{"BODY.PEEK[2.1]", "the inner caf=C3=A9 letter"},
		{"BINARY.PEEK[2.1.1]", "the inner café letter"},
		{"BODY.PEEK[2.2]", "<p>inner html only</p>"},
		{"BINARY.PEEK[1]", "\xf0\xd2\xc9\xd7\xc5\xd4, see the attached letter."},
	} {
		r := c.ok("FETCH 1 (%s)", tc.item)
		f := strings.Join(r.find("1 FETCH"), "")
		_, got, _ := strings.Cut(f, "}\r\n")
		got = strings.TrimSuffix(got, ")")
		if strings.TrimRight(got, "\r\n") != strings.TrimRight(tc.want, "\r\n") && got != tc.want {
			t.Errorf("FETCH 1 (%s): %q, want %q", tc.item, got, tc.want)
		}
	}

	for _, tc := range []struct {
		what, cmd string
		want      string
	}{
		{"koi8-r text, decoded", "SEARCH CHARSET UTF-8 BODY " + literal("Привет"), "* SEARCH 1"},
		{"the outer subject", `SEARCH SUBJECT "forwarded"`, "* SEARCH 1"},
		{"text of the forwarded letter", `SEARCH BODY "inner html only"`, "* SEARCH 1"},
		{"decoded text of the forwarded letter", "SEARCH CHARSET UTF-8 TEXT " + literal("café"), "* SEARCH 1"},
		{"the inner subject is not the letter's", `SEARCH SUBJECT "inner subject"`, "* SEARCH"},
	} {
		r := c.ok("%s", tc.cmd)
		if got := r.find("SEARCH"); len(got) != 1 || got[0] != tc.want {
			t.Errorf("%s: %s:\n%s\nwant %s", tc.what, trim(tc.cmd), r, tc.want)
		}
	}
	c.ok("LOGOUT")
}

// TestAppendLimit: APPENDLIMIT follows the class's message size, and a
// larger APPEND is refused NO [TOOBIG].
func TestAppendLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.addUser("alice")
	s := e.start()
	e.OK("class", "set", "standard", "--max-message-size", "2KiB")

	c := dialIMAPS(t, s.imaps, "alice")
	c.login(alice)
	// APPENDLIMIT is advertised without a value (see imapd/session.go
	// appendLimit: go-imap's early refusal runs a LITERAL+ literal's
	// lines as commands); STATUS gives the account's limit.
	if caps := c.caps(); !caps["APPENDLIMIT"] {
		t.Errorf("CAPABILITY: %v, want APPENDLIMIT", caps)
	}
	if n := c.status("INBOX", "APPENDLIMIT"); n != 2048 {
		t.Errorf("STATUS INBOX (APPENDLIMIT): %d, want 2048", n)
	}
	// A synchronizing literal over the limit is refused NO [TOOBIG]
	// before it is requested: the client never sends it (RFC 9051
	// §4.3: it waits for the continuation that does not come).
	big := crlf("Subject: big\n\n" + strings.Repeat("0123456789\n", 300))
	if r, err := c.try("APPEND INBOX {" + fmt.Sprint(len(big)) + "}"); err != nil || r.code() != "TOOBIG" {
		t.Errorf("APPEND of %d bytes with a synchronizing literal: %v, %v; want NO [TOOBIG]", len(big), r, err)
	}
	c.ok("NOOP")
	c.ok("APPEND INBOX %s", literal(crlf("Subject: small\n\n"+strings.Repeat("0123456789\n", 100))))

	// A non-synchronizing literal (LITERAL+) over the limit arrives
	// anyway: the server must read past it (or close the connection),
	// never take its lines for commands (RFC 7888 §4).
	injected := "x1 CREATE Injected\r\n" + strings.Repeat("0123456789\r\n", 300)
	r, err := c.try("APPEND INBOX " + literal(injected))
	switch {
	case err != nil:
		t.Logf("APPEND of %d bytes with LITERAL+: connection ended: %v", len(injected), err)
	case r.status == "OK" || r.code() != "TOOBIG":
		t.Errorf("APPEND of %d bytes with LITERAL+: %s, want NO or BAD [TOOBIG]", len(injected), r)
	}
	if r, err := c.try("NOOP"); err == nil && (r.status != "OK" || len(r.untagged) > 0) {
		t.Errorf("NOOP after the refused LITERAL+ APPEND:\n%s\nwant a plain OK (the literal's lines were read as commands)", r)
	}
	check := dialIMAPS(t, s.imaps, "check")
	check.login(alice)
	if r := check.ok(`LIST "" "Injected"`); len(r.untagged) != 0 {
		t.Errorf("the refused literal's first line \"x1 CREATE Injected\" was run as a command:\n%s", r)
	}
	check.ok("LOGOUT")
	if u := e.usage(alice); u.Messages != 1 {
		t.Errorf("usage %+v, want 1 message", u)
	}
}

// TestSessionsPerAccount: at most 50 sessions per account; the 51st login
// is refused NO [LIMIT] and succeeds again once one has logged out.
func TestSessionsPerAccount(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.addUser("alice")
	bob := e.addUser("bob")
	s := e.start()
	const max = 50
	conns := make([]*imapConn, 0, max)
	for i := range max {
		c := dialIMAPS(t, s.imaps, fmt.Sprintf("alice-%d", i+1))
		c.login(alice)
		conns = append(conns, c)
	}
	extra := dialIMAPS(t, s.imaps, "alice-extra")
	extra.no("LIMIT", "LOGIN %s %s", quote(alice), quote(password))
	// Another account is not affected.
	b := dialIMAPS(t, s.imaps, "bob")
	b.login(bob)
	b.ok("LOGOUT")

	conns[0].ok("LOGOUT")
	// The slot is freed when the server closes the session; retry a few
	// times rather than assume when.
	for i := 0; ; i++ {
		r := extra.do("LOGIN %s %s", quote(alice), quote(password))
		if r.status == "OK" {
			break
		}
		if i == 20 {
			t.Fatalf("LOGIN after another session logged out: %s", r)
		}
		time.Sleep(100 * time.Millisecond)
	}
	extra.ok("LOGOUT")
}

// TestListHostilePattern: LIST wildcard matching is linear (issue 13,
// item 9). go-imap's matcher backtracked through every way of splitting
// a 100-byte name among twenty '%', and the session never answered.
func TestListHostilePattern(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.addUser("alice")
	s := e.start()
	c := dialIMAPS(t, s.imaps, "alice")
	c.login(alice)
	long := strings.Repeat("a", 100)
	c.ok(`CREATE "%s"`, long)
	c.ok(`CREATE "%sy"`, long)
	hostile := strings.Repeat("%", 20) + "y"
	names := listNames(c.ok(`LIST "" "%s"`, hostile))
	if _, ok := names[long+"y"]; !ok || len(names) != 1 {
		t.Errorf(`LIST "" %q: %v, want only the name ending in y`, hostile, names)
	}
	names = listNames(c.ok(`LIST "" "%s"`, strings.Repeat("*a", 60)+"%"))
	if len(names) != 2 {
		t.Errorf("LIST with 60 stars: %v, want both long names", names)
	}
	c.ok("NOOP")
	c.ok("LOGOUT")
}

// TestMailboxLimits: the class bounds an account's mailboxes, their depth
// and their names' length; past them CREATE and RENAME answer NO [LIMIT]
// and make nothing (issue 13, item 13: one CREATE a/a/a/... made 505).
func TestMailboxLimits(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.OK("class", "set", "small", "--mailboxes", "10", "--mailbox-depth", "3", "--mailbox-name-bytes", "40")
	alice := e.addUser("alice")
	bob := e.addUser("bob", "--class", "small")
	s := e.start()

	// The standard class: at most 16 levels.
	a := dialIMAPS(t, s.imaps, "alice")
	a.login(alice)
	flood := strings.TrimSuffix(strings.Repeat("a/", 505), "/")
	a.no("LIMIT", `CREATE "%s"`, flood)
	a.ok(`CREATE "%s"`, strings.TrimSuffix(strings.Repeat("b/", 16), "/"))
	a.no("LIMIT", `CREATE "%s"`, strings.TrimSuffix(strings.Repeat("c/", 17), "/"))
	if names := listNames(a.ok(`LIST "" "*"`)); len(names) != 6+16 {
		t.Errorf("alice has %d mailboxes, want 22", len(names))
	}
	a.ok("LOGOUT")

	b := dialIMAPS(t, s.imaps, "bob")
	b.login(bob)
	b.ok(`CREATE "x/y/z"`) // 6 + 3
	b.no("LIMIT", `CREATE "x/y/z/w"`)
	b.no("LIMIT", `CREATE "%s"`, strings.Repeat("n", 41))
	b.no("LIMIT", `CREATE "p/q"`) // 11 with its superior
	b.ok(`CREATE "p"`)            // the 10th
	b.no("LIMIT", `CREATE "q"`)
	b.no("LIMIT", `RENAME "x" "p/x"`) // x/y/z would have 4 levels
	b.ok(`RENAME "x" "r"`)
	b.no("LIMIT", `RENAME "INBOX" "old"`) // makes a mailbox
	names := listNames(b.ok(`LIST "" "*"`))
	if len(names) != 10 {
		t.Errorf("bob has %d mailboxes, want 10: %v", len(names), names)
	}
	for _, n := range []string{"r", "r/y", "r/y/z", "p"} {
		if _, ok := names[n]; !ok {
			t.Errorf("bob lacks %s: %v", n, names)
		}
	}
	b.ok("LOGOUT")
	e.Check()
}
