package imapd_test

import (
	"fmt"
	"strings"
	"testing"
)

// IMAP4rev1 details imaptest's scripted tests check.

// lsubNames returns the names LSUB (or LIST) answered, with their
// attributes.
func lsubNames(r resp) map[string]string {
	out := map[string]string{}
	for _, l := range r.untagged {
		open, close := strings.IndexByte(l, '('), strings.IndexByte(l, ')')
		if open < 0 || close < open {
			continue
		}
		rest := strings.Fields(l[close+1:])
		if len(rest) < 2 {
			continue
		}
		out[strings.Trim(rest[1], `"`)] = l[open+1 : close]
	}
	return out
}

// TestSubscriptionsByName: CREATE does not subscribe, DELETE does not
// unsubscribe (RFC 3501 §6.3.6: the name stays until UNSUBSCRIBE), a
// new account's folders are subscribed (SPEC "IMAP"), and LSUB "%"
// lists an unsubscribed superior of a subscribed name \Noselect (RFC
// 3501 §6.3.9).
func TestSubscriptionsByName(t *testing.T) {
	e := newEnv(t)
	user := e.addUser("subs")
	srv := e.start()
	c := dialIMAPS(t, srv.imaps, "c")
	c.login(user)
	got := lsubNames(c.ok(`LSUB "" "*"`))
	for _, name := range []string{"INBOX", "Sent", "Drafts", "Trash", "Junk", "Archive"} {
		if _, ok := got[name]; !ok {
			t.Errorf("default folder %s not subscribed: %v", name, got)
		}
	}
	c.ok("CREATE a/b")
	c.ok("CREATE x")
	got = lsubNames(c.ok(`LSUB "" "*"`))
	for _, name := range []string{"a", "a/b", "x"} {
		if _, ok := got[name]; ok {
			t.Errorf("CREATE subscribed %s: %v", name, got)
		}
	}
	c.ok("SUBSCRIBE a/b")
	got = lsubNames(c.ok(`LSUB "" "%%"`))
	if attrs, ok := got["a"]; !ok || !strings.Contains(attrs, `\Noselect`) {
		t.Errorf(`LSUB "" "%%": a (superior of subscribed a/b) = %q, %v; want \Noselect`, attrs, ok)
	}
	if _, ok := got["a/b"]; ok {
		t.Errorf(`LSUB "" "%%" lists a/b`)
	}
	c.ok("DELETE a/b")
	got = lsubNames(c.ok(`LSUB "" "*"`))
	if attrs, ok := got["a/b"]; !ok || !strings.Contains(attrs, `\Noselect`) {
		t.Fatalf("after DELETE, LSUB: a/b = %q, %v; want still subscribed, \\Noselect", attrs, ok)
	}
	got = lsubNames(c.ok(`LIST (SUBSCRIBED) "" "*"`))
	if attrs := got["a/b"]; !strings.Contains(attrs, `\NonExistent`) || !strings.Contains(attrs, `\Subscribed`) {
		t.Fatalf("after DELETE, LIST (SUBSCRIBED): a/b = %q; want \\NonExistent \\Subscribed", attrs)
	}
	if _, ok := lsubNames(c.ok(`LIST "" "*"`))["a/b"]; ok {
		t.Fatal("plain LIST lists the deleted a/b")
	}
	c.ok("CREATE a/b")
	if attrs, ok := lsubNames(c.ok(`LSUB "" "a/*"`))["a/b"]; !ok || strings.Contains(attrs, `\Noselect`) {
		t.Fatalf("a/b created again: LSUB %q, %v; want subscribed and selectable", attrs, ok)
	}
	c.ok("DELETE a/b")
	c.ok("UNSUBSCRIBE a/b")
	if _, ok := lsubNames(c.ok(`LSUB "" "*"`))["a/b"]; ok {
		t.Fatal("UNSUBSCRIBE of a deleted name left it subscribed")
	}
	c.ok("CREATE a/b")
	if _, ok := lsubNames(c.ok(`LSUB "" "*"`))["a/b"]; ok {
		t.Fatal("a/b unsubscribed, deleted and created again is subscribed")
	}
}

// TestLogoutSendsNoUpdates: LOGOUT answers BYE and OK only (RFC 3501
// §6.1.3), even with changes to the selected mailbox pending; imaptest
// counted a FETCH or EXPUNGE after the BYE as a numbering error.
func TestLogoutSendsNoUpdates(t *testing.T) {
	e := newEnv(t)
	user := e.addUser("logout")
	srv := e.start()
	srv.mustDeliver(user, simpleMessage(user, "one", "x"))
	srv.mustDeliver(user, simpleMessage(user, "two", "x"))
	a := inInbox(t, srv.imaps, "a", user)
	b := inInbox(t, srv.imaps, "b", user)
	b.ok(`STORE 1 +FLAGS (\Seen)`)
	b.ok(`STORE 2 +FLAGS.SILENT (\Deleted)`)
	b.ok("EXPUNGE")
	r := a.ok("LOGOUT")
	if len(r.untagged) != 1 || !strings.HasPrefix(r.untagged[0], "* BYE") {
		t.Fatalf("LOGOUT with updates pending:\n%s\nwant only * BYE", r)
	}
}

