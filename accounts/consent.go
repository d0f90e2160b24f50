package accounts

import "time"

// Consent records a subscriber's digital-signature confirmation of the
// account (user agreement 3.2). Since issue 15 it is made only from a
// verified CMS signature over the consent statement (package consent);
// records made before from a bare certificate have Verified false and
// are kept for history but are never in force: a certificate alone
// proves nobody agreed to anything.
type Consent struct {
	Subject    string    `json:"subject"`
	Issuer     string    `json:"issuer"`
	Serial     string    `json:"serial"`
	SHA256     string    `json:"sha256"` // fingerprint of the DER certificate
	NotBefore  time.Time `json:"not_before"`
	NotAfter   time.Time `json:"not_after"`
	RecordedAt time.Time `json:"recorded_at"`

	// Verified says the consent was made from a CMS signature whose
	// signature, statement, chain and revocation status were checked.
	Verified bool `json:"verified,omitempty"`
	// Vouched says the consent was recorded from a bare certificate
	// while no trust anchors were configured: the operator vouches for
	// it (the first contract's rule). It is in force only as long as
	// no anchors are configured and the certificate is within its dates.
	Vouched bool `json:"vouched,omitempty"`
	// IIN is the subscriber's individual identification number from the
	// certificate's subject serialNumber ("IIN" and 12 digits).
	IIN string `json:"iin,omitempty"`
	// SignedAt is the date the statement carries.
	SignedAt time.Time `json:"signed_at,omitzero"`
	// CMSSHA256 is the SHA-256 of the stored CMS object (store keeps the
	// bytes, so the consent can be verified again and exported).
	CMSSHA256 string `json:"cms_sha256,omitempty"`
	// Chain is the certification path from the subscriber's certificate
	// up to, not including, the trust anchor: what revocation is checked
	// for at each official delivery.
	Chain []CertRef `json:"chain,omitempty"`
	// Anchor is the SHA-256 of the trust anchor the chain ended at; a
	// consent whose anchor the operator no longer trusts is not in force.
	Anchor string `json:"anchor,omitempty"`
	// ChainNotAfter is the earliest end of validity along the chain,
	// anchor included: past it the consent has expired.
	ChainNotAfter time.Time `json:"chain_not_after,omitzero"`
	// OCSPAt is when the signer's certificate was found good by its OCSP
	// responder, at recording (zero: OCSP not configured).
	OCSPAt time.Time `json:"ocsp_at,omitzero"`
}

// CertRef names one certificate of a consent's chain the way a CRL
// names it: its issuer's distinguished name and its serial number.
type CertRef struct {
	Subject   string `json:"subject"`
	IssuerDER string `json:"issuer_der"` // hex of the issuer's raw DER name
	Serial    string `json:"serial"`     // hex
}
