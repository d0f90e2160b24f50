package accounts

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"testing"
	"time"
)

func testCert(t *testing.T, notBefore, notAfter time.Time) []byte {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(0xabc), Subject: pkix.Name{CommonName: "ALICE IVANOVA", SerialNumber: "IIN900101300123"},
		NotBefore: notBefore, NotAfter: notAfter}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func TestParseConsent(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	valid := testCert(t, now.AddDate(-1, 0, 0), now.AddDate(1, 0, 0))
	pemValid := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: valid})
	tests := []struct {
		name    string
		data    []byte
		wantErr bool
	}{
		{"DER", valid, false},
		{"PEM", pemValid, false},
		{"expired", testCert(t, now.AddDate(-2, 0, 0), now.AddDate(-1, 0, 0)), true},
		{"not yet valid", testCert(t, now.AddDate(0, 1, 0), now.AddDate(1, 0, 0)), true},
		{"garbage", []byte("not a certificate"), true},
		{"PEM key, not certificate", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1, 2}}), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseConsent(tc.data, now)
			if tc.wantErr {
				if !errors.Is(err, ErrCertificate) {
					t.Fatalf("want ErrCertificate, got %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Serial != "abc" || len(c.SHA256) != 64 || !c.RecordedAt.Equal(now) || c.Subject == "" {
				t.Fatalf("consent %+v", c)
			}
		})
	}
}
