package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"strings"
	"testing"
	"time"
)

// writeCertPair writes a self-signed certificate for test.local valid
// from notBefore to notAfter and its key, as PEM files in dir.
func writeCertPair(t *testing.T, dir string, notBefore, notAfter time.Time) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "test.local"},
		DNSNames:     []string{"test.local"},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile = writeFile(t, dir, "cert.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	keyFile = writeFile(t, dir, "key.pem", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
	return certFile, keyFile
}

// TestCertificateExpiryWarning: serve warns at start when its
// certificate has expired or expires within 14 days (issue 13: an
// expired certificate was served without a word), and says nothing about
// one that is good for long.
func TestCertificateExpiryWarning(t *testing.T) {
	t.Parallel()
	now := time.Now()
	for _, tc := range []struct {
		name      string
		notBefore time.Time
		notAfter  time.Time
		want      string // in the warning; "" for none
	}{
		{"expired", now.AddDate(-1, 0, 0), now.Add(-24 * time.Hour), "expired"},
		{"expires in 5 days", now.AddDate(-1, 0, 0), now.Add(5 * 24 * time.Hour), "expires"},
		{"valid for a year", now.Add(-time.Hour), now.AddDate(1, 0, 0), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := newAbox(t)
			cert, key := writeCertPair(t, t.TempDir(), tc.notBefore, tc.notAfter)
			writeFile(t, a.Dir, ConfigFileName, []byte(fmt.Sprintf("tls-cert = %q\ntls-key = %q\n", cert, key)))
			a.srv = a.Start()
			for _, node := range a.srv.Nodes() { // each node warns once (the harness's cluster mode)
				var warnings []string
				for _, l := range node.Log.Lines() {
					if strings.Contains(l, `"level":"WARN"`) && strings.Contains(strings.ToLower(l), "tls certificate") {
						warnings = append(warnings, l)
					}
				}
				switch {
				case tc.want == "" && len(warnings) > 0:
					t.Errorf("warnings for a certificate good for a year: %q", warnings)
				case tc.want != "" && (len(warnings) != 1 || !strings.Contains(warnings[0], tc.want)):
					t.Errorf("PRODUCT BUG: certificate warnings at start %q, want one saying %q:\n%s", warnings, tc.want, node.Log)
				}
			}
		})
	}
}
