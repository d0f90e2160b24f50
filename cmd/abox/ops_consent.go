package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"abox/accounts"
	"abox/consent"
)

// consentArgs: `user consent`. Certificate is the SPEC flag's file; it
// is accepted when it holds a CMS signature (a bare certificate is not a
// signed consent, and is refused with that explanation).
type consentArgs struct {
	Address     string `json:"address"`
	Certificate []byte `json:"certificate,omitempty"`
	CMS         []byte `json:"cms,omitempty"`
	Content     []byte `json:"content,omitempty"` // the statement of a detached signature
	ShareIIN    bool   `json:"share_iin,omitempty"`
	Revoke      bool   `json:"revoke,omitempty"`
}

type consentExport struct {
	Address string           `json:"address"`
	Consent accounts.Consent `json:"consent"`
	CMS     []byte           `json:"cms"` // DER, exactly as verified
}

// errBareCertificate explains why a bare certificate records no consent
// once trust anchors are configured.
const errBareCertificate = "a certificate alone is not a signed consent (user agreement 3.2), and trust anchors are configured: " +
	"give the CMS signature the subscriber made over the consent statement (--cms FILE; docs/CONSENT.md)"

func init() {
	register("user.consent", userConsent)
	register("user.consent.export", func(ctx context.Context, e *env, a addressArgs) (consentExport, error) {
		addr, err := normalizeAddress(a.Address)
		if err != nil {
			return consentExport{}, err
		}
		acct, err := e.store.Account(addr)
		if err != nil {
			return consentExport{}, err
		}
		if acct.Consent == nil || !acct.Consent.Verified {
			return consentExport{}, fmt.Errorf("%s has no signed consent on record", addr)
		}
		cms, err := e.store.ConsentCMS(acct.ID, acct.Consent.RecordedAt.UnixNano())
		if err != nil {
			return consentExport{}, err
		}
		if err := e.auditRead(ctx, "user.consent.export", addr); err != nil {
			return consentExport{}, err
		}
		return consentExport{Address: addr, Consent: *acct.Consent, CMS: cms}, nil
	})
}

func userConsent(ctx context.Context, e *env, a consentArgs) (userView, error) {
	if a.Revoke {
		return e.updateUserAt(ctx, a.Address, "user.consent.revoke", e.audit("consent revoked"), func(x *accounts.Account) error {
			if x.Consent == nil {
				return fmt.Errorf("%s has no consent on record", x.Address())
			}
			x.Consent = nil
			return nil
		})
	}
	raw := a.CMS
	if raw == nil {
		raw = a.Certificate
	}
	addr, err := normalizeAddress(a.Address)
	if err != nil {
		return userView{}, err
	}
	acct, err := e.store.Account(addr)
	if err != nil {
		return userView{}, err
	}
	if acct.State == accounts.Purged {
		return userView{}, fmt.Errorf("account %s is purged", addr)
	}
	v, err := e.consent()
	if err != nil {
		return userView{}, err
	}
	if consent.IsCertificate(raw) {
		if !v.Vouching() {
			return userView{}, fmt.Errorf("%s", errBareCertificate)
		}
		// No trust anchors: the operator vouches for the certificate.
		c, err := v.Vouch(raw, e.now())
		if err != nil {
			return userView{}, fmt.Errorf("consent for %s refused: %w", addr, err)
		}
		// The audit log outlives the account: fingerprints only, never
		// the certificate's name or IIN (those go at purge, issue 16).
		why := fmt.Sprintf("operator-vouched consent (no trust anchors configured): certificate %s", c.SHA256)
		out, err := e.store.RecordConsent(ctx, addr, acct.ID, c, nil, a.ShareIIN, e.audit(why))
		if err != nil {
			return userView{}, err
		}
		return e.view(&out, true)
	}
	c, der, err := v.Verify(raw, a.Content, consent.Account{Address: addr, ID: acct.ID}, e.now())
	if err != nil {
		return userView{}, fmt.Errorf("consent for %s refused: %w", addr, err)
	}
	why := fmt.Sprintf("signed consent: certificate %s, CMS %s", c.SHA256, c.CMSSHA256)
	if a.ShareIIN {
		why += "; IIN shared on the operator's word"
	}
	out, err := e.store.RecordConsent(ctx, addr, acct.ID, c, der, a.ShareIIN, e.audit(why))
	if err != nil {
		return userView{}, err
	}
	return e.view(&out, true)
}

// consentStatus says whether a consent is in force now, for `user show`.
func (e *env) consentStatus(c *accounts.Consent) string {
	if c == nil {
		return ""
	}
	v, err := e.consent()
	if err != nil {
		return "unknown: " + err.Error()
	}
	if err := v.InForce(c, e.now()); err != nil {
		return consent.Reason(err) + ": " + err.Error()
	}
	return "in-force"
}

// logConsentSetup tells the operator at start what consent verification
// rests on, and what it cannot use.
func logConsentSetup(log *slog.Logger, cfg *Config, v *consent.Verifier, now time.Time) {
	if len(cfg.ConsentAnchors) == 0 {
		log.Warn("no consent-trust-anchors configured: consent is operator-vouched (a bare certificate within its dates is recorded as consent, nothing is verified); configure the national CA for verified consent (docs/CONSENT.md)")
		return
	}
	log.Info("consent verification", "anchors", strings.Join(cfg.ConsentAnchors, ","), "crl_dir", cfg.ConsentCRLDir)
	for _, p := range v.CRLProblems(now) {
		log.Warn("consent CRL ignored", "problem", p)
	}
}

// reloadConsentOnHUP re-reads the consent CRL directory on every SIGHUP
// until ctx ends (the directory is also looked at every
// consent-crl-recheck; SIGHUP is for an operator who will not wait).
// The handler is in place when it returns, so a SIGHUP right after
// `ready` cannot kill the server.
func reloadConsentOnHUP(ctx context.Context, log *slog.Logger, v *consent.Verifier, now func() time.Time) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				problems := v.Reload(now())
				log.Info("consent CRLs reloaded", "ignored", len(problems))
				for _, p := range problems {
					log.Warn("consent CRL ignored", "problem", p)
				}
			}
		}
	}()
}
