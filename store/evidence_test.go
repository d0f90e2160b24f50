package store

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"abox/evidence"
)

// evidenceFixture delivers two official letters (one recipient refused),
// records a retrieval, a read and a deletion, and signs heads after the
// first letter and at the end.
func evidenceFixture(t *testing.T) (*Store, ed25519.PublicKey) {
	t.Helper()
	s, clk := openTest(t)
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	a := addAccount(t, s, "alice@example.kz")
	sign := func() {
		size, root, err := s.EvidenceHead()
		if err != nil {
			t.Fatal(err)
		}
		h, err := evidence.Sign(priv, size, clk.Now(), root)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.AddSignedHead(ctx, h); err != nil {
			t.Fatal(err)
		}
	}
	var blob uint64
	var mbox uint32
	for i := 1; i <= 2; i++ {
		res, err := s.Deliver(ctx, &Delivery{Body: msg(i), Recipients: []Recipient{{Account: a.ID}},
			Official: &OfficialLetter{MessageID: "<letter-" + string(rune('0'+i)) + "@gov.kz>", Sender: "egov",
				Addresses: []string{"alice@example.kz"}, AcceptedAt: clk.Now(), ClientIP: "192.0.2.9", TLS: "TLS 1.3",
				Refused: []string{"carol@example.kz"}, Reason: "no-consent"}})
		if err != nil {
			t.Fatal(err)
		}
		ms, _ := s.Messages(a.ID, res[0].Mailbox, 0, 0)
		blob, mbox = ms[len(ms)-1].Blob, res[0].Mailbox
		clk.Add(60e9)
		if i == 1 {
			sign()
		}
	}
	if _, err := s.RecordRetrieval(ctx, a.ID, blob, "192.0.2.1", RetrievedExamine); err != nil {
		t.Fatal(err)
	}
	if first, err := s.RecordRetrieval(ctx, a.ID, blob, "192.0.2.1", RetrievedSeenFlag); err != nil || !first {
		t.Fatalf("read by \\Seen: %v %v", first, err)
	}
	if _, err := s.Expunge(ctx, a.ID, mbox, []uint32{2}); err != nil {
		t.Fatal(err)
	}
	clk.Add(60e9)
	sign()
	return s, pub
}

func TestEvidenceEventsAndProofs(t *testing.T) {
	s, pub := evidenceFixture(t)
	es, err := s.EvidenceFor("letter-2@gov.kz", "egov")
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, e := range es {
		kinds = append(kinds, e.Event.Kind+"/"+e.Event.How)
	}
	want := "accepted/ stored/ refused/ retrieved/body-fetched-examine read/seen-flag-set deleted/expunged"
	if got := strings.Join(kinds, " "); got != want {
		t.Fatalf("events %q, want %q", got, want)
	}
	sum := sha256.Sum256(msg(2))
	if es[1].Event.MessageSHA != hex.EncodeToString(sum[:]) || es[1].Event.Account == 0 || es[0].Event.TLS != "TLS 1.3" {
		t.Fatalf("stored event %+v", es[1].Event)
	}
	heads, _ := s.SignedHeads()
	last := heads[len(heads)-1]
	for _, e := range es {
		proof, err := s.InclusionProof(e.Event.Index, last.TreeSize)
		if err != nil {
			t.Fatal(err)
		}
		r := evidence.NewReceipt(e.Raw, e.Event.Index, proof, last, pub)
		if _, err := r.Verify(pub); err != nil {
			t.Fatalf("receipt of %d: %v", e.Event.Index, err)
		}
	}
	rep, err := s.VerifyEvidence(pub, nil)
	if err != nil || !rep.OK || rep.Entries != last.TreeSize || rep.Heads != 2 {
		t.Fatalf("verify %+v %v", rep, err)
	}
}

