package consent

import "errors"

// Why a consent cannot be recorded.
var (
	ErrNoAnchors    = errors.New("no consent trust anchors configured")
	ErrNotCMS       = errors.New("not a CMS signature")
	ErrSignature    = errors.New("the CMS signature does not verify")
	ErrStatement    = errors.New("the signed statement is not a valid consent statement")
	ErrWrongAccount = errors.New("the signed statement names another account")
	ErrChain        = errors.New("the signer's certificate does not chain to a trust anchor")
	ErrNoIIN        = errors.New("the signer's certificate carries no IIN")
	ErrCertificate  = errors.New("the signer's certificate cannot sign consent")
)

// Why a consent is not in force at a delivery (and, at recording, why it
// is refused). Each has a stable Reason code for the evidence log.
var (
	ErrUnverified        = errors.New("consent was recorded from a bare certificate and never verified")
	ErrExpired           = errors.New("consent certificate expired")
	ErrNotYetValid       = errors.New("consent certificate not yet valid")
	ErrRevoked           = errors.New("consent certificate revoked")
	ErrRevocationUnknown = errors.New("consent certificate's revocation status unknown")
	ErrAnchorDistrusted  = errors.New("consent certificate's trust anchor is no longer configured")
)

// Reason is the evidence log's code for why a consent is not in force
// (docs/CONSENT.md); "no-consent" when there is none or err is another.
func Reason(err error) string {
	switch {
	case errors.Is(err, ErrUnverified):
		return "consent-unverified"
	case errors.Is(err, ErrExpired), errors.Is(err, ErrNotYetValid):
		return "consent-expired"
	case errors.Is(err, ErrRevoked):
		return "consent-revoked"
	case errors.Is(err, ErrRevocationUnknown):
		return "consent-status-unknown"
	case errors.Is(err, ErrAnchorDistrusted):
		return "consent-untrusted"
	}
	return "no-consent"
}
