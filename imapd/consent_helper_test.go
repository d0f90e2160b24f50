package imapd_test

import (
	"testing"
	"time"

	"abox/consent/consenttest"
)

// signedConsent configures a test national CA for e's data directory
// (call it before start) and returns a CMS file in which addr's
// subscriber signs the consent statement now (docs/CONSENT.md).
func signedConsent(t *testing.T, e *env, addr string) string {
	t.Helper()
	now := time.Now()
	pki, err := consenttest.Configure(e.Dir, t.TempDir(), now)
	if err != nil {
		t.Fatal(err)
	}
	var u struct {
		ID uint64 `json:"id"`
	}
	e.JSON(&u, "user", "show", addr)
	f, _, err := pki.Consent(addr, u.ID, now, now.Add(-time.Hour), now.Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return f
}