// TestEvidenceTamperingIsCaught changes the database the ways an insider
// without the operator key could, and verify must name what broke.
func TestEvidenceTamperingIsCaught(t *testing.T) {
	rewrite := func(tx *bolt.Tx, i uint64, change func(e map[string]any)) {
		b := tx.Bucket(bEvidence)
		var e map[string]any
		json.Unmarshal(b.Get(u64(i)), &e)
		change(e)
		raw, _ := json.Marshal(e)
		b.Put(u64(i), raw)
	}
	// retree recomputes the stored tree from the entries, as an insider
	// with the code but not the key would.
	retree := retreeEvidence
	cases := []struct {
		name    string
		tamper  func(tx *bolt.Tx)
		bad     uint64
		problem string
		inGroup bool // the entries as stored, in groups (else one per key)
	}{
		{"one byte inside a group", func(tx *bolt.Tx) {
			b := tx.Bucket(bEvidence)
			// The first delivery's entries (accepted, stored, refused):
			// change the second one's recipient.
			k, v := b.Cursor().First()
			if v[0] != evidenceGroupMark {
				panic(fmt.Sprintf("the first delivery's entries are not a group: %q", v))
			}
			i := bytes.Index(v, []byte(`"kind":"stored"`))
			raw := bytes.Clone(v)
			raw[i+len(`"kind":"s`)] = 'S'
			b.Put(bytes.Clone(k), raw)
		}, 1, "content was changed", true},
		{"event content", func(tx *bolt.Tx) {
			rewrite(tx, 4, func(e map[string]any) { e["recipient"] = "mallory@example.kz" })
		}, 4, "content was changed", false},
		{"one byte of a time", func(tx *bolt.Tx) {
			b := tx.Bucket(bEvidence)
			raw := append([]byte(nil), b.Get(u64(7))...)
			i := strings.Index(string(raw), `"at":"2026`) + len(`"at":"2026-01-1`)
			raw[i]++
			b.Put(u64(7), raw)
		}, 7, "content was changed", false},
		{"order swapped", func(tx *bolt.Tx) {
			b := tx.Bucket(bEvidence)
			x, y := append([]byte(nil), b.Get(u64(3))...), append([]byte(nil), b.Get(u64(4))...)
			b.Put(u64(3), y)
			b.Put(u64(4), x)
		}, 3, "says it is entry", false},
		{"event deleted", func(tx *bolt.Tx) { tx.Bucket(bEvidence).Delete(u64(5)) }, 5, "missing", false},
		{"time moved, tree recomputed without the key", func(tx *bolt.Tx) {
			rewrite(tx, 7, func(e map[string]any) { e["at"] = "2026-02-04T10:03:00Z" })
			retree(tx)
		}, 3, "do not match the head", false},
		{"last event removed, tree recomputed", func(tx *bolt.Tx) {
			tx.Bucket(bEvidence).Delete(u64(8))
			tx.Bucket(bMeta).Put(metaEvidenceSize, u64(8))
			retree(tx)
		}, 8, "removed", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, pub := evidenceFixture(t)
			if err := s.db.Update(func(tx *bolt.Tx) error {
				if !c.inGroup {
					explodeEvidence(t, tx)
				}
				c.tamper(tx)
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			rep, err := s.VerifyEvidence(pub, nil)
			if err != nil {
				t.Fatal(err)
			}
			if rep.OK || rep.BadEntry == nil || *rep.BadEntry != c.bad || !strings.Contains(rep.Problem, c.problem) {
				t.Fatalf("report %+v (bad entry %v), want entry %d and %q", rep, deref(rep.BadEntry), c.bad, c.problem)
			}
		})
	}
	t.Run("head signed by another key", func(t *testing.T) {
		s, _ := evidenceFixture(t)
		other, _, _ := ed25519.GenerateKey(rand.Reader)
		if rep, err := s.VerifyEvidence(other, nil); err != nil || rep.OK {
			t.Fatalf("verified with another key: %+v %v", rep, err)
		}
	})
}

// retreeEvidence recomputes the stored tree from the entries, as an
// insider with the code but not the key would.
func retreeEvidence(tx *bolt.Tx) {
	tx.DeleteBucket(bEvidenceTree)
	tree, _ := tx.CreateBucket(bEvidenceTree)
	var b evidence.Builder
	var leaves []byte
	for _, v := range allEntries(tx) {
		b.Add(evidence.LeafHash(v), func(level uint8, index uint64, h evidence.Hash) error {
			switch {
			case level == 0:
				leaves = append(leaves, h[:]...)
				return tree.Put(evidenceLeavesKey(index/leafBlock), bytes.Clone(leaves[index/leafBlock*leafBlock*32:]))
			case level >= leafBlockLevel:
				return tree.Put(evidenceTreeKey(level, index), bytes.Clone(h[:]))
			}
			return nil
		})
	}
}

func deref(p *uint64) any {
	if p == nil {
		return nil
	}
	return *p
}

// TestEvidencePeekThenRead: a PEEK is the first retrieval, the later
// non-PEEK fetch the read; neither is logged twice, and HasRetrievalRecord
// says when nothing is left to record.
func TestEvidencePeekThenRead(t *testing.T) {
	s, clk := openTest(t)
	a := addAccount(t, s, "alice@example.kz")
	res, err := s.Deliver(ctx, &Delivery{Body: msg(1), Recipients: []Recipient{{Account: a.ID}},
		Official: &OfficialLetter{MessageID: "peek@gov.kz", Sender: "egov", Addresses: []string{"alice@example.kz"}, AcceptedAt: clk.Now()}})
	if err != nil {
		t.Fatal(err)
	}
	ms, _ := s.Messages(a.ID, res[0].Mailbox, 0, 0)
	blob := ms[0].Blob
	steps := []struct {
		how       string
		wantFirst bool
	}{{RetrievedPeek, false}, {RetrievedPeek, false}, {RetrievedBody, true}, {RetrievedBody, false}, {RetrievedSeenFlag, false}}
	for i, st := range steps {
		first, err := s.RecordRetrieval(ctx, a.ID, blob, "192.0.2.1", st.how)
		if err != nil || first != st.wantFirst {
			t.Fatalf("step %d (%s): first %v err %v", i, st.how, first, err)
		}
		if !s.HasRetrievalRecord(a.ID, blob, st.how) {
			t.Fatalf("step %d (%s): still something to record", i, st.how)
		}
	}
	es, _ := s.EvidenceFor("peek@gov.kz", "")
	var got []string
	for _, e := range es {
		got = append(got, e.Event.Kind+"/"+e.Event.How)
	}
	if want := "accepted/ stored/ retrieved/body-peeked-select read/body-fetched-select"; strings.Join(got, " ") != want {
		t.Fatalf("events %q, want %q", strings.Join(got, " "), want)
	}
}

// signAndVerify signs the log's head as it is with a new key and checks
// the whole log against it.
func signAndVerify(t *testing.T, s *Store) {
	t.Helper()
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	size, root, err := s.EvidenceHead()
	if err != nil {
		t.Fatal(err)
	}
	h, err := evidence.Sign(priv, size, s.clock(), root)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.AddSignedHead(ctx, h); err != nil {
		t.Fatal(err)
	}
	if rep, err := s.VerifyEvidence(pub, nil); err != nil || !rep.OK {
		t.Fatalf("evidence verify: %+v %v", rep, err)
	}
}

// TestEvidenceByAccount: an account's evidence is found by its stable
// id, in log order and in pages, never another's (a refused recipient
// with an account counts as its own); a log from before schema 3 is
// indexed when the file is upgraded.
func TestEvidenceByAccount(t *testing.T) {
	s, clk := openTest(t)
	alice := addAccount(t, s, "alice@example.kz")
	bob := addAccount(t, s, "bob@example.kz")
	for i := 1; i <= 3; i++ {
		_, err := s.Deliver(ctx, &Delivery{Body: msg(i), Recipients: []Recipient{{Account: alice.ID}},
			Official: &OfficialLetter{MessageID: fmt.Sprintf("<l%d@gov.kz>", i), Sender: "egov",
				Addresses: []string{"alice@example.kz"}, AcceptedAt: clk.Now(), Refused: []string{"bob@example.kz"}, Reason: "no-consent"}})
		if err != nil {
			t.Fatal(err)
		}
	}
	kinds := func(es []EvidenceEntry) string {
		var k []string
		for _, e := range es {
			k = append(k, fmt.Sprintf("%s:%s", e.Event.Kind, e.Event.MessageID))
		}
		return strings.Join(k, " ")
	}
	all, next, err := s.EvidenceForAccount(alice.ID, 0, 0)
	if err != nil || next != 0 {
		t.Fatal(err, next)
	}
	want := "accepted:l1@gov.kz stored:l1@gov.kz accepted:l2@gov.kz stored:l2@gov.kz accepted:l3@gov.kz stored:l3@gov.kz"
	if got := kinds(all); got != want {
		t.Fatalf("alice: %s", got)
	}
	if got, _, _ := s.EvidenceForAccount(bob.ID, 0, 0); kinds(got) != "refused:l1@gov.kz refused:l2@gov.kz refused:l3@gov.kz" {
		t.Fatalf("bob: %s", kinds(got))
	}
	// Pages of 4 and of 3 (ending inside a delivery's run of entries).
	for _, size := range []int{4, 3} {
		var got []EvidenceEntry
		after := uint64(0)
		for range 10 {
			page, next, err := s.EvidenceForAccount(alice.ID, after, size)
			if err != nil || len(page) > size {
				t.Fatal(err, len(page))
			}
			got = append(got, page...)
			if next == 0 {
				break
			}
			after = next
		}
		if kinds(got) != want {
			t.Fatalf("pages of %d: %s", size, kinds(got))
		}
	}

	// As schema 2 left it: no index. Opening for writing upgrades and
	// indexes the log.
	path := s.path
	if err := s.update(ctx, func(t *txn) error {
		if err := t.tx.DeleteBucket(bEvidenceAcct); err != nil {
			return err
		}
		return t.tx.Bucket(bMeta).Put([]byte("schema"), u64(2))
	}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s2, err := Open(path, Options{Clock: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if got, _, _ := s2.EvidenceForAccount(alice.ID, 0, 0); kinds(got) != want {
		t.Fatalf("alice after the upgrade: %s", kinds(got))
	}
	mustCheck(t, s2)
}

// TestCheckEvidenceIndexes: abox check notices an evidence index key
// that files an entry under the wrong letter or account, one that names
// a missing entry, and an entry left out of an index.
func TestCheckEvidenceIndexes(t *testing.T) {
	s, _ := evidenceFixture(t)
	mustCheck(t, s)
	damage := func(fn func(tx *bolt.Tx) error) []string {
		t.Helper()
		if err := s.db.Update(fn); err != nil {
			t.Fatal(err)
		}
		rep, err := s.Check()
		if err != nil {
			t.Fatal(err)
		}
		return rep.Problems
	}
	// An account index key moved to another account.
	probs := damage(func(tx *bolt.Tx) error {
		b := tx.Bucket(bEvidenceAcct)
		k, v := b.Cursor().First()
		k, v = bytes.Clone(k), bytes.Clone(v)
		if err := b.Delete(k); err != nil {
			return err
		}
		k[7] ^= 0x40
		return b.Put(k, v)
	})
	if !containsAll(probs, "files entry", "not in the account index") {
		t.Fatalf("a moved account key: %v", probs)
	}
}

func containsAll(probs []string, subs ...string) bool {
	for _, sub := range subs {
		found := false
		for _, p := range probs {
			found = found || strings.Contains(p, sub)
		}
		if !found {
			return false
		}
	}
	return true
}
