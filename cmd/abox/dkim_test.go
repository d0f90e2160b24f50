package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"
	"github.com/miekg/dns"

	"abox/cmd/abox/aboxtest"
	"abox/store"
	"abox/store/pgstore"
)

// TestDomainDKIM: `abox domain dkim` makes a domain's key and prints its
// record; `domain dns` publishes it; a message signed with the stored
// key verifies with go-msgauth against those records served by a real
// DNS server; after --rotate the new key signs and mail signed with the
// old one still verifies (both are published); removing the domain
// removes its keys.
func TestDomainDKIM(t *testing.T) {
	t.Parallel()
	e := aboxtest.New(t)
	e.OK("domain", "add", "example.kz")
	if out := e.OK("domain", "dns", "example.kz"); !strings.Contains(out, "abox domain dkim example.kz") {
		t.Fatalf("domain dns without a key does not say how to make one:\n%s", out)
	}
	var first []dkimView
	e.JSON(&first, "domain", "dkim", "example.kz")
	if len(first) != 1 || !first[0].Signs || !strings.HasPrefix(first[0].Record, "v=DKIM1; k=rsa; p=") || first[0].Name != first[0].Selector+"._domainkey.example.kz" {
		t.Fatalf("first key: %+v", first)
	}
	var again []dkimView
	e.JSON(&again, "domain", "dkim", "example.kz")
	if len(again) != 1 || again[0].Selector != first[0].Selector {
		t.Fatalf("without --rotate a second key was made: %+v", again)
	}
	oldKey := storedDKIMKey(t, e, "example.kz", first[0].Selector)
	signedOld := signDKIM(t, oldKey, first[0].Selector)

	var rotated []dkimView
	e.JSON(&rotated, "domain", "dkim", "example.kz", "--rotate")
	if len(rotated) != 2 || rotated[0].Signs || !rotated[1].Signs || rotated[1].Selector == rotated[0].Selector {
		t.Fatalf("after --rotate: %+v", rotated)
	}
	signedNew := signDKIM(t, storedDKIMKey(t, e, "example.kz", rotated[1].Selector), rotated[1].Selector)

	// Publish what domain dns prints and verify both messages.
	var recs []dnsRecord
	e.JSON(&recs, "domain", "dns", "example.kz")
	var rrs []dns.RR
	for _, r := range recs {
		rr, err := dns.NewRR(fmt.Sprintf("%s 300 IN %s %s", r.Name, r.Type, r.Value))
		if err != nil || rr == nil {
			t.Fatalf("record %+v does not parse: %v", r, err)
		}
		rrs = append(rrs, rr)
	}
	resolver := serveZone(t, rrs)
	lookup := func(name string) ([]string, error) { return resolver.LookupTXT(context.Background(), name) }
	for name, msg := range map[string][]byte{"old key": signedOld, "new key": signedNew} {
		vs, err := dkim.VerifyWithOptions(bytes.NewReader(msg), &dkim.VerifyOptions{LookupTXT: lookup})
		if err != nil || len(vs) != 1 || vs[0].Err != nil || vs[0].Domain != "example.kz" {
			t.Errorf("%s: verifications %+v, %v", name, vs, err)
		}
	}

	e.OK("domain", "remove", "example.kz")
	e.OK("domain", "add", "example.kz")
	e.JSON(&recs, "domain", "dns", "example.kz")
	for _, r := range recs {
		if strings.Contains(r.Name, "._domainkey.") {
			t.Errorf("a removed domain's key came back: %+v", r)
		}
	}
	e.Fail(1, "domain", "dkim", "other.kz")
}

// storedDKIMKey reads a key from the data directory's store (no server
// runs on it).
func storedDKIMKey(t *testing.T, e *aboxtest.Env, domain, selector string) crypto.Signer {
	t.Helper()
	var st interface {
		DKIMKeys(domain string) ([]store.DKIMKey, error)
		Close() error
	}
	if sh := e.SharedStore(); sh != nil { // the harness's cluster mode
		pg, err := pgstore.Open(context.Background(), pgstore.Options{DSN: sh.DSN, MaxConns: 2})
		if err != nil {
			t.Fatal(err)
		}
		st = pg
	} else {
		bolt, err := store.Open(filepath.Join(e.Dir, store.FileName), store.Options{ReadOnly: true, LockTimeout: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		st = bolt
	}
	defer st.Close()
	keys, err := st.DKIMKeys(domain)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if k.Selector == selector {
			block, _ := pem.Decode([]byte(k.PrivatePEM))
			priv, err := x509.ParsePKCS8PrivateKey(block.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			return priv.(crypto.Signer)
		}
	}
	t.Fatalf("no key %s for %s", selector, domain)
	return nil
}

func signDKIM(t *testing.T, key crypto.Signer, selector string) []byte {
	t.Helper()
	msg := "From: alice@example.kz\r\nTo: bob@elsewhere.example\r\nSubject: signed\r\nDate: Mon, 07 Dec 2026 09:00:00 +0000\r\nMessage-ID: <dkim-1@example.kz>\r\n\r\nA signed letter.\r\n"
	var out bytes.Buffer
	if err := dkim.Sign(&out, strings.NewReader(msg), &dkim.SignOptions{Domain: "example.kz", Selector: selector, Signer: key}); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// serveZone answers DNS questions from rrs on a loopback UDP socket and
// returns a resolver that asks it.
func serveZone(t *testing.T, rrs []dns.RR) *net.Resolver {
	t.Helper()
	addr := serveZoneAt(t, rrs)
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, "udp", addr)
	}}
}
