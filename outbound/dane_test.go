package outbound

import (
	"crypto/sha512"
	"crypto/x509"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestDANE: RFC 7672 with a signed (AD) or unsigned zone and TLSA records
// that match or not. The MX certificate is self-signed for "ee" cases and
// issued by the world's CA (in the chain) for "ta" cases; RootCAs never
// matters to DANE, so the self-signed one proves it is not used.
func TestDANE(t *testing.T) {
	for _, tc := range []struct {
		name     string
		signed   bool
		tlsa     func(leaf, ca *x509.Certificate) []string // TLSA data: "3 1 1 <hex>"
		servfail bool
		noTLS    bool
		want     want
		security string
		txns     int
	}{
		{"DANE-EE SPKI SHA-256", true, func(leaf, _ *x509.Certificate) []string { return []string{"3 1 1 " + spkiSHA256(leaf)} }, false, false, delivered, SecurityDANE, 1},
		{"DANE-EE full certificate", true, func(leaf, _ *x509.Certificate) []string { return []string{"3 0 0 " + hex.EncodeToString(leaf.Raw)} }, false, false, delivered, SecurityDANE, 1},
		{"DANE-EE one of several", true, func(leaf, _ *x509.Certificate) []string {
			return []string{"3 1 1 " + strings.Repeat("ab", 32), "3 0 1 " + certSHA256(leaf)}
		}, false, false, delivered, SecurityDANE, 1},
		{"DANE-EE mismatch", true, func(_, _ *x509.Certificate) []string { return []string{"3 1 1 " + strings.Repeat("ab", 32)} }, false, false,
			want{status: Deferred, code: 451, enhanced: "4.7.5", text: "DANE: certificate"}, SecurityNone, 0},
		{"DANE-TA", true, func(_, ca *x509.Certificate) []string { return []string{"2 0 1 " + certSHA256(ca)} }, false, false, delivered, SecurityDANE, 1},
		{"DANE-TA matching the leaf", true, func(leaf, _ *x509.Certificate) []string { return []string{"2 0 1 " + certSHA256(leaf)} }, false, false,
			want{status: Deferred, code: 451, enhanced: "4.7.5", text: "DANE"}, SecurityNone, 0},
		{"only PKIX usages: TLS without authentication", true, func(leaf, _ *x509.Certificate) []string {
			return []string{"1 1 1 " + strings.Repeat("ab", 32), "0 0 1 " + strings.Repeat("cd", 32)}
		}, false, false, delivered, SecuritySTARTTLS, 1},
		{"only PKIX usages, no STARTTLS", true, func(leaf, _ *x509.Certificate) []string { return []string{"1 1 1 " + strings.Repeat("ab", 32)} }, false, true,
			want{status: Deferred, code: 451, enhanced: "4.7.5", text: "DANE: STARTTLS not offered"}, SecurityNone, 0},
		{"no STARTTLS", true, func(leaf, _ *x509.Certificate) []string { return []string{"3 1 1 " + spkiSHA256(leaf)} }, false, true,
			want{status: Deferred, code: 451, enhanced: "4.7.5", text: "DANE: STARTTLS not offered"}, SecurityNone, 0},
		{"TLSA SERVFAIL", true, func(leaf, _ *x509.Certificate) []string { return []string{"3 1 1 " + spkiSHA256(leaf)} }, true, false,
			want{status: Deferred, code: 451, enhanced: "4.4.3", text: "TLSA lookup"}, SecurityNone, 0},
		{"unsigned zone: mismatch ignored", false, func(_, _ *x509.Certificate) []string { return []string{"3 1 1 " + strings.Repeat("ab", 32)} }, false, false, delivered, SecuritySTARTTLS, 1},
		{"signed zone without TLSA", true, nil, false, false, delivered, SecuritySTARTTLS, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			var opts mxOpts
			cert := selfSigned(t, "mx.example.test")
			if strings.HasPrefix(tc.name, "DANE-TA") {
				cert = w.ca.issue(t, "mx.example.test")
			}
			if !tc.noTLS {
				opts.cert = &cert
			}
			m := w.mxServer("example.test", "mx.example.test", opts)
			if tc.tlsa != nil {
				for _, data := range tc.tlsa(cert.Leaf, w.ca.cert) {
					w.dns.add(t, "_25._tcp.mx.example.test. TLSA "+data)
				}
			}
			if tc.servfail {
				w.dns.setServfail("_25._tcp.mx.example.test", dns.TypeTLSA)
			}
			if tc.signed {
				w.dns.sign("example.test")
			}
			// The untrusted CA: DANE-TA must not lean on RootCAs.
			c := w.client(func(c *Config) { c.RootCAs = x509.NewCertPool() })
			res := w.deliver(c, "example.test", message("b@example.test"))
			checkAll(t, res, 1, tc.want)
			if res.Security != tc.security {
				t.Errorf("security %q, want %q", res.Security, tc.security)
			}
			if got := m.transactions(); len(got) != tc.txns {
				t.Errorf("%d transactions, want %d", len(got), tc.txns)
			}
			if !tc.signed && w.dns.askedType(dns.TypeTLSA) != 0 {
				t.Error("TLSA looked up although the MX answer was not validated")
			}
			if tc.signed && w.dns.asked("_25._tcp.mx.example.test", dns.TypeTLSA) == 0 {
				t.Error("no TLSA lookup in a signed zone")
			}
		})
	}
}

