package main

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"abox/cmd/abox/aboxtest"
)

// TestMigrate moves a served bbolt installation (accounts, an official
// letter with its evidence log, consent and signed head, a letter large
// enough for the object store) into PostgreSQL and SeaweedFS with the
// real binary, serves it from there (same mailbox, same UIDVALIDITY and
// UIDs, the evidence log verifying with the public key), refuses a
// second migration into the same database, and moves it back into a new
// data directory that checks clean and still verifies.
func TestMigrate(t *testing.T) {
	aboxtest.SkipInCluster(t, "moves a bbolt installation into PostgreSQL and back (its own source and target)")
	t.Parallel()
	a := newAbox(t)
	fastHashing(t, a.Dir)
	keyDir := t.TempDir()
	keyFile, pubFile := filepath.Join(keyDir, "evidence.key"), filepath.Join(keyDir, "evidence.pub")
	a.OK("notice", "keygen", keyFile, "--public-out", pubFile)
	a.OK("domain", "add", testDomain)
	a.OKIn(egovPassword+"\n", "sender", "add", "egov", "--kind", "official", "--from", "notices@egov.kz", "--password-stdin")
	now := time.Now()
	addrs := a.serveOfficial(t, keyFile, now)
	submitOfficial(t, addrs["submission"], "alice@example.kz", "Official", "mig-1@egov.kz", now)
	big := strings.Repeat("A letter whose body goes to the object store. ", 200)
	mxSend(t, addrs["smtp"], "alice@"+testDomain, "Large", big)
	rc := rawIMAPLogin(t, addrs["imaps"], "alice@"+testDomain, goodPassword)
	rc.cmd("SELECT INBOX")
	if out, st := rc.cmd("FETCH 1 BODY[]"); !strings.HasPrefix(st, "OK") || !strings.Contains(out, "The text.") {
		t.Fatalf("FETCH: %s %s", st, out)
	}
	before, _ := rc.cmd("UID FETCH 1:* (UID FLAGS)")
	status, _ := rc.cmd("STATUS INBOX (UIDVALIDITY UIDNEXT MESSAGES)")
	rc.cmd("LOGOUT")
	a.OK("notice", "sign")
	a.srv.Stop()

	c := newPGCluster(t, true)
	n := c.node()
	var res migrateResult
	n.JSON(&res, "migrate", "--from", a.Dir, "--to", c.dsn)
	if !res.Verified || res.Records == 0 || res.BodyBytes < int64(len(big)) {
		t.Fatalf("migrate into PostgreSQL: %+v", res)
	}
	for _, want := range []string{"account", "message", "evidence", "signed_head", "consent", "official_copy"} {
		if !slices.ContainsFunc(res.Kinds, func(k migrateKind) bool { return string(k.Kind) == want && k.Count > 0 }) {
			t.Errorf("migrate moved no %s record: %+v", want, res.Kinds)
		}
	}
	// The same database again: refused, nothing changed.
	r := n.Fail(1, "migrate", "--from", a.Dir, "--to", c.dsn)
	if !strings.Contains(r.Stderr, "not empty") {
		t.Errorf("a second migration into the database: %q", r.Stderr)
	}
	n.Fail(2, "migrate", "--from", a.Dir)

	n.ServeFlags = []string{"--evidence-key", keyFile, "--evidence-interval", "0"}
	c.serve(n)
	rc = rawIMAPLogin(t, n.srv.Addr("imaps"), "alice@"+testDomain, goodPassword)
	rc.cmd("SELECT INBOX")
	after, _ := rc.cmd("UID FETCH 1:* (UID FLAGS)")
	status2, _ := rc.cmd("STATUS INBOX (UIDVALIDITY UIDNEXT MESSAGES)")
	if out, st := rc.cmd("UID FETCH 2 BODY.PEEK[TEXT]"); !strings.HasPrefix(st, "OK") || !strings.Contains(strings.ReplaceAll(out, "\r\n", ""), strings.TrimSpace(big)[:200]) {
		t.Errorf("the large letter on PostgreSQL: %s %.300s", st, out)
	}
	rc.cmd("LOGOUT")
	// \Recent went to the session that saw the letters arrive, and
	// stays claimed after the move.
	before = strings.NewReplacer(` \Recent`, "", `\Recent`, "").Replace(before)
	if after != before || status2 != status {
		t.Errorf("the mailbox on PostgreSQL differs:\n%s%s\nwant\n%s%s", after, status2, before, status)
	}
	n.OK("notice", "verify", "--public-key", pubFile)
	n.OK("notice", "show", "mig-1@egov.kz")
	n.srv.Stop()

	backDir := filepath.Join(t.TempDir(), "back")
	n.JSON(&res, "migrate", "--from", c.dsn, "--to", backDir)
	if !res.Verified {
		t.Fatalf("migrate back: %+v", res)
	}
	back := aboxAt(t, backDir)
	back.OK("check")
	back.OK("notice", "verify", "--public-key", pubFile)
	back.srv = back.Start()
	if subj := inboxSubjects(t, back.srv.Addr("imaps"), "alice@"+testDomain); len(subj) != 2 {
		t.Errorf("INBOX back on bbolt: %v", subj)
	}
}
