package main

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"maps"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"abox/consent/consenttest"
)

// TestConsentAtDelivery: a consent recorded in force stops carrying
// official letters when the CA revokes the certificate (a new CRL in
// the directory), when the certificate expires, and when it was
// recorded before this change from a bare certificate. Each such
// recipient is refused at RCPT with SPEC's 550 5.7.1, over SMTP and in
// a broadcast, and the evidence log holds a refused event with the
// reason and the fingerprint of the certificate that was in force.
func TestConsentAtDelivery(t *testing.T) {
	t.Parallel()
	a := newAbox(t)
	fastHashing(t, a.Dir)
	now := time.Now()
	pki := configureConsent(t, a, now)
	a.OK("domain", "add", testDomain)
	a.OKIn(egovPassword+"\n", "sender", "add", "egov", "--kind", "official", "--from", "notices@egov.kz", "--password-stdin")
	addr := map[string]string{}
	for _, l := range []string{"alice", "carol", "erin", "frank"} {
		a.addUser(l)
		addr[l] = l + "@" + testDomain
	}
	fp := map[string]string{}
	record := func(who string, notAfter time.Time) consenttest.CA {
		f, sub, err := pki.Consent(addr[who], a.accountID(addr[who]), now, now.Add(-time.Hour), notAfter)
		if err != nil {
			t.Fatal(err)
		}
		a.OK("user", "consent", addr[who], "--cms", f)
		sum := sha256.Sum256(sub.Cert.Raw)
		fp[who] = hex.EncodeToString(sum[:])
		return sub
	}
	aliceCert := record("alice", now.AddDate(1, 0, 0))
	record("carol", now.AddDate(1, 0, 0))
	// Erin's certificate ends in a few seconds: the test waits for it
	// (the outcome, not a duration, decides).
	erinEnd := time.Now().Add(6 * time.Second)
	record("erin", erinEnd)
	fp["frank"] = strings.Repeat("ab", 32)
	if sh := a.SharedStore(); sh != nil { // the harness's cluster mode
		injectLegacyConsentPG(t, sh.DSN, a.accountID(addr["frank"]), fp["frank"], now)
	} else {
		injectLegacyConsent(t, filepath.Join(a.Dir, "abox.db"), a.accountID(addr["frank"]), fp["frank"], now)
	}

	a.srv = a.Start()
	addrs := a.srv.Addrs()
	if err := pki.Revoke(time.Now().Add(-time.Minute), aliceCert.Cert); err != nil {
		t.Fatal(err)
	}
	for time.Now().Before(erinEnd.Add(time.Second)) {
		time.Sleep(200 * time.Millisecond)
	}
	status := map[string]string{"alice": "consent-revoked", "carol": "in-force", "erin": "consent-expired", "frank": "consent-unverified"}
	for who, want := range status {
		if got, _ := a.showUserRaw(addr[who])["consent_status"].(string); !strings.HasPrefix(got, want) {
			t.Errorf("user show %s: consent_status %q, want %s", who, got, want)
		}
	}

	c := submitter(t, addrs["submission"], "egov", egovPassword)
	if err := c.Mail("notices@egov.kz"); err != nil {
		t.Fatal(err)
	}
	for _, who := range []string{"alice", "erin", "frank"} {
		code, text := smtpCode(c.Rcpt(addr[who]))
		if code != 550 || !strings.HasPrefix(text, "5.7.1 ") || !strings.Contains(text, "user agreement 3.2") {
			t.Errorf("RCPT TO %s (%s): want 550 5.7.1 citing 3.2, got %d %q", who, status[who], code, text)
		}
	}
	if err := c.Rcpt(addr["carol"]); err != nil {
		t.Fatalf("RCPT TO carol (in force): %v", err)
	}
	sendData(t, c, "From: notices@egov.kz\nTo: carol@example.kz\nSubject: Notice\nDate: "+now.Format(time.RFC1123Z)+"\nMessage-ID: <cd-1@egov.kz>\n\nThe text.\n")
	c.Quit()
	checkRefusedEvents(t, a, "cd-1@egov.kz", status, fp)

	// A letter every recipient of which is refused never reaches DATA:
	// its refusals are logged when the transaction ends, by RSET or by
	// a dropped connection, without a Message-ID.
	c = submitter(t, addrs["submission"], "egov", egovPassword)
	if err := c.Mail("notices@egov.kz"); err != nil {
		t.Fatal(err)
	}
	c.Rcpt(addr["alice"])
	if err := c.Reset(); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail("notices@egov.kz"); err != nil {
		t.Fatal(err)
	}
	c.Rcpt(addr["erin"])
	c.Close()
	want := map[string]string{"alice": "consent-revoked", "erin": "consent-expired"}
	var got map[string]string
	for deadline := time.Now().Add(20 * time.Second); ; {
		var evs []map[string]any
		a.JSON(&evs, "notice", "refusals", "--sender", "egov")
		got = map[string]string{}
		for _, e := range evs {
			who, _, _ := strings.Cut(e["recipient"].(string), "@")
			got[who], _ = e["reason"].(string)
			if e["message_id"] != "" || e["consent_sha256"] != fp[who] {
				t.Errorf("refusal without DATA: %v", e)
			}
		}
		if len(got) == len(want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !maps.Equal(got, want) {
		t.Errorf("notice refusals: %v, want %v", got, want)
	}

	// The same in a broadcast of an official letter.
	msg := writeFile(t, t.TempDir(), "b.eml", []byte(crlf("From: notices@egov.kz\nSubject: To everyone\nDate: "+now.Format(time.RFC1123Z)+"\nMessage-ID: <cd-2@egov.kz>\n\nFor all.\n")))
	var b broadcastJSON
	a.JSON(&b, "broadcast", "--from", "egov", "--file", msg)
	if b.Delivered != 1 || b.Refused != 3 {
		t.Errorf("broadcast: %+v, want 1 delivered (carol), 3 refused", b)
	}
	checkRefusedEvents(t, a, "cd-2@egov.kz", status, fp)
}

// checkRefusedEvents reads a letter's evidence and checks each
// recipient's refused or stored event against status.
func checkRefusedEvents(t *testing.T, a *abox, msgID string, status, fp map[string]string) {
	t.Helper()
	var p proofJSON
	a.JSON(&p, "notice", "proof", msgID)
	got := map[string]string{}
	for _, e := range p.Pending {
		kind, _ := e["kind"].(string)
		rcpt, _ := e["recipient"].(string)
		reason, _ := e["reason"].(string)
		consent, _ := e["consent_sha256"].(string)
		who, _, _ := strings.Cut(rcpt, "@")
		switch kind {
		case "refused":
			got[who] = reason
			if consent != fp[who] {
				t.Errorf("%s: refused event for %s carries consent %q, want %q", msgID, who, consent, fp[who])
			}
		case "stored":
			got[who] = "in-force"
		}
	}
	for who, want := range status {
		if got[who] != want {
			t.Errorf("%s: evidence for %s says %q, want %q (all: %v)", msgID, who, got[who], want, got)
		}
	}
}

// injectLegacyConsent writes, into a stopped server's database, the
// consent record abox made before consent was verified: a bare
// certificate's description, no signature.
func injectLegacyConsent(t *testing.T, path string, id uint64, sha string, now time.Time) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("accounts"))
		key := binary.BigEndian.AppendUint64(nil, id)
		var acct map[string]any
		if err := json.Unmarshal(b.Get(key), &acct); err != nil {
			return err
		}
		acct["consent"] = map[string]any{"subject": "CN=Frank Legacy", "issuer": "CN=Frank Legacy", "serial": "1", "sha256": sha,
			"not_before": now.AddDate(-1, 0, 0), "not_after": now.AddDate(1, 0, 0), "recorded_at": now.AddDate(0, -1, 0)}
		raw, err := json.Marshal(acct)
		if err != nil {
			return err
		}
		return b.Put(key, raw)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// injectLegacyConsentPG is injectLegacyConsent on the PostgreSQL
// backend, whose account rows keep the same record in data (as a
// database migrated from such a bbolt file has it).
func injectLegacyConsentPG(t *testing.T, dsn string, id uint64, sha string, now time.Time) {
	t.Helper()
	consent, err := json.Marshal(map[string]any{"subject": "CN=Frank Legacy", "issuer": "CN=Frank Legacy", "serial": "1", "sha256": sha,
		"not_before": now.AddDate(-1, 0, 0), "not_after": now.AddDate(1, 0, 0), "recorded_at": now.AddDate(0, -1, 0)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	conn := pgConnect(t, dsn)
	defer conn.Close(ctx)
	tag, err := conn.Exec(ctx, `UPDATE accounts SET data = jsonb_set(data, '{consent}', $1::jsonb) WHERE id = $2`, string(consent), int64(id))
	if err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("writing the legacy consent of account %d: %v (%d rows)", id, err, tag.RowsAffected())
	}
}

// TestConsentCRLReloadOnHUP: with a long recheck interval the server
// keeps the CRLs it read; SIGHUP makes it read the directory again, and
// the revocation applies at the next RCPT.
func TestConsentCRLReloadOnHUP(t *testing.T) {
	t.Parallel()
	a := newAbox(t)
	fastHashing(t, a.Dir)
	now := time.Now()
	pki, err := consenttest.ConfigureRecheck(a.Dir, t.TempDir(), now, "1h")
	if err != nil {
		t.Fatal(err)
	}
	a.OK("domain", "add", testDomain)
	a.OKIn(egovPassword+"\n", "sender", "add", "egov", "--kind", "official", "--from", "notices@egov.kz", "--password-stdin")
	a.addUser("alice")
	alice := "alice@" + testDomain
	f, sub := a.consentFile(pki, alice, now)
	a.OK("user", "consent", alice, "--cms", f)
	a.srv = a.Start()
	rcpt := func() (int, string) {
		c := submitter(t, a.srv.Addr("submission"), "egov", egovPassword)
		defer c.Close()
		if err := c.Mail("notices@egov.kz"); err != nil {
			t.Fatal(err)
		}
		if err := c.Rcpt(alice); err != nil {
			return smtpCode(err)
		}
		return 250, ""
	}
	if code, text := rcpt(); code != 250 {
		t.Fatalf("RCPT before the revocation: %d %s", code, text)
	}
	if err := pki.Revoke(time.Now().Add(-time.Minute), sub.Cert); err != nil {
		t.Fatal(err)
	}
	if code, _ := rcpt(); code != 250 {
		t.Errorf("RCPT after the new CRL, before SIGHUP, with a 1h recheck: %d, want the cached CRL's 250", code)
	}
	if err := a.srv.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); !a.srv.Log.Contains("consent CRLs reloaded") && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	if code, text := rcpt(); code != 550 || !strings.Contains(text, "revoked") {
		t.Errorf("RCPT after SIGHUP: %d %q, want 550 revoked", code, text)
	}
}
