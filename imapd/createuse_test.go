package imapd_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
)

// TestCreateSpecialUse: RFC 6154 §3 through the binary, with go-imap's
// client and raw commands: one mailbox per special use, NO [USEATTR]
// for one held, virtual (\All, \Flagged), unknown or several; LIST
// shows the attribute, plain and with RETURN (SPECIAL-USE).
func TestCreateSpecialUse(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.addUser("alice")
	s := e.start()

	gc, _ := goClient(t, s.imaps, alice, false)
	if !gc.Caps().Has(imap.CapCreateSpecialUse) {
		t.Fatalf("CREATE-SPECIAL-USE not advertised: %v", gc.Caps())
	}
	// Sent exists with \Sent: another cannot have it.
	err := gc.Create("Old Sent", &imap.CreateOptions{SpecialUse: []imap.MailboxAttr{imap.MailboxAttrSent}}).Wait()
	var ie *imap.Error
	if !errors.As(err, &ie) || ie.Code != "USEATTR" {
		t.Errorf("CREATE (USE (\\Sent)) while Sent has it: %v, want NO [USEATTR]", err)
	}
	// Once the Archive is gone, another mailbox can take \Archive.
	if err := gc.Delete("Archive").Wait(); err != nil {
		t.Fatal(err)
	}
	if err := gc.Create("Archives/2026", &imap.CreateOptions{SpecialUse: []imap.MailboxAttr{imap.MailboxAttrArchive}}).Wait(); err != nil {
		t.Fatalf("CREATE Archives/2026 (USE (\\Archive)): %v", err)
	}
	list, err := gc.List("", "Archives/2026", nil).Collect()
	if err != nil || len(list) != 1 || !slices.Contains(list[0].Attrs, imap.MailboxAttrArchive) {
		t.Errorf("LIST of the new archive: %+v, %v", list, err)
	}

	c := dialIMAPS(t, s.imaps, "alice")
	c.login(alice)
	r := c.ok(`LIST (SPECIAL-USE) "" "*"`)
	if got := strings.Join(r.find(`LIST (\Archive`), "\n"); !strings.Contains(got, `"Archives/2026"`) {
		t.Errorf("LIST (SPECIAL-USE):\n%s\nwant Archives/2026 with \\Archive", r)
	}
	refused := map[string]string{
		`CREATE Everything (USE (\All))`:      "virtual",
		`CREATE Starred (USE (\Flagged))`:     "virtual",
		`CREATE Important (USE (\Important))`: "not one abox knows",
		`CREATE Both (USE (\Drafts \Trash))`:  "two at once",
		`CREATE Spam (USE (\junk))`:           "held by Junk, whatever the case",
		`CREATE "Old Sent" (USE (\Sent))`:     "held by Sent",
		`CREATE Archive2 (USE (\Archive))`:    "held by Archives/2026",
	}
	for cmd, why := range refused {
		if r := c.do("%s", cmd); r.status != "NO" || r.code() != "USEATTR" {
			t.Errorf("%s (%s): %s, want NO [USEATTR]", cmd, why, r)
		}
	}
	for _, name := range []string{"Everything", "Starred", "Important", "Both", "Spam", "Old Sent", "Archive2"} {
		if r := c.ok(`LIST "" %q`, name); len(r.find("LIST")) != 0 {
			t.Errorf("%s was created by a refused CREATE:\n%s", name, r)
		}
	}
	for _, cmd := range []string{`CREATE X (USE (Sent))`, `CREATE X (FOO)`, `CREATE X (USE)`, `CREATE X ()`, `CREATE X (USE (\Sent)`} {
		if r := c.do("%s", cmd); r.status != "BAD" {
			t.Errorf("%s: %s, want BAD", cmd, r)
		}
	}
	// An empty USE list is a plain CREATE. A use nobody holds on a name
	// that exists: ALREADYEXISTS, and the use stays free.
	c.ok(`CREATE Plain (USE ())`)
	if r := c.ok(`LIST "" Plain`); !r.has(`LIST (\HasNoChildren) "/" "Plain"`) {
		t.Errorf("LIST Plain:\n%s", r)
	}
	c.ok("DELETE Drafts")
	c.no("ALREADYEXISTS", `CREATE Plain (USE (\Drafts))`)
	c.ok(`CREATE Drafts (USE (\Drafts))`)
	if r := c.ok(`LIST "" Drafts`); !r.has(`LIST (\Drafts \HasNoChildren) "/" "Drafts"`) {
		t.Errorf("LIST Drafts:\n%s", r)
	}
	e.Check()
}
