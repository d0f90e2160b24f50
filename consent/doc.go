// Package consent verifies a subscriber's consent to official letters
// (user agreement 3.2): a CMS SignedData (RFC 5652) made with the
// subscriber's qualified certificate over a consent statement naming
// the account, checked against the trust anchors and CRLs the operator
// configures. It also says, at each official delivery, whether a
// recorded consent is still in force (not expired, not revoked, its
// revocation status known, its anchor still trusted).
//
// It owns the statement format, IIN extraction, the trust-anchor pool
// and the CRL set (reloaded when its directory changes). It must never
// touch storage: the CMS bytes and the IIN binding are the store's; it
// returns accounts.Consent values and errors wrapping its sentinels.
// docs/CONSENT.md describes formats and checks for operators.
package consent
