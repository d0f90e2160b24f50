package main

import (
	"bytes"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"abox/cmd/abox/aboxtest"
	"abox/consent/consenttest"
)

// configureConsent makes a test national CA for a's data directory
// (anchors, CRLs, settings in abox.toml).
func configureConsent(t *testing.T, a *abox, now time.Time) *consenttest.Setup {
	t.Helper()
	s, err := consenttest.Configure(a.Dir, t.TempDir(), now)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// accountID is the stable id `user show --json` gives.
func (a *abox) accountID(address string) uint64 {
	a.t.Helper()
	var u struct {
		ID uint64 `json:"id"`
	}
	a.JSON(&u, "user", "show", address)
	if u.ID == 0 {
		a.t.Fatalf("user show %s: no id", address)
	}
	return u.ID
}

// consentFile is a CMS file with a fresh subscriber certificate (valid
// a year around now) signing address's statement now.
func (a *abox) consentFile(s *consenttest.Setup, address string, now time.Time) (string, consenttest.CA) {
	a.t.Helper()
	f, sub, err := s.Consent(address, a.accountID(address), now, now.AddDate(0, 0, -1), now.AddDate(1, 0, 0))
	if err != nil {
		a.t.Fatal(err)
	}
	return f, sub
}

// sign signs the statement for (address, id) dated at with who's key.
func signFile(t *testing.T, dir, name string, who consenttest.CA, stmt []byte, extra ...*x509.Certificate) string {
	t.Helper()
	der, err := consenttest.Sign(who, stmt, extra...)
	if err != nil {
		t.Fatal(err)
	}
	return writeFile(t, dir, name, der)
}

// TestConsentCLI: `user consent` through the real binary records only a
// verified signature and says, in one line, why it refuses the others:
// self-signed, another CA, expired, not yet valid, revoked, signed for
// another account, tampered, a bare certificate, an IIN already bound
// (unless --share-iin); --export gives back the stored signature; a
// purge releases the IIN.
func TestConsentCLI(t *testing.T) {
	t.Parallel()
	a := newAbox(t)
	fastHashing(t, a.Dir)
	now := time.Now()
	pki := configureConsent(t, a, now)
	a.OK("domain", "add", testDomain)
	for _, l := range []string{"alice", "bob", "carol", "dave"} {
		a.addUser(l)
	}
	alice, bob, carol, dave := "alice@"+testDomain, "bob@"+testDomain, "carol@"+testDomain, "dave@"+testDomain
	aliceID := a.accountID(alice)
	dir := t.TempDir()
	stmt := consenttest.Statement(alice, aliceID, now)
	yearAround := func(name, iin string) consenttest.CA {
		c, err := pki.Subscriber(name, iin, now.AddDate(0, 0, -1), now.AddDate(1, 0, 0))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	iinA, iinC := consenttest.IIN(100), consenttest.IIN(200)
	self, err := pki.SelfSigned("ALICE SELF", iinA, now)
	if err != nil {
		t.Fatal(err)
	}
	other, err := consenttest.NewPKI("OTHER CA", now)
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := other.Subscriber("ALICE ELSEWHERE", iinA, now.AddDate(0, 0, -1), now.AddDate(1, 0, 0))
	if err != nil {
		t.Fatal(err)
	}
	expired, err := pki.Subscriber("ALICE OLD", iinA, now.AddDate(-2, 0, 0), now.AddDate(0, 0, -1))
	if err != nil {
		t.Fatal(err)
	}
	future, err := pki.Subscriber("ALICE NEXT", iinA, now.AddDate(0, 0, 1), now.AddDate(2, 0, 0))
	if err != nil {
		t.Fatal(err)
	}
	lost := yearAround("ALICE LOST", iinA)
	if err := pki.Revoke(now.Add(-time.Minute), lost.Cert); err != nil {
		t.Fatal(err)
	}
	good := yearAround("ALICE", iinA)
	goodFile := signFile(t, dir, "good.p7s", good, stmt)
	tampered, err := os.ReadFile(goodFile)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(tampered, []byte(`"clause":"3.2"`))
	if i < 0 {
		t.Fatal("statement not in the CMS object")
	}
	tampered[i+len(`"clause":"3.`)] = '3'

	for _, tc := range []struct{ name, file, want string }{
		{"self-signed", signFile(t, dir, "self.p7s", self, stmt), "does not chain"},
		{"wrong chain", signFile(t, dir, "foreign.p7s", foreign, stmt, other.Inter.Cert), "does not chain"},
		{"expired", signFile(t, dir, "expired.p7s", expired, consenttest.Statement(alice, aliceID, now.AddDate(0, 0, -2))), "expired"},
		{"not yet valid", signFile(t, dir, "future.p7s", future, stmt), "not yet valid"},
		{"revoked", signFile(t, dir, "lost.p7s", lost, stmt), "revoked"},
		{"another account", signFile(t, dir, "bob.p7s", good, consenttest.Statement(bob, a.accountID(bob), now)), "names another account"},
		{"tampered", writeFile(t, dir, "tampered.p7s", tampered), "does not verify"},
		{"bare certificate", writeFile(t, dir, "good.pem", consenttest.CertPEM(good.Cert)), "not a signed consent"},
	} {
		r := a.Fail(1, "user", "consent", alice, "--cms", tc.file)
		if !strings.Contains(r.Stderr, tc.want) {
			t.Errorf("%s: want a line saying %q; %v", tc.name, tc.want, r)
		}
		aboxtest.CheckOneLineError(t, r)
	}
	if u := a.showUserRaw(alice); u["consent"] != nil {
		t.Fatalf("refused consents recorded one: %v", u["consent"])
	}

	a.OK("user", "consent", alice, "--certificate", goodFile)
	u := a.showUserRaw(alice)
	c, _ := u["consent"].(map[string]any)
	if c == nil || c["iin"] != iinA || c["verified"] != true || u["consent_status"] != "in-force" {
		t.Fatalf("user show after a good consent: %v", u)
	}
	if show := a.OK("user", "show", alice); !strings.Contains(show, "consent status:") || !strings.Contains(show, "in-force") {
		t.Errorf("user show does not say the consent is in force:\n%s", show)
	} else {
		t.Logf("user show:\n%s", show)
	}
	out := filepath.Join(dir, "exported.p7s")
	a.OK("user", "consent", alice, "--export", out)
	if got, want := mustRead(t, out), mustRead(t, goodFile); !bytes.Equal(got, want) {
		t.Errorf("exported CMS (%d bytes) differs from the one recorded (%d bytes)", len(got), len(want))
	}

	// One IIN, one account: bob signing with alice's IIN is refused,
	// unless the operator says so.
	bobFile := signFile(t, dir, "bob-iin-a.p7s", yearAround("BOB AS ALICE", iinA), consenttest.Statement(bob, a.accountID(bob), now))
	if r := a.Fail(1, "user", "consent", bob, "--cms", bobFile); !strings.Contains(r.Stderr, "bound to "+alice) {
		t.Errorf("duplicate IIN: want a line naming alice; %v", r)
	}
	a.OK("user", "consent", bob, "--cms", bobFile, "--share-iin")

	// A purge releases the binding.
	carolFile := signFile(t, dir, "carol.p7s", yearAround("CAROL", iinC), consenttest.Statement(carol, a.accountID(carol), now))
	a.OK("user", "consent", carol, "--cms", carolFile)
	daveFile := signFile(t, dir, "dave.p7s", yearAround("DAVE AS CAROL", iinC), consenttest.Statement(dave, a.accountID(dave), now))
	a.Fail(1, "user", "consent", dave, "--cms", daveFile)
	a.OK("user", "delete", carol)
	a.Fail(1, "user", "consent", dave, "--cms", daveFile) // pending deletion still holds it
	a.OK("policy", "run", "--at", now.AddDate(0, 0, 40).UTC().Format(time.RFC3339))
	if st := a.showUserRaw(carol)["state"]; st != "purged" {
		t.Fatalf("carol is %v after the sweep, want purged", st)
	}
	a.OK("user", "consent", dave, "--cms", daveFile)

	// Withdrawal.
	a.OK("user", "consent", alice, "--revoke")
	if u := a.showUserRaw(alice); u["consent"] != nil {
		t.Errorf("consent still on record after --revoke: %v", u)
	}
	a.Fail(2, "user", "consent", alice, "--cms", goodFile, "--revoke")
	a.Fail(2, "user", "consent", alice)
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
