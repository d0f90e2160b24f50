package consent

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/smallstep/pkcs7"

	"abox/accounts"
)

// Config is what the operator configures for consent verification.
type Config struct {
	// Anchors are PEM files of the national CA's root certificates (self-
	// signed: trust anchors) and intermediates (issuers of subscriber
	// certificates, whose CRLs are checked). Read once, at New.
	Anchors []string
	// CRLDir holds the CRL files the operator keeps current (PEM or DER).
	CRLDir string
	// CRLRecheck is how often the directory is looked at again for
	// changed files; 0 looks at every check.
	CRLRecheck time.Duration
	// MaxStatementAge refuses statements dated longer ago (0: no limit).
	MaxStatementAge time.Duration
	// OCSP asks the signer's certificate's OCSP responder when a
	// consent is recorded (ocsp.go); OCSPURL replaces the responder the
	// certificate names; OCSPTimeout bounds the question (0: 10 s).
	OCSP        bool
	OCSPURL     string
	OCSPTimeout time.Duration
}

// Verifier verifies consent signatures and says whether a recorded
// consent is in force. It is safe for concurrent use.
type Verifier struct {
	cfg     Config
	roots   *x509.CertPool
	inters  []*x509.Certificate
	anchors map[string]string // hex SHA-256 of each root -> its subject
	crls    *crlSet
}

// New reads the trust anchors. With none configured, Verify refuses every
// signature and the verifier is Vouching: the operator vouches for bare
// certificates (Vouch), as the first contract had it; with anchors, only
// verified signatures are consent.
func New(cfg Config) (*Verifier, error) {
	v := &Verifier{cfg: cfg, roots: x509.NewCertPool(), anchors: map[string]string{}}
	issuers := map[string][]*x509.Certificate{}
	for _, file := range cfg.Anchors {
		certs, err := readCertificates(file)
		if err != nil {
			return nil, err
		}
		for _, c := range certs {
			issuers[hex.EncodeToString(c.RawSubject)] = append(issuers[hex.EncodeToString(c.RawSubject)], c)
			if bytes.Equal(c.RawSubject, c.RawIssuer) && c.CheckSignatureFrom(c) == nil {
				v.roots.AddCert(c)
				v.anchors[fingerprint(c)] = c.Subject.String()
			} else {
				v.inters = append(v.inters, c)
			}
		}
	}
	if len(cfg.Anchors) > 0 && len(v.anchors) == 0 {
		return nil, fmt.Errorf("consent trust anchors %s: no self-signed root certificate among them", strings.Join(cfg.Anchors, ", "))
	}
	if cfg.CRLDir != "" {
		if st, err := os.Stat(cfg.CRLDir); err != nil || !st.IsDir() {
			return nil, fmt.Errorf("consent CRL directory %s: not a readable directory", cfg.CRLDir)
		}
	}
	v.crls = &crlSet{dir: cfg.CRLDir, recheck: cfg.CRLRecheck, issuers: issuers}
	return v, nil
}

func readCertificates(file string) ([]*x509.Certificate, error) {
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("consent trust anchors: %w", err)
	}
	var out []*x509.Certificate
	for rest := raw; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("consent trust anchors %s: %w", file, err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("consent trust anchors %s: no PEM CERTIFICATE in it", file)
	}
	return out, nil
}

func fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}

// DecodeCMS accepts a CMS object as DER, PEM (any block type, e.g.
// "CMS" or "PKCS7") or bare base64 (what NCALayer hands a portal), and
// returns its DER.
func DecodeCMS(raw []byte) ([]byte, error) {
	// DER is taken as it is: its last bytes may well look like white
	// space, and trimming them would cut the signature.
	if len(raw) > 0 && raw[0] == 0x30 {
		return raw, nil
	}
	t := bytes.TrimSpace(raw)
	if b, _ := pem.Decode(t); b != nil {
		return b.Bytes, nil
	}
	clean := strings.Join(strings.Fields(string(t)), "")
	if der, err := base64.StdEncoding.DecodeString(clean); err == nil && len(der) > 0 && der[0] == 0x30 {
		return der, nil
	}
	return nil, fmt.Errorf("%w: neither DER, PEM nor base64", ErrNotCMS)
}

// IsCertificate says raw is a bare X.509 certificate (PEM or DER), so a
// caller can explain that a certificate alone is not a signed consent.
func IsCertificate(raw []byte) bool {
	der := raw
	if b, _ := pem.Decode(bytes.TrimSpace(raw)); b != nil {
		der = b.Bytes
	}
	_, err := x509.ParseCertificate(der)
	return err == nil
}

