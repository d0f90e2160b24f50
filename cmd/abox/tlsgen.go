package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/google/renameio/v2"
)

// Generated TLS material lives in the data directory.
const (
	generatedCert = "tls-cert.pem"
	generatedKey  = "tls-key.pem"
)

// certSource hands every TLS handshake the current certificate, which
// reload replaces (serve calls it on SIGHUP): a renewed certificate
// takes effect for new connections while open ones go on.
type certSource struct {
	cfg *Config
	cur atomic.Pointer[tls.Certificate]
}

// loadTLS loads the server certificate and returns a TLS config that
// serves it and the source reload replaces it in.
func loadTLS(cfg *Config, now time.Time) (*tls.Config, *certSource, error) {
	src := &certSource{cfg: cfg}
	if err := src.reload(now); err != nil {
		return nil, nil, err
	}
	// GetCertificate, not Certificates: with Certificates set Go asks
	// GetCertificate only for clients that send SNI.
	tc := &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
		return src.cur.Load(), nil
	}}
	return tc, src, nil
}

// reload reads the certificate files again; on an error the certificate
// in use stays.
func (s *certSource) reload(now time.Time) error {
	cert, err := loadCertificate(s.cfg, now)
	if err != nil {
		return err
	}
	s.cur.Store(cert)
	return nil
}

// leaf is the current certificate's leaf.
func (s *certSource) leaf() *x509.Certificate { return s.cur.Load().Leaf }

// loadCertificate returns the server certificate: the configured one, or
// a self-signed one generated into the data directory on first start and
// reused after.
func loadCertificate(cfg *Config, now time.Time) (*tls.Certificate, error) {
	certFile, keyFile := cfg.TLSCert, cfg.TLSKey
	switch {
	case certFile == "" && keyFile == "":
		certFile, keyFile = filepath.Join(cfg.Data, generatedCert), filepath.Join(cfg.Data, generatedKey)
		if _, err := os.Stat(certFile); errors.Is(err, os.ErrNotExist) {
			if err := generateSelfSigned(certFile, keyFile, cfg.Hostname, now); err != nil {
				return nil, err
			}
		}
	case certFile == "" || keyFile == "":
		return nil, errors.New("tls: give both --tls-cert and --tls-key, or neither")
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("%s and %s: %w", certFile, keyFile, err)
	}
	return &cert, nil // Leaf is parsed by LoadX509KeyPair (Go 1.23+)
}

func generateSelfSigned(certFile, keyFile, hostname string, now time.Time) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: hostname, Organization: []string{"abox self-signed"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.AddDate(10, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{hostname, "localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	// The key is written first: a crash in between leaves no certificate,
	// so the next start generates both again.
	if err := renameio.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	if err := renameio.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	return nil
}

// reloadOnHangup reloads the certificate on every SIGHUP (as Postfix and
// Dovecot do on reload), logging the outcome; a certificate that does
// not load leaves the old one in use. The returned function stops it.
func reloadOnHangup(certs *certSource, log *slog.Logger) func() {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-hup:
				now := time.Now()
				if err := certs.reload(now); err != nil {
					log.Error("TLS certificate not reloaded; the one in use stays", "err", err)
					continue
				}
				leaf := certs.leaf()
				log.Info("TLS certificate reloaded", "subject", leaf.Subject.String(), "not_after", leaf.NotAfter.UTC())
				warnCertificate(leaf, now, log)
			case <-done:
				return
			}
		}
	}()
	return func() { signal.Stop(hup); close(done) }
}
