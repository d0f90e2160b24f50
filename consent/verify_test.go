package consent_test

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/smallstep/pkcs7"

	"abox/consent"
	"abox/consent/consenttest"
)

var now = time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)

type fixture struct {
	pki              *consenttest.PKI
	anchors, crlDir  string
	alice, expired   consenttest.CA
	future, revoked  consenttest.CA
	self, foreign    consenttest.CA
	foreignPKI       *consenttest.PKI
	aliceIIN, bobIIN string
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	f := &fixture{aliceIIN: consenttest.IIN(1), bobIIN: consenttest.IIN(2)}
	var err error
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	f.pki, err = consenttest.NewPKI("TEST NCA", now)
	must(err)
	f.foreignPKI, err = consenttest.NewPKI("OTHER CA", now)
	must(err)
	f.anchors, f.crlDir, err = f.pki.Files(t.TempDir(), now)
	must(err)
	f.alice, err = f.pki.Subscriber("ALICE", f.aliceIIN, now.AddDate(-1, 0, 0), now.AddDate(1, 0, 0))
	must(err)
	f.expired, err = f.pki.Subscriber("ALICE OLD", f.aliceIIN, now.AddDate(-2, 0, 0), now.AddDate(0, 0, -1))
	must(err)
	f.future, err = f.pki.Subscriber("ALICE NEXT", f.aliceIIN, now.AddDate(0, 0, 1), now.AddDate(2, 0, 0))
	must(err)
	f.revoked, err = f.pki.Subscriber("ALICE LOST", f.aliceIIN, now.AddDate(-1, 0, 0), now.AddDate(1, 0, 0))
	must(err)
	f.self, err = f.pki.SelfSigned("ALICE SELF", f.aliceIIN, now)
	must(err)
	f.foreign, err = f.foreignPKI.Subscriber("ALICE ELSEWHERE", f.aliceIIN, now.AddDate(-1, 0, 0), now.AddDate(1, 0, 0))
	must(err)
	crl, err := f.pki.CRL(2, now.AddDate(0, 0, -1), now.AddDate(0, 0, 7), f.revoked.Cert)
	must(err)
	must(os.WriteFile(filepath.Join(f.crlDir, "inter.crl"), crl, 0o644))
	return f
}

