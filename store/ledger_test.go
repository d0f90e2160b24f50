package store

import (
	"encoding/json"
	"path/filepath"
	"testing"
)

func TestOfficialLetterLedger(t *testing.T) {
	s, clk := openTest(t)
	a := addAccount(t, s, "alice@example.kz")
	b := addAccount(t, s, "bob@example.kz")
	d := &Delivery{Body: msg(1), Recipients: []Recipient{{Account: a.ID}, {Account: b.ID}},
		Official: &OfficialLetter{MessageID: "<letter-1@gov.kz>", Sender: "egov",
			Addresses: []string{"alice@example.kz", "bob@example.kz"}, AcceptedAt: clk.Now(),
			Refused: []string{"carol@example.kz"}, Reason: "no-consent"}}
	res, err := s.Deliver(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	ms, _ := s.Messages(a.ID, res[0].Mailbox, 0, 0)
	if len(ms) != 1 || !ms[0].Official() {
		t.Fatalf("not marked official: %+v", ms)
	}
	// Clients can neither clear nor set $Official.
	if up, _ := s.SetFlags(ctx, a.ID, res[0].Mailbox, []uint32{1}, FlagsReplace, []string{`\Seen`}); !hasFlag(up[0].Flags, KeywordOfficial) {
		t.Fatalf("$Official cleared: %v", up[0].Flags)
	}
	entries, err := s.Ledger("letter-1@gov.kz")
	if err != nil || len(entries) != 3 {
		t.Fatalf("entries %+v %v", entries, err)
	}
	kinds := []string{entries[0].Kind, entries[1].Kind, entries[2].Kind}
	if kinds[0] != LedgerAccepted || kinds[1] != LedgerStored || kinds[2] != LedgerRefused {
		t.Fatalf("kinds %v", kinds)
	}
	// First read is recorded once.
	clk.Add(3600e9)
	first, err := s.RecordRead(ctx, a.ID, ms[0].Blob, "192.0.2.1")
	if err != nil || !first {
		t.Fatalf("first read %v %v", first, err)
	}
	if again, _ := s.RecordRead(ctx, a.ID, ms[0].Blob, "192.0.2.2"); again {
		t.Fatal("second read recorded")
	}
	// A copy keeps the letter; deleting the last copy records deletion.
	arch, _ := s.MailboxByName(a.ID, "Archive")
	if _, err := s.Copy(ctx, a.ID, res[0].Mailbox, []uint32{1}, arch.ID, 0, 0); err != nil {
		t.Fatal(err)
	}
	s.Expunge(ctx, a.ID, res[0].Mailbox, []uint32{1})
	if e, _ := s.Ledger("letter-1@gov.kz"); len(e) != 4 {
		t.Fatalf("deleted recorded while a copy remains: %d entries", len(e))
	}
	s.Expunge(ctx, a.ID, arch.ID, []uint32{1})
	e, _ := s.Ledger("<letter-1@gov.kz>")
	if len(e) != 5 || e[4].Kind != LedgerDeleted || e[4].Recipients[0] != "alice@example.kz" {
		t.Fatalf("entries %+v", e)
	}
	rep, err := s.VerifyLedger()
	if err != nil || !rep.OK || rep.Entries != 5 {
		t.Fatalf("verify %+v %v", rep, err)
	}
	mustCheck(t, s)

	// Editing an entry in a copy of the file breaks the chain there.
	path := filepath.Join(t.TempDir(), "copy.db")
	if _, err := s.BackupTo(path, nil); err != nil {
		t.Fatal(err)
	}
	c, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	err = c.update(ctx, func(t *txn) error {
		var le LedgerEntry
		json.Unmarshal(t.tx.Bucket(bLedger).Get(u64(4)), &le)
		le.Detail = "203.0.113.9" // forge the reader's address
		raw, _ := json.Marshal(le)
		return t.tx.Bucket(bLedger).Put(u64(4), raw)
	})
	if err != nil {
		t.Fatal(err)
	}
	rep, err = c.VerifyLedger()
	if err != nil || rep.OK || rep.BrokenAt != 4 {
		t.Fatalf("tampered verify %+v %v", rep, err)
	}
}
