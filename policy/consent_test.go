package policy

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"abox/accounts"
	"abox/consent"
	"abox/consent/consenttest"
	"abox/store"
)

// TestConsentInForceAtRCPT: an official recipient's consent is checked
// at each RCPT against the clock: in force, then revoked by a new CRL,
// then (on a fresh verifier with the old CRL) stale CRL, then expired;
// each refusal keeps ErrNoConsent (550 5.7.1) and names its code.
func TestConsentInForceAtRCPT(t *testing.T) {
	e, st, clk := lifecycleEnv(t)
	// The signature's signing-time attribute is the real time.
	clk.Set(time.Now())
	now := clk.Now()
	pki, err := consenttest.NewPKI("TEST NCA", now)
	if err != nil {
		t.Fatal(err)
	}
	anchors, crlDir, err := pki.Files(t.TempDir(), now)
	if err != nil {
		t.Fatal(err)
	}
	// The CRL is good for a week.
	crl, err := pki.CRL(2, now.Add(-time.Hour), now.AddDate(0, 0, 7))
	if err != nil {
		t.Fatal(err)
	}
	// Each CRL goes under a new name: a same-size file rewritten within
	// the file system's timestamp granularity would look unchanged.
	n := 0
	putCRL := func(pem []byte) {
		t.Helper()
		os.Remove(filepath.Join(crlDir, fmtCRL(n)))
		n++
		if err := os.WriteFile(filepath.Join(crlDir, fmtCRL(n)), pem, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.Remove(filepath.Join(crlDir, "inter.crl"))
	putCRL(crl)
	v, err := consent.New(consent.Config{Anchors: []string{anchors}, CRLDir: crlDir})
	if err != nil {
		t.Fatal(err)
	}
	e.cfg.Consent = v
	acct := mustAccount(t, st, "alice")
	iin := consenttest.IIN(1)
	sub, err := pki.Subscriber("ALICE", iin, now.AddDate(0, 0, -1), now.AddDate(0, 0, 3))
	if err != nil {
		t.Fatal(err)
	}
	der, err := consenttest.Sign(sub, consenttest.Statement(acct.Address(), acct.ID, now))
	if err != nil {
		t.Fatal(err)
	}
	c, cms, err := v.Verify(der, nil, consent.Account{Address: acct.Address(), ID: acct.ID}, now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.RecordConsent(ctx, acct.Address(), acct.ID, c, cms, false, store.Audit{Actor: store.ActorOperator}); err != nil {
		t.Fatal(err)
	}
	check := func(name, want string) {
		t.Helper()
		_, err := e.CheckRecipient(acct.Address(), RcptOptions{Official: true})
		switch {
		case want == "" && err != nil:
			t.Errorf("%s: %v, want accepted", name, err)
		case want != "" && (!errors.Is(err, ErrNoConsent) || ConsentCode(err) != want):
			t.Errorf("%s: %v (code %q), want ErrNoConsent %s", name, err, ConsentCode(err), want)
		case want != "" && (strings.Contains(err.Error(), iin) || strings.Contains(err.Error(), ".crl")):
			t.Errorf("%s: the reply to the sender names the subscriber's IIN or the operator's files: %v", name, err)
		}
	}
	check("in force", "")
	clk.Set(now.AddDate(0, 0, 4))
	check("certificate expired", "consent-expired")
	clk.Set(now.Add(time.Hour))
	revoking, err := pki.CRL(3, now, now.AddDate(0, 0, 7), sub.Cert)
	if err != nil {
		t.Fatal(err)
	}
	putCRL(revoking)
	check("revoked", "consent-revoked")
	putCRL(crl)
	check("revocation lifted by the operator's older CRL file", "")
	clk.Set(now.AddDate(0, 0, 2))
	stale, err := pki.CRL(4, now.AddDate(0, 0, -2), now.AddDate(0, 0, 1))
	if err != nil {
		t.Fatal(err)
	}
	putCRL(stale)
	check("CRL past its next update", "consent-status-unknown")
	e.cfg.Consent = nil
	clk.Set(now.Add(time.Hour))
	check("no checker configured", "no-consent")
	var none accounts.Account = mustAccount(t, st, "bob")
	if _, err := e.CheckRecipient(none.Address(), RcptOptions{Official: true}); ConsentCode(err) != "no-consent" {
		t.Errorf("no consent: %v", err)
	}
}

func fmtCRL(n int) string { return "inter-" + string(rune('a'+n)) + ".crl" }

func mustAccount(t *testing.T, st *store.Store, login string) accounts.Account {
	t.Helper()
	a, err := st.CreateAccount(ctx, accounts.Account{Login: login, Domain: "example.kz", Phone: "+77010000000", PasswordHash: "x"}, store.Audit{Actor: store.ActorOperator})
	if err != nil {
		t.Fatal(err)
	}
	return a
}
