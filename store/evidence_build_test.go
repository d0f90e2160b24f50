package store

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"abox/evidence"
)

// evidenceJSONCases are events whose strings need every escape
// encoding/json makes (quotes, backslashes, controls, HTML characters,
// U+2028, invalid UTF-8, non-ASCII), times with and without fractions
// and offsets, and the optional fields empty and set.
func evidenceJSONCases() []EvidenceEvent {
	at := time.Date(2026, 12, 7, 3, 4, 5, 120_000_000, time.UTC)
	return []EvidenceEvent{
		{},
		{Index: 1, At: at, Kind: EvidenceAccepted, MessageID: "l1@gov.kz", Sender: "egov", Recipient: "alice@example.kz", Account: 7,
			MessageSHA: strings.Repeat("ab", 32), ConsentSHA: strings.Repeat("cd", 32), ClientIP: "192.0.2.7", TLS: "TLS 1.3 TLS_AES_128_GCM_SHA256"},
		{Index: 1 << 62, At: at.Truncate(time.Second).In(time.FixedZone("", 5*3600+1800)), Kind: EvidenceRefused,
			MessageID: `a"b\c<d>&e` + "\u2028\x00\x1f\x7f", Sender: "Госуслуги", Recipient: "\xff\xfe@example.kz", Reason: "no-consent\n\t"},
		{Index: 3, At: time.Date(9999, 12, 31, 23, 59, 59, 999_999_999, time.UTC), Kind: EvidenceRetrieved, How: RetrievedBody, Account: ^uint64(0)},
		{Index: 4, At: time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC), Kind: EvidenceDeleted, How: "expired"},
	}
}

// TestEvidenceJSON: the hand-written encoder writes exactly what
// encoding/json writes (the bytes are the Merkle leaf, and the sender's
// verifier decodes them with a JSON library), and entryKeys reads back
// what json.Unmarshal reads.
func TestEvidenceJSON(t *testing.T) {
	for i, e := range evidenceJSONCases() {
		compareEvidenceJSON(t, i, e)
	}
	if _, err := appendEvidenceJSON(nil, &EvidenceEvent{At: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}); err == nil {
		t.Fatal("a time past year 9999 was encoded; encoding/json refuses it")
	}
}

func compareEvidenceJSON(t *testing.T, i int, e EvidenceEvent) {
	t.Helper()
	want, werr := json.Marshal(e)
	got, gerr := appendEvidenceJSON(nil, &e)
	if (werr == nil) != (gerr == nil) {
		t.Fatalf("case %d: encoding/json says %v, appendEvidenceJSON %v", i, werr, gerr)
	}
	if werr != nil {
		return
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("case %d:\n got %s\nwant %s", i, got, want)
	}
	if !bytes.ContainsRune(got, '\\') && len(got) > evidenceJSONSize(&e) {
		t.Fatalf("case %d: %d bytes, more than evidenceJSONSize's %d (the delivery path's buffer grows)", i, len(got), evidenceJSONSize(&e))
	}
	var back EvidenceEvent
	if err := json.Unmarshal(got, &back); err != nil {
		t.Fatalf("case %d: %v", i, err)
	}
	msgID, acct, ok := entryKeys(got)
	if !ok || string(msgID) != back.MessageID || acct != back.Account {
		t.Fatalf("case %d: entryKeys = %q %d %v, want %q %d", i, msgID, acct, ok, back.MessageID, back.Account)
	}
}

func FuzzEvidenceJSON(f *testing.F) {
	for _, e := range evidenceJSONCases() {
		f.Add(e.Index, e.At.UnixNano(), e.Kind, e.MessageID, e.Recipient, e.Account, e.Reason)
	}
	f.Fuzz(func(t *testing.T, index uint64, nanos int64, kind, msgID, rcpt string, acct uint64, reason string) {
		e := EvidenceEvent{Index: index, At: time.Unix(0, nanos).UTC(), Kind: kind, MessageID: msgID, Sender: kind + msgID,
			Recipient: rcpt, Account: acct, Reason: reason, How: rcpt}
		compareEvidenceJSON(t, 0, e)
	})
}

