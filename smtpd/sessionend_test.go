package smtpd_test

import (
	"strings"
	"testing"
)

// TestAccountChangesEndSubmission: a submission session authenticated
// before a password change or a block is ended at its next MAIL with
// 421 4.7.0 (user agreement 2.7-2.8); a session opened after the change
// with the new password sends.
func TestAccountChangesEndSubmission(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.addUser("alice")
	bob := e.addUser("bob")
	s := e.start()

	old := dialTLS(t, s.subs)
	old.ehlo()
	if r := old.authPlain(alice, password); r.code != 235 {
		t.Fatalf("AUTH: %q", r)
	}
	old.expect("MAIL FROM:<"+alice+">", 250, "2.1.0")
	old.expect("RSET", 250, "")

	const fresh = "a new and different passphrase"
	e.OKIn(fresh+"\n", "user", "passwd", alice, "--password-stdin")
	r := old.expect("MAIL FROM:<"+alice+">", 421, "4.7.0")
	if !strings.Contains(r.text(), "password") {
		t.Errorf("MAIL after the password change: %q, want a reason naming the password", r)
	}
	old.expectClosed()

	c := dialTLS(t, s.subs)
	c.ehlo()
	if r := c.authPlain(alice, fresh); r.code != 235 {
		t.Fatalf("AUTH with the new password: %q", r)
	}
	c.expect("MAIL FROM:<"+alice+">", 250, "2.1.0")
	c.expect("QUIT", 221, "")

	b := dialTLS(t, s.subs)
	b.ehlo()
	if r := b.authPlain(bob, password); r.code != 235 {
		t.Fatalf("AUTH bob: %q", r)
	}
	e.OK("user", "block", bob, "--reason", "compromised")
	if r := b.expect("MAIL FROM:<"+bob+">", 421, "4.7.0"); !strings.Contains(r.text(), "blocked") {
		t.Errorf("MAIL after the block: %q, want a reason saying blocked", r)
	}
}

// TestSubmissionBan: an account barred from submission by the operator
// cannot AUTH there (the reason is told to the password's holder), and
// its session opened before the ban ends at its next MAIL.
func TestSubmissionBan(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.addUser("alice")
	s := e.start()
	open := dialTLS(t, s.subs)
	open.ehlo()
	if r := open.authPlain(alice, password); r.code != 235 {
		t.Fatalf("AUTH: %q", r)
	}
	e.OK("user", "set", alice, "--ban-services", "submission")
	if r := open.expect("MAIL FROM:<"+alice+">", 421, "4.7.0"); !strings.Contains(r.text(), "barred from submission") {
		t.Errorf("MAIL after the ban: %q", r)
	}
	c := dialTLS(t, s.subs)
	c.ehlo()
	if r := c.authPlain(alice, password); r.code != 535 || !strings.Contains(r.text(), "barred from submission") {
		t.Errorf("AUTH of a barred account: %q, want 535 naming the ban", r)
	}
	e.OK("user", "set", alice, "--ban-services", "none")
	c = dialTLS(t, s.subs)
	c.ehlo()
	if r := c.authPlain(alice, password); r.code != 235 {
		t.Errorf("AUTH after the ban was lifted: %q", r)
	}
}
