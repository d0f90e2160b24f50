package policy

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"net/netip"
	"strings"
	"testing"

	"github.com/emersion/go-msgauth/authres"
	"github.com/emersion/go-msgauth/dkim"
)

// testKey signs the test messages; its public half is served as
// <selector>._domainkey.<domain> by the test DNS servers.
var testKey = ed25519.NewKeyFromSeed(func() []byte { s := sha256.Sum256([]byte("abox DKIM test key")); return s[:] }())

// dkimRecord is the DKIM key record of testKey (RFC 8463 §4).
func dkimRecord() string {
	return "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(testKey.Public().(ed25519.PublicKey))
}

// letter is a well-formed message (it scores 0 on the local checks).
func letter(from, body string) []byte {
	return []byte("From: Sender <" + from + ">\r\nTo: user@example.kz\r\nSubject: November bill\r\n" +
		"Date: Wed, 25 Nov 2026 10:00:00 +0000\r\nMessage-ID: <1@sender.example>\r\n\r\n" + body)
}

// sign adds a DKIM-Signature of domain (selector "sel") with testKey.
func sign(t testing.TB, msg []byte, domain string) []byte {
	t.Helper()
	var b bytes.Buffer
	err := dkim.Sign(&b, bytes.NewReader(msg), &dkim.SignOptions{
		Domain: domain, Selector: "sel", Signer: testKey,
		HeaderCanonicalization: dkim.CanonicalizationRelaxed, BodyCanonicalization: dkim.CanonicalizationRelaxed,
		HeaderKeys: []string{"From", "To", "Subject", "Date", "Message-ID"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// authZone serves the SPF, DKIM and DMARC records of the tests.
func authZone() zone {
	return zone{
		txt: map[string][]string{
			"pass.test":                {"v=spf1 ip4:192.0.2.0/24 -all"},
			"fail.test":                {"v=spf1 ip4:198.51.100.0/24 -all"},
			"soft.test":                {"v=spf1 ip4:198.51.100.0/24 ~all"},
			"helo.test":                {"v=spf1 -all"},
			"sel._domainkey.dkim.test": {dkimRecord()},
			"_dmarc.dkim.test":         {"v=DMARC1; p=reject"},
			"reject.test":              {"v=spf1 ip4:198.51.100.0/24 -all"},
			"_dmarc.reject.test":       {"v=DMARC1; p=reject"},
			"_dmarc.quarantine.test":   {"v=DMARC1; p=quarantine"},
			"_dmarc.monitor.test":      {"v=DMARC1; p=none"},
			"_dmarc.trial.test":        {"v=DMARC1; p=reject; pct=50"},
			"mail.aligned.test":        {"v=spf1 ip4:192.0.2.0/24 -all"},
			"_dmarc.aligned.test":      {"v=DMARC1; p=reject"},
			"mail.strict.test":         {"v=spf1 ip4:192.0.2.0/24 -all"},
			"_dmarc.strict.test":       {"v=DMARC1; p=reject; aspf=s"},
			"_dmarc.org.test":          {"v=DMARC1; p=none; sp=reject"},
			"_dmarc.broken.test":       {"v=DMARC1; p=sometimes"},
		},
		servfail: []string{"tempfail.test", "sel._domainkey.tempkey.test", "_dmarc.tempdmarc.test"},
	}
}

var (
	inside  = netip.MustParseAddr("192.0.2.10")   // allowed by the ip4: records
	outside = netip.MustParseAddr("203.0.113.50") // allowed by none
)

// findings returns the reasons of one check.
func findingOf(v Verdict, check string) *Finding {
	for i := range v.Findings {
		if v.Findings[i].Check == check {
			return &v.Findings[i]
		}
	}
	return nil
}

func TestMsgAuth(t *testing.T) {
	signedOK := sign(t, letter("billing@dkim.test", "Your bill is 4 520 KZT.\r\n"), "dkim.test")
	broken := bytes.Replace(signedOK, []byte("4 520"), []byte("9 520"), 1)
	twice := sign(t, letter("billing@dkim.test", "Your bill is 4 520 KZT.\r\n"), "dkim.test")
	twice = sign(t, twice, "nokey.test")
	tests := []struct {
		name     string
		ip       netip.Addr
		helo     string
		mailFrom string
		msg      []byte
		score    float64
		action   Action
		ar       []string // substrings of the Authentication-Results header
		reason   string   // a substring of the counted reasons
		neutral  string   // a check that must be Unavailable
	}{
		// SPF
		{name: "spf pass", ip: inside, mailFrom: "a@pass.test", msg: letter("a@pass.test", "hi\r\n"),
			ar: []string{"spf=pass smtp.mailfrom=pass.test", "dkim=none", "dmarc=none header.from=pass.test"}},
		{name: "spf fail", ip: inside, mailFrom: "a@fail.test", msg: letter("a@fail.test", "hi\r\n"),
			score: 3, ar: []string{"spf=fail smtp.mailfrom=fail.test"}, reason: "SPF fail for fail.test from 192.0.2.10"},
		{name: "spf softfail", ip: inside, mailFrom: "a@soft.test", msg: letter("a@soft.test", "hi\r\n"),
			score: 1, ar: []string{"spf=softfail smtp.mailfrom=soft.test"}, reason: "SPF softfail"},
		{name: "spf none", ip: inside, mailFrom: "a@none.test", msg: letter("a@none.test", "hi\r\n"),
			ar: []string{"spf=none smtp.mailfrom=none.test"}},
		{name: "null sender checks HELO", ip: inside, helo: "helo.test", mailFrom: "", msg: letter("mailer-daemon@helo.test", "bounce\r\n"),
			score: 3, ar: []string{"spf=fail smtp.helo=helo.test"}, reason: "helo.test (HELO)"},
		{name: "null sender, HELO an address literal", ip: inside, helo: "[192.0.2.10]", mailFrom: "", msg: letter("a@none.test", "hi\r\n"),
			ar: []string{"spf=none;"}},
		{name: "spf lookup fails", ip: inside, mailFrom: "a@tempfail.test", msg: letter("a@tempfail.test", "hi\r\n"),
			ar: []string{"spf=temperror"}, neutral: "spf"},
		{name: "spf ipv6 fail", ip: netip.MustParseAddr("2001:db8::1"), mailFrom: "a@fail.test", msg: letter("a@fail.test", "hi\r\n"),
			score: 3, ar: []string{"spf=fail"}},

		// DKIM
		{name: "dkim valid", ip: outside, mailFrom: "a@none.test", msg: signedOK,
			ar: []string{"dkim=pass header.d=dkim.test", "dmarc=pass header.from=dkim.test"}},
		{name: "dkim broken", ip: outside, mailFrom: "a@none.test", msg: broken,
			score: 2 + 6, action: Junk, ar: []string{"dkim=fail reason=\"body hash did not verify\" header.d=dkim.test", "dmarc=fail"},
			reason: "DKIM signature fails (dkim.test: body hash did not verify)"},
		{name: "one valid signature of two", ip: outside, mailFrom: "a@none.test", msg: twice,
			ar: []string{"dkim=pass header.d=dkim.test", "dkim=fail", "header.d=nokey.test", "dmarc=pass"}},
		{name: "dkim key lookup fails", ip: outside, mailFrom: "a@none.test", msg: sign(t, letter("a@tempkey.test", "hi\r\n"), "tempkey.test"),
			ar: []string{"dkim=temperror"}, neutral: "dkim"},
		{name: "no key published", ip: outside, mailFrom: "a@none.test", msg: sign(t, letter("a@nokey.test", "hi\r\n"), "nokey.test"),
			score: 2, ar: []string{"dkim=fail"}},

		// DMARC
		{name: "dmarc reject", ip: inside, mailFrom: "a@reject.test", msg: letter("ceo@reject.test", "wire money\r\n"),
			score: 3 + 6, action: Junk, ar: []string{"dmarc=fail reason=\"p=reject\" header.from=reject.test"}, reason: "DMARC fail for reject.test (p=reject)"},
		{name: "dmarc quarantine", ip: inside, mailFrom: "a@pass.test", msg: letter("ceo@quarantine.test", "hi\r\n"),
			score: 4, ar: []string{"spf=pass", "dmarc=fail reason=\"p=quarantine\""}, reason: "p=quarantine"},
		{name: "dmarc p=none", ip: inside, mailFrom: "a@pass.test", msg: letter("ceo@monitor.test", "hi\r\n"),
			ar: []string{"dmarc=fail reason=\"p=none\""}},
		{name: "dmarc pct below 100 is one step milder", ip: inside, mailFrom: "a@pass.test", msg: letter("ceo@trial.test", "hi\r\n"),
			score: 4, ar: []string{"dmarc=fail reason=\"p=quarantine\""}},
		{name: "dmarc pass by relaxed SPF alignment", ip: inside, mailFrom: "bounce@mail.aligned.test", msg: letter("news@aligned.test", "hi\r\n"),
			ar: []string{"spf=pass smtp.mailfrom=mail.aligned.test", "dmarc=pass header.from=aligned.test"}},
		{name: "dmarc strict SPF alignment", ip: inside, mailFrom: "bounce@mail.strict.test", msg: letter("news@strict.test", "hi\r\n"),
			score: 6, action: Junk, ar: []string{"spf=pass", "dmarc=fail"}},
		{name: "dmarc pass by DKIM despite SPF fail", ip: inside, mailFrom: "a@fail.test", msg: signedOK,
			score: 3, ar: []string{"spf=fail", "dkim=pass", "dmarc=pass"}},
		{name: "dmarc subdomain policy of the organizational domain", ip: inside, mailFrom: "a@pass.test", msg: letter("x@shop.org.test", "hi\r\n"),
			score: 6, action: Junk, ar: []string{"dmarc=fail reason=\"p=reject\" header.from=shop.org.test"}},
		{name: "dmarc record invalid", ip: inside, mailFrom: "a@pass.test", msg: letter("x@broken.test", "hi\r\n"),
			ar: []string{"dmarc=permerror"}},
		{name: "dmarc lookup fails", ip: inside, mailFrom: "a@pass.test", msg: letter("x@tempdmarc.test", "hi\r\n"),
			ar: []string{"dmarc=temperror"}, neutral: "dmarc"},
		{name: "dmarc undecided when SPF lookup fails", ip: inside, mailFrom: "a@tempfail.test", msg: letter("ceo@reject.test", "hi\r\n"),
			ar: []string{"spf=temperror", "dmarc=temperror"}, neutral: "dmarc"},
	}
	e, _ := dnsEngine(t, authZone(), Config{})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := e.Score(context.Background(), &Inspection{Body: tc.msg, ClientIP: tc.ip, Helo: tc.helo, MailFrom: tc.mailFrom, Recipients: 1})
			if v.Score != tc.score || v.Action != tc.action || !strings.Contains(v.Reasons(), tc.reason) {
				t.Errorf("verdict %s score %.1f reasons %q; want %s %.1f with %q\ndetails: %s", v.Action, v.Score, v.Reasons(), tc.action, tc.score, tc.reason, v.Details())
			}
			if len(v.Headers) != 1 {
				t.Fatalf("%d headers, want one Authentication-Results", len(v.Headers))
			}
			h := string(v.Headers[0])
			if !strings.HasPrefix(h, "Authentication-Results: mx.abox.test;\r\n\t") || !strings.HasSuffix(h, "\r\n") {
				t.Errorf("header not an Authentication-Results of mx.abox.test:\n%s", h)
			}
			for _, want := range tc.ar {
				if !strings.Contains(h, want) {
					t.Errorf("Authentication-Results lacks %q:\n%s", want, h)
				}
			}
			if id, _, err := authres.Parse(strings.TrimPrefix(strings.TrimSuffix(h, "\r\n"), "Authentication-Results: ")); err != nil || id != "mx.abox.test" {
				t.Errorf("Authentication-Results does not parse back (%q, %v):\n%s", id, err, h)
			}
			if tc.neutral != "" {
				if f := findingOf(v, tc.neutral); f == nil || !f.Unavailable || f.Score != 0 {
					t.Errorf("%s finding %+v, want unavailable and neutral", tc.neutral, f)
				}
			}
		})
	}
}

// TestMsgAuthSkips: logged-in submitters and the trusted networks are
// not checked and get no header; nothing is looked up for them.
func TestMsgAuthSkips(t *testing.T) {
	e, d := dnsEngine(t, authZone(), Config{TrustedNetworks: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}})
	msg := letter("ceo@reject.test", "hi\r\n")
	for name, in := range map[string]*Inspection{
		"authenticated": {Body: msg, ClientIP: inside, MailFrom: "a@reject.test", Authenticated: true},
		"trusted":       {Body: msg, ClientIP: netip.MustParseAddr("10.1.2.3"), MailFrom: "a@reject.test"},
	} {
		v := e.Score(context.Background(), in)
		if v.Score != 0 || len(v.Headers) != 0 || findingOf(v, "spf") != nil {
			t.Errorf("%s: %+v, want no SPF/DKIM/DMARC findings and no header", name, v)
		}
	}
	if q := d.asked(); len(q) != 0 {
		t.Errorf("DNS asked %q", q)
	}
}

