package smtpd_test

import (
	"strings"
	"testing"
)

// TestInternationalisedDomain: a domain added in Unicode is the same
// domain as its xn-- form everywhere (RFC 5890, RFC 6531): SMTP
// recipients in either form (the Unicode one with SMTPUTF8) reach one
// mailbox, once per transaction; submission and IMAP log in with either
// form; the CLI finds the account by either.
func TestInternationalisedDomain(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.OK("domain", "add", "ПРИМЕР.РФ")
	if out := e.OK("domain", "list"); !strings.Contains(out, "xn--e1afmkfd.xn--p1ai (пример.рф)") {
		t.Fatalf("domain list:\n%s\nwant the A-label form", out)
	}
	e.OKIn(password+"\n", "user", "add", "alice@пример.рф", "--phone", "+77010000042", "--password-stdin")
	e.OK("user", "show", "alice@xn--e1afmkfd.xn--p1ai")
	s := e.start()

	c := dial(t, s.smtp)
	c.ehlo()
	c.expect("MAIL FROM:<отправитель@example.com> SMTPUTF8", 250, "2.1.0")
	c.expect("RCPT TO:<alice@пример.рф>", 250, "2.1.5")
	c.expect("RCPT TO:<Alice@XN--E1AFMKFD.XN--P1AI>", 250, "2.1.5")
	c.expect("DATA", 354, "")
	c.send(message("sender@example.com", "alice@пример.рф", "idn", "one letter, two spellings") + ".\r\n")
	c.want("DATA", 250, "2.0.0")
	c.expect("MAIL FROM:<sender@example.com>", 250, "2.1.0")
	c.expect("RCPT TO:<alice@xn--e1afmkfd.xn--p1ai>", 250, "2.1.5")
	c.expect("DATA", 354, "")
	c.send(message("sender@example.com", "alice@xn--e1afmkfd.xn--p1ai", "ascii", "the A-label form") + ".\r\n")
	c.want("DATA", 250, "2.0.0")
	e.wantMessages("alice@пример.рф", 2)
	// Each delivery's log line names its recipients (as stored) and its
	// Message-ID.
	var logged int
	for _, r := range s.Log.Records() {
		if r["msg"] != "delivered" {
			continue
		}
		to, _ := r["to"].([]any)
		id, _ := r["message_id"].(string)
		if len(to) != 1 || to[0] != "alice@xn--e1afmkfd.xn--p1ai" || !strings.HasSuffix(id, ".test@client.test") {
			t.Errorf("delivered line: to %v, message_id %q", r["to"], id)
		}
		logged++
	}
	if logged != 2 {
		t.Errorf("%d delivered lines, want 2", logged)
	}

	for _, user := range []string{"alice@пример.рф", "alice@xn--e1afmkfd.xn--p1ai"} {
		sub := dialTLS(t, s.subs)
		sub.ehlo()
		if r := sub.authPlain(user, password); r.code != 235 {
			t.Errorf("submission AUTH as %s: %q", user, r)
		}
		sub.expect("MAIL FROM:<alice@пример.рф> SMTPUTF8", 250, "2.1.0")
		sub.expect("QUIT", 221, "")
		if code, err := imapLoginFrom(t, s.imaps, "127.0.0.1", user, password); err != nil {
			t.Errorf("IMAP login as %s: %v (%s)", user, err, code)
		}
	}
}
