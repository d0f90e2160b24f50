package main

import (
	"encoding/base64"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestReceiptsByMail: a trusted sender set to get its receipts by mail
// gets, after the next signed tree head, one report per letter: the
// recipients it was stored for and refused to (RFC 3464 fields) and a
// receipts.json the sender's verifier accepts with the operator's public
// key; the first head only starts the count, and a head with nothing
// new mails nothing.
func TestReceiptsByMail(t *testing.T) {
	t.Parallel()
	a := newAbox(t)
	fastHashing(t, a.Dir)
	keyDir := t.TempDir()
	keyFile, pubFile := filepath.Join(keyDir, "evidence.key"), filepath.Join(keyDir, "evidence.pub")
	a.OK("notice", "keygen", keyFile, "--public-out", pubFile)
	a.OK("domain", "add", testDomain)
	a.addUser("receipts")
	a.OKIn(egovPassword+"\n", "sender", "add", "egov", "--kind", "official", "--from", "notices@egov.kz", "--password-stdin")
	a.Fail(1, "sender", "set", "egov", "--receipts-to", "not an address")
	a.Fail(2, "sender", "set", "egov")
	if out := a.OK("sender", "set", "egov", "--receipts-to", "Receipts@example.kz"); !strings.Contains(out, "receipts to receipts@example.kz") {
		t.Fatalf("sender set: %s", out)
	}
	now := time.Now()
	addrs := a.serveOfficial(t, keyFile, now)
	a.OK("notice", "sign") // the first head starts the count

	submitOfficial(t, addrs["submission"], "alice@example.kz", "Receipts", "rm-1@egov.kz", now)
	rc := rawIMAPLogin(t, addrs["imaps"], "alice@"+testDomain, goodPassword)
	rc.cmd("SELECT INBOX")
	if out, st := rc.cmd("FETCH 1 BODY[]"); !strings.HasPrefix(st, "OK") || !strings.Contains(out, "The text.") {
		t.Fatalf("FETCH: %s %s", st, out)
	}
	rc.cmd("LOGOUT")
	if got := inboxBodies(t, addrs["imaps"], "receipts@"+testDomain, "INBOX"); len(got) != 0 {
		t.Fatalf("receipts mailed before a head was signed: %d", len(got))
	}

	a.OK("notice", "sign")
	got := waitMessages(t, addrs["imaps"], "receipts@"+testDomain, 1, 30*time.Second)
	report := got[0]
	for _, want := range []string{"Subject: Evidence receipts for <rm-1@egov.kz>", "Return-Path: <>", "multipart/report; report-type=delivery-status",
		"Final-Recipient: rfc822; alice@example.kz\r\nAction: delivered\r\nStatus: 2.0.0",
		"Final-Recipient: rfc822; bob@example.kz\r\nAction: failed\r\nStatus: 5.7.1", "retrieved alice@example.kz (body-fetched-select)"} {
		if !strings.Contains(report, want) {
			t.Errorf("the report lacks %q:\n%s", want, report)
		}
	}
	_, rest, ok := strings.Cut(report, "filename=\"receipts.json\"\r\nContent-Transfer-Encoding: base64\r\n\r\n")
	if !ok {
		t.Fatalf("no receipts.json in the report:\n%s", report)
	}
	b64, _, _ := strings.Cut(rest, "\r\n--")
	js, err := base64.StdEncoding.DecodeString(strings.ReplaceAll(b64, "\r\n", ""))
	if err != nil {
		t.Fatalf("receipts.json: %v", err)
	}
	verifier := buildVerifier(t)
	out, err := exec.Command(verifier, "-public-key", pubFile, writeFile(t, t.TempDir(), "receipts.json", js)).CombinedOutput()
	if err != nil || strings.Count(string(out), "verified entry") != 5 {
		t.Fatalf("abox-verify-receipt on the mailed receipts (want 5: accepted, stored, refused, retrieved, read): %v\n%s", err, out)
	}

	a.OK("notice", "sign")
	time.Sleep(500 * time.Millisecond)
	if got := inboxBodies(t, addrs["imaps"], "receipts@"+testDomain, "INBOX"); len(got) != 1 {
		t.Fatalf("%d reports after a head with nothing new, want 1", len(got))
	}
	if out := a.OK("sender", "set", "egov", "--receipts-to", "none"); !strings.Contains(out, "no receipts by mail") {
		t.Fatalf("sender set none: %s", out)
	}
}