func TestStripAuthResults(t *testing.T) {
	const id = "mx.abox.test"
	tests := []struct{ name, in, want string }{
		{"none", "From: a@b.test\r\n\r\nbody\r\n", "From: a@b.test\r\n\r\nbody\r\n"},
		{"forged, ours",
			"Authentication-Results: mx.abox.test; spf=pass smtp.mailfrom=bank.test\r\nFrom: a@b.test\r\n\r\nbody\r\n",
			"From: a@b.test\r\n\r\nbody\r\n"},
		{"folded, case and version",
			"From: a@b.test\r\nauthentication-results:\r\n\tMX.ABOX.TEST 1;\r\n\tdkim=pass header.d=bank.test\r\nTo: u@example.kz\r\n\r\nbody\r\n",
			"From: a@b.test\r\nTo: u@example.kz\r\n\r\nbody\r\n"},
		{"another server's kept",
			"Authentication-Results: mx.other.test; spf=pass\r\nFrom: a@b.test\r\n\r\nAuthentication-Results: mx.abox.test; in the body\r\n",
			"Authentication-Results: mx.other.test; spf=pass\r\nFrom: a@b.test\r\n\r\nAuthentication-Results: mx.abox.test; in the body\r\n"},
		{"a longer name is not ours",
			"Authentication-Results: mx.abox.test.evil; spf=pass\r\n\r\n",
			"Authentication-Results: mx.abox.test.evil; spf=pass\r\n\r\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(stripAuthResults([]byte(tc.in), id)); got != tc.want {
				t.Fatalf("got\n%q\nwant\n%q", got, tc.want)
			}
		})
	}
}

func TestAuthResultsHeader(t *testing.T) {
	got := string(authResultsHeader("mx.abox.test", []authres.Result{
		&authres.SPFResult{Value: authres.ResultPass, From: "bank.test"},
		&authres.DKIMResult{Value: authres.ResultFail, Reason: "body hash did not verify", Domain: "bank.test"},
		&authres.DMARCResult{Value: authres.ResultFail, Reason: "p=reject", From: "bank.test"},
	}))
	want := "Authentication-Results: mx.abox.test;\r\n" +
		"\tspf=pass smtp.mailfrom=bank.test;\r\n" +
		"\tdkim=fail reason=\"body hash did not verify\" header.d=bank.test;\r\n" +
		"\tdmarc=fail reason=\"p=reject\" header.from=bank.test\r\n"
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}
