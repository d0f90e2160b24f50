package main

import (
	"crypto/x509"
	"log/slog"
	"strings"
	"time"

	"abox/accounts"
)

// certWarnAhead is how early serve warns of a certificate's expiry.
const certWarnAhead = 14 * 24 * time.Hour

// warnAtStart logs what an operator should fix before clients notice:
// a certificate outside its dates or close to its end, and a postmaster
// setting that names no account (mail for the postmaster would be
// refused).
func warnAtStart(cfg *Config, leaf *x509.Certificate, st Store, now time.Time, log *slog.Logger) {
	if leaf != nil {
		warnCertificate(leaf, now, log)
	}
	if cfg.Postmaster != "" {
		a, err := st.Account(strings.ToLower(cfg.Postmaster))
		if err != nil || a.State != accounts.Active {
			log.Warn("the postmaster setting names no active account: mail for the postmaster will be refused", "postmaster", cfg.Postmaster)
		}
	}
}

// warnCertificate logs a warning for a certificate that has expired, is
// not valid yet, or expires within certWarnAhead.
func warnCertificate(leaf *x509.Certificate, now time.Time, log *slog.Logger) {
	attrs := []any{"subject", leaf.Subject.String(), "not_before", leaf.NotBefore.UTC(), "not_after", leaf.NotAfter.UTC()}
	switch {
	case now.After(leaf.NotAfter):
		log.Warn("TLS certificate has expired: clients that check it will refuse to connect", attrs...)
	case now.Before(leaf.NotBefore):
		log.Warn("TLS certificate is not valid yet: clients that check it will refuse to connect", attrs...)
	case leaf.NotAfter.Sub(now) < certWarnAhead:
		log.Warn("TLS certificate expires soon", append(attrs, "days_left", int(leaf.NotAfter.Sub(now).Hours()/24))...)
	}
}
