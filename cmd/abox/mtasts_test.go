package main

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"io"
	"net/http"
	"strings"
	"testing"

	"abox/cmd/abox/aboxtest"
)

// TestMTASTSPolicy: with mta-sts-mode enforce the HTTPS listener serves
// a hosted domain's policy at mta-sts.DOMAIN (RFC 8461 §3.2: version,
// mode, the server as MX, max_age in seconds), nothing for another
// domain, and `domain dns` announces it with an id that follows the
// policy, and asks for TLS reports; off by default.
func TestMTASTSPolicy(t *testing.T) {
	t.Parallel()
	e := aboxtest.New(t)
	e.OK("domain", "add", "example.kz")
	if out := e.OK("domain", "dns", "example.kz"); strings.Contains(out, "_mta-sts") {
		t.Fatalf("MTA-STS records without mta-sts-mode:\n%s", out)
	}
	if r := e.Fail(1, "serve", "--mta-sts-mode", "always"); !strings.Contains(r.Stderr, "mta-sts-mode") {
		t.Fatalf("a bad mode: %s", r)
	}
	// In the config file, so that `domain dns` sees them too.
	writeFile(t, e.Dir, "abox.toml", []byte("hostname = \""+aboxtest.DefaultHostname+"\"\nmta-sts-mode = \"enforce\"\nmta-sts-max-age = \"14d\"\n"))
	srv := e.Start()
	get := func(host string) (int, string) {
		req, _ := http.NewRequestWithContext(context.Background(), "GET", "https://"+srv.Addr("https")+"/.well-known/mta-sts.txt", nil)
		req.Host = host
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode == 200 && resp.Header.Get("Content-Type") != "text/plain" {
			t.Errorf("policy served as %q", resp.Header.Get("Content-Type"))
		}
		return resp.StatusCode, string(b)
	}
	code, policy := get("mta-sts.example.kz")
	want := "version: STSv1\r\nmode: enforce\r\nmx: " + aboxtest.DefaultHostname + "\r\nmax_age: 1209600\r\n"
	if code != 200 || policy != want {
		t.Fatalf("policy: %d %q, want %q", code, policy, want)
	}
	if code, _ := get("mta-sts.other.kz"); code != 404 {
		t.Fatalf("a domain not hosted here: %d, want 404", code)
	}
	var recs []dnsRecord
	e.JSON(&recs, "domain", "dns", "example.kz")
	sum := sha256.Sum256([]byte(policy))
	found := map[string]string{}
	for _, r := range recs {
		found[r.Name+" "+r.Type] = r.Value
	}
	if got := found["_mta-sts.example.kz. TXT"]; got != `"v=STSv1; id=`+hex.EncodeToString(sum[:10])+`"` {
		t.Errorf("_mta-sts TXT %q does not carry the served policy's id", got)
	}
	if got := found["_smtp._tls.example.kz. TXT"]; got != `"v=TLSRPTv1; rua=mailto:postmaster@example.kz"` {
		t.Errorf("TLS-RPT record %q", got)
	}
	if found["mta-sts.example.kz. CNAME"] == "" {
		t.Errorf("no mta-sts CNAME among %v", found)
	}
}