// Verify checks a consent signature for an account at time at and
// returns the consent to record with the CMS DER to store. content is
// the signed statement for a detached signature, nil for an attached
// one. Checked: one signer; its signature and message digest (SHA-256
// or stronger); the statement (format, account, clause, date); the
// signer's certificate (not a CA, usable for signing, an IIN) and its
// chain to a configured root at time at; revocation of every
// certificate of the chain from the CRLs.
func (v *Verifier) Verify(raw, content []byte, want Account, at time.Time) (*accounts.Consent, []byte, error) {
	if len(v.anchors) == 0 {
		return nil, nil, fmt.Errorf("%w: set consent-trust-anchors (docs/CONSENT.md)", ErrNoAnchors)
	}
	der, err := DecodeCMS(raw)
	if err != nil {
		return nil, nil, err
	}
	p7, err := pkcs7.Parse(der)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrNotCMS, err)
	}
	ee, err := v.checkSignature(p7, content, at)
	if err != nil {
		return nil, nil, err
	}
	st, err := parseStatement(p7.Content, want, at, v.cfg.MaxStatementAge)
	if err != nil {
		return nil, nil, err
	}
	if st.Date.Before(ee.NotBefore) || st.Date.After(ee.NotAfter) {
		return nil, nil, fmt.Errorf("%w: dated %s, outside the certificate's validity", ErrStatement, st.Date.UTC().Format(time.RFC3339))
	}
	c, issuer, err := v.certify(ee, p7.Certificates, at)
	if err != nil {
		return nil, nil, err
	}
	sum := sha256.Sum256(der)
	c.CMSSHA256, c.SignedAt, c.RecordedAt = hex.EncodeToString(sum[:]), st.Date.UTC(), at.UTC()
	if err := v.InForce(c, at); err != nil {
		return nil, nil, err
	}
	if v.cfg.OCSP {
		if err := v.ocspCheck(ee, issuer, at); err != nil {
			return nil, nil, err
		}
		c.OCSPAt = at.UTC()
	}
	return c, der, nil
}

// Vouching says no trust anchors are configured: consent cannot be
// verified, and the operator vouches for what it records (Vouch).
func (v *Verifier) Vouching() bool { return len(v.anchors) == 0 }

// Vouch records a bare certificate (PEM or DER) as consent the operator
// vouches for, as the first contract had it: it must parse and be within
// its validity dates at time at. Only while Vouching.
func (v *Verifier) Vouch(raw []byte, at time.Time) (*accounts.Consent, error) {
	if !v.Vouching() {
		return nil, fmt.Errorf("%w: trust anchors are configured, so consent must be a verified signature", ErrUnverified)
	}
	der := raw
	if b, _ := pem.Decode(raw); b != nil && b.Type == "CERTIFICATE" {
		der = b.Bytes
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("%w: not an X.509 certificate: %v", ErrCertificate, err)
	}
	switch {
	case at.Before(cert.NotBefore):
		return nil, fmt.Errorf("%w: valid from %s", ErrNotYetValid, cert.NotBefore.UTC().Format(time.RFC3339))
	case at.After(cert.NotAfter):
		return nil, fmt.Errorf("%w: on %s", ErrExpired, cert.NotAfter.UTC().Format(time.RFC3339))
	}
	return &accounts.Consent{
		Subject: cert.Subject.String(), Issuer: cert.Issuer.String(), Serial: cert.SerialNumber.Text(16),
		SHA256: fingerprint(cert), NotBefore: cert.NotBefore.UTC(), NotAfter: cert.NotAfter.UTC(),
		ChainNotAfter: cert.NotAfter.UTC(), RecordedAt: at.UTC(), Vouched: true,
	}, nil
}

// checkSignature verifies the one signer's signature over the content.
func (v *Verifier) checkSignature(p7 *pkcs7.PKCS7, content []byte, at time.Time) (*x509.Certificate, error) {
	if len(p7.Signers) != 1 {
		return nil, fmt.Errorf("%w: %d signers, want exactly one", ErrSignature, len(p7.Signers))
	}
	switch {
	case len(p7.Content) == 0 && content == nil:
		return nil, fmt.Errorf("%w: a detached signature needs the signed statement too (--content FILE)", ErrStatement)
	case len(p7.Content) == 0:
		p7.Content = content
	case content != nil && !bytes.Equal(content, p7.Content):
		return nil, fmt.Errorf("%w: the statement given differs from the one signed", ErrStatement)
	}
	alg := p7.Signers[0].DigestAlgorithm.Algorithm
	if alg.Equal(pkcs7.OIDDigestAlgorithmSHA1) || alg.Equal(pkcs7.OIDDigestAlgorithmDSASHA1) || alg.Equal(pkcs7.OIDDigestAlgorithmECDSASHA1) {
		return nil, fmt.Errorf("%w: SHA-1 digests are not accepted", ErrSignature)
	}
	ee := p7.GetOnlySigner()
	if ee == nil {
		return nil, fmt.Errorf("%w: the signer's certificate is not in the CMS object", ErrSignature)
	}
	// Dates first: a signature made with an expired certificate is
	// reported as expired, not as a bad signature.
	switch {
	case at.Before(ee.NotBefore):
		return nil, fmt.Errorf("%w: valid from %s", ErrNotYetValid, ee.NotBefore.UTC().Format(time.RFC3339))
	case at.After(ee.NotAfter):
		return nil, fmt.Errorf("%w: on %s", ErrExpired, ee.NotAfter.UTC().Format(time.RFC3339))
	}
	if err := p7.Verify(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSignature, err)
	}
	return ee, nil
}

