package main

import (
	"testing"
	"time"

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
