package outbound

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/miekg/dns"
)

// DANE for SMTP, RFC 7672: a validated TLSA record set at
// _PORT._tcp.MXHOST says which certificate the MX host must present.

// TLSA fields, RFC 6698 §2.1 and RFC 7218.
const (
	usageDANETA = 2
	usageDANEEE = 3

	selectorCert = 0
	selectorSPKI = 1

	matchFull   = 0
	matchSHA256 = 1
	matchSHA512 = 2
)

// tlsaSet is a host's validated TLSA records.
type tlsaSet struct {
	// usable are the records this client can check: DANE-TA(2) and
	// DANE-EE(3). PKIX-TA(0) and PKIX-EE(1) are unusable for SMTP
	// (RFC 7672 §3.1.3): an MTA has no agreed set of public CAs.
	usable []*dns.TLSA
	// present says the set is validated and not empty; with no usable
	// record TLS is still mandatory, unauthenticated (RFC 7672 §2.2).
	present bool
}

// lookupTLSA fetches _PORT._tcp.HOST's TLSA records. Caller has checked
// that host's MX and address records are validated (RFC 7672 §2.2.2);
// an unvalidated answer here means no DANE. A failed lookup is an error:
// the host then must not be used (RFC 7672 §2.2).
func (c *Client) lookupTLSA(ctx context.Context, host string, port int) (tlsaSet, error) {
	ans, err := c.query(ctx, fmt.Sprintf("_%d._tcp.%s", port, host), dns.TypeTLSA)
	if errors.Is(err, errNXDomain) {
		return tlsaSet{}, nil
	}
	if err != nil {
		return tlsaSet{}, err
	}
	if !ans.ad || len(ans.rrs) == 0 {
		return tlsaSet{}, nil
	}
	set := tlsaSet{present: true}
	for _, rr := range ans.rrs {
		if r := rr.(*dns.TLSA); usableTLSA(r) {
			set.usable = append(set.usable, r)
		}
	}
	return set, nil
}

func usableTLSA(r *dns.TLSA) bool {
	if r.Usage != usageDANETA && r.Usage != usageDANEEE {
		return false
	}
	if r.Selector != selectorCert && r.Selector != selectorSPKI {
		return false
	}
	data, err := hex.DecodeString(r.Certificate)
	if err != nil {
		return false
	}
	switch r.MatchingType {
	case matchFull:
		return len(data) > 0
	case matchSHA256:
		return len(data) == sha256.Size
	case matchSHA512:
		return len(data) == sha512.Size
	}
	return false
}

// tlsaMatches reports whether cert is the one r describes.
func tlsaMatches(r *dns.TLSA, cert *x509.Certificate) bool {
	data := cert.Raw
	if r.Selector == selectorSPKI {
		data = cert.RawSubjectPublicKeyInfo
	}
	switch r.MatchingType {
	case matchSHA256:
		sum := sha256.Sum256(data)
		data = sum[:]
	case matchSHA512:
		sum := sha512.Sum512(data)
		data = sum[:]
	}
	want, err := hex.DecodeString(r.Certificate)
	return err == nil && bytes.Equal(want, data)
}

// verifyDANE checks a presented chain (leaf first) against usable TLSA
// records: any one match authenticates the server.
//
// DANE-EE(3) matches the leaf alone, names and dates ignored (RFC 7672
// §3.1.1): the DNS binds the key to the host.
//
// DANE-TA(2) names a trust anchor that must be in the chain, or be the
// record itself when it holds a full certificate; the leaf must then
// chain to it and carry host's name (RFC 7672 §3.1.2, §3.2.2).
func verifyDANE(chain []*x509.Certificate, recs []*dns.TLSA, host string, now time.Time) error {
	if len(chain) == 0 {
		return errors.New("DANE: no certificate presented")
	}
	for _, r := range recs {
		if r.Usage == usageDANEEE && tlsaMatches(r, chain[0]) {
			return nil
		}
	}
	for _, r := range recs {
		if r.Usage != usageDANETA {
			continue
		}
		for _, ta := range trustAnchors(r, chain) {
			if verifyChain(chain, ta, host, now) == nil {
				return nil
			}
		}
	}
	return fmt.Errorf("DANE: certificate of %s matches none of its %d usable TLSA records", host, len(recs))
}

// trustAnchors returns the certificates a DANE-TA record designates:
// issuers in the chain (never the leaf, which DANE-EE(3) is for; OpenSSL
// matches TA records only above depth 0 too), or the record's own full
// certificate.
func trustAnchors(r *dns.TLSA, chain []*x509.Certificate) []*x509.Certificate {
	var tas []*x509.Certificate
	for _, cert := range chain[1:] {
		if tlsaMatches(r, cert) {
			tas = append(tas, cert)
		}
	}
	if r.Selector == selectorCert && r.MatchingType == matchFull {
		if der, err := hex.DecodeString(r.Certificate); err == nil {
			if cert, err := x509.ParseCertificate(der); err == nil {
				tas = append(tas, cert)
			}
		}
	}
	return tas
}

func verifyChain(chain []*x509.Certificate, ta *x509.Certificate, host string, now time.Time) error {
	roots := x509.NewCertPool()
	roots.AddCert(ta)
	inter := x509.NewCertPool()
	for _, cert := range chain[1:] {
		inter.AddCert(cert)
	}
	_, err := chain[0].Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inter,
		DNSName:       host,
		CurrentTime:   now,
		// An MX certificate's purposes are not for the mail client to
		// police (RFC 7672 §3.1.2 asks only for the chain and the name).
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	return err
}