// certify checks the signer's certificate and its chain at time at and
// describes it as a consent.
func (v *Verifier) certify(ee *x509.Certificate, bundled []*x509.Certificate, at time.Time) (*accounts.Consent, *x509.Certificate, error) {
	if ee.IsCA {
		return nil, nil, fmt.Errorf("%w: it is a CA certificate", ErrCertificate)
	}
	if ee.KeyUsage != 0 && ee.KeyUsage&(x509.KeyUsageDigitalSignature|x509.KeyUsageContentCommitment) == 0 {
		return nil, nil, fmt.Errorf("%w: its key usage allows no signatures", ErrCertificate)
	}
	iin, err := IINFromSerial(ee.Subject.SerialNumber)
	if err != nil {
		return nil, nil, err
	}
	inters := x509.NewCertPool()
	for _, c := range v.inters {
		inters.AddCert(c)
	}
	for _, c := range bundled {
		inters.AddCert(c)
	}
	chains, err := ee.Verify(x509.VerifyOptions{Roots: v.roots, Intermediates: inters, CurrentTime: at,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	if err != nil {
		var inv x509.CertificateInvalidError
		if errors.As(err, &inv) && inv.Reason == x509.Expired {
			return nil, nil, fmt.Errorf("%w: %v", ErrExpired, err)
		}
		return nil, nil, fmt.Errorf("%w: %v", ErrChain, err)
	}
	chain := chains[0]
	c := &accounts.Consent{
		Subject: ee.Subject.String(), Issuer: ee.Issuer.String(), Serial: ee.SerialNumber.Text(16),
		SHA256: fingerprint(ee), NotBefore: ee.NotBefore.UTC(), NotAfter: ee.NotAfter.UTC(),
		Verified: true, IIN: iin, Anchor: fingerprint(chain[len(chain)-1]), ChainNotAfter: ee.NotAfter.UTC(),
	}
	for i, cert := range chain {
		if cert.NotAfter.Before(c.ChainNotAfter) {
			c.ChainNotAfter = cert.NotAfter.UTC()
		}
		if i < len(chain)-1 {
			c.Chain = append(c.Chain, accounts.CertRef{Subject: cert.Subject.String(),
				IssuerDER: hex.EncodeToString(cert.RawIssuer), Serial: cert.SerialNumber.Text(16)})
		}
	}
	return c, chain[1], nil
}

// InForce says whether a recorded consent may carry an official letter
// at time at: verified, every certificate of its chain within validity,
// its anchor still configured, and none revoked according to a current
// CRL. The error wraps one of the not-in-force sentinels (Reason).
func (v *Verifier) InForce(c *accounts.Consent, at time.Time) error {
	switch {
	case c == nil:
		return errors.New("no consent on record")
	case !c.Verified && c.Vouched && v.Vouching():
		// The operator vouches: the certificate's dates are all there is.
		switch {
		case at.Before(c.NotBefore):
			return fmt.Errorf("%w: valid from %s", ErrNotYetValid, c.NotBefore.Format(time.RFC3339))
		case at.After(c.NotAfter):
			return fmt.Errorf("%w on %s", ErrExpired, c.NotAfter.Format(time.RFC3339))
		}
		return nil
	case !c.Verified:
		return ErrUnverified
	case at.Before(c.NotBefore):
		return fmt.Errorf("%w: valid from %s", ErrNotYetValid, c.NotBefore.Format(time.RFC3339))
	case at.After(c.ChainNotAfter):
		return fmt.Errorf("%w on %s", ErrExpired, c.ChainNotAfter.Format(time.RFC3339))
	case v.anchors[c.Anchor] == "":
		return ErrAnchorDistrusted
	}
	snap := v.crls.current(at)
	for _, ref := range c.Chain {
		if err := snap.status(ref, at); err != nil {
			return err
		}
	}
	return nil
}

// CRLProblems lists the CRL files ignored (bad signature, unknown
// issuer, unparsable) as of time at, for the operator's log.
func (v *Verifier) CRLProblems(at time.Time) []string { return v.crls.problems(at) }

// Reason is the package's Reason, as a method (policy.ConsentChecker).
func (v *Verifier) Reason(err error) string { return Reason(err) }

// Reload re-reads the CRL directory now (serve does it on SIGHUP) and
// returns the files it ignored and why.
func (v *Verifier) Reload(at time.Time) []string {
	return slices.Sorted(slices.Values(v.crls.reload(at).problems))
}
