package consent

import (
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"abox/accounts"
)

// crlSet is the operator's directory of CRLs, parsed and checked
// against the trust anchors. The directory is stat'ed again at most
// every recheck interval and re-read when a file's name, size or mtime
// changed, so an operator's cron job that drops a fresh CRL in place is
// picked up without a restart (Verifier.Reload forces it: serve calls
// it on SIGHUP).
type crlSet struct {
	dir     string
	recheck time.Duration
	issuers map[string][]*x509.Certificate // hex raw subject -> anchor certificates

	snap atomic.Pointer[crlSnapshot]
	mu   sync.Mutex // serializes reloads
}

// crlSnapshot is immutable once published.
type crlSnapshot struct {
	stamp    string
	loadedAt time.Time
	byIssuer map[string]*crlEntry // hex raw issuer -> newest valid CRL
	problems []string             // files ignored, and why
}

type crlEntry struct {
	file       string
	number     string
	thisUpdate time.Time
	nextUpdate time.Time
	revoked    map[string]time.Time // hex serial -> revocation time
}

// current returns the snapshot to check against at time at, reloading
// first when the recheck interval has passed and the directory changed.
func (s *crlSet) current(at time.Time) *crlSnapshot {
	cur := s.snap.Load()
	if cur != nil && at.Sub(cur.loadedAt) < s.recheck && at.Sub(cur.loadedAt) >= 0 {
		return cur
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur = s.snap.Load()
	if cur != nil && at.Sub(cur.loadedAt) < s.recheck && at.Sub(cur.loadedAt) >= 0 {
		return cur
	}
	stamp := s.stamp()
	if cur != nil && stamp == cur.stamp {
		next := *cur
		next.loadedAt = at
		s.snap.Store(&next)
		return &next
	}
	next := s.load(stamp, at)
	s.snap.Store(next)
	return next
}

// reload re-reads the directory now, whatever the recheck interval.
func (s *crlSet) reload(at time.Time) *crlSnapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := s.load(s.stamp(), at)
	s.snap.Store(next)
	return next
}

// stamp names the directory's state: every file's name, size and mtime.
func (s *crlSet) stamp() string {
	if s.dir == "" {
		return ""
	}
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return "error: " + err.Error()
	}
	var b strings.Builder
	for _, e := range ents {
		info, err := e.Info()
		if err != nil || !info.Mode().IsRegular() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		fmt.Fprintf(&b, "%s\x00%d\x00%d\n", e.Name(), info.Size(), info.ModTime().UnixNano())
	}
	return b.String()
}

func (s *crlSet) load(stamp string, at time.Time) *crlSnapshot {
	snap := &crlSnapshot{stamp: stamp, loadedAt: at, byIssuer: map[string]*crlEntry{}}
	if s.dir == "" {
		return snap
	}
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		snap.problems = append(snap.problems, err.Error())
		return snap
	}
	for _, e := range ents {
		if !e.Type().IsRegular() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		path := filepath.Join(s.dir, e.Name())
		raw, err := os.ReadFile(path)
		if err != nil {
			snap.problems = append(snap.problems, err.Error())
			continue
		}
		for _, der := range crlBlocks(raw) {
			if err := s.add(snap, e.Name(), der); err != nil {
				snap.problems = append(snap.problems, e.Name()+": "+err.Error())
			}
		}
	}
	return snap
}

// crlBlocks returns the DER CRLs in a file: PEM "X509 CRL" blocks, or
// the whole file as DER.
func crlBlocks(raw []byte) [][]byte {
	var out [][]byte
	rest := raw
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type == "X509 CRL" {
			out = append(out, b.Bytes)
		}
	}
	if out == nil {
		out = append(out, raw)
	}
	return out
}

// add checks one CRL's signature against the anchor that issued it and
// keeps it when it is newer than what the snapshot has for that issuer.
// Delta CRLs are not supported and are ignored.
func (s *crlSet) add(snap *crlSnapshot, file string, der []byte) error {
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		return fmt.Errorf("not a CRL: %v", err)
	}
	issuer := hex.EncodeToString(crl.RawIssuer)
	var signed bool
	for _, ca := range s.issuers[issuer] {
		if crl.CheckSignatureFrom(ca) == nil {
			signed = true
			break
		}
	}
	if !signed {
		return fmt.Errorf("CRL of %q is not signed by a configured trust anchor or intermediate", crl.Issuer)
	}
	for _, ext := range crl.Extensions {
		if ext.Id.String() == "2.5.29.27" { // delta CRL indicator
			return fmt.Errorf("delta CRL of %q ignored", crl.Issuer)
		}
	}
	if old := snap.byIssuer[issuer]; old != nil && !old.thisUpdate.Before(crl.ThisUpdate) {
		return nil
	}
	e := &crlEntry{file: file, thisUpdate: crl.ThisUpdate, nextUpdate: crl.NextUpdate, revoked: map[string]time.Time{}}
	if crl.Number != nil {
		e.number = crl.Number.String()
	}
	for _, r := range crl.RevokedCertificateEntries {
		e.revoked[r.SerialNumber.Text(16)] = r.RevocationTime
	}
	snap.byIssuer[issuer] = e
	return nil
}

// status checks one certificate of a chain against its issuer's CRL.
func (snap *crlSnapshot) status(ref accounts.CertRef, at time.Time) error {
	e := snap.byIssuer[ref.IssuerDER]
	switch {
	case e == nil:
		return fmt.Errorf("%w: no CRL from the issuer of %s", ErrRevocationUnknown, ref.Subject)
	case !e.nextUpdate.IsZero() && at.After(e.nextUpdate):
		return fmt.Errorf("%w: the CRL from the issuer of %s (%s) was due for renewal at %s", ErrRevocationUnknown, ref.Subject, e.file, e.nextUpdate.UTC().Format(time.RFC3339))
	case at.Before(e.thisUpdate.Add(-clockSkew)):
		return fmt.Errorf("%w: the CRL from the issuer of %s (%s) is dated in the future", ErrRevocationUnknown, ref.Subject, e.file)
	}
	if t, ok := e.revoked[ref.Serial]; ok {
		return fmt.Errorf("%w: %s (serial %s) revoked on %s (%s)", ErrRevoked, ref.Subject, ref.Serial, t.UTC().Format(time.RFC3339), e.file)
	}
	return nil
}

// Problems lists the CRL files currently ignored and why, sorted.
func (s *crlSet) problems(at time.Time) []string {
	return slices.Sorted(slices.Values(s.current(at).problems))
}