// TestSelectInvalidName: a mailbox name that is not modified UTF-7 names
// no mailbox: SELECT answers NO (as Dovecot; imaptest's atoms test) and
// leaves no mailbox selected (RFC 3501 §6.3.1).
func TestSelectInvalidName(t *testing.T) {
	e := newEnv(t)
	user := e.addUser("badname")
	srv := e.start()
	c := inInbox(t, srv.imaps, "c", user)
	c.no("CANNOT", "SELECT !#$&'+,-.0123456789:;<=>?@^_`|[}")
	if r := c.do("FETCH 1 (FLAGS)"); r.status != "BAD" {
		t.Fatalf("FETCH after a failed SELECT: %s, want BAD (no mailbox selected)", r)
	}
	c.ok("LIST \"\" \"!#$&'+,-.0123456789:;<=>?@^_`|[}%%*\"")
}

// TestESearchModSeqOfMinMax: an ESEARCH returning only MIN and/or MAX
// gives the highest modseq of the messages it returns, not of all found
// (RFC 7162 §3.1.5; imaptest's esearch-condstore).
func TestESearchModSeqOfMinMax(t *testing.T) {
	e := newEnv(t)
	user := e.addUser("esearchms")
	srv := e.start()
	for _, s := range []string{"one", "two", "three", "four"} {
		srv.mustDeliver(user, simpleMessage(user, s, "x"))
	}
	c := inInbox(t, srv.imaps, "c", user)
	c.ok("FETCH 1 (MODSEQ)")
	ms := map[uint32]uint64{}
	for _, n := range []int{1, 3, 2, 4} {
		for uid, m := range modseqs(c.ok(`STORE %d +FLAGS (\Seen)`, n)) {
			ms[uid] = m
		}
	}
	for _, tc := range []struct{ ret, want string }{
		{"MIN", fmt.Sprintf("MIN 1 MODSEQ %d", ms[1])},
		{"MAX", fmt.Sprintf("MAX 3 MODSEQ %d", ms[3])},
		{"MIN MAX", fmt.Sprintf("MIN 1 MAX 3 MODSEQ %d", ms[3])},
		{"", fmt.Sprintf("ALL 1:3 MODSEQ %d", ms[2])},
	} {
		r := c.ok(`SEARCH RETURN (%s) 1:3 MODSEQ "/flags/\\seen" all 1`, tc.ret)
		if got := strings.Join(r.find("ESEARCH"), ""); !strings.HasSuffix(got, tc.want) {
			t.Errorf("RETURN (%s): %q, want ... %s", tc.ret, got, tc.want)
		}
	}
}

// TestMoveIntoSelectedMailbox: MOVE into the mailbox itself gives the
// messages new UIDs: COPYUID, the EXPUNGE of the old, EXISTS of the new
// (RFC 6851; imaptest's move test, Dovecot's behaviour).
func TestMoveIntoSelectedMailbox(t *testing.T) {
	e := newEnv(t)
	user := e.addUser("moveself")
	srv := e.start()
	srv.mustDeliver(user, simpleMessage(user, "one", "x"))
	srv.mustDeliver(user, simpleMessage(user, "two", "x"))
	c := inInbox(t, srv.imaps, "c", user)
	si := c.selectBox("SELECT", "INBOX")
	r := c.ok("MOVE 1 INBOX")
	want := []string{fmt.Sprintf("* OK [COPYUID %d 1 3] Moved", si.uidValidity), "* 1 EXPUNGE", "* 2 EXISTS"}
	for i, w := range want {
		if i >= len(r.untagged) || !strings.HasPrefix(r.untagged[i], strings.TrimSuffix(w, " Moved")) {
			t.Fatalf("MOVE 1 INBOX:\n%s\nwant %q", r, want)
		}
	}
	if got := fmt.Sprint(c.uids()); got != "[2 3]" {
		t.Fatalf("UIDs after the move: %s, want [2 3]", got)
	}
}

// TestListRecursiveMatch: LIST (SUBSCRIBED RECURSIVEMATCH) lists a name
// the pattern matches, subscribed or not, with CHILDINFO ("SUBSCRIBED")
// when a subscribed descendant is one the pattern does not match (RFC
// 5258 §3.5; imaptest's listext).
func TestListRecursiveMatch(t *testing.T) {
	e := newEnv(t)
	user := e.addUser("recmatch")
	srv := e.start()
	c := dialIMAPS(t, srv.imaps, "c")
	c.login(user)
	c.ok("CREATE a/b")
	c.ok("CREATE a/c")
	c.ok("SUBSCRIBE a/b")
	r := c.ok(`LIST (SUBSCRIBED RECURSIVEMATCH) "" "a%%" RETURN (CHILDREN)`)
	if got := r.find(`LIST (\HasChildren) "/" "a"`); len(got) != 1 || !strings.HasSuffix(got[0], `("CHILDINFO" ("SUBSCRIBED"))`) {
		t.Fatalf("a, not subscribed, with subscribed a/b:\n%s\nwant a with CHILDINFO", r)
	}
	r = c.ok(`LIST (SUBSCRIBED RECURSIVEMATCH) "" "a*"`)
	if strings.Contains(r.String(), "CHILDINFO") || !strings.Contains(r.String(), `"a/b"`) && !strings.Contains(r.String(), ` a/b`) {
		t.Fatalf("a* matches the subscribed a/b itself:\n%s\nwant a/b and no CHILDINFO", r)
	}
}
