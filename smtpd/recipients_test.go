package smtpd_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRecipientEnumeration: a session that has drawn 5 unknown-recipient
// replies is closed at its next RCPT (421 4.7.0), whatever it asks for,
// and an address that has drawn unknown-recipients-per-hour of them
// across sessions gets 450 4.7.1 for every RCPT, known or not, so
// replies stop telling mailboxes apart (issue 13: 100,000 RCPT TO in one
// second enumerated mailboxes).
func TestRecipientEnumeration(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.Config = filepath.Join(t.TempDir(), "abox.toml")
	if err := os.WriteFile(e.Config, []byte("trusted-networks = []\nunknown-recipients-per-hour = 8\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	known := e.addUser("xena")
	e.addSender("biller", "billing", "bills@utility.kz")
	s := e.start()

	c := dial(t, s.smtp)
	c.ehlo()
	c.expect("MAIL FROM:<probe@remote.test>", 250, "2.1.0")
	c.expect("RCPT TO:<"+known+">", 250, "2.1.5")
	for i := range 5 {
		c.expect("RCPT TO:<guess"+strings.Repeat("x", i)+"@"+domain+">", 550, "5.1.1")
	}
	if r := c.cmd("RCPT TO:<" + known + ">"); r.code != 421 || r.enh() != "4.7.0" {
		t.Fatalf("PRODUCT BUG: RCPT after 5 unknown recipients in a session: %q, want 421 4.7.0 and close", r)
	}
	c.expectClosed()

	c = dial(t, s.smtp)
	c.ehlo()
	c.expect("MAIL FROM:<probe@remote.test>", 250, "2.1.0")
	for i := range 3 {
		c.expect("RCPT TO:<again"+strings.Repeat("y", i)+"@"+domain+">", 550, "5.1.1")
	}
	for _, rcpt := range []string{known, "again-more@" + domain} {
		if r := c.cmd("RCPT TO:<" + rcpt + ">"); r.code != 450 || r.enh() != "4.7.1" {
			t.Errorf("RCPT %s from an address past 8 unknown recipients an hour: %q, want 450 4.7.1", rcpt, r)
		}
	}
	// Another address is not affected.
	other, banner := dialFrom(t, s.smtp, "127.0.1.1")
	if banner.code != 220 {
		t.Fatalf("banner: %q", banner)
	}
	other.ehlo()
	other.expect("MAIL FROM:<someone@remote.test>", 250, "2.1.0")
	other.expect("RCPT TO:<"+known+">", 250, "2.1.5")

	// A trusted sender's batch may name closed accounts: it is not cut
	// off, from an address past its budget too.
	b := submissionSession(t, s, "biller")
	b.expect("MAIL FROM:<bills@utility.kz>", 250, "2.1.0")
	for i := range 7 {
		b.expect("RCPT TO:<closed"+strings.Repeat("z", i)+"@"+domain+">", 550, "5.1.1")
	}
	b.expect("RCPT TO:<"+known+">", 250, "2.1.5")
}

// TestPostmaster: postmaster@ a hosted domain, in any case, and the bare
// <Postmaster> are accepted (RFC 5321 §4.5.1, §4.1.1.3) although
// postmaster is a reserved login: delivered to the account the
// postmaster setting names, or else to the domain's postmaster role
// account, created for it.
func TestPostmaster(t *testing.T) {
	t.Parallel()
	t.Run("role account", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		s := e.start()
		c := dial(t, s.smtp)
		c.ehlo()
		c.expect("MAIL FROM:<reporter@remote.test>", 250, "2.1.0")
		for _, rcpt := range []string{"postmaster@" + domain, "PostMaster@" + strings.ToUpper(domain), "Postmaster"} {
			if r := c.cmd("RCPT TO:<" + rcpt + ">"); r.code != 250 || r.enh() != "2.1.5" {
				t.Errorf("PRODUCT BUG: RCPT TO:<%s>: %q, want 250 2.1.5 (RFC 5321 §4.5.1)", rcpt, r)
			}
		}
		c.expect("RCPT TO:<postmaster@not-hosted.test>", 554, "5.7.1")
		c.expect("DATA", 354, "")
		c.send(dotStuff(message("reporter@remote.test", "postmaster@"+domain, "abuse report", "see below")) + ".\r\n")
		c.want("end of DATA", 250, "2.0.0")
		if len(e.inbox("postmaster@"+domain)) != 1 {
			t.Errorf("the postmaster role account holds %d messages, want 1 (one copy for the three spellings)", len(e.inbox("postmaster@"+domain)))
		}
	})
	t.Run("configured", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		ops := e.addUser("ops")
		e.Config = filepath.Join(t.TempDir(), "abox.toml")
		if err := os.WriteFile(e.Config, []byte("postmaster = \""+ops+"\"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		s := e.start()
		c := dial(t, s.smtp)
		c.ehlo()
		c.deliver("reporter@remote.test", []string{"POSTMASTER@" + domain, "postmaster"}, message("reporter@remote.test", "postmaster@"+domain, "bounce", "hello"))
		e.wantMessages(ops, 1)
		if r := e.Run("user", "show", "postmaster@"+domain); r.Code == 0 {
			t.Errorf("a role account was created although postmaster names %s:\n%s", ops, r.Stdout)
		}
	})
}
