package imapd_test

import (
	"regexp"
	"strings"
	"testing"
	"time"
)

var (
	mailboxIDRE = regexp.MustCompile(`MAILBOXID \((M[0-9a-f]+)\)`)
	emailIDRE   = regexp.MustCompile(`EMAILID \((E[0-9a-f]+)\)`)
)

func firstMatch(t *testing.T, re *regexp.Regexp, r resp) string {
	t.Helper()
	for _, u := range append(r.untagged, r.text) {
		if m := re.FindStringSubmatch(u); m != nil {
			return m[1]
		}
	}
	t.Fatalf("no %s in\n%s", re, r)
	return ""
}

// TestObjectIDs: MAILBOXID in SELECT, STATUS and LIST-STATUS survives
// RENAME, and a mailbox made again under the same name gets another;
// EMAILID stays with the message through COPY and MOVE; THREADID is
// NIL; SEARCH EMAILID finds it.
func TestObjectIDs(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.addUser("alice")
	s := e.start()
	s.mustDeliver(alice, simpleMessage(alice, "first", "one"))
	c := dialIMAPS(t, s.imaps, "alice")
	c.login(alice)
	if caps := c.caps(); !caps["OBJECTID"] || !caps["SAVEDATE"] || !caps["PREVIEW"] {
		t.Errorf("capabilities: %v", caps)
	}
	c.ok("CREATE Work")
	id := firstMatch(t, mailboxIDRE, c.ok("STATUS Work (MESSAGES MAILBOXID)"))
	c.ok("RENAME Work Job")
	if got := firstMatch(t, mailboxIDRE, c.ok("SELECT Job")); got != id {
		t.Errorf("MAILBOXID after RENAME %s, before %s", got, id)
	}
	if got := firstMatch(t, mailboxIDRE, c.ok(`LIST "" Job RETURN (STATUS (MAILBOXID))`)); got != id {
		t.Errorf("LIST-STATUS MAILBOXID %s, want %s", got, id)
	}
	c.ok("CREATE Work")
	if got := firstMatch(t, mailboxIDRE, c.ok("STATUS Work (MAILBOXID)")); got == id {
		t.Errorf("a new mailbox named Work has the old MAILBOXID %s", got)
	}

	c.selectBox("SELECT", "INBOX")
	r := c.ok("FETCH 1 (EMAILID THREADID SAVEDATE)")
	eid := firstMatch(t, emailIDRE, r)
	if !r.has("1 FETCH (SAVEDATE \"") || !strings.Contains(r.String(), " EMAILID ("+eid+") THREADID NIL)") {
		t.Errorf("FETCH:\n%s", r)
	}
	c.ok("COPY 1 Job")
	c.ok("MOVE 1 Work")
	c.selectBox("SELECT", "Job")
	if got := firstMatch(t, emailIDRE, c.ok("FETCH 1 EMAILID")); got != eid {
		t.Errorf("EMAILID after COPY %s, want %s", got, eid)
	}
	c.selectBox("SELECT", "Work")
	if got := firstMatch(t, emailIDRE, c.ok("UID FETCH 1:* EMAILID")); got != eid {
		t.Errorf("EMAILID after MOVE %s, want %s", got, eid)
	}
	if r := c.ok("SEARCH EMAILID %s", eid); !r.has("SEARCH 1") {
		t.Errorf("SEARCH EMAILID:\n%s", r)
	}
	if r := c.ok("SEARCH EMAILID E0000000000000bad"); r.has("SEARCH 1") {
		t.Errorf("SEARCH of another EMAILID:\n%s", r)
	}
	if r := c.ok("SEARCH THREADID T1"); r.has("SEARCH 1") {
		t.Errorf("SEARCH THREADID:\n%s", r)
	}
}

// TestSaveDate: SAVEDATE is when the message entered the mailbox, not
// its internal date; the SAVED* search keys use it.
func TestSaveDate(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.addUser("alice")
	s := e.start()
	c := dialIMAPS(t, s.imaps, "alice")
	c.login(alice)
	c.ok(`APPEND INBOX "01-Jan-2001 10:00:00 +0000" %s`, literal(crlf("Subject: old\n\nold\n")))
	c.selectBox("SELECT", "INBOX")
	r := c.ok("FETCH 1 (INTERNALDATE SAVEDATE)")
	today := time.Now().UTC()
	day := today.Format("2-Jan-2006")
	if !r.has(`1 FETCH (INTERNALDATE " 1-Jan-2001 10:00:00 +0000" SAVEDATE "`) || !strings.Contains(r.String(), `SAVEDATE "`+strings.TrimPrefix(today.Format("_2-Jan-2006"), "")) {
		t.Errorf("FETCH SAVEDATE (today %s):\n%s", day, r)
	}
	for _, q := range []struct {
		key  string
		want bool
	}{
		{"SAVEDON " + day, true},
		{"SAVEDSINCE " + day, true},
		{"SAVEDBEFORE " + day, false},
		{"SAVEDBEFORE " + today.AddDate(0, 0, 1).Format("2-Jan-2006"), true},
		{"SAVEDSINCE 1-Jan-2001 NOT SAVEDON 1-Jan-2001", true},
		{"SAVEDATESUPPORTED", true},
		{"ON 1-Jan-2001 SAVEDON 1-Jan-2001", false},
	} {
		r := c.ok("SEARCH %s", q.key)
		if got := r.has("SEARCH 1"); got != q.want {
			t.Errorf("SEARCH %s: %v, want %v\n%s", q.key, got, q.want, r)
		}
	}
}

// TestPreviewFetch: PREVIEW and PREVIEW (LAZY) give the start of the
// text, from a multipart message too.
func TestPreviewFetch(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.addUser("alice")
	s := e.start()
	s.mustDeliver(alice, simpleMessage(alice, "p", "Dear subscriber,\n\n  your bill is ready.\n> quoted\n"))
	s.mustDeliver(alice, multipartMessage(alice))
	c := dialIMAPS(t, s.imaps, "alice")
	c.login(alice)
	c.selectBox("EXAMINE", "INBOX")
	r := c.ok("FETCH 1:2 (UID PREVIEW (LAZY))")
	if !r.has(`1 FETCH (UID 1 PREVIEW "Dear subscriber, your bill is ready.")`) || !strings.Contains(r.String(), "Здравствуйте! Your invoice zebrafish number 42.)") {
		t.Errorf("FETCH PREVIEW (LAZY):\n%s", r)
	}
	r = c.ok("FETCH 1 (PREVIEW ENVELOPE)")
	if !r.has(`1 FETCH (ENVELOPE (`) || !strings.Contains(r.String(), `PREVIEW "Dear subscriber, your bill is ready."`) {
		t.Errorf("FETCH PREVIEW ENVELOPE:\n%s", r)
	}
	c.do("FETCH 1 (PREVIEW (FOO))") // unknown modifier: BAD
	c.ok("NOOP")
}
