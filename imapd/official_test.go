package imapd_test

// Official letters over IMAP (SPEC "IMAP", "Official letters"): the
// $Official keyword, and what counts as the first read: a FETCH of the
// body without PEEK or a STORE that adds \Seen, by the owner, in a
// SELECTed mailbox.

import (
	"encoding/json"
	"fmt"
	"net"
	"net/smtp"
	"strings"
	"testing"
	"time"
)

// submitOfficial submits a letter as the trusted sender name over the
// submission listener (STARTTLS, AUTH PLAIN).
func submitOfficial(t *testing.T, addr, name, from, to, msg string) {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, ioTimeout)
	if err != nil {
		t.Fatal(err)
	}
	nc.SetDeadline(time.Now().Add(ioTimeout))
	c, err := smtp.NewClient(nc, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	steps := []func() error{
		func() error { return c.Hello("egov.test") },
		func() error { return c.StartTLS(clientTLS()) },
		func() error { return c.Auth(smtp.PlainAuth("", name, password, "127.0.0.1")) },
		func() error { return c.Mail(from) },
		func() error { return c.Rcpt(to) },
		func() error {
			w, err := c.Data()
			if err != nil {
				return err
			}
			if _, err := w.Write([]byte(msg)); err != nil {
				return err
			}
			return w.Close()
		},
		c.Quit,
	}
	for i, step := range steps {
		if err := step(); err != nil {
			t.Fatalf("submitting an official letter, step %d: %v", i+1, err)
		}
	}
}

// firstRead returns the first_read_at of the letter's one recipient, or
// "" when it is null.
func (e *env) firstRead(messageID string) string {
	e.t.Helper()
	out := e.OK("notice", "show", messageID, "--json")
	var n struct {
		Recipients []struct {
			Address     string  `json:"address"`
			FirstReadAt *string `json:"first_read_at"`
		} `json:"recipients"`
	}
	if err := json.Unmarshal([]byte(out), &n); err != nil || len(n.Recipients) != 1 {
		e.t.Fatalf("notice show %s --json: %v\n%s", messageID, err, out)
	}
	if n.Recipients[0].FirstReadAt == nil {
		return ""
	}
	return *n.Recipients[0].FirstReadAt
}

func TestOfficialLetterFirstRead(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.addUser("alice")
	cms := signedConsent(t, e, alice)
	s := e.start()
	e.OKIn(password+"\n", "sender", "add", "egov", "--kind", "official", "--from", "notices@egov.kz", "--password-stdin")
	e.OK("user", "consent", alice, "--cms", cms)
	ids := []string{"off-1@egov.kz", "off-2@egov.kz", "off-3@egov.kz"}
	for i, id := range ids {
		submitOfficial(t, s.sub, "egov", "notices@egov.kz", alice, crlf(fmt.Sprintf(
			"From: <notices@egov.kz>\nTo: <%s>\nSubject: official %d\nDate: Mon, 05 Jan 2026 09:00:00 +0000\nMessage-ID: <%s>\n\nYou are hereby notified (%d).\n",
			alice, i+1, id, i+1)))
	}
	s.mustDeliver(alice, simpleMessage(alice, "ordinary", "not official"))

	c := dialIMAPS(t, s.imaps, "alice")
	c.login(alice)
	c.selectBox("EXAMINE", "INBOX")
	if r := c.ok("SEARCH KEYWORD $Official"); strings.Join(r.find("SEARCH"), "") != "* SEARCH 1 2 3" {
		t.Errorf("SEARCH KEYWORD $Official:\n%s\nwant 1 2 3", r)
	}
	// Reading in an EXAMINEd mailbox is not a first read.
	c.ok("FETCH 1 (BODY[])")
	if got := e.firstRead(ids[0]); got != "" {
		t.Errorf("first_read_at %s after FETCH BODY[] in EXAMINE, want null", got)
	}

	c.selectBox("SELECT", "INBOX")
	// PEEKs are no read.
	c.ok("FETCH 1:3 (BODY.PEEK[] BODY.PEEK[TEXT] BINARY.PEEK[1] FLAGS)")
	for _, id := range ids {
		if got := e.firstRead(id); got != "" {
			t.Errorf("%s: first_read_at %s after PEEKs, want null", id, got)
		}
	}
	// The user can neither drop the keyword nor give it to other mail.
	c.ok("STORE 1:3 -FLAGS ($Official)")
	c.ok("STORE 4 +FLAGS ($Official)")
	c.ok("APPEND INBOX ($Official) %s", literal(crlf("Subject: forged\n\nforged\n")))
	c.ok("NOOP")
	if r := c.ok("SEARCH KEYWORD $Official"); strings.Join(r.find("SEARCH"), "") != "* SEARCH 1 2 3" {
		t.Errorf("SEARCH KEYWORD $Official after the user's STOREs and APPEND:\n%s\nwant 1 2 3", r)
	}

	// FETCH BODY[TEXT] reads letter 1; STORE +FLAGS (\Seen) letter 2;
	// letter 3 is only copied and flagged.
	r := c.ok("FETCH 1 (BODY[TEXT])")
	if f := strings.Join(r.find("1 FETCH"), ""); !strings.Contains(f, `\Seen`) || !strings.Contains(f, "$Official") {
		t.Errorf("FETCH 1 (BODY[TEXT]):\n%s\nwant FLAGS with \\Seen and $Official", r)
	}
	c.ok("STORE 2 +FLAGS.SILENT (\\Seen)")
	c.ok("COPY 3 Archive")
	c.ok("STORE 3 +FLAGS (\\Flagged)")
	read1, read2 := e.firstRead(ids[0]), e.firstRead(ids[1])
	if read1 == "" || read2 == "" {
		t.Errorf("first_read_at after FETCH BODY[TEXT] (%q) and STORE +FLAGS \\Seen (%q), want both set", read1, read2)
	}
	if got := e.firstRead(ids[2]); got != "" {
		t.Errorf("first_read_at %s of a letter only copied and flagged, want null", got)
	}
	for _, ts := range []string{read1, read2} {
		if _, err := time.Parse(time.RFC3339, ts); ts != "" && (err != nil || !strings.HasSuffix(ts, "Z")) {
			t.Errorf("first_read_at %q is not an RFC 3339 UTC time", ts)
		}
	}

	// The first read stays the first.
	c.ok("STORE 1 -FLAGS (\\Seen)")
	c.ok("FETCH 1 (RFC822)")
	if got := e.firstRead(ids[0]); got != read1 {
		t.Errorf("first_read_at changed from %s to %s by a second read", read1, got)
	}
	// RFC822 counts as a read too.
	c.ok("UID FETCH 3 (RFC822)")
	if got := e.firstRead(ids[2]); got == "" {
		t.Errorf("first_read_at of letter 3 after UID FETCH RFC822: null")
	}
	c.ok("LOGOUT")
}
