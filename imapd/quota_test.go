package imapd_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
)

// TestQuotaGoClient: go-imap's client reads GETQUOTA and GETQUOTAROOT;
// the limits are the class's with the account's overrides, usage grows
// with a delivery, and SETQUOTA is refused.
func TestQuotaGoClient(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.addUser("alice")
	e.OK("user", "set", alice, "--quota-messages", "5")
	s := e.start()
	c, _ := goClient(t, s.imaps, alice, false)
	for _, cp := range []imap.Cap{imap.CapQuota, "QUOTA=RES-STORAGE", "QUOTA=RES-MESSAGE", "QUOTA=RES-MAILBOX", imap.CapID} {
		if !c.Caps().Has(cp) {
			t.Errorf("no %s in %v", cp, c.Caps())
		}
	}
	before, err := c.GetQuota("").Wait()
	if err != nil {
		t.Fatalf("GETQUOTA: %v", err)
	}
	st, msg, mbx := before.Resources[imap.QuotaResourceStorage], before.Resources[imap.QuotaResourceMessage], before.Resources[imap.QuotaResourceMailbox]
	if st.Limit != 1<<20 || st.Usage != 0 || msg.Limit != 5 || msg.Usage != 0 || mbx.Usage != 6 || mbx.Limit <= 0 {
		t.Errorf("GETQUOTA before delivery: %+v", before.Resources)
	}
	s.mustDeliver(alice, simpleMessage(alice, "q", strings.Repeat("x", 5000)))
	roots, err := c.GetQuotaRoot("INBOX").Wait()
	if err != nil || len(roots) != 1 || roots[0].Root != "" {
		t.Fatalf("GETQUOTAROOT INBOX: %+v, %v", roots, err)
	}
	u := e.usage(alice)
	st, msg = roots[0].Resources[imap.QuotaResourceStorage], roots[0].Resources[imap.QuotaResourceMessage]
	if msg.Usage != 1 || st.Usage != (u.StorageBytes+1023)/1024 || st.Usage < 5 {
		t.Errorf("GETQUOTAROOT after delivery: %+v (store: %+v)", roots[0].Resources, u)
	}
	if err := c.SetQuota("", map[imap.QuotaResourceType]int64{imap.QuotaResourceStorage: 10}).Wait(); err == nil {
		t.Error("SETQUOTA succeeded")
	}
	if _, err := c.GetQuota("other").Wait(); err == nil {
		t.Error("GETQUOTA of an unknown root succeeded")
	}
	if _, err := c.GetQuotaRoot("Nonexistent").Wait(); err == nil {
		t.Error("GETQUOTAROOT of a missing mailbox succeeded")
	}
}

// TestQuotaRawAndStatus: the wire form of QUOTA, STATUS DELETED and
// DELETED-STORAGE, APPENDLIMIT, and over quota APPEND NO [OVERQUOTA].
func TestQuotaRawAndStatus(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.addUser("alice")
	e.OK("user", "set", alice, "--quota-messages", "2")
	s := e.start()
	c := dialIMAPS(t, s.imaps, "alice")
	c.login(alice)
	if caps := c.caps(); !caps["APPENDLIMIT"] {
		t.Errorf("capabilities lack APPENDLIMIT (without a value): %v", caps)
	}
	r := c.ok("GETQUOTA \"\"")
	if !r.has(`QUOTA "" (STORAGE 0 1048576 MESSAGE 0 2 MAILBOX 6 `) {
		t.Errorf("GETQUOTA:\n%s", r)
	}
	msg := crlf("Subject: s\n\n" + strings.Repeat("y", 3000) + "\n")
	c.ok("APPEND INBOX (\\Deleted) %s", literal(msg))
	r = c.ok("STATUS INBOX (DELETED DELETED-STORAGE SIZE MESSAGES APPENDLIMIT)")
	want := fmt.Sprintf("STATUS INBOX (MESSAGES 1 DELETED 1 SIZE %d APPENDLIMIT 26214400 DELETED-STORAGE 3)", len(msg))
	if !r.has(want) {
		t.Errorf("STATUS:\n%s\nwant %s", r, want)
	}
	c.ok("APPEND INBOX %s", literal(msg))
	c.no("OVERQUOTA", "APPEND INBOX %s", literal(msg))
	r = c.ok("GETQUOTAROOT INBOX")
	if !r.has(`QUOTAROOT INBOX ""`) || !r.has(`QUOTA "" (STORAGE 6 1048576 MESSAGE 2 2 MAILBOX 6 `) {
		t.Errorf("GETQUOTAROOT:\n%s", r)
	}
	c.no("NOPERM", "SETQUOTA \"\" (STORAGE 10)")
}

// TestID: ID before and after login answers with abox's name; the
// client's fields reach the log, bounded.
func TestID(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.addUser("alice")
	s := e.start()
	c := dialIMAPS(t, s.imaps, "alice")
	r := c.ok("ID NIL")
	if !r.has(`ID ("name" "abox" "version" `) {
		t.Errorf("ID NIL:\n%s", r)
	}
	c.login(alice)
	long := strings.Repeat("v", 2000)
	r = c.ok(`ID ("name" "Thunderbird" "version" "128.1" "x-long" %s)`, quote(long))
	if !r.has(`ID ("name" "abox"`) {
		t.Errorf("ID:\n%s", r)
	}
	c.do(`ID ("name")`) // malformed: BAD, session goes on
	c.ok("NOOP")
	if !s.Log.Contains("client ID", "Thunderbird", "128.1") {
		t.Errorf("the client's ID is not in the log:\n%s", s.Log)
	}
	if s.Log.Contains(strings.Repeat("v", 1025)) {
		t.Error("an ID value longer than 1024 octets was logged whole")
	}

	g, _ := goClient(t, s.imaps, alice, false)
	d, err := g.ID(&imap.IDData{Name: "go-imap", Version: "2"}).Wait()
	if err != nil || d.Name != "abox" || d.Version == "" {
		t.Errorf("imapclient ID: %+v, %v", d, err)
	}
}
