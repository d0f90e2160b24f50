package smtpd_test

import (
	"strings"
	"testing"
)

// TestTrustedSenderContentRules: a trusted sender (here a billing
// system) is above the spam score but not above the content rules: an
// executable attachment and the GTUBE pattern are refused 550 5.7.1
// with the reason, as from anyone; a letter that merely scores high is
// still delivered, to INBOX.
func TestTrustedSenderContentRules(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	to := e.addUser("payer")
	e.addSender("utility", "billing", "bills@utility.kz")
	s := e.start()
	exe := b64("MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + strings.Repeat("\x00", 48))
	refused := []struct{ name, msg, reason string }{
		{"executable attachment", crlf("From: <bills@utility.kz>\nTo: <" + to + ">\nSubject: Your bill\nDate: Mon, 02 Jan 2006 15:04:05 +0000\nMessage-ID: <exe.1@utility.kz>\n" +
			"MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"b\"\n\n--b\nContent-Type: text/plain\n\nSee the attachment.\n--b\n" +
			"Content-Type: application/octet-stream; name=\"bill.pdf\"\nContent-Disposition: attachment; filename=\"bill.pdf\"\nContent-Transfer-Encoding: base64\n\n" + exe + "\n--b--\n"), "executable"},
		{"GTUBE", message("bills@utility.kz", to, "Your bill", "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"), "GTUBE"},
	}
	for _, tc := range refused {
		c := submissionSession(t, s, "utility")
		c.expect("MAIL FROM:<bills@utility.kz>", 250, "2.1.0")
		c.expect("RCPT TO:<"+to+">", 250, "2.1.5")
		c.expect("DATA", 354, "")
		c.send(dotStuff(tc.msg) + ".\r\n")
		if r := c.read(); r.code != 550 || r.enh() != "5.7.1" || !strings.Contains(r.text(), tc.reason) {
			t.Errorf("PRODUCT BUG: %s from a billing sender: %q, want 550 5.7.1 naming %q", tc.name, r, tc.reason)
		}
		c.expect("QUIT", 221, "")
	}
	// A display name showing another address (4) and a multipart
	// without a boundary (2): a junk score the sender's trust relaxes.
	high := crlf("From: \"support@bank.kz\" <bills@utility.kz>\nTo: <" + to + ">\nSubject: Your bill\n" +
		"MIME-Version: 1.0\nContent-Type: multipart/mixed\n\nAmount due: 100.\n")
	c := submissionSession(t, s, "utility")
	c.deliver("bills@utility.kz", []string{to}, high)
	c.expect("QUIT", 221, "")
	m := e.onlyMessage(to)
	for _, f := range m.Flags {
		if f == "$Junk" {
			t.Errorf("a trusted sender's high-scoring letter was filed as junk: flags %q", m.Flags)
		}
	}
}
