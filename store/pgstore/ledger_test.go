package pgstore

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"abox/accounts"
	"abox/store"
)

// TestLegacyLedger: a notice ledger brought from an older installation
// is read by Notice beside the evidence log and its chain verified;
// a changed entry and a removed last entry are named.
func TestLegacyLedger(t *testing.T) {
	s := openTest(t, false)
	if rep, err := s.VerifyLedger(); err != nil || !rep.OK || rep.Entries != 0 {
		t.Fatalf("empty ledger: %+v %v", rep, err)
	}
	alice := evAccount(t, s, "alice@example.kz")
	at := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	prev := strings.Repeat("0", 64)
	for i, e := range []store.LedgerEntry{
		{At: at, Kind: store.LedgerAccepted, MessageID: "old@gov.kz", Sender: "egov", Recipients: []string{"alice@example.kz"}},
		{At: at, Kind: store.LedgerStored, MessageID: "old@gov.kz", Sender: "egov", Recipients: []string{"alice@example.kz"}},
		{At: at, Kind: store.LedgerRefused, MessageID: "old@gov.kz", Sender: "egov", Recipients: []string{"carol@example.kz"}, Detail: "no-consent"},
	} {
		e.Seq, e.Prev = uint64(i+1), prev
		h, err := store.LedgerEntryHash(e)
		if err != nil {
			t.Fatal(err)
		}
		e.Hash, prev = h, h
		raw, _ := json.Marshal(e)
		if _, err := s.pool.Exec(bg, `INSERT INTO ledger (seq, message_id, data) VALUES ($1, $2, $3)`, e.Seq, e.MessageID, raw); err != nil {
			t.Fatal(err)
		}
	}
	s.pool.Exec(bg, `UPDATE evidence_state SET ledger_head = $1`, prev)
	if rep, err := s.VerifyLedger(); err != nil || !rep.OK || rep.Entries != 3 {
		t.Fatalf("verify: %+v %v", rep, err)
	}
	// Read now, through the evidence log: the copy was tracked then.
	if _, err := s.pool.Exec(bg, `INSERT INTO official_copies (account, blob, count, message_id, sender, recipient) VALUES ($1, 99, 1, 'old@gov.kz', 'egov', 'alice@example.kz')`, alice.ID); err != nil {
		t.Fatal(err)
	}
	if first, err := s.RecordRead(bg, alice.ID, 99, "192.0.2.1"); err != nil || !first {
		t.Fatalf("first read: %v %v", first, err)
	}
	n, err := s.Notice("<old@gov.kz>", "egov")
	if err != nil || len(n.Recipients) != 2 {
		t.Fatalf("notice %+v %v", n, err)
	}
	if al := n.Recipients[0]; !al.AcceptedAt.Equal(at) || !al.StoredAt.Equal(at) || al.FirstReadAt == nil || n.Recipients[1].Refused != "no-consent" {
		t.Fatalf("alice %+v, carol %+v", al, n.Recipients[1])
	}
	s.pool.Exec(bg, `UPDATE ledger SET data = jsonb_set(data, '{recipients}', '["mallory@example.kz"]') WHERE seq = 2`)
	if rep, _ := s.VerifyLedger(); rep.OK || rep.BrokenAt != 2 || !strings.Contains(rep.Problem, "does not match its hash") {
		t.Fatalf("changed entry: %+v", rep)
	}
	s.pool.Exec(bg, `DELETE FROM ledger WHERE seq >= 2`)
	if rep, _ := s.VerifyLedger(); rep.OK || rep.BrokenAt != 1 || !strings.Contains(rep.Problem, "removed at the end") {
		t.Fatalf("removed entries: %+v", rep)
	}
}

// TestEvidenceByAccountAndReceipts: an account's entries page by index
// (entries about other accounts and none skipped); EvidenceBetween
// reads a range in order across its batches; the receipts cursor
// starts unset and keeps what was set, on every node.
func TestEvidenceByAccountAndReceipts(t *testing.T) {
	s := openTest(t, false)
	s2 := openAgain(t, s, Options{DSN: s.pool.Config().ConnString()})
	alice, bob := evAccount(t, s, "alice@example.kz"), evAccount(t, s, "bob@example.kz")
	for i := range 7 {
		deliverOfficial(t, s, &store.OfficialLetter{MessageID: fmt.Sprintf("<l%d@gov.kz>", i), Sender: "egov",
			Refused: []string{"nobody@example.kz"}, Reason: "no-consent"}, []accounts.Account{alice, bob}, []byte(fmt.Sprintf("Subject: %d\r\n\r\n", i)))
	}
	var got []uint64
	var after uint64
	for page := 0; ; page++ {
		es, next, err := s2.EvidenceForAccount(bob.ID, after, 4)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			if e.Event.Account != bob.ID {
				t.Fatalf("entry %d is about account %d", e.Event.Index, e.Event.Account)
			}
			got = append(got, e.Event.Index)
		}
		if next == 0 {
			break
		}
		if page > 10 || next <= after {
			t.Fatalf("paging does not advance: %d after %d", next, after)
		}
		after = next
	}
	// Each letter: accepted+stored for alice (2), for bob (2), refused (1).
	if len(got) != 14 || got[0] != 2 || got[1] != 3 || got[2] != 7 {
		t.Fatalf("bob's entries %v", got)
	}
	if es, _, _ := s.EvidenceForAccount(0, 0, 0); len(es) != 0 {
		t.Fatalf("account 0: %d entries", len(es))
	}
	var idx []uint64
	if err := s.EvidenceBetween(3, 30, func(e store.EvidenceEntry) error {
		idx = append(idx, e.Event.Index)
		return nil
	}); err != nil || len(idx) != 27 || idx[0] != 3 || idx[26] != 29 {
		t.Fatalf("EvidenceBetween: %v %v", idx, err)
	}
	if _, ok, err := s.ReceiptsMailed(); ok || err != nil {
		t.Fatalf("receipts mailed before any: %v %v", ok, err)
	}
	if err := s.SetReceiptsMailed(bg, 21); err != nil {
		t.Fatal(err)
	}
	if n, ok, err := s2.ReceiptsMailed(); n != 21 || !ok || err != nil {
		t.Fatalf("receipts mailed on the other node: %d %v %v", n, ok, err)
	}
	// The indexes are used: a lookup by account or Message-ID reads no
	// whole table.
	for _, q := range []string{
		`SELECT entry FROM evidence WHERE account = 7 AND position >= 0 ORDER BY position LIMIT 5`,
		`SELECT entry FROM evidence WHERE message_id = 'l1@gov.kz' ORDER BY position`,
		`SELECT 1 FROM evidence_pending WHERE message_id = 'x'`,
	} {
		var plan string
		err := s.tx(bg, func(tx pgx.Tx) error {
			if _, err := tx.Exec(bg, `SET LOCAL enable_seqscan = off`); err != nil {
				return err
			}
			return tx.QueryRow(bg, `EXPLAIN `+q).Scan(&plan)
		})
		if err != nil || strings.Contains(plan, "Seq Scan") {
			t.Fatalf("%s: %s %v", q, plan, err)
		}
	}
}
