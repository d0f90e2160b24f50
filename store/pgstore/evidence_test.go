package pgstore

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"abox/accounts"
	"abox/evidence"
	"abox/store"
)

// evAccount creates address's account (and its domain).
func evAccount(t *testing.T, s *Store, address string) accounts.Account {
	t.Helper()
	login, domain, _ := accounts.SplitAddress(address)
	op := store.Audit{Actor: store.ActorOperator}
	if err := s.AddDomain(bg, domain, op); err != nil && !errors.Is(err, store.ErrExists) {
		t.Fatal(err)
	}
	a, err := s.CreateAccount(bg, accounts.Account{Login: login, Domain: domain, PasswordHash: "x"}, op)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// deliverOfficial stands in for Deliver (the mail area's): it stores a
// body and writes the letter's record in one transaction, as Deliver
// does after storing the copies. It returns the body's blob.
func deliverOfficial(t *testing.T, s *Store, o *store.OfficialLetter, to []accounts.Account, body []byte) uint64 {
	t.Helper()
	nb, err := s.prepareBody(bg, body, []byte("S"), false)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(body)
	o.MessageSHA = hex.EncodeToString(sum[:])
	var res []store.Delivered
	for _, a := range to {
		o.Addresses = append(o.Addresses, a.Address())
		res = append(res, store.Delivered{Account: a.ID, Mailbox: 1, UID: 1})
	}
	var blob uint64
	if err := s.tx(bg, func(tx pgx.Tx) error {
		blob, err = nb.insert(bg, tx, len(to))
		if err != nil {
			return err
		}
		return s.recordOfficialTx(bg, tx, o, res, blob, s.clock())
	}); err != nil {
		t.Fatal(err)
	}
	return blob
}

func kindsOf(es []store.EvidenceEntry) string {
	var k []string
	for _, e := range es {
		k = append(k, e.Event.Kind+":"+e.Event.Recipient+":"+e.Event.How)
	}
	return strings.Join(k, " ")
}

// checkBytes: every entry's bytes are what the embedded store's encoder
// writes for its event (so leaves, receipts and abox-verify-receipt
// agree on both backends), and its index is its place.
func checkBytes(t *testing.T, es []store.EvidenceEntry) {
	t.Helper()
	for _, e := range es {
		want, err := store.EncodeEvidenceEvent(&e.Event)
		if err != nil || !bytes.Equal(e.Raw, want) {
			t.Fatalf("entry %d is\n%s\nthe embedded store writes\n%s", e.Event.Index, e.Raw, want)
		}
	}
}

// TestEvidenceEvents: an official delivery logs accepted and stored per
// recipient and refused per refusal, retrievals and reads are logged
// once, the last copy's deletion is logged; Notice shows them by
// recipient before and after they are placed in the log.
func TestEvidenceEvents(t *testing.T) {
	s := openTest(t, false)
	alice, bob := evAccount(t, s, "alice@example.kz"), evAccount(t, s, "bob@example.kz")
	carol := evAccount(t, s, "carol@example.kz")
	accepted := time.Date(2026, 3, 1, 10, 0, 0, 123456789, time.UTC)
	o := &store.OfficialLetter{MessageID: "<letter-1@gov.kz>", Sender: "egov", AcceptedAt: accepted, ClientIP: "192.0.2.9", TLS: "TLS 1.3",
		Refused: []string{"carol@example.kz", "dave@example.kz"}, Reason: "no-consent", RefusedReasons: []string{"consent-expired"}}
	body := []byte("Subject: notice\r\n\r\nYou are notified.\r\n")
	blob := deliverOfficial(t, s, o, []accounts.Account{alice, bob}, body)

	// Before any build: Notice sees the pending events.
	n, err := s.Notice("<letter-1@gov.kz>", "")
	if err != nil || len(n.Recipients) != 4 || n.Recipients[0].AcceptedAt == nil || !n.Recipients[0].AcceptedAt.Equal(accepted) ||
		n.Recipients[0].StoredAt == nil || n.Recipients[2].Refused != "no-consent" {
		t.Fatalf("notice before the build: %+v %v", n, err)
	}
	es, err := s.EvidenceFor("letter-1@gov.kz", "egov")
	if err != nil {
		t.Fatal(err)
	}
	want := "accepted:alice@example.kz: stored:alice@example.kz: accepted:bob@example.kz: stored:bob@example.kz: refused:carol@example.kz: refused:dave@example.kz:"
	if got := kindsOf(es); got != want {
		t.Fatalf("events %s, want %s", got, want)
	}
	for i, e := range es {
		if e.Event.Index != uint64(i) {
			t.Fatalf("entry %d has index %d", i, e.Event.Index)
		}
	}
	checkBytes(t, es)
	sum := sha256.Sum256(body)
	if ev := es[0].Event; ev.MessageSHA != hex.EncodeToString(sum[:]) || ev.Account != alice.ID || ev.TLS != "TLS 1.3" || ev.ClientIP != "192.0.2.9" ||
		!ev.At.Equal(accepted) || ev.MessageID != "letter-1@gov.kz" {
		t.Fatalf("accepted event %+v", ev)
	}
	if ev := es[1].Event; ev.TLS != "" || ev.ClientIP != "" || ev.At.Equal(accepted) {
		t.Fatalf("stored event %+v", ev)
	}
	if ev := es[4].Event; ev.Account != carol.ID || ev.Reason != "consent-expired" || es[5].Event.Account != 0 || es[5].Event.Reason != "no-consent" {
		t.Fatalf("refusals %+v %+v", ev, es[5].Event)
	}

	// Retrieval in EXAMINE, then \Seen: retrieved once, read once.
	if !s.HasRetrievalRecord(alice.ID, blob+1000, store.RetrievedBody) {
		t.Fatal("a blob that is no official letter has something to record")
	}
	if s.HasRetrievalRecord(alice.ID, blob, store.RetrievedExamine) {
		t.Fatal("nothing recorded yet, HasRetrievalRecord says all is")
	}
	if first, err := s.RecordRetrieval(bg, alice.ID, blob, "192.0.2.1", store.RetrievedExamine); err != nil || first {
		t.Fatalf("retrieval in EXAMINE: %v %v", first, err)
	}
	if !s.HasRetrievalRecord(alice.ID, blob, store.RetrievedExamine) || s.HasRetrievalRecord(alice.ID, blob, store.RetrievedSeenFlag) {
		t.Fatal("after the retrieval: wrong records")
	}
	if first, err := s.RecordRetrieval(bg, alice.ID, blob, "192.0.2.1", store.RetrievedSeenFlag); err != nil || !first {
		t.Fatalf("read by \\Seen: %v %v", first, err)
	}
	if first, err := s.RecordRead(bg, alice.ID, blob, "192.0.2.2"); err != nil || first {
		t.Fatalf("second read: %v %v", first, err)
	}
	if !s.HasRetrievalRecord(alice.ID, blob, store.RetrievedBody) {
		t.Fatal("all recorded, HasRetrievalRecord says not")
	}
	// Bob peeks, then fetches: retrieved (peek), then read (body).
	s.RecordRetrieval(bg, bob.ID, blob, "192.0.2.3", store.RetrievedPeek)
	s.RecordRetrieval(bg, bob.ID, blob, "192.0.2.3", store.RetrievedBody)

	// A copy keeps the letter; the last copy's expunge logs the deletion.
	expunge := func(acct uint64) {
		t.Helper()
		if err := s.tx(bg, func(tx pgx.Tx) error { return dropOfficialCopyTx(bg, tx, s.clock(), acct, blob, 1) }); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.tx(bg, func(tx pgx.Tx) error { return addOfficialCopyTx(bg, tx, alice.ID, blob, 1) }); err != nil {
		t.Fatal(err)
	}
	expunge(alice.ID)
	if es, _ := s.EvidenceFor("letter-1@gov.kz", ""); strings.Contains(kindsOf(es), "deleted") {
		t.Fatalf("deleted while a copy remains: %s", kindsOf(es))
	}
	expunge(alice.ID)
	expunge(alice.ID) // no copy left: nothing more
	es, err = s.EvidenceFor("letter-1@gov.kz", "")
	if err != nil {
		t.Fatal(err)
	}
	want += " retrieved:alice@example.kz:body-fetched-examine read:alice@example.kz:seen-flag-set" +
		" retrieved:bob@example.kz:body-peeked-select read:bob@example.kz:body-fetched-select deleted:alice@example.kz:expunged"
	if got := kindsOf(es); got != want {
		t.Fatalf("events\n%s\nwant\n%s", got, want)
	}
	checkBytes(t, es)
	if es, _ := s.EvidenceFor("letter-1@gov.kz", "other"); len(es) != 0 {
		t.Fatalf("another sender's: %d entries", len(es))
	}

	n, err = s.Notice("letter-1@gov.kz", "egov")
	if err != nil {
		t.Fatal(err)
	}
	al, bo, ca := n.Recipients[0], n.Recipients[1], n.Recipients[2]
	if n.MessageID != "letter-1@gov.kz" || n.Sender != "egov" || len(n.Recipients) != 4 ||
		al.FirstReadAt == nil || al.DeletedAt == nil || bo.FirstReadAt == nil || bo.DeletedAt != nil || ca.Refused != "no-consent" || ca.AcceptedAt != nil {
		t.Fatalf("notice %+v", n)
	}

	// A letter nobody received: its refusals alone.
	if err := s.RecordRefusals(bg, &store.OfficialLetter{MessageID: "<letter-2@gov.kz>", Sender: "kgd", Refused: []string{"bob@example.kz"}, Reason: "no-consent"}); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordRefusals(bg, &store.OfficialLetter{MessageID: "<letter-2@gov.kz>", Sender: "egov"}); err != nil {
		t.Fatal(err) // nothing refused: nothing logged
	}
	if n, err := s.Notice("letter-2@gov.kz", ""); err != nil || n.Sender != "kgd" || n.Recipients[0].Refused != "no-consent" {
		t.Fatalf("refusals only: %+v %v", n, err)
	}
	if _, err := s.Notice("nothing@gov.kz", ""); err == nil || !strings.Contains(err.Error(), store.ErrNotFound.Error()) {
		t.Fatalf("unknown letter: %v", err)
	}
	s.RecordRefusals(bg, &store.OfficialLetter{MessageID: "<letter-2@gov.kz>", Sender: "egov", Refused: []string{"x@example.kz"}, Reason: "no-consent"})
	if _, err := s.Notice("letter-2@gov.kz", ""); err == nil || !strings.Contains(err.Error(), store.ErrAmbiguous.Error()) {
		t.Fatalf("two senders: %v", err)
	}

	// The whole log: positions 0..n-1, leaves over the entries' bytes,
	// the head the RFC tree over them.
	size, root, err := s.EvidenceHead()
	if err != nil {
		t.Fatal(err)
	}
	var b evidence.Builder
	var i uint64
	if err := s.EvidenceBetween(0, size, func(e store.EvidenceEntry) error {
		if e.Event.Index != i {
			return fmt.Errorf("entry %d at %d", e.Event.Index, i)
		}
		i++
		return b.Add(evidence.LeafHash(e.Raw), nil)
	}); err != nil || i != size || size != 13 {
		t.Fatalf("EvidenceBetween: %d of %d entries: %v", i, size, err)
	}
	if b.Root() != root {
		t.Fatal("EvidenceHead's root is not the tree over the entries")
	}
	rep, err := s.VerifyEvidence(nil, nil)
	if err != nil || !rep.OK || rep.Entries != size || rep.SignaturesChecked {
		t.Fatalf("verify: %+v %v", rep, err)
	}
}

// addRefusals logs n refused events of one letter in one transaction.
func addRefusals(t testing.TB, s *Store, msgID string, n int) {
	t.Helper()
	o := &store.OfficialLetter{MessageID: msgID, Sender: "egov", Reason: "no-consent"}
	for i := range n {
		o.Refused = append(o.Refused, fmt.Sprintf("r%d@nowhere.kz", i))
	}
	if err := s.RecordRefusals(bg, o); err != nil {
		t.Fatal(err)
	}
}

// signHead signs and keeps the log's current head.
func signHead(t *testing.T, s *Store, priv ed25519.PrivateKey, at time.Time) evidence.SignedHead {
	t.Helper()
	size, root, err := s.EvidenceHead()
	if err != nil {
		t.Fatal(err)
	}
	h, err := evidence.Sign(priv, size, at, root)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.AddSignedHead(bg, h); err != nil {
		t.Fatal(err)
	}
	return h
}

// TestEvidenceProofs: builds in steps that end inside leaf blocks and
// across them; every inclusion proof and consistency proof between
// several sizes verifies with the evidence package against the RFC root
// computed independently from the entries; signed heads are kept and
// checked against the log; receipts verify.
func TestEvidenceProofs(t *testing.T) {
	s := openTest(t, false)
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	if size, root, err := s.EvidenceHead(); err != nil || size != 0 || root != evidence.EmptyRoot {
		t.Fatalf("empty log: %d %x %v", size, root, err)
	}
	var heads []evidence.SignedHead
	at := time.Now()
	for i, n := range []int{1, 2, 60, 1, 64, 200, 3, 130} {
		addRefusals(t, s, fmt.Sprintf("<step-%d@gov.kz>", i), n)
		if i%2 == 0 {
			if _, err := s.BuildEvidence(bg); err != nil {
				t.Fatal(err)
			}
		}
		at = at.Add(time.Second)
		heads = append(heads, signHead(t, s, priv, at))
	}
	var raws [][]byte
	size := heads[len(heads)-1].TreeSize
	if err := s.EvidenceBetween(0, size, func(e store.EvidenceEntry) error { raws = append(raws, e.Raw); return nil }); err != nil {
		t.Fatal(err)
	}
	if size != 461 || len(raws) != 461 {
		t.Fatalf("log of %d entries, read %d, want 461", size, len(raws))
	}
	rootAt := func(n uint64) evidence.Hash {
		var b evidence.Builder
		for _, r := range raws[:n] {
			b.Add(evidence.LeafHash(r), nil)
		}
		return b.Root()
	}
	got, err := s.SignedHeads()
	if err != nil || len(got) != len(heads) {
		t.Fatalf("signed heads: %d %v", len(got), err)
	}
	for i, h := range got {
		if h != heads[i] {
			t.Fatalf("head %d: %+v, want %+v", i, h, heads[i])
		}
		if r, _ := h.Root(); r != rootAt(h.TreeSize) {
			t.Fatalf("head of %d entries: root is not the RFC root", h.TreeSize)
		}
	}
	for _, h := range heads {
		root, _ := h.Root()
		for i := uint64(0); i < h.TreeSize; i++ {
			proof, err := s.InclusionProof(i, h.TreeSize)
			if err != nil {
				t.Fatal(err)
			}
			if err := evidence.VerifyInclusion(evidence.LeafHash(raws[i]), i, h.TreeSize, proof, root); err != nil {
				t.Fatalf("entry %d in %d: %v", i, h.TreeSize, err)
			}
		}
		for _, g := range heads {
			if g.TreeSize == 0 || g.TreeSize > h.TreeSize {
				continue
			}
			proof, err := s.ConsistencyProof(g.TreeSize, h.TreeSize)
			if err != nil {
				t.Fatal(err)
			}
			groot, _ := g.Root()
			if err := evidence.VerifyConsistency(g.TreeSize, h.TreeSize, groot, root, proof); err != nil {
				t.Fatalf("%d to %d: %v", g.TreeSize, h.TreeSize, err)
			}
		}
	}
	last := heads[len(heads)-1]
	es, _ := s.EvidenceFor("step-5@gov.kz", "")
	for _, e := range es {
		proof, _ := s.InclusionProof(e.Event.Index, last.TreeSize)
		if _, err := evidence.NewReceipt(e.Raw, e.Event.Index, proof, last, pub).Verify(pub); err != nil {
			t.Fatalf("receipt of %d: %v", e.Event.Index, err)
		}
	}
	if _, err := s.InclusionProof(0, size+1); err == nil {
		t.Fatal("a proof beyond the log")
	}
	// A head beyond the log, or with another root, is refused.
	bad, _ := evidence.Sign(priv, size+1, at, rootAt(size))
	if err := s.AddSignedHead(bg, bad); err == nil || !strings.Contains(err.Error(), "beyond") {
		t.Fatalf("head beyond the log: %v", err)
	}
	bad, _ = evidence.Sign(priv, size, at, rootAt(size-1))
	if err := s.AddSignedHead(bg, bad); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("head with another root: %v", err)
	}
	rep, err := s.VerifyEvidence(pub, nil)
	if err != nil || !rep.OK || rep.Entries != size || rep.SignedUpTo != size || rep.Heads != len(heads) || !rep.SignaturesChecked {
		t.Fatalf("verify: %+v %v", rep, err)
	}
	other, _, _ := ed25519.GenerateKey(rand.Reader)
	if rep, err := s.VerifyEvidence(other, nil); err != nil || rep.OK {
		t.Fatalf("verified with another key: %+v %v", rep, err)
	}
}

// TestEvidenceConcurrentNodes: two nodes log events concurrently while
// both build, racing; every event gets exactly one position, the
// positions are 0..n-1, a retrieval always comes after its delivery,
// and the log verifies.
func TestEvidenceConcurrentNodes(t *testing.T) {
	a := openTest(t, false)
	b := openAgain(t, a, Options{DSN: a.pool.Config().ConnString()})
	alice := evAccount(t, a, "alice@example.kz")
	const writers, letters = 4, 25
	var wg sync.WaitGroup
	stop := make(chan struct{})
	errs := make(chan error, 100)
	for w := range writers {
		s := []*Store{a, b}[w%2]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range letters {
				id := fmt.Sprintf("<w%d-%d@gov.kz>", w, i)
				o := &store.OfficialLetter{MessageID: id, Sender: "egov", AcceptedAt: time.Now(), Refused: []string{"x@nowhere.kz"}, Reason: "no-consent",
					Addresses: []string{alice.Address()}}
				var blob uint64
				nb, err := s.prepareBody(bg, []byte("Subject: "+id+"\r\n\r\nx\r\n"), []byte("S"), false)
				if err == nil {
					err = s.tx(bg, func(tx pgx.Tx) error {
						if blob, err = nb.insert(bg, tx, 1); err != nil {
							return err
						}
						return s.recordOfficialTx(bg, tx, o, []store.Delivered{{Account: alice.ID}}, blob, time.Now())
					})
				}
				if err == nil {
					_, err = s.RecordRetrieval(bg, alice.ID, blob, "192.0.2.1", store.RetrievedBody)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	var builders sync.WaitGroup
	for _, s := range []*Store{a, b, a, b} {
		builders.Add(1)
		go func() {
			defer builders.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := s.BuildEvidence(bg); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	builders.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if _, err := b.BuildEvidence(bg); err != nil {
		t.Fatal(err)
	}
	want := writers * letters * 5 // accepted, stored, refused, retrieved, read
	var n, maxPos, pending int64
	a.pool.QueryRow(bg, `SELECT count(*), max(position) FROM evidence`).Scan(&n, &maxPos)
	a.pool.QueryRow(bg, `SELECT count(*) FROM evidence_pending`).Scan(&pending)
	size, _, _ := b.EvidenceHead()
	if n != int64(want) || maxPos != n-1 || pending != 0 || size != uint64(n) {
		t.Fatalf("%d entries, positions up to %d, %d pending, size %d; want %d", n, maxPos, pending, size, want)
	}
	for w := range writers {
		es, err := a.EvidenceFor(fmt.Sprintf("w%d-3@gov.kz", w), "")
		if err != nil || len(es) != 5 {
			t.Fatalf("letter w%d-3: %d entries %v", w, len(es), err)
		}
		if got := kindsOf(es); !strings.HasPrefix(got, "accepted:") || !strings.HasSuffix(got, "read:alice@example.kz:body-fetched-select") {
			t.Fatalf("letter w%d-3 in the order %s", w, got)
		}
	}
	if rep, err := a.VerifyEvidence(nil, nil); err != nil || !rep.OK || rep.Entries != uint64(want) {
		t.Fatalf("verify: %+v %v", rep, err)
	}
}

// TestEvidenceTampering changes the database the ways an insider without
// the operator key could, with SQL, and verify must name what broke.
func TestEvidenceTampering(t *testing.T) {
	fixture := func(t *testing.T) (*Store, ed25519.PublicKey) {
		s := openTest(t, false)
		pub, priv, _ := ed25519.GenerateKey(rand.Reader)
		addRefusals(t, s, "<a@gov.kz>", 5)
		signHead(t, s, priv, time.Now())
		addRefusals(t, s, "<b@gov.kz>", 95)
		signHead(t, s, priv, time.Now().Add(time.Second))
		return s, pub
	}
	cases := []struct {
		name    string
		sql     []string
		bad     uint64
		problem string
	}{
		{"one byte changed", []string{`UPDATE evidence SET entry = overlay(entry PLACING 'Z' FROM 40 FOR 1) WHERE position = 70`},
			70, "content was changed"},
		{"event deleted", []string{`DELETE FROM evidence WHERE position = 5`}, 5, "missing"},
		{"order swapped", []string{`UPDATE evidence SET position = -1 WHERE position = 3`, `UPDATE evidence SET position = 3 WHERE position = 4`,
			`UPDATE evidence SET position = 4 WHERE position = -1`}, 3, "says it is entry 4"},
		{"entry and its leaf changed (only the head tells)", []string{`UPDATE evidence SET entry = convert_to(replace(convert_from(entry, 'UTF8'), 'r1@', 'm1@'), 'UTF8') WHERE position = 1`,
			`UPDATE evidence SET leaf = sha256('\x00'::bytea || entry) WHERE position = 1`}, 0, "do not match the head"},
		{"entry and its leaf changed past the first head", []string{`UPDATE evidence SET entry = convert_to(replace(convert_from(entry, 'UTF8'), 'r10@', 'm10@'), 'UTF8') WHERE position = 15`,
			`UPDATE evidence SET leaf = sha256('\x00'::bytea || entry) WHERE position = 15`}, 63, "the tree node 6/0 completed by entry 63"},
		{"a run of events deleted", []string{`DELETE FROM evidence WHERE position BETWEEN 10 AND 20`}, 10, "entry 10 is missing"},
		{"last events deleted", []string{`DELETE FROM evidence WHERE position >= 97`}, 97, "entries were removed at the end"},
		{"last events removed", []string{`DELETE FROM evidence WHERE position >= 90`, `UPDATE evidence_state SET built = 90`}, 90, "removed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, pub := fixture(t)
			for _, q := range c.sql {
				if _, err := s.pool.Exec(bg, q); err != nil {
					t.Fatal(err)
				}
			}
			rep, err := s.VerifyEvidence(pub, nil)
			if err != nil {
				t.Fatal(err)
			}
			if rep.OK || rep.BadEntry == nil || *rep.BadEntry != c.bad || !strings.Contains(rep.Problem, c.problem) {
				bad := any(nil)
				if rep.BadEntry != nil {
					bad = *rep.BadEntry
				}
				t.Fatalf("report %+v (bad entry %v), want entry %d and %q", rep, bad, c.bad, c.problem)
			}
		})
	}
}

// BenchmarkEvidence100k logs 100,000 events (in transactions of 1,000,
// not timed), then reports the build (placing them and building the
// tree), a full verify, and one inclusion proof's time. Run alone:
// go test -run NONE -bench Evidence100k -benchtime 1x ./store/pgstore
func BenchmarkEvidence100k(b *testing.B) {
	s := openTest(b, false)
	const total, per = 100_000, 1_000
	for i := 0; i < total/per; i++ {
		addRefusals(b, s, fmt.Sprintf("<bench-%d@gov.kz>", i), per)
	}
	for b.Loop() {
		start := time.Now()
		if _, err := s.BuildEvidence(bg); err != nil {
			b.Fatal(err)
		}
		build := time.Since(start)
		start = time.Now()
		rep, err := s.VerifyEvidence(nil, nil)
		if err != nil || !rep.OK || rep.Entries != total {
			b.Fatalf("verify %+v %v", rep, err)
		}
		verify := time.Since(start)
		const proofs = 1000
		start = time.Now()
		for i := range proofs {
			if _, err := s.InclusionProof(uint64(i*97), total); err != nil {
				b.Fatal(err)
			}
		}
		proof := time.Since(start) / proofs
		start = time.Now()
		if _, _, err := s.EvidenceHead(); err != nil {
			b.Fatal(err)
		}
		head := time.Since(start)
		b.ReportMetric(build.Seconds(), "build-s")
		b.ReportMetric(verify.Seconds(), "verify-s")
		b.ReportMetric(float64(proof.Microseconds()), "proof-µs")
		b.ReportMetric(float64(head.Microseconds()), "head-µs")
	}
}
