package main

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
)

// TestContentRemoval: `abox content` finds a message by Message-ID in
// every mailbox, quarantines and removes every copy (an open IMAP
// session sees it go), audits each removal on its account, and finds
// and removes a message by the SHA-256 of its stored bytes.
func TestContentRemoval(t *testing.T) {
	t.Parallel()
	a := newAbox(t)
	fastHashing(t, a.Dir)
	a.OK("domain", "add", testDomain)
	a.addUser("alice")
	a.addUser("bob")
	alice, bob := "alice@"+testDomain, "bob@"+testDomain
	a.srv = a.Start()
	mx := a.srv.Addr("smtp")
	mxSend(t, mx, alice, "Spam offer", "Buy now.")
	mxSend(t, mx, bob, "Spam offer", "Buy now.")
	mxSend(t, mx, alice, "Hello", "A letter to keep for now.")

	a.Fail(1, "content", "find")
	a.Fail(1, "content", "remove", "--message-id", "Spam-offer@example.org") // no --reason
	var found contentResult
	a.JSON(&found, "content", "find", "--message-id", "<Spam-offer@example.org>")
	if len(found.Matches) != 2 || found.Accounts != 2 || found.Messages != 3 {
		t.Fatalf("find: %+v", found)
	}
	var one contentResult
	a.JSON(&one, "content", "find", "--message-id", "Spam-offer@example.org", "--account", bob)
	if len(one.Matches) != 1 || one.Matches[0].Account != bob || one.Accounts != 1 {
		t.Fatalf("find in bob's: %+v", one)
	}

	ic := imapLogin(t, a.srv.Addr("imaps"), alice, goodPassword)
	if sel, err := ic.Select("INBOX", nil).Wait(); err != nil || sel.NumMessages != 2 {
		t.Fatalf("SELECT: %+v %v", sel, err)
	}
	var removed contentResult
	a.JSON(&removed, "content", "remove", "--message-id", "Spam-offer@example.org", "--reason", "2.10.1: complaint 5", "--quarantine")
	if len(removed.Matches) != 2 {
		t.Fatalf("remove: %+v", removed)
	}
	for _, m := range removed.Matches {
		if !m.Removed || m.Quarantined == "" {
			t.Fatalf("not removed and quarantined: %+v", m)
		}
		st, err := os.Stat(m.Quarantined)
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("quarantine file %s: %v %v", m.Quarantined, st, err)
		}
		body, _ := os.ReadFile(m.Quarantined)
		rec, _ := os.ReadFile(strings.TrimSuffix(m.Quarantined, ".eml") + ".json")
		if !strings.Contains(string(body), "Buy now.") || !strings.Contains(string(rec), "complaint 5") {
			t.Fatalf("quarantined copy: %q / %q", body, rec)
		}
	}
	// The node that removed them keeps the quarantine, in its data
	// directory (in the harness's cluster mode, any node's).
	qdir := filepath.Dir(removed.Matches[0].Quarantined)
	if d, _ := os.Stat(qdir); d == nil || d.Mode().Perm() != 0o700 || filepath.Base(qdir) != QuarantineDir {
		t.Fatalf("quarantine directory: %v", d)
	}
	// The open session learns of the expunge.
	if err := ic.Noop().Wait(); err != nil {
		t.Fatal(err)
	}
	if sel, err := ic.Select("INBOX", nil).Wait(); err != nil || sel.NumMessages != 1 {
		t.Fatalf("alice's INBOX after removal: %+v %v", sel, err)
	}
	for _, who := range []string{alice, bob} {
		found := false
		for _, e := range a.audit("--account", who) {
			found = found || e.Action == "content.quarantine" && strings.Contains(e.Reason, "complaint 5") && strings.Contains(e.Reason, "Spam-offer@example.org")
		}
		if !found {
			t.Errorf("no content.quarantine audit entry on %s", who)
		}
	}

	// By the SHA-256 of the stored message (as a client fetches it).
	_, body := fetchOne(t, ic, &imap.FetchItemBodySection{Peek: true})
	sum := sha256.Sum256(body)
	hexSum := hex.EncodeToString(sum[:])
	var bySum contentResult
	a.JSON(&bySum, "content", "find", "--sha256", hexSum)
	if len(bySum.Matches) != 1 || bySum.Matches[0].Account != alice {
		t.Fatalf("find by SHA-256: %+v", bySum)
	}
	a.JSON(&bySum, "content", "remove", "--sha256", strings.ToUpper(hexSum), "--reason", "court order 9")
	if len(bySum.Matches) != 1 || !bySum.Matches[0].Removed || bySum.Matches[0].Quarantined != "" {
		t.Fatalf("remove by SHA-256: %+v", bySum)
	}
	if sel, err := ic.Select("INBOX", nil).Wait(); err != nil || sel.NumMessages != 0 {
		t.Fatalf("alice's INBOX at the end: %+v %v", sel, err)
	}
	ic.Logout().Wait()
}
