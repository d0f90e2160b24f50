package policy

import (
	"context"
	"errors"
	"time"

	"abox/accounts"
	"abox/store"
)

// ConsentChecker says whether a recorded consent may carry an official
// letter at a given time (package consent's Verifier: chain validity,
// CRLs, trust anchors). Reason gives the evidence log's code for an
// error InForce returned.
type ConsentChecker interface {
	InForce(c *accounts.Consent, at time.Time) error
	Reason(err error) string
}

// errNoChecker: with no checker configured, no consent is in force:
// unverified consent is not consent.
var errNoChecker = errors.New("consent verification is not configured")

// consentInForce decides, at an official delivery, whether addr's
// consent is in force now (user agreement 3.2). The refusal's Code is
// the evidence log's reason; the reply stays SPEC's 550 5.7.1.
func (e *Engine) consentInForce(acct *accounts.Account, addr string) *Refusal {
	if acct.Consent == nil {
		r := refuse(ErrNoConsent, "%s has not confirmed official letters with a digital signature (user agreement 3.2); deliver this letter on paper", addr)
		r.Code = "no-consent"
		return r
	}
	var err error
	code := "no-consent"
	if e.cfg.Consent == nil {
		err = errNoChecker
	} else if err = e.cfg.Consent.InForce(acct.Consent, e.clock()); err != nil {
		code = e.cfg.Consent.Reason(err)
	}
	if err == nil {
		return nil
	}
	// The reply goes to the sender: it says why in words, never the
	// certificate's subject (the subscriber's name and IIN) or the
	// operator's file names; `user show` has the detail.
	r := refuse(ErrNoConsent, "%s has no digital-signature consent in force (%s; user agreement 3.2); deliver this letter on paper", addr, consentWords[code])
	r.Cause, r.Code = err, code
	return r
}

// consentWords says each not-in-force code in the SMTP reply.
var consentWords = map[string]string{
	"no-consent":             "consent cannot be verified here",
	"consent-unverified":     "the consent on record was never verified",
	"consent-expired":        "the consent certificate has expired",
	"consent-revoked":        "the consent certificate has been revoked",
	"consent-status-unknown": "the consent certificate's revocation status is unknown",
	"consent-untrusted":      "the consent certificate's issuer is no longer trusted",
}

// ConsentCode is the evidence log's reason for a refusal for lack of
// consent ("no-consent" when err carries none).
func ConsentCode(err error) string {
	var r *Refusal
	if errors.As(err, &r) && r.Code != "" {
		return r.Code
	}
	return "no-consent"
}

// consentPick is the broadcast's consent check, as the store's skip.
func (e *Engine) consentPick(a *accounts.Account) error {
	if r := e.consentInForce(a, a.Address()); r != nil {
		return store.SkipNoConsent(r.Code)
	}
	return nil
}

// RecordRefusals logs, in the evidence log, the consent refusals of an
// official letter that was delivered to nobody (store.RecordRefusals).
func (e *Engine) RecordRefusals(ctx context.Context, o *store.OfficialLetter) error {
	return e.store.RecordRefusals(ctx, o)
}
