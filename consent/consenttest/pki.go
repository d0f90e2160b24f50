// Package consenttest builds, at test time, everything consent tests
// need: a root CA, an intermediate, subscriber certificates with IINs,
// CRLs and CMS signatures over consent statements. Nothing is a fixed
// blob; only tests import it.
package consenttest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/smallstep/pkcs7"

	"abox/consent"
)

// CA is a certificate with its key.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// PKI is a test national CA: a root and an intermediate that issues
// subscriber certificates.
type PKI struct {
	Root, Inter CA
	serial      atomic.Int64
}

// NewPKI makes a root valid ten years around now and an intermediate
// valid five.
func NewPKI(name string, now time.Time) (*PKI, error) {
	p := &PKI{}
	p.serial.Store(1000)
	root, err := p.issue(nil, &x509.Certificate{Subject: pkix.Name{CommonName: name + " ROOT CA", Country: []string{"KZ"}},
		NotBefore: now.AddDate(-5, 0, 0), NotAfter: now.AddDate(5, 0, 0), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign})
	if err != nil {
		return nil, err
	}
	p.Root = root
	inter, err := p.issue(&p.Root, &x509.Certificate{Subject: pkix.Name{CommonName: name + " SUBSCRIBER CA", Country: []string{"KZ"}},
		NotBefore: now.AddDate(-3, 0, 0), NotAfter: now.AddDate(3, 0, 0), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign})
	if err != nil {
		return nil, err
	}
	p.Inter = inter
	return p, nil
}

func (p *PKI) issue(parent *CA, tmpl *x509.Certificate) (CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return CA{}, err
	}
	tmpl.SerialNumber = big.NewInt(p.serial.Add(1))
	signer, parentCert := crypto.Signer(key), tmpl
	if parent != nil {
		signer, parentCert = parent.Key, parent.Cert
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parentCert, &key.PublicKey, signer)
	if err != nil {
		return CA{}, err
	}
	cert, err := x509.ParseCertificate(der)
	return CA{Cert: cert, Key: key}, err
}

// Subscriber issues a signing certificate for a person with an IIN
// (serialNumber "IIN"+iin), valid between notBefore and notAfter.
func (p *PKI) Subscriber(name, iin string, notBefore, notAfter time.Time) (CA, error) {
	return p.issue(&p.Inter, &x509.Certificate{
		Subject:   pkix.Name{CommonName: name, SerialNumber: "IIN" + iin, Country: []string{"KZ"}},
		NotBefore: notBefore, NotAfter: notAfter,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment,
	})
}

// SelfSigned makes a subscriber-looking certificate nobody issued.
func (p *PKI) SelfSigned(name, iin string, now time.Time) (CA, error) {
	return p.issue(nil, &x509.Certificate{
		Subject:   pkix.Name{CommonName: name, SerialNumber: "IIN" + iin, Country: []string{"KZ"}},
		NotBefore: now.AddDate(-1, 0, 0), NotAfter: now.AddDate(1, 0, 0),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment,
	})
}

// CRL is the intermediate's CRL revoking the given certificates, valid
// from thisUpdate to nextUpdate, as PEM.
func (p *PKI) CRL(number int64, thisUpdate, nextUpdate time.Time, revoked ...*x509.Certificate) ([]byte, error) {
	return p.crlBy(&p.Inter, number, thisUpdate, nextUpdate, revoked...)
}

// RootCRL is the root's CRL (which covers the intermediate).
func (p *PKI) RootCRL(number int64, thisUpdate, nextUpdate time.Time, revoked ...*x509.Certificate) ([]byte, error) {
	return p.crlBy(&p.Root, number, thisUpdate, nextUpdate, revoked...)
}

func (p *PKI) crlBy(ca *CA, number int64, thisUpdate, nextUpdate time.Time, revoked ...*x509.Certificate) ([]byte, error) {
	tmpl := &x509.RevocationList{Number: big.NewInt(number), ThisUpdate: thisUpdate, NextUpdate: nextUpdate}
	for _, c := range revoked {
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries,
			x509.RevocationListEntry{SerialNumber: c.SerialNumber, RevocationTime: thisUpdate.Add(-time.Hour)})
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, ca.Cert, ca.Key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}), nil
}

// AnchorsPEM is the root and the intermediate as one PEM file.
func (p *PKI) AnchorsPEM() []byte {
	return append(CertPEM(p.Root.Cert), CertPEM(p.Inter.Cert)...)
}

// CertPEM encodes a certificate as PEM.
func CertPEM(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

// Sign makes an attached CMS SignedData (SHA-256) over content with the
// signer's key, carrying its certificate and extra ones.
func Sign(signer CA, content []byte, extra ...*x509.Certificate) ([]byte, error) {
	sd, err := pkcs7.NewSignedData(content)
	if err != nil {
		return nil, err
	}
	sd.SetDigestAlgorithm(pkcs7.OIDDigestAlgorithmSHA256)
	if err := sd.AddSigner(signer.Cert, signer.Key, pkcs7.SignerInfoConfig{}); err != nil {
		return nil, err
	}
	for _, c := range extra {
		sd.AddCertificate(c)
	}
	return sd.Finish()
}

// Statement is a consent statement for an account signed on date.
func Statement(address string, id uint64, date time.Time) []byte {
	return consent.NewStatement(consent.Account{Address: address, ID: id}, date,
		"I agree to receive official letters in this electronic mailbox; reading one counts as being officially notified (user agreement 2.4, 3.2).")
}

// IIN returns a valid IIN (check digit included) built from n.
func IIN(n int) string {
	for ; ; n++ {
		first := fmt.Sprintf("9001013%04d", n%10000)
		if d := consent.IINCheckDigit(first); d >= 0 {
			return fmt.Sprintf("%s%d", first, d)
		}
	}
}

// Files writes the PKI's anchors to dir/anchors.pem and makes
// dir/crl holding the intermediate's and the root's empty CRLs, valid
// a year around now; it returns the two paths.
func (p *PKI) Files(dir string, now time.Time) (anchors, crlDir string, err error) {
	anchors, crlDir = filepath.Join(dir, "anchors.pem"), filepath.Join(dir, "crl")
	if err := os.WriteFile(anchors, p.AnchorsPEM(), 0o644); err != nil {
		return "", "", err
	}
	if err := os.MkdirAll(crlDir, 0o755); err != nil {
		return "", "", err
	}
	inter, err := p.CRL(1, now.AddDate(0, 0, -1), now.AddDate(1, 0, 0))
	if err != nil {
		return "", "", err
	}
	root, err := p.RootCRL(1, now.AddDate(0, 0, -1), now.AddDate(1, 0, 0))
	if err != nil {
		return "", "", err
	}
	if err := os.WriteFile(filepath.Join(crlDir, "inter.crl"), inter, 0o644); err != nil {
		return "", "", err
	}
	return anchors, crlDir, os.WriteFile(filepath.Join(crlDir, "root.crl"), root, 0o644)
}
