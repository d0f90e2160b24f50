package accounts

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"time"
)

// ErrCertificate is returned for a certificate that cannot record consent.
var ErrCertificate = errors.New("invalid certificate")

// ParseConsent reads an X.509 certificate (PEM or DER) and checks that it
// is within its validity period at the given time. There is no chain
// validation yet: the operator vouches for the certificate (SPEC).
func ParseConsent(data []byte, at time.Time) (*Consent, error) {
	der := data
	if block, _ := pem.Decode(data); block != nil {
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("%w: PEM block is %q, not CERTIFICATE", ErrCertificate, block.Type)
		}
		der = block.Bytes
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("%w: not an X.509 certificate in PEM or DER (%v)", ErrCertificate, err)
	}
	switch {
	case at.Before(cert.NotBefore):
		return nil, fmt.Errorf("%w: not valid before %s", ErrCertificate, cert.NotBefore.UTC().Format(time.RFC3339))
	case at.After(cert.NotAfter):
		return nil, fmt.Errorf("%w: expired on %s", ErrCertificate, cert.NotAfter.UTC().Format(time.RFC3339))
	}
	sum := sha256.Sum256(cert.Raw)
	return &Consent{
		Subject: cert.Subject.String(), Issuer: cert.Issuer.String(),
		Serial: cert.SerialNumber.Text(16), SHA256: hex.EncodeToString(sum[:]),
		NotBefore: cert.NotBefore.UTC(), NotAfter: cert.NotAfter.UTC(), RecordedAt: at.UTC(),
	}, nil
}
