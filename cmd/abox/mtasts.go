package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"strings"
)

// MTA-STS for the hosted domains (RFC 8461): with mta-sts-mode testing or
// enforce, the HTTP listeners serve each hosted domain's policy at
// https://mta-sts.DOMAIN/.well-known/mta-sts.txt (the operator points
// that name at abox's HTTPS listener, on port 443, with a certificate
// valid for it), naming `hostname` as the only MX, and `abox domain dns`
// prints the TXT records that announce it and ask for TLS reports (RFC
// 8460). Other servers then send to abox only over TLS with a verified
// certificate (enforce), or report when they could not (testing).

// validMTASTS checks the mta-sts-* settings.
func (c *Config) validMTASTS() error {
	switch c.MTASTSMode {
	case "none", "testing", "enforce":
	default:
		return fmt.Errorf("config: mta-sts-mode %q: use none, testing or enforce", c.MTASTSMode)
	}
	d, err := parseDuration(c.MTASTSMaxAge)
	if err != nil {
		return fmt.Errorf("config: mta-sts-max-age: %w", err)
	}
	// RFC 8461 §3.2: up to 31557600 s (a year); a day at least, so the
	// policy protects anything.
	if d.Hours() < 24 || d.Seconds() > 31557600 {
		return fmt.Errorf("config: mta-sts-max-age %s: use 1d to 365d", c.MTASTSMaxAge)
	}
	return nil
}

// mtaSTSPolicy is the policy text (RFC 8461 §3.2), the same for every
// hosted domain: their MX is this server.
func (c *Config) mtaSTSPolicy() string {
	d, _ := parseDuration(c.MTASTSMaxAge)
	return fmt.Sprintf("version: STSv1\r\nmode: %s\r\nmx: %s\r\nmax_age: %d\r\n", c.MTASTSMode, c.Hostname, int64(d.Seconds()))
}

// mtaSTSID is the policy's id for the TXT record: it changes whenever the
// policy does, which tells senders to fetch it again (RFC 8461 §3.1).
func (c *Config) mtaSTSID() string {
	sum := sha256.Sum256([]byte(c.mtaSTSPolicy()))
	return hex.EncodeToString(sum[:10])
}

// mtaSTSRecords are the records of the policy for domain (none when off).
func mtaSTSRecords(cfg *Config, domain, client string) []dnsRecord {
	if cfg.MTASTSMode == "none" {
		return nil
	}
	d := domain + "."
	return []dnsRecord{
		{"_mta-sts." + d, "TXT", `"v=STSv1; id=` + cfg.mtaSTSID() + `"`, "MTA-STS (RFC 8461): senders fetch the policy and deliver only over verified TLS (" + cfg.MTASTSMode + ")"},
		{"mta-sts." + d, "CNAME", client, "serves the policy: abox's HTTPS listener on port 443, with a certificate valid for this name"},
		{"_smtp._tls." + d, "TXT", `"v=TLSRPTv1; rua=mailto:postmaster@` + domain + `"`, "TLS reports (RFC 8460) to postmaster"},
	}
}

// mtaSTSHandler serves GET /.well-known/mta-sts.txt for Host
// mta-sts.DOMAIN of a hosted domain.
func (s *server) mtaSTSHandler(w http.ResponseWriter, r *http.Request) {
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	name, ok := strings.CutPrefix(strings.ToLower(host), "mta-sts.")
	if s.cfg.MTASTSMode == "none" || !ok {
		http.NotFound(w, r)
		return
	}
	if _, _, hosted := s.hostedAddress("x@" + name); !hosted {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/plain") // RFC 8461 §3.3
	fmt.Fprint(w, s.cfg.mtaSTSPolicy())
}
