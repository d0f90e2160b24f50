package outbound

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// hostPolicy is what one host's connection must achieve. The zero value
// is opportunistic STARTTLS (RFC 7435): encrypt when offered, verify
// nothing, fall back to plaintext.
type hostPolicy struct {
	// label is Result.Security when the connection is encrypted.
	label string
	// requireTLS: no plaintext; no STARTTLS or a failed handshake makes
	// the host unusable.
	requireTLS bool
	// dane, when set, authenticates the certificate (RFC 7672).
	dane []*dns.TLSA
	// pkix checks the certificate against RootCAs for the host name
	// (MTA-STS, REQUIRETLS, a smarthost).
	pkix bool
	// enforce: a failed certificate check makes the host unusable;
	// otherwise it is only logged (MTA-STS testing).
	enforce bool
	// why names the rule that asked for TLS, for outcomes and logs:
	// "DANE", "MTA-STS policy", "smarthost"; "" for REQUIRETLS alone.
	why string
	// requireTLSExt: the message asks for REQUIRETLS (RFC 8689).
	requireTLSExt bool
	// Smarthost connections: implicit TLS (RFC 8314), no STARTTLS at
	// all (SmarthostTLS none), AUTH PLAIN.
	implicitTLS, noSTARTTLS, auth bool
}

// refuse is the outcome of a host that cannot meet the policy. A rule
// of the domain (DANE, MTA-STS) or of our own configuration defers, so
// that a fixed certificate or zone later lets the mail through (RFC 8461
// §5, RFC 7672 §2.2); the sender's REQUIRETLS fails the message, RFC
// 8689 §4.2.1, with 5.7.30 (§6).
func (p hostPolicy) refuse(host, why string) Outcome {
	var o Outcome
	if p.why == "" && p.requireTLSExt {
		o = local(550, "5.7.30", "REQUIRETLS support required: "+why)
	} else {
		o = local(451, "4.7.5", p.why+": "+why)
	}
	o.RemoteMTA = host
	return o
}

// verification is what the certificate check of one handshake found.
type verification struct {
	checked bool  // a check (DANE or PKIX) ran
	err     error // nil when checked: the server is authenticated
}

func (v verification) authenticated() bool { return v.checked && v.err == nil }

// tlsConfig returns the client TLS configuration for host under p. Go's
// own verification is off because its outcome must be recorded, not only
// obeyed: MTA-STS testing logs a bad certificate and goes on, and
// opportunistic TLS takes any certificate (RFC 7435 §4).
func (c *Client) tlsConfig(host string, p hostPolicy, v *verification) *tls.Config {
	cfg := &tls.Config{
		// SNI with the MX host name: RFC 7672 §8.1 requires it with DANE
		// and it does no harm elsewhere.
		ServerName:         host,
		InsecureSkipVerify: true,
		// Opportunistic TLS accepts old versions: any encryption beats
		// plaintext (RFC 7435 §3); authenticated TLS wants 1.2 (RFC 8996).
		MinVersion: tls.VersionTLS10,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(p.dane) == 0 && !p.pkix {
				return nil
			}
			v.checked = true
			if len(p.dane) > 0 {
				v.err = verifyDANE(cs.PeerCertificates, p.dane, host, time.Now())
			} else {
				v.err = c.verifyPKIX(cs.PeerCertificates, host)
			}
			if v.err != nil && p.enforce {
				return v.err
			}
			return nil
		},
	}
	if p.requireTLS || p.pkix || len(p.dane) > 0 {
		cfg.MinVersion = tls.VersionTLS12
	}
	return cfg
}

// verifyPKIX checks a chain against RootCAs for host, as a browser would
// (RFC 8461 §4.2 for MTA-STS; RFC 6125 names), at the real time:
// Config.Now moves the policy cache, not certificates' validity.
func (c *Client) verifyPKIX(chain []*x509.Certificate, host string) error {
	if len(chain) == 0 {
		return errors.New("no certificate presented")
	}
	inter := x509.NewCertPool()
	for _, cert := range chain[1:] {
		inter.AddCert(cert)
	}
	_, err := chain[0].Verify(x509.VerifyOptions{
		Roots:         c.cfg.RootCAs,
		Intermediates: inter,
		DNSName:       host,
	})
	return err
}

// tlsString is Result.TLS: "TLS1.3 TLS_AES_128_GCM_SHA256".
func tlsString(cs tls.ConnectionState) string {
	return strings.ReplaceAll(tls.VersionName(cs.Version), " ", "") + " " + tls.CipherSuiteName(cs.CipherSuite)
}

// handshakeTimeout bounds a TLS handshake like a command.
func (c *Client) handshakeDeadline() time.Time { return time.Now().Add(c.cfg.CommandTimeout) }
