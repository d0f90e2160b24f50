package store

import (
	"encoding/binary"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestOfficialLetterRecord: an official letter's delivery, first read
// and deletion are recorded in the evidence log only (the notice ledger
// is no longer written), and Notice shows them by recipient.
func TestOfficialLetterRecord(t *testing.T) {
	s, clk := openTest(t)
	a := addAccount(t, s, "alice@example.kz")
	b := addAccount(t, s, "bob@example.kz")
	accepted := clk.Now()
	d := &Delivery{Body: msg(1), Recipients: []Recipient{{Account: a.ID}, {Account: b.ID}},
		Official: &OfficialLetter{MessageID: "<letter-1@gov.kz>", Sender: "egov",
			Addresses: []string{"alice@example.kz", "bob@example.kz"}, AcceptedAt: accepted,
			Refused: []string{"carol@example.kz"}, Reason: "no-consent", RefusedReasons: []string{"consent-expired"}}}
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
	kinds := func() string {
		es, err := s.EvidenceFor("letter-1@gov.kz", "egov")
		if err != nil {
			t.Fatal(err)
		}
		var k []string
		for _, e := range es {
			k = append(k, e.Event.Kind+":"+e.Event.Recipient)
		}
		return strings.Join(k, " ")
	}
	if got, want := kinds(), "accepted:alice@example.kz stored:alice@example.kz accepted:bob@example.kz stored:bob@example.kz refused:carol@example.kz"; got != want {
		t.Fatalf("evidence after delivery: %s, want %s", got, want)
	}
	if e, _ := s.Ledger("letter-1@gov.kz"); len(e) != 0 {
		t.Fatalf("the notice ledger was written: %+v", e)
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
	if got := kinds(); strings.Contains(got, "deleted") {
		t.Fatalf("deleted recorded while a copy remains: %s", got)
	}
	clk.Add(60e9)
	s.Expunge(ctx, a.ID, arch.ID, []uint32{1})
	if got := kinds(); !strings.HasSuffix(got, "retrieved:alice@example.kz read:alice@example.kz deleted:alice@example.kz") {
		t.Fatalf("evidence after read and deletion: %s", got)
	}
	n, err := s.Notice("<letter-1@gov.kz>", "")
	if err != nil {
		t.Fatal(err)
	}
	if n.MessageID != "letter-1@gov.kz" || n.Sender != "egov" || len(n.Recipients) != 3 {
		t.Fatalf("notice %+v", n)
	}
	al, bo, ca := n.Recipients[0], n.Recipients[1], n.Recipients[2]
	if al.Address != "alice@example.kz" || al.AcceptedAt == nil || !al.AcceptedAt.Equal(accepted) || al.StoredAt == nil ||
		al.FirstReadAt == nil || !al.FirstReadAt.Equal(accepted.Add(time.Hour)) || al.DeletedAt == nil {
		t.Fatalf("alice %+v", al)
	}
	if bo.Address != "bob@example.kz" || bo.StoredAt == nil || bo.FirstReadAt != nil || bo.DeletedAt != nil {
		t.Fatalf("bob %+v", bo)
	}
	if ca.Address != "carol@example.kz" || ca.Refused != "no-consent" || ca.AcceptedAt != nil {
		t.Fatalf("carol %+v", ca)
	}
	signAndVerify(t, s)
	mustCheck(t, s)
}

// TestLegacyLedger: a database from before the evidence log keeps its
// notice ledger: Notice reads it beside the evidence log (a letter
// delivered then and read now shows both), and VerifyLedger still
// checks its chain and names an entry changed in a copy of the file.
func TestLegacyLedger(t *testing.T) {
	s, clk := openTest(t)
	a := addAccount(t, s, "alice@example.kz")
	res, err := s.Deliver(ctx, &Delivery{Body: msg(1), Recipients: []Recipient{{Account: a.ID}},
		Official: &OfficialLetter{MessageID: "<old@gov.kz>", Sender: "egov", Addresses: []string{"alice@example.kz"}, AcceptedAt: clk.Now()}})
	if err != nil {
		t.Fatal(err)
	}
	delivered := clk.Now()
	// Make it look as an older version left it: ledger entries, and no
	// evidence of the delivery.
	err = s.update(ctx, func(t *txn) error {
		for _, e := range []LedgerEntry{
			{At: delivered, Kind: LedgerAccepted, MessageID: "old@gov.kz", Sender: "egov", Recipients: []string{"alice@example.kz"}},
			{At: delivered, Kind: LedgerStored, MessageID: "old@gov.kz", Sender: "egov", Recipients: []string{"alice@example.kz"}},
			{At: delivered, Kind: LedgerRefused, MessageID: "old@gov.kz", Sender: "egov", Recipients: []string{"carol@example.kz"}, Detail: "no-consent"},
		} {
			if err := t.appendLedger(e); err != nil {
				return err
			}
		}
		ev := t.tx.Bucket(bEvidenceMsg)
		c := ev.Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.First() {
			if err := ev.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	clk.Add(3600e9)
	ms, _ := s.Messages(a.ID, res[0].Mailbox, 0, 0)
	if first, err := s.RecordRead(ctx, a.ID, ms[0].Blob, "192.0.2.1"); err != nil || !first {
		t.Fatalf("first read %v %v", first, err)
	}
	n, err := s.Notice("old@gov.kz", "egov")
	if err != nil || len(n.Recipients) != 2 {
		t.Fatalf("notice %+v %v", n, err)
	}
	al, ca := n.Recipients[0], n.Recipients[1]
	if al.AcceptedAt == nil || !al.AcceptedAt.Equal(delivered) || al.StoredAt == nil || al.FirstReadAt == nil || !al.FirstReadAt.Equal(delivered.Add(time.Hour)) {
		t.Fatalf("alice %+v", al)
	}
	if ca.Refused != "no-consent" {
		t.Fatalf("carol %+v", ca)
	}
	rep, err := s.VerifyLedger()
	if err != nil || !rep.OK || rep.Entries != 3 {
		t.Fatalf("verify %+v %v", rep, err)
	}

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
		json.Unmarshal(t.tx.Bucket(bLedger).Get(u64(2)), &le)
		le.Recipients = []string{"mallory@example.kz"} // forge the recipient
		raw, _ := json.Marshal(le)
		return t.tx.Bucket(bLedger).Put(u64(2), raw)
	})
	if err != nil {
		t.Fatal(err)
	}
	rep, err = c.VerifyLedger()
	if err != nil || rep.OK || rep.BrokenAt != 2 {
		t.Fatalf("tampered verify %+v %v", rep, err)
	}
}

// The notice ledger as versions before the evidence log wrote it (the
// legacy tests build such a database).

func ledgerMsgKey(msgID string, seq uint64) []byte {
	k := make([]byte, 0, len(msgID)+9)
	k = append(k, msgID...)
	k = append(k, 0)
	return binary.BigEndian.AppendUint64(k, seq)
}

// appendLedger adds e to the chain in t's transaction.
func (t *txn) appendLedger(e LedgerEntry) error {
	meta := t.tx.Bucket(bMeta)
	seq, err := t.nextSequence(bLedger)
	if err != nil {
		return err
	}
	e.Seq = seq
	if e.At.IsZero() {
		e.At = t.now
	}
	e.At = e.At.UTC()
	e.MessageID = NormalizeMessageID(e.MessageID)
	e.Prev = strings.Repeat("0", 64)
	if head := meta.Get([]byte("ledger_head")); head != nil {
		e.Prev = string(head)
	}
	if e.Hash, err = entryHash(e); err != nil {
		return err
	}
	raw, err := json.Marshal(e)
	if err != nil {
		return err
	}
	if err := t.put(bLedger, u64(seq), raw, appendFill); err != nil {
		return err
	}
	if err := t.put(bMeta, []byte("ledger_head"), []byte(e.Hash), 0); err != nil {
		return err
	}
	return t.put(bLedgerMsg, ledgerMsgKey(e.MessageID, seq), nil, 0)
}
