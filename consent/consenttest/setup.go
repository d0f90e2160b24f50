package consenttest

import (
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"
)

// Setup is a test PKI wired into an abox data directory: its anchors
// and CRL directory are named in DIR/abox.toml, with the CRL directory
// looked at on every check so a test that replaces a CRL needs no wait.
type Setup struct {
	*PKI
	Anchors, CRLDir string
	work            string
	iins, crls      atomic.Int64
}

// Configure makes a PKI, writes its files under work and appends the
// consent settings to dataDir/abox.toml (call it after anything that
// rewrites that file).
func Configure(dataDir, work string, now time.Time) (*Setup, error) {
	return ConfigureRecheck(dataDir, work, now, "0s")
}

// ConfigureRecheck is Configure with another consent-crl-recheck.
func ConfigureRecheck(dataDir, work string, now time.Time, recheck string) (*Setup, error) {
	p, err := NewPKI("TEST NCA", now)
	if err != nil {
		return nil, err
	}
	s := &Setup{PKI: p, work: work}
	s.crls.Store(1)
	if s.Anchors, s.CRLDir, err = p.Files(work, now); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dataDir, "abox.toml"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, err
	}
	_, err = fmt.Fprintf(f, "\nconsent-trust-anchors = [%q]\nconsent-crl-dir = %q\nconsent-crl-recheck = %q\n", s.Anchors, s.CRLDir, recheck)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return s, err
}

// Consent issues a subscriber certificate with a fresh IIN valid from
// notBefore to notAfter, signs a statement for the account dated signed,
// and writes the CMS object to a file; it returns the path and the
// subscriber.
func (s *Setup) Consent(address string, id uint64, signed, notBefore, notAfter time.Time) (string, CA, error) {
	return s.ConsentIIN(address, id, IIN(int(s.iins.Add(1))), signed, notBefore, notAfter)
}

// ConsentIIN is Consent for a given IIN.
func (s *Setup) ConsentIIN(address string, id uint64, iin string, signed, notBefore, notAfter time.Time) (string, CA, error) {
	sub, err := s.Subscriber("SUBSCRIBER "+iin, iin, notBefore, notAfter)
	if err != nil {
		return "", CA{}, err
	}
	der, err := Sign(sub, Statement(address, id, signed), s.Inter.Cert)
	if err != nil {
		return "", CA{}, err
	}
	path := filepath.Join(s.work, fmt.Sprintf("consent-%s-%d.p7s", iin, s.iins.Add(1)))
	return path, sub, os.WriteFile(path, der, 0o644)
}

// Revoke replaces the intermediate's CRL with a newer one revoking
// certs, valid from thisUpdate for a week. The new CRL gets a new file
// name, as a same-size file rewritten within the file system's time
// granularity would look unchanged to the server's directory check.
func (s *Setup) Revoke(thisUpdate time.Time, certs ...*x509.Certificate) error {
	n := s.crls.Add(1)
	crl, err := s.CRL(n, thisUpdate, thisUpdate.AddDate(0, 0, 7), certs...)
	if err != nil {
		return err
	}
	old, _ := filepath.Glob(filepath.Join(s.CRLDir, "inter*.crl"))
	tmp := filepath.Join(s.CRLDir, ".inter.crl.tmp")
	if err := os.WriteFile(tmp, crl, 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(s.CRLDir, fmt.Sprintf("inter-%d.crl", n))); err != nil {
		return err
	}
	for _, f := range old {
		if err := os.Remove(f); err != nil {
			return err
		}
	}
	return nil
}
