package imapd_test

import (
	"strings"
	"testing"
	"time"
)

// TestClientErrorsAreNotServerFaults: input a client got wrong is
// answered BAD (or NO with its code), never NO [SERVERBUG], and never
// read in a way that lets its bytes become commands. With go-imap's
// server, FETCH 0, an invalid modified UTF-7 name and a SEARCH nested
// 1,000 deep were SERVERBUG, a tag holding "+" got a tagged answer a
// client reads as a continuation, and an APPEND before login was given
// a continuation and its literal read (issue 13 items 7 and 16).
func TestClientErrorsAreNotServerFaults(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.addUser("alice")
	s := e.start()
	s.mustDeliver(alice, simpleMessage(alice, "one", "body"))

	// Before login: APPEND is BAD at once, no continuation.
	pre := dialIMAPS(t, s.imaps, "pre")
	pre.send("p1 APPEND INBOX {20}\r\n")
	line, err := pre.readResponse(5 * time.Second)
	if err != nil || !strings.HasPrefix(line, "p1 BAD") {
		t.Errorf("APPEND before login: %q %v, want p1 BAD and no continuation", line, err)
	}
	// A tag with "+" is no tag: "* BAD", never a line starting "+".
	pre.send("+x NOOP\r\n")
	if line, err := pre.readResponse(5 * time.Second); err != nil || !strings.HasPrefix(line, "* BAD") {
		t.Errorf("a tag holding +: %q %v, want * BAD", line, err)
	}

	c := inInbox(t, s.imaps, "alice", alice)
	for _, tc := range []struct{ cmd, want string }{
		{"FETCH 0 (FLAGS)", "BAD"},
		{"FETCH 1:0 (FLAGS)", "BAD"},
		{"STORE 0 +FLAGS (\\Seen)", "BAD"},
		{"SELECT &Jjo", "NO"},      // not valid modified UTF-7: no such mailbox
		{"SELECT \"&AGE-\"", "NO"}, // an encoded run for what is ASCII
		{"SEARCH " + strings.Repeat("NOT ", 1000) + "ALL", "BAD"},
		{"SEARCH " + strings.Repeat("(", 200) + "ALL" + strings.Repeat(")", 200), "BAD"},
		{"FETCH 1 (BODY[MIME])", "BAD"},
		{`LIST "" "&Jjo"`, "OK"}, // an invalid pattern matches nothing
	} {
		r, err := c.try(tc.cmd)
		if err != nil {
			t.Fatalf("%s: %v", trim(tc.cmd), err)
		}
		if r.status != tc.want || r.code() == "SERVERBUG" {
			t.Errorf("%s: %s [%s] %s, want %s", trim(tc.cmd), r.status, r.code(), r.text, tc.want)
		}
		if strings.HasPrefix(tc.cmd, "LIST") && len(r.untagged) != 0 {
			t.Errorf("LIST of an invalid pattern: %q, want no match", r.untagged)
		}
	}
	c.ok("NOOP") // the session goes on
}