// TestEvidenceBuiltAtCommit: an official delivery's transaction writes
// the entries alone; the tree and indexes follow in the commit, and
// `evidence_built` says how far. A file from before schema 4 (no
// `evidence_built`) counts as built; `abox check` reports a log whose
// tree and indexes lag behind its entries.
func TestEvidenceBuiltAtCommit(t *testing.T) {
	s, clk := openTest(t)
	alice := addAccount(t, s, "alice@example.kz")
	deliver := func(id string) {
		t.Helper()
		if _, err := s.Deliver(ctx, &Delivery{Body: msg(len(id)), Recipients: []Recipient{{Account: alice.ID}},
			Official: &OfficialLetter{MessageID: id, Sender: "egov", Addresses: []string{"alice@example.kz"}, AcceptedAt: clk.Now()}}); err != nil {
			t.Fatal(err)
		}
	}
	deliver("<one@gov.kz>")
	var inTx, nodes int // leaves in the first block, entries built
	if err := s.update(ctx, func(tx *txn) error {
		w := tx.evidenceWriter()
		if err := w.add(EvidenceEvent{Kind: EvidenceStored, MessageID: "<two@gov.kz>", Account: alice.ID}); err != nil {
			return err
		}
		if err := w.close(); err != nil {
			return err
		}
		inTx = len(tx.tx.Bucket(bEvidenceTree).Get(evidenceLeavesKey(0))) / 32
		nodes = int(decodeU64(tx.tx.Bucket(bMeta).Get(metaEvidenceBuilt)))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// Entries 0 and 1 (the first letter) are built: their leaves are in
	// the first block; entry 2 was not yet when its transaction looked.
	if inTx != 2 || nodes != 2 {
		t.Fatalf("in the appending transaction: %d leaves, built %d; want 2 and 2", inTx, nodes)
	}
	size, _, err := s.EvidenceHead()
	if err != nil || size != 3 {
		t.Fatal(size, err)
	}
	if got, err := s.EvidenceFor("<two@gov.kz>", ""); err != nil || len(got) != 1 {
		t.Fatalf("the entry appended last is not indexed after its commit: %d %v", len(got), err)
	}
	mustCheck(t, s)

	// Lagging behind (as if a commit could not build): check says so.
	if err := s.update(ctx, func(tx *txn) error {
		return tx.tx.Bucket(bMeta).Put(metaEvidenceSize, u64(4))
	}); err != nil {
		t.Fatal(err)
	}
	rep, err := s.Check()
	if err != nil || !strings.Contains(strings.Join(rep.Problems, "\n"), "cover 3 of its 4 entries") {
		t.Fatalf("check: %q %v", rep.Problems, err)
	}
	// A file from before schema 4: every node stored under its level
	// and index as the entries were written; the commit at Open turns
	// that into leaf blocks before anything new is written.
	if err := s.db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bMeta).Put(metaEvidenceSize, u64(3)); err != nil {
			return err
		}
		tx.DeleteBucket(bEvidenceTree)
		tree, _ := tx.CreateBucket(bEvidenceTree)
		var b evidence.Builder
		for i := range uint64(3) {
			b.Add(evidence.LeafHash(evidenceEntry(tx, i)), func(level uint8, index uint64, h evidence.Hash) error {
				return tree.Put(evidenceTreeKey(level, index), bytes.Clone(h[:]))
			})
		}
		return tx.Bucket(bMeta).Delete(metaEvidenceBuilt)
	}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err = Open(s.path, Options{Clock: clk.Now}); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.viewNow(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bMeta).Get(metaEvidenceBuilt); v == nil || decodeU64(v) != 3 {
			t.Errorf("evidence_built after Open: %x, want 3", v)
		}
		tree := tx.Bucket(bEvidenceTree)
		if n := tree.Stats().KeyN; n != 1 || len(tree.Get(evidenceLeavesKey(0))) != 3*32 {
			t.Errorf("after the upgrade: %d tree keys, a block of %d bytes; want 1 key of 96", n, len(tree.Get(evidenceLeavesKey(0))))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	deliver("<three@gov.kz>")
	if got, err := s.EvidenceFor("<three@gov.kz>", ""); err != nil || len(got) != 2 {
		t.Fatalf("after the first commit of an old file: %d %v", len(got), err)
	}
	mustCheck(t, s)
}

// TestEvidenceTreeAcrossBlocks: a log appended in commits of every shape
// (one entry, less than a block, exactly a block, across two blocks)
// has, after each, the root RFC 9162 defines over its entries, proofs
// that verify against it, and a tree verify accepts; a changed leaf in a
// later block is named, and so is a changed upper node.
func TestEvidenceTreeAcrossBlocks(t *testing.T) {
	s, clk := openTest(t)
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	var leaves []evidence.Hash
	var heads []evidence.SignedHead
	n := uint64(0)
	for _, k := range []int{1, 3, 60, 64, 1, 65, 130, 7} {
		if err := s.update(ctx, func(tx *txn) error {
			w := tx.evidenceWriter()
			for range k {
				if err := w.add(EvidenceEvent{Kind: EvidenceStored, MessageID: fmt.Sprintf("<%d@gov.kz>", n/3), Account: n%5 + 1}); err != nil {
					return err
				}
				n++
			}
			return w.close()
		}); err != nil {
			t.Fatal(err)
		}
		leaves = leaves[:0]
		if err := s.viewNow(func(tx *bolt.Tx) error {
			for _, v := range allEntries(tx) {
				leaves = append(leaves, evidence.LeafHash(v))
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		var want evidence.Builder
		for _, l := range leaves {
			want.Add(l, nil)
		}
		size, root, err := s.EvidenceHead()
		if err != nil || size != n || root != want.Root() {
			t.Fatalf("after %d entries: head of %d (%v), root matches %v", n, size, err, root == want.Root())
		}
		for _, i := range []uint64{0, n / 2, n - 1, n * 7 / 10} {
			proof, err := s.InclusionProof(i, n)
			if err != nil {
				t.Fatal(err)
			}
			if err := evidence.VerifyInclusion(leaves[i], i, n, proof, root); err != nil {
				t.Fatalf("entry %d of %d: %v", i, n, err)
			}
		}
		clk.Add(time.Minute)
		h, _ := evidence.Sign(priv, size, clk.Now(), root)
		if err := s.AddSignedHead(ctx, h); err != nil {
			t.Fatal(err)
		}
		heads = append(heads, h)
	}
	for i := 1; i < len(heads); i++ {
		a, b := heads[i-1], heads[i]
		proof, err := s.ConsistencyProof(a.TreeSize, b.TreeSize)
		if err != nil {
			t.Fatal(err)
		}
		ra, _ := a.Root()
		rb, _ := b.Root()
		if err := evidence.VerifyConsistency(a.TreeSize, b.TreeSize, ra, rb, proof); err != nil {
			t.Fatalf("%d to %d: %v", a.TreeSize, b.TreeSize, err)
		}
	}
	if rep, err := s.VerifyEvidence(pub, nil); err != nil || !rep.OK || rep.Entries != n {
		t.Fatalf("verify: %+v %v", rep, err)
	}
	mustCheck(t, s)

	tamper := func(change func(tx *bolt.Tx), bad uint64, problem string) {
		t.Helper()
		if err := s.db.Update(func(tx *bolt.Tx) error { change(tx); return nil }); err != nil {
			t.Fatal(err)
		}
		rep, err := s.VerifyEvidence(pub, nil)
		if err != nil || rep.OK || rep.BadEntry == nil || *rep.BadEntry != bad || !strings.Contains(rep.Problem, problem) {
			t.Fatalf("report %+v (bad entry %v) %v, want entry %d and %q", rep, deref(rep.BadEntry), err, bad, problem)
		}
	}
	var saved []byte
	// An upper node (the first 128 leaves' root) changed: the entry that
	// completes it is named.
	tamper(func(tx *bolt.Tx) {
		tree := tx.Bucket(bEvidenceTree)
		saved = bytes.Clone(tree.Get(evidenceTreeKey(7, 0)))
		tree.Put(evidenceTreeKey(7, 0), make([]byte, 32))
	}, 127, "tree node 7/0")
	if err := s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bEvidenceTree).Put(evidenceTreeKey(7, 0), saved) }); err != nil {
		t.Fatal(err)
	}
	// One byte of an entry in the third block.
	tamper(func(tx *bolt.Tx) {
		explodeEvidence(t, tx)
		raw := bytes.Clone(tx.Bucket(bEvidence).Get(u64(150)))
		raw[bytes.Index(raw, []byte(`"kind":"`))+8] ^= 0x20
		tx.Bucket(bEvidence).Put(u64(150), raw)
	}, 150, "content was changed")
}
