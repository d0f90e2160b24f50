package store

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"abox/accounts"
	"abox/evidence"
)

// dumpFixture builds a store with something in every kind of record:
// the directory, accounts (one purged, one purged under seal whose login
// was registered again, one with a consent), mailboxes with keywords,
// one renamed, one deleted while subscribed and one still being deleted,
// messages with flags, expunges, shared bodies, a body in a segment,
// official letters delivered, retrieved, read and expunged with signed
// heads, a legacy notice ledger, audit entries, logins, an API token and
// an idempotency record, queued entries (held, leased, finished) and
// broadcasts (one finished, one running).
func dumpFixture(t *testing.T) (*Store, *testClock, ed25519.PublicKey) {
	t.Helper()
	s, clk := openTest(t)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	sign := func() {
		size, root, err := s.EvidenceHead()
		must(err)
		h, err := evidence.Sign(priv, size, clk.Now(), root)
		must(err)
		must(s.AddSignedHead(ctx, h))
	}
	alice := addAccount(t, s, "alice@example.kz")
	bob := addAccount(t, s, "bob@example.kz")
	addAccount(t, s, "carol@post.kz")
	addAccount(t, s, "dave@post.kz")
	must(s.AddDomain(ctx, "spare.kz", op))
	_, err := s.SetClass(ctx, "vip", func(c *accounts.Class) error { c.StorageBytes = 5 << 30; c.Services = []string{"imap"}; return nil }, op)
	must(err)
	must(s.AddSender(ctx, accounts.Sender{Name: "egov", Kind: accounts.Official, From: []string{"noreply@egov.kz"}}, op))
	must(s.AddDKIMKey(ctx, DKIMKey{Domain: "example.kz", Selector: "s2026", Algorithm: "rsa", PrivatePEM: "not a real key"}, op))
	_, err = s.RecordConsent(ctx, "alice@example.kz", alice.ID, verifiedConsent("900101300016", clk.Now().Add(123)), []byte("cms of alice"), false, op)
	must(err)
	_, err = s.UpdateAccount(ctx, "bob@example.kz", "user.class", func(a *accounts.Account) error { a.Class = "vip"; return nil }, op)
	must(err)

	// Mailboxes: a hierarchy renamed, one deleted while subscribed.
	lim := MailboxLimits{}
	_, err = s.CreateMailbox(ctx, alice.ID, "Projects/2026", "", lim)
	must(err)
	must(s.RenameMailbox(ctx, alice.ID, "Projects/2026", "Projects/Done", lim))
	_, err = s.CreateMailbox(ctx, alice.ID, "Old", "", lim)
	must(err)
	must(s.SetSubscribed(ctx, alice.ID, "Old", true))
	must(s.DeleteMailbox(ctx, alice.ID, "Old"))

	// Messages: delivered with flags, appended twice with the same body
	// (shared), flagged, expunged; a large body goes to a segment.
	for i := range 3 {
		_, err := s.Deliver(ctx, &Delivery{Body: msg(i), Structure: []byte("structure"), InternalDate: time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("", 5*3600)),
			Recipients: []Recipient{{Account: alice.ID, Flags: []string{"$Label" + string(rune('A'+i))}}, {Account: bob.ID}}})
		must(err)
	}
	shared := []byte("From: alice@example.kz\r\nSubject: shared\r\n\r\nsame bytes\r\n")
	for range 2 {
		_, err := s.AppendMessages(ctx, alice.ID, "Projects", []AppendMessage{{Body: shared, Flags: []string{FlagSeen, "$Important"}}}, 0, 0)
		must(err)
	}
	inbox, err := s.MailboxByName(alice.ID, "INBOX")
	must(err)
	_, err = s.SetFlags(ctx, alice.ID, inbox.ID, []uint32{1, 2}, FlagsAdd, []string{FlagSeen, FlagFlagged})
	must(err)
	_, err = s.Expunge(ctx, alice.ID, inbox.ID, []uint32{3})
	must(err)
	_, _, err = s.ClaimRecent(ctx, alice.ID, inbox.ID, 2)
	must(err)
	large := append([]byte("Subject: large\r\n\r\n"), bytes.Repeat([]byte("0123456789abcdef"), 2048)...)
	_, err = s.Deliver(ctx, &Delivery{Body: large, Recipients: []Recipient{{Account: bob.ID, Mailbox: "Archive"}}})
	must(err)

	// Official letters: delivered, retrieved and read, one expunged.
	var letters []Delivered
	for i := range 2 {
		res, err := s.Deliver(ctx, &Delivery{Body: msg(10 + i), Recipients: []Recipient{{Account: alice.ID}},
			Official: &OfficialLetter{MessageID: "<letter-" + string(rune('0'+i)) + "@egov.kz>", Sender: "egov",
				Addresses: []string{"alice@example.kz"}, AcceptedAt: clk.Now(), ClientIP: "192.0.2.9", TLS: "TLS 1.3",
				Refused: []string{"carol@post.kz"}, Reason: "no-consent"}})
		must(err)
		letters = append(letters, res[0])
		clk.Add(time.Minute)
		if i == 0 {
			sign()
		}
	}
	ms, err := s.MessagesByUID(alice.ID, inbox.ID, []uint32{letters[0].UID})
	must(err)
	_, err = s.RecordRetrieval(ctx, alice.ID, ms[0].Blob, "192.0.2.1", RetrievedBody)
	must(err)
	_, err = s.Expunge(ctx, alice.ID, inbox.ID, []uint32{letters[1].UID})
	must(err)
	must(s.SetReceiptsMailed(ctx, 3))
	// The ledger of an older abox.
	must(s.update(ctx, func(t *txn) error {
		if err := t.appendLedger(LedgerEntry{Kind: LedgerAccepted, MessageID: "<old@egov.kz>", Sender: "egov", Recipients: []string{"alice@example.kz"}}); err != nil {
			return err
		}
		return t.appendLedger(LedgerEntry{Kind: LedgerStored, MessageID: "<old@egov.kz>", Sender: "egov", Recipients: []string{"alice@example.kz"}})
	}))

	// Logins (two in one nanosecond), an API token, an idempotency record.
	at := clk.Now().Add(17)
	must(s.RecordLogin(ctx, alice.ID, LoginRecord{At: at, Service: "imap", Address: "192.0.2.7", Outcome: "ok"}))
	must(s.RecordLogin(ctx, alice.ID, LoginRecord{At: at, Service: "imap", Address: "192.0.2.8", Outcome: "failed"}))
	must(s.AddAPIToken(ctx, APIToken{Name: "portal", Role: "provisioner"}, TokenHash("secret"), op))
	must(s.RecordIdempotent(ctx, "portal", "key-1", IdempotentResult{RequestHash: "h", Status: 201, Account: bob.ID}))

	// The outbound queue: one entry held, one leased, one finished (its
	// body held by queue_free alone).
	d := &Delivery{Body: msg(20), Recipients: []Recipient{{Account: bob.ID}}, Sender: &SenderCount{Account: alice.ID},
		Queue: []*QueueEntry{queued("one.test", "x@one.test"), queued("two.test", "y@two.test")}}
	_, err = s.Deliver(ctx, d)
	must(err)
	_, err = s.QueueChange(ctx, d.Queue[1].ID, QueueHold, "checking", op)
	must(err)
	_, err = s.Deliver(ctx, &Delivery{Body: msg(21), Sender: &SenderCount{Account: alice.ID}, Queue: []*QueueEntry{queued("three.test", "z@three.test")}})
	must(err)
	leased, err := s.QueueLease(ctx, 10, time.Hour, nil)
	must(err)
	if len(leased) != 2 {
		t.Fatalf("leased %d entries, want 2", len(leased))
	}
	done := leased[1]
	done.Recipients[0].Status = QueueDelivered
	must(s.QueueUpdate(ctx, &done))

	// Broadcasts: one finished, one running.
	b, _, err := s.StartBroadcast(ctx, Broadcast{Source: "one", Sender: "operator"}, []byte("Subject: news\r\n\r\nnews\r\n"), nil, false)
	must(err)
	_, err = s.BroadcastStep(ctx, b.ID, 100, func(*accounts.Account) (Recipient, error) { return Recipient{}, nil })
	must(err)
	_, _, err = s.StartBroadcast(ctx, Broadcast{Source: "two", Sender: "operator"}, []byte("Subject: more news\r\n\r\nmore\r\n"), nil, false)
	must(err)

	// Purges: carol's content destroyed; dave's sealed, and his login
	// registered again.
	for _, addr := range []string{"carol@post.kz", "dave@post.kz"} {
		_, err := s.UpdateAccount(ctx, addr, "user.delete", func(a *accounts.Account) error { return a.StartDeletion("test", clk.Now()) }, op)
		must(err)
	}
	clk.Add(32 * 24 * time.Hour)
	_, err = s.PurgeAccount(ctx, "carol@post.kz", clk.Now(), 0, op)
	must(err)
	_, err = s.PurgeAccount(ctx, "dave@post.kz", clk.Now(), 365*24*time.Hour, op)
	must(err)
	addAccount(t, s, "dave@post.kz")

	// A mailbox whose deletion a crash interrupted.
	must(s.update(ctx, func(t *txn) error {
		id, err := mailboxIDByName(t.tx, bob.ID, "Archive")
		if err != nil {
			return err
		}
		mb, err := t.getMailbox(bob.ID, id)
		if err != nil {
			return err
		}
		if err := t.tx.Bucket(bMboxNames).Delete(mboxNameKey(bob.ID, mb.Name)); err != nil {
			return err
		}
		if err := t.tx.Bucket(bMboxDeleting).Put(mboxKey(bob.ID, id), nil); err != nil {
			return err
		}
		mb.Deleting = true
		return t.putMailbox(bob.ID, mb)
	}))
	must(s.AppendAudit(ctx, AuditEntry{Actor: ActorSystem, Action: "test.note", Reason: "the end"}))
	clk.Add(time.Minute)
	sign()
	return s, clk, pub
}

