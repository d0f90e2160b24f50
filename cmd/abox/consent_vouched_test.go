package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"abox/consent/consenttest"
)

// TestConsentVouchedWithoutAnchors: with no trust anchors configured
// (the embedded default), consent works as the first contract has it:
// the operator vouches for a bare X.509 certificate within its dates,
// and official letters reach that account; an expired certificate is
// refused. Once the operator configures the national CA, such a consent
// is no longer in force (unverified consent is not consent) and the
// letter is refused with SPEC's 550 5.7.1.
func TestConsentVouchedWithoutAnchors(t *testing.T) {
	t.Parallel()
	a := newAbox(t)
	fastHashing(t, a.Dir)
	now := time.Now()
	a.OK("domain", "add", testDomain)
	a.OKIn(egovPassword+"\n", "sender", "add", "egov", "--kind", "official", "--from", "notices@egov.kz", "--password-stdin")
	alice := a.addUser("alice").Address
	bob := a.addUser("bob").Address

	// A self-signed certificate as an operator might have been given.
	pki, err := consenttest.NewPKI("SOME CA", now)
	if err != nil {
		t.Fatal(err)
	}
	good, err := pki.SelfSigned("Alice", consenttest.IIN(1), now)
	if err != nil {
		t.Fatal(err)
	}
	expired, err := pki.Subscriber("Bob", consenttest.IIN(2), now.AddDate(-2, 0, 0), now.AddDate(-1, 0, 0))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	a.OK("user", "consent", alice, "--certificate", writeFile(t, dir, "alice.pem", consenttest.CertPEM(good.Cert)))
	if r := a.Fail(1, "user", "consent", bob, "--certificate", writeFile(t, dir, "bob.pem", consenttest.CertPEM(expired.Cert))); !strings.Contains(r.Stderr, "expired") {
		t.Errorf("an expired certificate: %v", r)
	}
	u := a.showUserRaw(alice)
	if st, _ := u["consent_status"].(string); st != "in-force" {
		t.Errorf("vouched consent: status %q, want in-force", st)
	}
	if c, _ := u["consent"].(map[string]any); c == nil || c["vouched"] != true {
		t.Errorf("vouched consent record: %v", u["consent"])
	}

	send := func(id string) (int, string) {
		a.srv = a.Start()
		defer func() { a.srv.Stop(); a.srv = nil }()
		c := submitter(t, a.srv.Addr("submission"), "egov", egovPassword)
		defer c.Close()
		if err := c.Mail("notices@egov.kz"); err != nil {
			t.Fatal(err)
		}
		code, text := smtpCode(c.Rcpt(alice))
		if code == 0 {
			sendData(t, c, "From: notices@egov.kz\nTo: "+alice+"\nSubject: Notice\nDate: "+now.Format(time.RFC1123Z)+"\nMessage-ID: <"+id+"@egov.kz>\n\nThe text.\n")
		}
		c.Quit()
		return code, text
	}
	if code, text := send("v-1"); code != 0 {
		t.Errorf("official letter to a vouched account: %d %s, want accepted", code, text)
	}

	// The operator configures the national CA: vouching ends.
	cfg, _ := os.ReadFile(filepath.Join(a.Dir, ConfigFileName))
	if _, err := consenttest.Configure(a.Dir, t.TempDir(), now); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.ReadFile(filepath.Join(a.Dir, ConfigFileName)); len(after) <= len(cfg) {
		t.Fatal("consenttest.Configure wrote no anchors into abox.toml")
	}
	if st, _ := a.showUserRaw(alice)["consent_status"].(string); !strings.HasPrefix(st, "consent-unverified") {
		t.Errorf("vouched consent after anchors were configured: %q, want consent-unverified", st)
	}
	if code, text := send("v-2"); code != 550 || !strings.HasPrefix(text, "5.7.1 ") {
		t.Errorf("official letter after anchors were configured: %d %q, want 550 5.7.1", code, text)
	}
	if r := a.Fail(1, "user", "consent", bob, "--certificate", writeFile(t, dir, "alice2.pem", consenttest.CertPEM(good.Cert))); !strings.Contains(r.Stderr, "not a signed consent") {
		t.Errorf("a bare certificate with anchors configured: %v", r)
	}
}
