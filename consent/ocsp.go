package consent

import (
	"bytes"
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"time"

	"golang.org/x/crypto/ocsp"
)

// OCSP (RFC 6960), where the operator configures it: when a consent is
// recorded, the signer's certificate's status is asked from its issuer's
// OCSP responder (the certificate's own, or the one configured), so a
// certificate revoked since the last CRL is refused at once. The answer
// must be signed by the issuer (or by a responder the issuer delegated
// to), name this certificate, and be current; anything else (no
// responder, no answer, an answer that does not verify, "unknown") is a
// revocation status that cannot be established, and the consent is not
// recorded. Official deliveries keep checking the CRLs: asking a
// responder for every letter would put a network round trip and a third
// party's availability on the delivery path.

// ocspMaxResponse bounds a responder's answer.
const ocspMaxResponse = 1 << 20

// ocspCheck asks whether ee (issued by issuer) is revoked at time at.
func (v *Verifier) ocspCheck(ee, issuer *x509.Certificate, at time.Time) error {
	url := v.cfg.OCSPURL
	if url == "" && len(ee.OCSPServer) > 0 {
		url = ee.OCSPServer[0]
	}
	if url == "" {
		return fmt.Errorf("%w: OCSP is required and the certificate names no responder (set consent-ocsp-url)", ErrRevocationUnknown)
	}
	req, err := ocsp.CreateRequest(ee, issuer, &ocsp.RequestOptions{})
	if err != nil {
		return fmt.Errorf("%w: OCSP request: %v", ErrRevocationUnknown, err)
	}
	timeout := v.cfg.OCSPTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(req))
	if err != nil {
		return fmt.Errorf("%w: OCSP responder %s: %v", ErrRevocationUnknown, url, err)
	}
	hreq.Header.Set("Content-Type", "application/ocsp-request")
	hreq.Header.Set("Accept", "application/ocsp-response")
	resp, err := http.DefaultClient.Do(hreq)
	if err != nil {
		return fmt.Errorf("%w: OCSP responder %s: %v", ErrRevocationUnknown, url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%w: OCSP responder %s answered %s", ErrRevocationUnknown, url, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, ocspMaxResponse))
	if err != nil {
		return fmt.Errorf("%w: OCSP responder %s: %v", ErrRevocationUnknown, url, err)
	}
	r, err := ocsp.ParseResponseForCert(body, ee, issuer)
	if err != nil {
		return fmt.Errorf("%w: OCSP responder %s: the answer does not verify: %v", ErrRevocationUnknown, url, err)
	}
	switch {
	case r.SerialNumber == nil || r.SerialNumber.Cmp(ee.SerialNumber) != 0:
		return fmt.Errorf("%w: OCSP responder %s answered for another certificate", ErrRevocationUnknown, url)
	case at.Before(r.ThisUpdate.Add(-clockSkew)):
		return fmt.Errorf("%w: OCSP responder %s: the answer is dated in the future (%s)", ErrRevocationUnknown, url, r.ThisUpdate.UTC().Format(time.RFC3339))
	case !r.NextUpdate.IsZero() && at.After(r.NextUpdate):
		return fmt.Errorf("%w: OCSP responder %s: the answer expired at %s", ErrRevocationUnknown, url, r.NextUpdate.UTC().Format(time.RFC3339))
	}
	switch r.Status {
	case ocsp.Good:
		return nil
	case ocsp.Revoked:
		return fmt.Errorf("%w: %s (serial %s) revoked on %s (OCSP, %s)", ErrRevoked, ee.Subject, ee.SerialNumber.Text(16), r.RevokedAt.UTC().Format(time.RFC3339), url)
	}
	return fmt.Errorf("%w: OCSP responder %s does not know the certificate", ErrRevocationUnknown, url)
}
