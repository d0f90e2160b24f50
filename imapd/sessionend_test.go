package imapd_test

import (
	"regexp"
	"strings"
	"testing"
)

// TestAccountChangesEndSessions: a password change or a block ends every
// open IMAP session of the account at once (user agreement 2.7-2.8: a
// subscriber who fears a stolen password changes it, and the thief's
// sessions must end with it), an idling one by an immediate BYE, a
// quiet one at its next command; the new password logs in, and another
// account's sessions go on.
func TestAccountChangesEndSessions(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.addUser("alice")
	bob := e.addUser("bob")
	carol := e.addUser("carol")
	s := e.start()

	idler := inInbox(t, s.imaps, "alice-idle", alice)
	idler.idle()
	quiet := inInbox(t, s.imaps, "alice-quiet", alice)
	bystander := inInbox(t, s.imaps, "carol", carol)
	carolIdle := inInbox(t, s.imaps, "carol-idle", carol)
	carolTag := carolIdle.idle()

	const fresh = "a new and different passphrase"
	e.OKIn(fresh+"\n", "user", "passwd", alice, "--password-stdin")
	if line := idler.waitFor(regexp.MustCompile(`^\* BYE `)); !strings.Contains(line, "password") {
		t.Errorf("the idling session was told %q, want a BYE naming the password change", line)
	}
	if r, err := quiet.try("NOOP"); err == nil && r.status == "OK" {
		t.Errorf("a session opened before the password change still works: %s", r)
	}
	c := dialIMAPS(t, s.imaps, "alice-again")
	c.no("AUTHENTICATIONFAILED", "LOGIN %s %s", quote(alice), quote(password))
	c.ok("LOGIN %s %s", quote(alice), quote(fresh))
	c.ok("SELECT INBOX")
	c.ok("NOOP") // the session opened after the change goes on
	c.ok("LOGOUT")

	// A block ends bob's idling session too.
	bobIdle := inInbox(t, s.imaps, "bob-idle", bob)
	bobIdle.idle()
	e.OK("user", "block", bob, "--reason", "compromised")
	if line := bobIdle.waitFor(regexp.MustCompile(`^\* BYE `)); !strings.Contains(line, "blocked") {
		t.Errorf("bob's idling session was told %q, want a BYE saying blocked", line)
	}

	// Carol's sessions were never touched.
	carolIdle.done(carolTag)
	carolIdle.ok("NOOP")
	bystander.ok("NOOP")
	bystander.ok("LOGOUT")
	carolIdle.ok("LOGOUT")
}

// TestServiceBans: a class without IMAP, and an account barred from
// IMAP by the operator (user agreement 2.9.2, 2.10.1), cannot log in; a
// ban ends the account's open sessions; lifting it lets the account in.
func TestServiceBans(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.addUser("alice")
	e.OK("class", "set", "mailonly", "--services", "submission")
	bob := e.addUser("bob", "--class", "mailonly")
	s := e.start()

	c := dialIMAPS(t, s.imaps, "bob")
	if r := c.no("", "LOGIN %s %s", quote(bob), quote(password)); !strings.Contains(r.text, "imap") {
		t.Errorf("bob's class has no IMAP; LOGIN said %q, want the reason", r.text)
	}

	open := inInbox(t, s.imaps, "alice-open", alice)
	open.idle()
	e.OK("user", "set", alice, "--ban-services", "imap")
	if line := open.waitFor(regexp.MustCompile(`^\* BYE `)); !strings.Contains(line, "barred") {
		t.Errorf("alice's open session was told %q, want a BYE saying she is barred", line)
	}
	c = dialIMAPS(t, s.imaps, "alice-banned")
	if r := c.no("", "LOGIN %s %s", quote(alice), quote(password)); !strings.Contains(r.text, "barred from imap") {
		t.Errorf("LOGIN of a barred account: %q", r.text)
	}
	if out := e.OK("user", "show", alice); !strings.Contains(out, "banned:") || !strings.Contains(out, "imap") {
		t.Errorf("user show lacks the ban:\n%s", out)
	}
	e.Fail(2, "user", "set", alice, "--ban-services", "pop3")

	e.OK("user", "set", alice, "--ban-services", "none")
	c = dialIMAPS(t, s.imaps, "alice-again")
	c.login(alice)
	c.ok("LOGOUT")
}
