package consent_test

import (
	"crypto"
	"errors"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"abox/consent"
	"abox/consent/consenttest"
)

// TestOCSP: with OCSP configured, a consent is recorded only when the
// signer's certificate is good according to a responder answering over
// a real socket with an answer the issuer signed: revoked, unknown,
// signed by another key, expired, about another certificate, or no
// answer at all are each refused with the reason; without OCSP the
// responder is never asked.
func TestOCSP(t *testing.T) {
	f := newFixture(t)
	alice := consent.Account{Address: "alice@post.kz", ID: 7}
	good := sign(t, f.alice, consenttest.Statement(alice.Address, alice.ID, now.Add(-time.Hour)))

	type answer struct {
		status     int
		signer     consenttest.CA
		serial     *big.Int
		nextUpdate time.Time
		broken     bool
	}
	var current atomic.Pointer[answer]
	var asked atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		body, _ := io.ReadAll(r.Body)
		req, err := ocsp.ParseRequest(body)
		a := current.Load()
		if err != nil || a.broken {
			http.Error(w, "no", http.StatusInternalServerError)
			return
		}
		serial := req.SerialNumber
		if a.serial != nil {
			serial = a.serial
		}
		tmpl := ocsp.Response{Status: a.status, SerialNumber: serial, ThisUpdate: now.Add(-time.Hour), NextUpdate: a.nextUpdate,
			RevokedAt: now.Add(-2 * time.Hour), RevocationReason: ocsp.KeyCompromise}
		der, err := ocsp.CreateResponse(f.pki.Inter.Cert, a.signer.Cert, tmpl, a.signer.Key.(crypto.Signer))
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/ocsp-response")
		w.Write(der)
	}))
	defer srv.Close()

	v, err := consent.New(consent.Config{Anchors: []string{f.anchors}, CRLDir: f.crlDir, MaxStatementAge: 30 * 24 * time.Hour,
		OCSP: true, OCSPURL: srv.URL, OCSPTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	week := now.AddDate(0, 0, 7)
	for _, tc := range []struct {
		name string
		a    answer
		want error
	}{
		{"good", answer{status: ocsp.Good, signer: f.pki.Inter, nextUpdate: week}, nil},
		{"revoked since the last CRL", answer{status: ocsp.Revoked, signer: f.pki.Inter, nextUpdate: week}, consent.ErrRevoked},
		{"unknown to the responder", answer{status: ocsp.Unknown, signer: f.pki.Inter, nextUpdate: week}, consent.ErrRevocationUnknown},
		{"signed by another CA", answer{status: ocsp.Good, signer: f.foreignPKI.Inter, nextUpdate: week}, consent.ErrRevocationUnknown},
		{"expired answer", answer{status: ocsp.Good, signer: f.pki.Inter, nextUpdate: now.Add(-time.Minute)}, consent.ErrRevocationUnknown},
		{"about another certificate", answer{status: ocsp.Good, signer: f.pki.Inter, nextUpdate: week, serial: big.NewInt(424242)}, consent.ErrRevocationUnknown},
		{"responder failing", answer{broken: true}, consent.ErrRevocationUnknown},
	} {
		a := tc.a
		current.Store(&a)
		c, _, err := v.Verify(good, nil, alice, now)
		switch {
		case tc.want == nil && (err != nil || c == nil || !c.OCSPAt.Equal(now)):
			t.Errorf("%s: %v (%+v), want recorded with its OCSP time", tc.name, err, c)
		case tc.want != nil && !errorsIs(err, tc.want):
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		default:
			t.Logf("%s: %v", tc.name, err)
		}
	}
	// A responder that does not answer at all.
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close()
	v2, _ := consent.New(consent.Config{Anchors: []string{f.anchors}, CRLDir: f.crlDir, OCSP: true, OCSPURL: deadURL, OCSPTimeout: 2 * time.Second})
	if _, _, err := v2.Verify(good, nil, alice, now); !errorsIs(err, consent.ErrRevocationUnknown) {
		t.Errorf("no responder: %v", err)
	}
	// Without OCSP configured, nobody is asked.
	before := asked.Load()
	if _, _, err := f.verifier(t).Verify(good, nil, alice, now); err != nil {
		t.Fatal(err)
	}
	if asked.Load() != before {
		t.Error("the responder was asked although OCSP is not configured")
	}
}

func errorsIs(err, target error) bool { return errors.Is(err, target) }
