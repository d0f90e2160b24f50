package imapd_test

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
)

var recentRE = regexp.MustCompile(`^\* (\d+) RECENT$`)

// recentOf returns the last RECENT count in r, or -1 when none came.
func recentOf(r resp) int {
	n := -1
	for _, l := range r.untagged {
		if m := recentRE.FindStringSubmatch(l); m != nil {
			fmt.Sscan(m[1], &n)
		}
	}
	return n
}

// recentUIDs returns the UIDs FETCH shows with \Recent.
func recentUIDs(t *testing.T, c *imapConn) string {
	t.Helper()
	var out []string
	for _, l := range c.ok("FETCH 1:* (UID FLAGS)").untagged {
		if m := uidRE.FindStringSubmatch(l); m != nil && strings.Contains(l, `\Recent`) {
			out = append(out, m[1])
		}
	}
	return strings.Join(out, " ")
}

func searchResult(t *testing.T, c *imapConn, criteria string) string {
	t.Helper()
	r := c.ok("UID SEARCH %s", criteria)
	for _, l := range r.untagged {
		if strings.HasPrefix(l, "* SEARCH") {
			return strings.TrimSpace(strings.TrimPrefix(l, "* SEARCH"))
		}
	}
	t.Fatalf("no SEARCH response:\n%s", r)
	return ""
}

// TestRecentIMAP4rev1 checks RFC 3501's \Recent as Dovecot hands it out:
// each message recent in exactly one session, the read-write one that
// had the mailbox selected when it arrived or else the next read-write
// SELECT; EXAMINE and IMAP4rev2 sessions claim nothing and show nothing;
// SEARCH RECENT, NEW and OLD and STATUS (RECENT) agree.
func TestRecentIMAP4rev1(t *testing.T) {
	e := newEnv(t)
	user := e.addUser("recent")
	srv := e.start()
	deliverOne := func(i int) { srv.mustDeliver(user, simpleMessage(user, fmt.Sprintf("recent %d", i), "body")) }
	session := func(name string) *imapConn {
		c := dialIMAPS(t, srv.imaps, name)
		c.login(user)
		return c
	}
	deliverOne(1)
	deliverOne(2)

	a := session("A")
	if n := recentOf(a.ok("SELECT INBOX")); n != 2 {
		t.Fatalf("first SELECT: RECENT %d, want 2", n)
	}
	if got := recentUIDs(t, a); got != "1 2" {
		t.Fatalf("A shows \\Recent on UIDs %q, want 1 2", got)
	}
	a.ok("STORE 1 +FLAGS (\\Seen)")
	for crit, want := range map[string]string{"RECENT": "1 2", "NEW": "2", "OLD": "", "UNSEEN RECENT": "2"} {
		if got := searchResult(t, a, crit); got != want {
			t.Errorf("A: SEARCH %s = %q, want %q", crit, got, want)
		}
	}
	r := a.ok("STORE 2 +FLAGS (\\Flagged)")
	if !strings.Contains(r.String(), `\Recent`) {
		t.Errorf("STORE's FETCH leaves out \\Recent:\n%s", r)
	}

	b := session("B")
	if n := recentOf(b.ok("SELECT INBOX")); n != 0 {
		t.Fatalf("second SELECT: RECENT %d, want 0 (A has them)", n)
	}
	if got := searchResult(t, b, "RECENT"); got != "" {
		t.Fatalf("B: SEARCH RECENT = %q", got)
	}

	// Arrival while both have INBOX selected: the first to hear of it.
	deliverOne(3)
	stat := session("status")
	if r := stat.ok("STATUS INBOX (RECENT)"); !strings.Contains(r.String(), "RECENT 1") {
		t.Fatalf("STATUS with one unclaimed message:\n%s", r)
	}
	r = a.ok("NOOP")
	if !r.has("3 EXISTS") || recentOf(r) != 3 {
		t.Fatalf("A's NOOP after a delivery:\n%s\nwant 3 EXISTS, 3 RECENT", r)
	}
	r = b.ok("NOOP")
	if !r.has("3 EXISTS") || recentOf(r) != 0 {
		t.Fatalf("B's NOOP after A claimed:\n%s\nwant 3 EXISTS, 0 RECENT", r)
	}
	if got := recentUIDs(t, b); got != "" {
		t.Fatalf("B shows \\Recent on %q", got)
	}
	if r := stat.ok("STATUS INBOX (RECENT)"); !strings.Contains(r.String(), "RECENT 0") {
		t.Fatalf("STATUS after the claims:\n%s", r)
	}
	// The expunged recent message leaves A's count.
	a.ok("STORE 3 +FLAGS.SILENT (\\Deleted)")
	a.ok("EXPUNGE")
	if r := a.ok("STATUS INBOX (RECENT)"); !strings.Contains(r.String(), "RECENT 2") {
		t.Fatalf("A's STATUS of its own mailbox:\n%s\nwant RECENT 2", r)
	}

	// EXAMINE shows what nobody claimed and claims nothing; the next
	// SELECT does.
	a.ok("LOGOUT")
	b.ok("CLOSE")
	deliverOne(4)
	ex := session("examine")
	if n := recentOf(ex.ok("EXAMINE INBOX")); n != 1 {
		t.Fatalf("EXAMINE: RECENT %d, want 1", n)
	}
	if got := recentUIDs(t, ex); got != "4" {
		t.Fatalf("EXAMINE shows \\Recent on %q, want 4", got)
	}
	if r := ex.ok("STATUS INBOX (RECENT)"); !strings.Contains(r.String(), "RECENT 1") {
		t.Fatalf("STATUS in the EXAMINE session:\n%s", r)
	}

	// IMAP4rev2 (RFC 9051): no RECENT, no \Recent, no claim.
	v2 := session("rev2")
	v2.ok("ENABLE IMAP4rev2")
	r = v2.ok("SELECT INBOX")
	if recentOf(r) != -1 || strings.Contains(recentUIDs(t, v2), "4") {
		t.Fatalf("IMAP4rev2 SELECT:\n%s", r)
	}
	deliverOne(5)
	if r := v2.ok("NOOP"); recentOf(r) != -1 {
		t.Fatalf("IMAP4rev2 NOOP sent RECENT:\n%s", r)
	}
	if r := ex.ok("NOOP"); recentOf(r) != 2 {
		t.Fatalf("EXAMINE session after a delivery:\n%s\nwant RECENT 2", r)
	}

	c := session("C")
	if n := recentOf(c.ok("SELECT INBOX")); n != 2 {
		t.Fatalf("SELECT after EXAMINE and IMAP4rev2: RECENT %d, want 2", n)
	}
	if got := recentUIDs(t, c); got != "4 5" {
		t.Fatalf("C shows \\Recent on %q, want 4 5", got)
	}
	if got := searchResult(t, c, "NEW"); got != "4 5" {
		t.Fatalf("C: SEARCH NEW = %q", got)
	}
}
