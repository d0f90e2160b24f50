package imapd_test

import (
	"fmt"
	"strings"
	"testing"
)

// TestCatenateOfficialLetter: the body of an official letter cannot be
// copied by URL into a message that is not official (its reading there
// would go unrecorded); its header can, and neither counts as reading.
func TestCatenateOfficialLetter(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.addUser("alice")
	s := e.start()
	e.OKIn(password+"\n", "sender", "add", "egov", "--kind", "official", "--from", "notices@egov.kz", "--password-stdin")
	e.OK("user", "consent", alice, "--certificate", e.Dir+"/tls-cert.pem")
	id := "cat-off-1@egov.kz"
	submitOfficial(t, s.sub, "egov", "notices@egov.kz", alice, crlf(fmt.Sprintf(
		"From: <notices@egov.kz>\nTo: <%s>\nSubject: official\nDate: Mon, 05 Jan 2026 09:00:00 +0000\nMessage-ID: <%s>\n\nYou are hereby notified.\n", alice, id)))

	c := inInbox(t, s.imaps, "alice", alice)
	for _, sec := range []string{"", "/;SECTION=TEXT", "/;SECTION=1", "/;SECTION=1.MIME"} {
		r := c.no("BADURL", `APPEND Drafts CATENATE (URL "/INBOX/;UID=1%s")`, sec)
		if !strings.Contains(r.text, "official letter") {
			t.Errorf("URL of section %q: %q, want the reason", sec, r.text)
		}
	}
	r := c.ok(`APPEND Drafts CATENATE (URL "/INBOX/;UID=1/;SECTION=HEADER" TEXT %s)`, literal("forwarded\r\n"))
	_, uid := appendUIDs(t, r)
	c.selectBox("EXAMINE", "Drafts")
	if got := c.bodyOf(uid); !strings.Contains(got, "Message-ID: <"+id+">") || strings.Contains(got, "hereby") {
		t.Errorf("CATENATE of the letter's HEADER: %q", got)
	}
	if got := e.firstRead(id); got != "" {
		t.Errorf("first_read_at %s after CATENATE, want null", got)
	}
	if r := c.ok("SEARCH KEYWORD $Official"); strings.Join(r.find("SEARCH"), "") != "* SEARCH" {
		t.Errorf("the CATENATE copy is official:\n%s", r)
	}
	// The record is still there to be made by a FETCH.
	c.selectBox("SELECT", "INBOX")
	c.ok("FETCH 1 (BODY[])")
	if got := e.firstRead(id); got == "" {
		t.Errorf("first_read_at null after FETCH BODY[]")
	}
	e.Check()
}

// python3's imaplib sends a MULTIAPPEND (a LITERAL+ message, then one
// it sends after the continuation) and a CATENATE with a URL and a TEXT
// literal; each message is then fetched back.
const appendScript = `
import imaplib, os, ssl, sys
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
host, port = os.environ["ABOX_IMAPS"].rsplit(":", 1)
m = imaplib.IMAP4_SSL(host, int(port), ssl_context=ctx)
m.login(os.environ["ABOX_USER"], os.environ["ABOX_PASS"])
caps = m.capability()[1][0].split()
print("caps", b"MULTIAPPEND" in caps, b"CATENATE" in caps)
one = b"Subject: one\r\n\r\nfirst\r\n"
two = b"Subject: two\r\n\r\nsecond\r\n"
m.literal = two
typ, data = m._simple_command("APPEND", "Drafts", b"(\\Seen) {%d+}\r\n" % len(one) + one + b" ()")
print("multiappend", typ, data[0].decode())
text = b"\r\n-- appended by catenate\r\n"
typ, data = m._simple_command("APPEND", "Drafts", b'CATENATE (URL "/Drafts/;UID=1" TEXT {%d+}\r\n' % len(text) + text + b")")
print("catenate", typ, data[0].decode())
m.select("Drafts", readonly=True)
typ, data = m.uid("FETCH", "1:*", "(FLAGS BODY.PEEK[])")
bodies = [d[1] for d in data if isinstance(d, tuple)]
print("bodies", bodies == [one, two, one + text])
print("flags", [d[0].decode() for d in data if isinstance(d, tuple)])
m.logout()
`

func TestPythonImaplibMultiAppendCatenate(t *testing.T) {
	t.Parallel()
	python := needTool(t, "python3")
	e := newEnv(t)
	alice := e.addUser("alice")
	s := e.start()
	out, code := runTool(t, []string{"ABOX_IMAPS=" + s.imaps, "ABOX_USER=" + alice, "ABOX_PASS=" + password,
		"PYTHONDONTWRITEBYTECODE=1"}, python, "-c", appendScript)
	if code != 0 {
		t.Fatalf("python exit %d:\n%s", code, out)
	}
	for _, want := range []string{"caps True True", "multiappend OK [APPENDUID ", " 1:2] APPEND completed", "catenate OK [APPENDUID ", " 3] APPEND completed", "bodies True", `FLAGS (\\Seen \\Recent)`} {
		if !strings.Contains(out, want) {
			t.Errorf("want %q in the output:\n%s", want, out)
		}
	}
	e.Check()
}

// TestCatenateURLReadsBounded: one APPEND's URLs read at most 256 MiB of
// stored messages (each URL's section is cut from its whole message);
// URLs into one message read it once.
func TestCatenateURLReadsBounded(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.addUser("alice")
	s := e.start()
	c := dialIMAPS(t, s.imaps, "alice")
	c.login(alice)
	large := func(n int) string {
		return crlf(fmt.Sprintf("Subject: large %d\n\n", n)) + strings.Repeat("0123456789abcdef0123456789abcde\r\n", (1<<20)/33)
	}
	c.ok("APPEND INBOX %s %s", literal(large(1)), literal(large(2)))
	var same, alternating strings.Builder
	for i := range 300 {
		fmt.Fprintf(&same, ` URL "/INBOX/;UID=1/;SECTION=HEADER"`)
		fmt.Fprintf(&alternating, ` URL "/INBOX/;UID=%d/;SECTION=HEADER"`, i%2+1)
	}
	c.ok("APPEND Drafts CATENATE (%s)", same.String()[1:])
	c.no("LIMIT", "APPEND Drafts CATENATE (%s)", alternating.String()[1:])
	if n := c.messages("Drafts"); n != 1 {
		t.Errorf("Drafts holds %d, want 1", n)
	}
	e.Check()
}