// TestDANEOverMTASTS: a host with usable TLSA records is authenticated by
// DANE even when an MTA-STS policy would refuse it (RFC 8461 §2).
func TestDANEOverMTASTS(t *testing.T) {
	w := newWorld(t)
	cert := selfSigned(t, "mx.example.test")
	m := w.mxServer("example.test", "mx.example.test", mxOpts{cert: &cert})
	w.dns.add(t, "_25._tcp.mx.example.test. TLSA 3 1 1 "+spkiSHA256(cert.Leaf))
	w.dns.sign("example.test")
	w.stsRecord("example.test", "1")
	w.stsServer("example.test", policy("enforce", "mx.example.test"))
	res := w.deliver(w.client(), "example.test", message("b@example.test"))
	checkAll(t, res, 1, delivered)
	if res.Security != SecurityDANE || len(m.transactions()) != 1 {
		t.Errorf("security %q", res.Security)
	}
}

// TestDANEInsecureAddress: a validated MX whose address answer is not
// validated gets no TLSA lookup (RFC 7672 §2.2.2).
func TestDANEInsecureAddress(t *testing.T) {
	w := newWorld(t)
	cert := selfSigned(t, "mx.other.test")
	m := newMX(t, mxOpts{cert: &cert})
	w.host("mx.other.test", m.addr)
	w.mx("example.test", 10, "mx.other.test")
	w.dns.add(t, "_25._tcp.mx.other.test. TLSA 3 1 1 "+strings.Repeat("ab", 32))
	w.dns.sign("example.test")
	res := w.deliver(w.client(), "example.test", message("b@example.test"))
	checkAll(t, res, 1, delivered)
	if res.Security != SecuritySTARTTLS || w.dns.askedType(dns.TypeTLSA) != 0 {
		t.Errorf("security %q, TLSA queries %d", res.Security, w.dns.askedType(dns.TypeTLSA))
	}
}

func TestVerifyDANE(t *testing.T) {
	t.Parallel()
	ca := newCA(t)
	leaf := ca.issue(t, "mx.example.test")
	chain := []*x509.Certificate{leaf.Leaf, ca.cert}
	sum512 := sha512.Sum512(leaf.Leaf.RawSubjectPublicKeyInfo)
	rec := func(s string) *dns.TLSA {
		rr, err := dns.NewRR("_25._tcp.mx.example.test. TLSA " + s)
		if err != nil {
			t.Fatal(err)
		}
		return rr.(*dns.TLSA)
	}
	now := time.Now()
	for _, tc := range []struct {
		name   string
		rec    string
		host   string
		usable bool
		ok     bool
	}{
		{"EE spki sha512", "3 1 2 " + hex.EncodeToString(sum512[:]), "mx.example.test", true, true},
		{"EE ignores the name", "3 1 1 " + spkiSHA256(leaf.Leaf), "other.test", true, true},
		{"TA checks the name", "2 0 1 " + certSHA256(ca.cert), "other.test", true, false},
		{"TA full certificate", "2 0 0 " + hex.EncodeToString(ca.cert.Raw), "mx.example.test", true, true},
		{"TA spki", "2 1 1 " + spkiSHA256(ca.cert), "mx.example.test", true, true},
		{"PKIX-EE unusable", "1 1 1 " + spkiSHA256(leaf.Leaf), "mx.example.test", false, false},
		{"PKIX-TA unusable", "0 0 1 " + certSHA256(ca.cert), "mx.example.test", false, false},
		{"bad selector", "3 2 1 " + spkiSHA256(leaf.Leaf), "mx.example.test", false, false},
		{"bad matching type", "3 1 3 " + spkiSHA256(leaf.Leaf), "mx.example.test", false, false},
		{"short digest", "3 1 1 abcd", "mx.example.test", false, false},
	} {
		r := rec(tc.rec)
		if usableTLSA(r) != tc.usable {
			t.Errorf("%s: usable %v, want %v", tc.name, !tc.usable, tc.usable)
		}
		if !tc.usable {
			continue
		}
		err := verifyDANE(chain, []*dns.TLSA{r}, tc.host, now)
		if (err == nil) != tc.ok {
			t.Errorf("%s: verifyDANE = %v, want ok %v", tc.name, err, tc.ok)
		}
	}
	if err := verifyDANE(nil, []*dns.TLSA{rec("3 1 1 " + spkiSHA256(leaf.Leaf))}, "mx.example.test", now); err == nil {
		t.Error("no certificate verified")
	}
}
