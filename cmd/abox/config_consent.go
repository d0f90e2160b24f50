package main

import (
	"fmt"

	"abox/consent"
)

// validateConsent checks the consent settings, reading the trust
// anchors so a bad file is reported by the first command, not at the
// first official letter.
func (c *Config) validateConsent() error {
	for key, v := range map[string]string{"consent-crl-recheck": c.ConsentCRLRecheck, "consent-max-age": c.ConsentMaxAge} {
		if d, err := parseDuration(v); err != nil || d < 0 {
			return fmt.Errorf("config: %s: %q is not a duration", key, v)
		}
	}
	if len(c.ConsentAnchors) > 0 && c.ConsentCRLDir == "" {
		return fmt.Errorf("config: consent-trust-anchors is set without consent-crl-dir: revocation could never be checked")
	}
	if _, err := c.consentVerifier(); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	return nil
}

// consentVerifier builds the consent verifier from the settings.
func (c *Config) consentVerifier() (*consent.Verifier, error) {
	recheck, _ := parseDuration(c.ConsentCRLRecheck)
	maxAge, _ := parseDuration(c.ConsentMaxAge)
	return consent.New(consent.Config{Anchors: c.ConsentAnchors, CRLDir: c.ConsentCRLDir, CRLRecheck: recheck, MaxStatementAge: maxAge,
		OCSP: c.ConsentOCSP, OCSPURL: c.ConsentOCSPURL})
}