// exportAll exports s into memory and digests it.
func exportAll(t *testing.T, s *Store) ([]*DumpRecord, map[DumpKind]KindDigest) {
	t.Helper()
	var recs []*DumpRecord
	d := DumpDigest()
	if err := s.Export(ctx, func(r *DumpRecord) error {
		d.Add(r)
		recs = append(recs, r)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := d.Err(); err != nil {
		t.Fatal(err)
	}
	return recs, d.Sum()
}

func records(recs []*DumpRecord) func() (*DumpRecord, error) {
	return func() (*DumpRecord, error) {
		if len(recs) == 0 {
			return nil, io.EOF
		}
		r := recs[0]
		recs = recs[1:]
		return r, nil
	}
}

func openEmpty(t *testing.T, clk *testClock) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), FileName), Options{Clock: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestDumpRoundTrip: a store exported and imported into a new one (the
// records streamed from one to the other, in small transactions)
// exports the same digest kind by kind, checks clean, verifies its
// evidence log and ledger, serves the same messages with the same UIDs,
// MODSEQs and UIDVALIDITY, and goes on handing out new ids after the old.
func TestDumpRoundTrip(t *testing.T) {
	src, clk, pub := dumpFixture(t)
	mustCheck(t, src)
	srcRecs, srcSum := exportAll(t, src)
	for _, k := range DumpKinds {
		if srcSum[k].Count == 0 {
			t.Errorf("the fixture has no %s record", k)
		}
	}
	if len(srcSum) != len(DumpKinds) {
		t.Errorf("kinds %v, want %v", srcSum, DumpKinds)
	}
	// The body only a finished queue entry held is not exported.
	for _, r := range srcRecs {
		if r.Kind == DumpBody && bytes.Equal(r.Body.Data, msg(21)) {
			t.Error("the body held by queue_free alone was exported")
		}
	}

	defer func(n, b int) { importBatchRecords, importBatchBytes = n, b }(importBatchRecords, importBatchBytes)
	importBatchRecords, importBatchBytes = 7, 20_000
	dst := openEmpty(t, clk)
	ch := make(chan *DumpRecord)
	errc := make(chan error, 1)
	go func() {
		defer close(ch)
		errc <- src.Export(ctx, func(r *DumpRecord) error { ch <- r; return nil })
	}()
	stats, err := dst.Import(ctx, func() (*DumpRecord, error) {
		if r, ok := <-ch; ok {
			return r, nil
		}
		return nil, io.EOF
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if stats.Records[DumpMessage] != srcSum[DumpMessage].Count || stats.Transactions < 10 || stats.UnreferencedBodies != 0 {
		t.Errorf("stats %+v", stats)
	}
	mustCheck(t, dst)
	_, dstSum := exportAll(t, dst)
	if diff := CompareDigests(srcSum, dstSum); diff != nil {
		t.Errorf("digests differ: %q", diff)
	}

	// The evidence log and the ledger verify, with the key.
	rep, err := dst.VerifyEvidence(pub, nil)
	srcRep, _ := src.VerifyEvidence(pub, nil)
	if err != nil || !rep.OK || rep.Entries != srcRep.Entries || rep.Heads != 2 || !rep.SignaturesChecked {
		t.Errorf("evidence after import: %+v %v (source %+v)", rep, err, srcRep)
	}
	if lr, err := dst.VerifyLedger(); err != nil || !lr.OK || lr.Entries != 2 {
		t.Errorf("ledger after import: %+v %v", lr, err)
	}
	sSize, sRoot, _ := src.EvidenceHead()
	dSize, dRoot, _ := dst.EvidenceHead()
	if sSize != dSize || sRoot != dRoot {
		t.Errorf("evidence head %d %x, source %d %x", dSize, dRoot, sSize, sRoot)
	}
	n1, _ := src.Notice("letter-0@egov.kz", "")
	n2, err := dst.Notice("letter-0@egov.kz", "")
	if err != nil || !reflect.DeepEqual(n1, n2) {
		t.Errorf("notice %+v %v, source %+v", n2, err, n1)
	}

	// Mail as a client sees it.
	alice, _ := src.Account("alice@example.kz")
	if got, _ := dst.Account("alice@example.kz"); !reflect.DeepEqual(got, alice) {
		t.Errorf("alice %+v, source %+v", got, alice)
	}
	u1, _ := src.Usage(alice.ID)
	if u2, _ := dst.Usage(alice.ID); u1 != u2 {
		t.Errorf("usage %+v, source %+v", u2, u1)
	}
	mbs1, _ := src.Mailboxes(alice.ID)
	mbs2, _ := dst.Mailboxes(alice.ID)
	if !reflect.DeepEqual(mbs1, mbs2) {
		t.Errorf("mailboxes %+v, source %+v", mbs2, mbs1)
	}
	for _, mb := range mbs1 {
		m1, _ := src.Messages(alice.ID, mb.ID, 0, 0)
		m2, _ := dst.Messages(alice.ID, mb.ID, 0, 0)
		if len(m1) != len(m2) {
			t.Fatalf("%s: %d messages, source %d", mb.Name, len(m2), len(m1))
		}
		for i := range m1 {
			b1, s1, _ := src.Body(m1[i].Blob)
			b2, s2, err := dst.Body(m2[i].Blob)
			if err != nil || !bytes.Equal(b1, b2) || !bytes.Equal(s1, s2) {
				t.Errorf("%s UID %d: body differs (%v)", mb.Name, m1[i].UID, err)
			}
			x, y := m1[i], m2[i]
			x.Blob, y.Blob = 0, 0
			if !reflect.DeepEqual(x, y) || x.InternalDate.String() != y.InternalDate.String() {
				t.Errorf("%s: message %+v, source %+v", mb.Name, y, x)
			}
		}
		k1, _ := src.Keywords(alice.ID, mb.ID)
		k2, _ := dst.Keywords(alice.ID, mb.ID)
		if !reflect.DeepEqual(k1, k2) {
			t.Errorf("%s: keywords %q, source %q", mb.Name, k2, k1)
		}
		v1, c1, _ := src.Vanished(alice.ID, mb.ID, 0)
		v2, c2, _ := dst.Vanished(alice.ID, mb.ID, 0)
		if !reflect.DeepEqual(v1, v2) || c1 != c2 {
			t.Errorf("%s: vanished %v %v, source %v %v", mb.Name, v2, c2, v1, c1)
		}
	}
	if g, _ := dst.GoneSubscriptions(alice.ID); !reflect.DeepEqual(g, []string{"Old"}) {
		t.Errorf("gone subscriptions %q", g)
	}
	// The shared body is shared still: an identical APPEND finds it.
	shared := []byte("From: alice@example.kz\r\nSubject: shared\r\n\r\nsame bytes\r\n")
	id1, _ := src.BodyByHash(TokenHash(string(shared)))
	if id1 == 0 {
		t.Fatal("the shared body is not indexed in the source")
	}
	if _, err := dst.BodyByHash(TokenHash(string(shared))); err != nil {
		t.Errorf("the shared body is not indexed after import: %v", err)
	}
	if l1, _ := src.Logins(alice.ID, 0); true {
		if l2, _ := dst.Logins(alice.ID, 0); len(l1) != 2 || !reflect.DeepEqual(l1, l2) {
			t.Errorf("logins %+v, source %+v", l2, l1)
		}
	}
	if tok, ok, _ := dst.APITokenByHash(TokenHash("secret")); !ok || tok.Name != "portal" {
		t.Errorf("API token %+v %v", tok, ok)
	}
	if r, ok, _ := dst.Idempotent("portal", "key-1", time.Time{}); !ok || r.Status != 201 {
		t.Errorf("idempotent %+v %v", r, ok)
	}
	cms, err := dst.ConsentCMS(alice.ID, alice.Consent.RecordedAt.UnixNano())
	if err != nil || string(cms) != "cms of alice" {
		t.Errorf("consent CMS %q %v", cms, err)
	}
	if ids, _ := dst.IINAccounts("900101300016"); !reflect.DeepEqual(ids, []uint64{alice.ID}) {
		t.Errorf("IIN bound to %v", ids)
	}
	q1, _ := src.QueueList(QueueFilter{})
	q2, _ := dst.QueueList(QueueFilter{})
	if len(q1) != 2 || len(q2) != 2 {
		t.Fatalf("queue %d entries, source %d", len(q2), len(q1))
	}
	for i := range q1 {
		b1, _ := src.QueueBody(&q1[i])
		b2, _ := dst.QueueBody(&q2[i])
		x, y := q1[i], q2[i]
		x.Blob, y.Blob = 0, 0
		if !reflect.DeepEqual(x, y) || !bytes.Equal(b1, b2) {
			t.Errorf("queue entry %+v, source %+v", y, x)
		}
	}
	if st, _ := dst.QueueStats(); st.Entries != 2 {
		t.Errorf("queue stats %+v", st)
	}
	if dave, _ := dst.Account("dave@post.kz"); dave.State != accounts.Active {
		t.Errorf("dave@post.kz is %s, want the account registered again", dave.State)
	}
	if n, ok, _ := dst.ReceiptsMailed(); !ok || n != 3 {
		t.Errorf("receipts mailed %d %v", n, ok)
	}

	// New ids continue after the old ones, in both stores alike.
	for _, s := range []*Store{src, dst} {
		if _, err := s.Deliver(ctx, &Delivery{Body: msg(99), Recipients: []Recipient{{Account: alice.ID}}}); err != nil {
			t.Fatal(err)
		}
		addAccount(t, s, "frank@example.kz")
		if _, err := s.CreateMailbox(ctx, alice.ID, "New", "", MailboxLimits{}); err != nil {
			t.Fatal(err)
		}
		if err := s.AppendAudit(ctx, AuditEntry{Actor: ActorSystem, Action: "test.after"}); err != nil {
			t.Fatal(err)
		}
	}
	f1, _ := src.Account("frank@example.kz")
	f2, _ := dst.Account("frank@example.kz")
	nb1, _ := src.MailboxByName(alice.ID, "New")
	nb2, _ := dst.MailboxByName(alice.ID, "New")
	in1, _ := src.MailboxByName(alice.ID, "INBOX")
	in2, _ := dst.MailboxByName(alice.ID, "INBOX")
	var lastSeq uint64
	for _, r := range srcRecs {
		if r.Kind == DumpAudit {
			lastSeq = r.Audit.Seq
		}
	}
	a1, _ := src.ListAudit(AuditFilter{After: lastSeq})
	a2, _ := dst.ListAudit(AuditFilter{After: lastSeq})
	if f1.ID != f2.ID || nb1.UIDValidity != nb2.UIDValidity || nb1.ID != nb2.ID || in1 != in2 || len(a1) == 0 || len(a2) == 0 || a1[len(a1)-1].Seq != a2[len(a2)-1].Seq {
		t.Errorf("after the import: account %d/%d, mailbox %+v/%+v, INBOX %+v/%+v, audit %+v/%+v", f1.ID, f2.ID, nb1, nb2, in1, in2, a1, a2)
	}
	mustCheck(t, dst)

	// Reopened, the target finishes the interrupted mailbox deletion.
	path := dst.Path()
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	again, err := Open(path, Options{Clock: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	bob, _ := again.Account("bob@example.kz")
	for range 100 {
		if mbs, _ := again.Mailboxes(bob.ID); len(mbs) == len(DefaultMailboxes)-1 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if mbs, _ := again.Mailboxes(bob.ID); len(mbs) != len(DefaultMailboxes)-1 {
		t.Errorf("bob has %d mailboxes after the deletion resumed", len(mbs))
	}
	mustCheck(t, again)
}

// TestDumpThroughJSONIntoWALStore: the records survive JSON (a dump
// kept in a file), and a store with the write-ahead log and another
// segment threshold (more bodies in segments) imports them alike.
func TestDumpThroughJSONIntoWALStore(t *testing.T) {
	src, clk, pub := dumpFixture(t)
	recs, sum := exportAll(t, src)
	// Read-only, as a migration may open its source: the same dump.
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	ro, err := Open(src.Path(), Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if _, got := exportAll(t, ro); !reflect.DeepEqual(got, sum) {
		t.Errorf("digest of the read-only export differs")
	}
	stop := errors.New("stop")
	if err := ro.Export(ctx, func(*DumpRecord) error { return stop }); err != stop {
		t.Errorf("export stopped by its callback: %v", err)
	}
	func() {
		defer func() {
			if p := recover(); p != "boom" {
				t.Errorf("the callback's panic came back as %v", p)
			}
		}()
		ro.Export(ctx, func(*DumpRecord) error { panic("boom") })
	}()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	for _, r := range recs {
		if err := enc.Encode(r); err != nil {
			t.Fatal(err)
		}
	}
	dst, err := Open(filepath.Join(t.TempDir(), FileName), Options{Clock: clk.Now, WAL: true, SegmentMin: 64, ReserveSpace: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	dec := json.NewDecoder(&buf)
	if _, err := dst.Import(ctx, func() (*DumpRecord, error) {
		r := new(DumpRecord)
		if err := dec.Decode(r); err != nil {
			return nil, err
		}
		return r, nil
	}); err != nil {
		t.Fatal(err)
	}
	mustCheck(t, dst)
	if _, got := exportAll(t, dst); !reflect.DeepEqual(got, sum) {
		t.Errorf("digest after JSON and import into a WAL store differs")
	}
	if rep, err := dst.VerifyEvidence(pub, nil); err != nil || !rep.OK {
		t.Errorf("evidence: %+v %v", rep, err)
	}
	if st := dst.SegmentStats(); st.Files == 0 {
		t.Errorf("no body went to a segment: %+v", st)
	}
}

// TestDumpImportRefusesStoreWithData: an import never mixes two stores.
func TestDumpImportRefusesStoreWithData(t *testing.T) {
	s, clk := openTest(t)
	addAccount(t, s, "alice@example.kz")
	recs, _ := exportAll(t, s)
	if _, err := s.Import(ctx, records(recs)); !errors.Is(err, ErrStoreNotEmpty) || !strings.Contains(err.Error(), "accounts") {
		t.Fatalf("import into a store with accounts: %v", err)
	}
	other := openEmpty(t, clk)
	if err := other.AddDomain(ctx, "example.kz", op); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Import(ctx, records(recs)); !errors.Is(err, ErrStoreNotEmpty) {
		t.Fatalf("import into a store with a domain: %v", err)
	}
	if _, err := openEmpty(t, clk).Import(ctx, records(recs)); err != nil {
		t.Fatalf("import into a new store: %v", err)
	}
}

// TestDumpImportRefusesBrokenStream: a record naming a body the stream
// has not had, evidence out of order, or a record without its payload
// fail the import.
func TestDumpImportRefusesBrokenStream(t *testing.T) {
	s, clk := openTest(t)
	a := addAccount(t, s, "alice@example.kz")
	if _, err := s.Deliver(ctx, &Delivery{Body: msg(1), Recipients: []Recipient{{Account: a.ID}},
		Official: &OfficialLetter{MessageID: "<x@egov.kz>", Sender: "egov", Addresses: []string{"alice@example.kz"}}}); err != nil {
		t.Fatal(err)
	}
	recs, _ := exportAll(t, s)
	without := func(kind DumpKind) []*DumpRecord {
		var out []*DumpRecord
		for _, r := range recs {
			if r.Kind != kind {
				out = append(out, r)
			}
		}
		return out
	}
	reversed := func() []*DumpRecord {
		out := append([]*DumpRecord(nil), recs...)
		var ev []int
		for i, r := range out {
			if r.Kind == DumpEvidence {
				ev = append(ev, i)
			}
		}
		out[ev[0]], out[ev[1]] = out[ev[1]], out[ev[0]]
		return out
	}
	for name, stream := range map[string][]*DumpRecord{
		"no bodies":         without(DumpBody),
		"evidence reversed": reversed(),
		"no payload":        append(append([]*DumpRecord(nil), recs...), &DumpRecord{Kind: DumpAudit}),
	} {
		if _, err := openEmpty(t, clk).Import(ctx, records(stream)); err == nil {
			t.Errorf("%s: imported", name)
		}
	}
}

// TestDumpDigestTellsChanges: one record changed changes the digest of
// its kind only; the order of records within a kind does not matter.
func TestDumpDigestTellsChanges(t *testing.T) {
	s, _ := openTest(t)
	a := addAccount(t, s, "alice@example.kz")
	for i := range 3 {
		if _, err := s.Deliver(ctx, &Delivery{Body: msg(i), Recipients: []Recipient{{Account: a.ID}}}); err != nil {
			t.Fatal(err)
		}
	}
	recs, sum := exportAll(t, s)
	digest := func(recs []*DumpRecord) map[DumpKind]KindDigest {
		d := DumpDigest()
		for _, r := range recs {
			d.Add(r)
		}
		if d.Err() != nil {
			t.Fatal(d.Err())
		}
		return d.Sum()
	}
	// Messages in another order, bodies under other ids.
	var msgs []int
	shuffled := make([]*DumpRecord, len(recs))
	for i, r := range recs {
		c := *r
		switch r.Kind {
		case DumpBody:
			b := *r.Body
			b.ID += 1000
			c.Body = &b
		case DumpMessage:
			m := *r.Message
			m.Message.Blob += 1000
			c.Message = &m
			msgs = append(msgs, i)
		}
		shuffled[i] = &c
	}
	shuffled[msgs[0]], shuffled[msgs[2]] = shuffled[msgs[2]], shuffled[msgs[0]]
	if got := digest(shuffled); !reflect.DeepEqual(got, sum) {
		t.Errorf("reordered and renumbered: %v, want %v", got, sum)
	}
	// One flag flipped: the messages' digest alone changes.
	flipped := make([]*DumpRecord, len(recs))
	copy(flipped, recs)
	m := *recs[msgs[1]].Message
	m.Message.Flags = append([]string{FlagSeen}, m.Message.Flags...)
	flipped[msgs[1]] = &DumpRecord{Kind: DumpMessage, Message: &m}
	got := digest(flipped)
	if diff := CompareDigests(sum, got); !reflect.DeepEqual(diff, []string{"message: 3 records on both sides, but their content differs"}) {
		t.Errorf("one flag flipped: %q", diff)
	}
	if diff := CompareDigests(sum, digest(append(recs[:msgs[0]:msgs[0]], recs[msgs[0]+1:]...))); !reflect.DeepEqual(diff, []string{"message: 3 records in the source, 2 in the target"}) {
		t.Errorf("one message left out: %q", diff)
	}
	// A time in another zone is the same instant; an INTERNALDATE's
	// zone is part of it.
	zoned := make([]*DumpRecord, len(recs))
	copy(zoned, recs)
	for i, r := range recs {
		if r.Kind == DumpAccount {
			ad := *r.Account
			ad.Account.CreatedAt = ad.Account.CreatedAt.In(time.FixedZone("", 3600))
			zoned[i] = &DumpRecord{Kind: DumpAccount, Account: &ad}
		}
	}
	m = *recs[msgs[0]].Message
	m.Message.InternalDate = m.Message.InternalDate.In(time.FixedZone("", 7200))
	zoned[msgs[0]] = &DumpRecord{Kind: DumpMessage, Message: &m}
	got = digest(zoned)
	if got[DumpAccount] != sum[DumpAccount] || got[DumpMessage] == sum[DumpMessage] {
		t.Errorf("zones: account digest changed %v, message digest changed %v", got[DumpAccount] != sum[DumpAccount], got[DumpMessage] != sum[DumpMessage])
	}
}

// TestDumpCoversEveryBucket: every bucket and meta key is either moved
// by the dump, rebuilt from it, or the bbolt file's own (dump.go's
// list). A new one fails here until the dump knows about it.
func TestDumpCoversEveryBucket(t *testing.T) {
	moved := "domains classes senders dkim_keys accounts mail mbox_keywords mbox_subs_gone bodies blobs vanished audit logins consents api_tokens api_idem queue broadcasts evidence evidence_heads ledger ledger_read official"
	derived := "acct_addr acct_purged acct_state acct_lastuse consent_iin mbox_names mbox_deleting body_hash audit_acct ledger_msg logins_time queue_due queue_lease evidence_tree evidence_msg evidence_acct"
	own := "meta queue_free blob_locs segments seg_blobs incidents backup_files"
	known := map[string]bool{}
	for _, n := range strings.Fields(moved + " " + derived + " " + own) {
		known[n] = true
	}
	for _, b := range allBuckets {
		if !known[string(b)] {
			t.Errorf("bucket %s: neither moved by the dump, nor rebuilt, nor bbolt's own", b)
		}
	}
	metaKeys := map[string]bool{
		// moved
		"uidvalidity": true, "created": true, "evidence_receipts_mailed": true, "ledger_head": true,
		// derived
		"queue_size": true, "evidence_size": true, "evidence_built": true,
		// the file's own
		"schema": true, "db_id": true, "seg_header_from": true, "last_segment": true,
		"wal_seq": true, "wal_token": true, "wal_dirty": true,
	}
	s, _, _ := dumpFixture(t)
	if err := s.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bMeta).ForEach(func(k, _ []byte) error {
			if !metaKeys[string(k)] {
				t.Errorf("meta key %q: neither moved by the dump, nor rebuilt, nor bbolt's own", k)
			}
			return nil
		})
	}); err != nil {
		t.Fatal(err)
	}
}