func (f *fixture) verifier(t testing.TB) *consent.Verifier {
	t.Helper()
	v, err := consent.New(consent.Config{Anchors: []string{f.anchors}, CRLDir: f.crlDir, MaxStatementAge: 30 * 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func sign(t *testing.T, who consenttest.CA, content []byte, extra ...*x509.Certificate) []byte {
	t.Helper()
	der, err := consenttest.Sign(who, content, extra...)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// TestVerify: every way a consent can be good or bad, through one
// verifier over a PKI made now.
func TestVerify(t *testing.T) {
	f := newFixture(t)
	v := f.verifier(t)
	alice := consent.Account{Address: "alice@post.kz", ID: 7}
	stmt := consenttest.Statement(alice.Address, alice.ID, now.Add(-time.Hour))
	good := sign(t, f.alice, stmt)
	tampered := sign(t, f.alice, stmt)
	if i := indexOf(tampered, []byte("alice@post.kz")); i < 0 {
		t.Fatal("statement not found in the CMS object")
	} else {
		tampered[i] = 'e' // "elice": same length, other account
	}
	pemCMS := pem.EncodeToMemory(&pem.Block{Type: "CMS", Bytes: good})
	b64 := []byte(base64.StdEncoding.EncodeToString(good))
	for _, tc := range []struct {
		name string
		cms  []byte
		want error
	}{
		{"good DER", good, nil},
		{"good PEM", pemCMS, nil},
		{"good base64", b64, nil},
		{"good with intermediate bundled", sign(t, f.alice, stmt, f.pki.Inter.Cert), nil},
		{"self-signed", sign(t, f.self, stmt), consent.ErrChain},
		{"wrong chain", sign(t, f.foreign, stmt, f.foreignPKI.Inter.Cert), consent.ErrChain},
		{"expired", sign(t, f.expired, consenttest.Statement(alice.Address, alice.ID, now.AddDate(0, 0, -2))), consent.ErrExpired},
		{"not yet valid", sign(t, f.future, stmt), consent.ErrNotYetValid},
		{"revoked", sign(t, f.revoked, stmt), consent.ErrRevoked},
		{"statement for another login", sign(t, f.alice, consenttest.Statement("bob@post.kz", alice.ID, now)), consent.ErrWrongAccount},
		{"statement for another account id", sign(t, f.alice, consenttest.Statement(alice.Address, 8, now)), consent.ErrWrongAccount},
		{"statement from the future", sign(t, f.alice, consenttest.Statement(alice.Address, alice.ID, now.Add(time.Hour))), consent.ErrStatement},
		{"statement too old", sign(t, f.alice, consenttest.Statement(alice.Address, alice.ID, now.AddDate(0, -2, 0))), consent.ErrStatement},
		{"not a statement", sign(t, f.alice, []byte("I agree")), consent.ErrStatement},
		{"tampered content", tampered, consent.ErrSignature},
		{"garbage", []byte("not a signature at all"), consent.ErrNotCMS},
		{"bare certificate", consenttest.CertPEM(f.alice.Cert), consent.ErrNotCMS},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, der, err := v.Verify(tc.cms, nil, alice, now)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if !c.Verified || c.IIN != f.aliceIIN || c.SHA256 == "" || len(c.Chain) != 2 || len(der) == 0 {
					t.Errorf("consent %+v (cms %d bytes)", c, len(der))
				}
				if err := v.InForce(c, now); err != nil {
					t.Errorf("InForce right after Verify: %v", err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("Verify: got %v, want %v", err, tc.want)
			}
		})
	}
}

// TestInForce: a recorded consent stops being in force when its
// certificate expires, when a new CRL revokes it, when the CRL is past
// its next update or missing, and when the operator drops its anchor.
func TestInForce(t *testing.T) {
	f := newFixture(t)
	v := f.verifier(t)
	alice := consent.Account{Address: "alice@post.kz", ID: 7}
	c, _, err := v.Verify(sign(t, f.alice, consenttest.Statement(alice.Address, alice.ID, now)), nil, alice, now)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.InForce(c, now.AddDate(0, 0, 1)); err != nil {
		t.Fatalf("tomorrow: %v", err)
	}
	if err := v.InForce(c, now.AddDate(0, 0, 8)); !errors.Is(err, consent.ErrRevocationUnknown) {
		t.Errorf("after the CRL's next update: %v, want ErrRevocationUnknown", err)
	}
	if err := v.InForce(c, now.AddDate(1, 0, 1)); !errors.Is(err, consent.ErrExpired) {
		t.Errorf("after the certificate's end: %v, want ErrExpired", err)
	}
	// The operator drops a new CRL in place: picked up (recheck 0).
	crl, err := f.pki.CRL(3, now, now.AddDate(0, 0, 7), f.alice.Cert)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(f.crlDir, "inter-new.crl"), crl, 0o644); err != nil {
		t.Fatal(err)
	}
	err = v.InForce(c, now.Add(time.Minute))
	if !errors.Is(err, consent.ErrRevoked) || consent.Reason(err) != "consent-revoked" {
		t.Errorf("after the revoking CRL: %v, want ErrRevoked", err)
	}
	// A CRL signed by someone else is ignored, not believed.
	forged, err := f.foreignPKI.CRL(9, now, now.AddDate(0, 0, 7))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(f.crlDir, "forged.crl"), forged, 0o644); err != nil {
		t.Fatal(err)
	}
	if p := v.CRLProblems(now.Add(2 * time.Minute)); len(p) != 1 {
		t.Errorf("CRL problems: %q, want the forged one", p)
	}
	// No CRL at all for the intermediate: status unknown.
	for _, n := range []string{"inter.crl", "inter-new.crl"} {
		if err := os.Remove(filepath.Join(f.crlDir, n)); err != nil {
			t.Fatal(err)
		}
	}
	if err := v.InForce(c, now.Add(3*time.Minute)); !errors.Is(err, consent.ErrRevocationUnknown) {
		t.Errorf("without a CRL: %v, want ErrRevocationUnknown", err)
	}
	// Another operator configuration without this root.
	other, err := consenttest.NewPKI("OTHER", now)
	if err != nil {
		t.Fatal(err)
	}
	anchors, crlDir, err := other.Files(t.TempDir(), now)
	if err != nil {
		t.Fatal(err)
	}
	v2, err := consent.New(consent.Config{Anchors: []string{anchors}, CRLDir: crlDir})
	if err != nil {
		t.Fatal(err)
	}
	if err := v2.InForce(c, now); !errors.Is(err, consent.ErrAnchorDistrusted) {
		t.Errorf("with the anchor gone: %v, want ErrAnchorDistrusted", err)
	}
	unverified := *c
	unverified.Verified = false
	if err := v.InForce(&unverified, now); consent.Reason(err) != "consent-unverified" {
		t.Errorf("unverified consent: %v", err)
	}
}

// TestNoAnchors: without trust anchors nothing is verified.
func TestNoAnchors(t *testing.T) {
	v, err := consent.New(consent.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := v.Verify([]byte("x"), nil, consent.Account{Address: "a@b.kz", ID: 1}, now); !errors.Is(err, consent.ErrNoAnchors) {
		t.Errorf("Verify without anchors: %v", err)
	}
}

// TestIIN: the check digit and the serialNumber form.
func TestIIN(t *testing.T) {
	good := consenttest.IIN(5)
	for _, tc := range []struct {
		serial string
		ok     bool
	}{
		{"IIN" + good, true},
		{good, false},
		{"IIN" + good[:11], false},
		{"IIN" + good[:11] + string(rune('0'+(good[11]-'0'+1)%10)), false},
		{"BIN" + good, false},
		{"IIN12345678901a", false},
	} {
		if _, err := consent.IINFromSerial(tc.serial); (err == nil) != tc.ok {
			t.Errorf("IINFromSerial(%q): %v", tc.serial, err)
		}
	}
}

func indexOf(b, sub []byte) int {
	for i := 0; i+len(sub) <= len(b); i++ {
		if string(b[i:i+len(sub)]) == string(sub) {
			return i
		}
	}
	return -1
}

// TestDetached: a detached signature needs the statement beside it, and
// only the statement that was signed.
func TestDetached(t *testing.T) {
	f := newFixture(t)
	v := f.verifier(t)
	alice := consent.Account{Address: "alice@post.kz", ID: 7}
	stmt := consenttest.Statement(alice.Address, alice.ID, now)
	sd, err := pkcs7.NewSignedData(stmt)
	if err != nil {
		t.Fatal(err)
	}
	sd.SetDigestAlgorithm(pkcs7.OIDDigestAlgorithmSHA256)
	if err := sd.AddSigner(f.alice.Cert, f.alice.Key, pkcs7.SignerInfoConfig{}); err != nil {
		t.Fatal(err)
	}
	sd.Detach()
	der, err := sd.Finish()
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := v.Verify(der, nil, alice, now); !errors.Is(err, consent.ErrStatement) {
		t.Errorf("detached without the statement: %v", err)
	}
	other := consenttest.Statement(alice.Address, alice.ID, now.Add(-time.Minute))
	if _, _, err := v.Verify(der, other, alice, now); !errors.Is(err, consent.ErrSignature) {
		t.Errorf("detached with another statement: %v", err)
	}
	if _, _, err := v.Verify(der, stmt, alice, now); err != nil {
		t.Errorf("detached with its statement: %v", err)
	}
}

// BenchmarkInForce is the check at every official RCPT and broadcast
// account (docs/CONSENT.md): CRL snapshot cached, recheck 10 s.
func BenchmarkInForce(b *testing.B) {
	f := newFixture(b)
	v, err := consent.New(consent.Config{Anchors: []string{f.anchors}, CRLDir: f.crlDir, CRLRecheck: 10 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	alice := consent.Account{Address: "alice@post.kz", ID: 7}
	der, err := consenttest.Sign(f.alice, consenttest.Statement(alice.Address, alice.ID, now))
	if err != nil {
		b.Fatal(err)
	}
	c, _, err := v.Verify(der, nil, alice, now)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := v.InForce(c, now); err != nil {
			b.Fatal(err)
		}
	}
}
