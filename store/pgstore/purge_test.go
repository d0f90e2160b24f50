package pgstore

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"abox/accounts"
	"abox/store"
)

// putTestMessage stores a message in an account's mailbox with SQL of
// its own (the mail area writes the real delivery), counting it in the
// mailbox and the usage as a delivery does, and one expunge record
// beside it. It returns the body's row id.
func putTestMessage(t *testing.T, s *Store, acct uint64, mailbox string, body []byte, shareable bool) uint64 {
	t.Helper()
	nb, err := s.prepareBody(bg, body, nil, shareable)
	if err != nil {
		t.Fatal(err)
	}
	var blob uint64
	err = s.tx(bg, func(tx pgx.Tx) error {
		if blob, err = nb.insert(bg, tx, 1); err != nil {
			return err
		}
		var mbox uint32
		var uid int64
		if err := tx.QueryRow(bg, `UPDATE mailboxes SET uid_next = uid_next + 1, messages = messages + 1, size = size + $3,
			unseen = unseen + 1, highest_modseq = highest_modseq + 1
			WHERE account = $1 AND name = $2 RETURNING id, uid_next - 1`, acct, mailbox, len(body)).Scan(&mbox, &uid); err != nil {
			return err
		}
		now := s.clock()
		if _, err := tx.Exec(bg, `INSERT INTO messages (account, mailbox, uid, modseq, internal_date, added_at, size, blob)
			VALUES ($1, $2, $3, 2, $4, $4, $5, $6)`, acct, mbox, uid, now, len(body), blob); err != nil {
			return err
		}
		if _, err := tx.Exec(bg, `INSERT INTO vanished (account, mailbox, uid, modseq, at) VALUES ($1, $2, $3 + 100000, 2, $4)`, acct, mbox, uid, now); err != nil {
			return err
		}
		_, err := tx.Exec(bg, `UPDATE usage SET bytes = bytes + $2, messages = messages + 1 WHERE account = $1`, acct, len(body))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return blob
}

func countRows(t *testing.T, s *Store, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := s.pool.QueryRow(bg, sql, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// startDeletion puts an account in pending deletion now.
func startDeletion(t *testing.T, s *Store, addr string, at time.Time) {
	t.Helper()
	if _, err := s.UpdateAccount(bg, addr, "user.delete", func(x *accounts.Account) error { return x.StartDeletion("test", at) }, op); err != nil {
		t.Fatal(err)
	}
}

// TestPurge: a purge refused (the grace is not over) destroys nothing;
// one that happens leaves a tombstone (audited, on the feed), deletes
// the mailboxes, messages, expunge records, login history, signed
// consents and usage, releases the bodies (a body another account
// shares stays, with one reference fewer; an object no one holds is
// deleted from the bucket), and frees the login.
func TestPurge(t *testing.T) {
	s := openTest(t, true)
	clk := withClock(s)
	a := newAccount(t, s, "alice@example.kz")
	b := newAccount(t, s, "bob@example.kz")
	big := []byte("Subject: big\r\n\r\n" + strings.Repeat("x", 500) + "\r\n")
	shared := []byte("Subject: shared\r\n\r\n" + strings.Repeat("y", 500) + "\r\n")
	own := putTestMessage(t, s, a.ID, "INBOX", big, false)
	putTestMessage(t, s, a.ID, "Sent", []byte("Subject: small\r\n\r\nhi\r\n"), false)
	sharedBlob := putTestMessage(t, s, a.ID, "Archive", shared, true)
	putTestMessage(t, s, b.ID, "INBOX", shared, true)
	var ownObject string
	s.pool.QueryRow(bg, `SELECT object FROM blobs WHERE id = $1`, own).Scan(&ownObject)
	if ownObject == "" {
		t.Fatal("the big body is not in the object store")
	}
	s.RecordLogin(bg, a.ID, store.LoginRecord{At: clk.now(), Service: "imap", Outcome: "ok"})
	cons := &accounts.Consent{IIN: "IIN900101300123", Verified: true, RecordedAt: clk.now()}
	if _, err := s.RecordConsent(bg, a.Address(), a.ID, cons, []byte("cms"), false, op); err != nil {
		t.Fatal(err)
	}

	if _, err := s.PurgeAccount(bg, a.Address(), clk.now(), 0, op); !errors.Is(err, accounts.ErrTransition) {
		t.Fatalf("purge of an active account: %v, want ErrTransition", err)
	}
	startDeletion(t, s, a.Address(), clk.now())
	if _, err := s.PurgeAccount(bg, a.Address(), clk.now(), 0, op); !errors.Is(err, accounts.ErrTransition) {
		t.Fatalf("purge before the grace ends: %v, want ErrTransition", err)
	}
	if n := countRows(t, s, `SELECT count(*) FROM messages WHERE account = $1`, a.ID); n != 3 {
		t.Fatalf("a refused purge left %d of 3 messages", n)
	}
	if _, err := s.PurgeAccount(bg, "nobody@example.kz", clk.now(), 0, op); !errors.Is(err, store.ErrNoAccount) {
		t.Fatalf("purge of nobody: %v, want ErrNoAccount", err)
	}

	sub := s.Subscribe(a.ID, func() {})
	defer sub.Close()
	s.SyncFeed(bg)
	sub.Take()
	at := clk.now().Add(60 * 24 * time.Hour)
	got, err := s.PurgeAccount(bg, a.Address(), at, 0, op)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != accounts.Purged || !got.SealedUntil.IsZero() || got.Consent != nil || got.PasswordHash != "" || !got.PurgedAt.Equal(at) {
		t.Fatalf("purged account: %+v", got)
	}
	if stored, _ := s.Account(a.Address()); stored.ID != a.ID || stored.State != accounts.Purged {
		t.Fatalf("the tombstone: %+v", stored)
	}
	for _, tbl := range []string{"mailboxes", "messages", "vanished"} {
		if n := countRows(t, s, `SELECT count(*) FROM `+tbl+` WHERE account = $1`, a.ID); n != 0 {
			t.Fatalf("%d rows left in %s", n, tbl)
		}
	}
	for _, q := range []string{`SELECT count(*) FROM usage WHERE account = $1`, `SELECT count(*) FROM logins WHERE account = $1`, `SELECT count(*) FROM consent_cms WHERE account = $1`} {
		if n := countRows(t, s, q, a.ID); n != 0 {
			t.Fatalf("%s: %d", q, n)
		}
	}
	if n := countRows(t, s, `SELECT count(*) FROM blobs WHERE id = $1`, own); n != 0 {
		t.Fatal("alice's own body is still stored")
	}
	if n := countRows(t, s, `SELECT refs FROM blobs WHERE id = $1`, sharedBlob); n != 1 {
		t.Fatalf("the shared body holds %d references, want bob's 1", n)
	}
	if mb := countRows(t, s, `SELECT messages FROM mailboxes WHERE account = $1 AND name = 'INBOX'`, b.ID); mb != 1 {
		t.Fatalf("bob's inbox holds %d messages", mb)
	}
	// The object goes from the bucket once the trash is emptied (in
	// the background, or here).
	s.wg.Wait()
	s.EmptyTrash(bg, 100)
	if _, err := s.objects.get(bg, ownObject); err == nil {
		t.Fatal("alice's object is still in the bucket")
	}
	if e := lastAudit(t, s); e.Action != "user.purge" || e.AccountID != a.ID {
		t.Fatalf("audit: %+v", e)
	}
	s.SyncFeed(bg)
	changes, _ := sub.Take()
	var kinds []store.ChangeKind
	for _, c := range changes {
		kinds = append(kinds, c.Kind)
	}
	if len(changes) == 0 || changes[0].Kind != store.AccountChanged || !strings.Contains(fmt.Sprint(kinds), fmt.Sprint(store.MailboxDeleted)) {
		t.Fatalf("changes of the purge: %v", kinds)
	}
	// Purged twice: refused, nothing changes.
	if _, err := s.PurgeAccount(bg, a.Address(), at, 0, op); !errors.Is(err, accounts.ErrTransition) {
		t.Fatalf("second purge: %v, want ErrTransition", err)
	}
	// The login is free again; the new alice is another account.
	again := newAccount(t, s, "alice@example.kz")
	if again.ID == a.ID {
		t.Fatal("the new alice got the old id")
	}
	if n := countRows(t, s, `SELECT count(*) FROM accounts WHERE id = $1`, a.ID); n != 0 {
		t.Fatal("the tombstone stayed after its login was registered again")
	}
}

// TestPurgeInBatches: a mailbox larger than a batch is emptied over
// several transactions, with its counters following.
func TestPurgeInBatches(t *testing.T) {
	s := openTest(t, false)
	clk := withClock(s)
	a := newAccount(t, s, "alice@example.kz")
	var mbox uint32
	s.pool.QueryRow(bg, `SELECT id FROM mailboxes WHERE account = $1 AND name = 'INBOX'`, a.ID).Scan(&mbox)
	// purgeBatch+1 messages sharing one body, and as many expunge
	// records, written in bulk.
	n := purgeBatch + 1
	err := s.tx(bg, func(tx pgx.Tx) error {
		nb := &newBody{body: []byte("x"), size: 1, structure: []byte{}}
		blob, err := nb.insert(bg, tx, n)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(bg, `INSERT INTO messages (account, mailbox, uid, modseq, internal_date, added_at, size, blob)
			SELECT $1, $2, g, 2, now(), now(), 1, $3 FROM generate_series(1, $4) g`, a.ID, mbox, blob, n); err != nil {
			return err
		}
		if _, err := tx.Exec(bg, `INSERT INTO vanished (account, mailbox, uid, modseq, at)
			SELECT $1, $2, g + 100000, 2, now() FROM generate_series(1, $3) g`, a.ID, mbox, n); err != nil {
			return err
		}
		if _, err := tx.Exec(bg, `UPDATE mailboxes SET messages = $3::int, size = $3::int, unseen = $3::int, uid_next = $3::int + 1 WHERE account = $1 AND id = $2`, a.ID, mbox, n); err != nil {
			return err
		}
		_, err = tx.Exec(bg, `UPDATE usage SET bytes = $2, messages = $2 WHERE account = $1`, a.ID, n)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	// Batches by hand: the expunge records go first (a whole batch),
	// then the last of them and a batch of messages.
	var done bool
	batch := func() {
		t.Helper()
		if err := s.tx(bg, func(tx pgx.Tx) error { done, _, err = destroyMailboxBatch(bg, tx, a.ID, mbox); return err }); err != nil || done {
			t.Fatalf("batch: done %v, %v", done, err)
		}
	}
	batch()
	if v, m := countRows(t, s, `SELECT count(*) FROM vanished WHERE account = $1`, a.ID), countRows(t, s, `SELECT count(*) FROM messages WHERE account = $1`, a.ID); v != 1 || m != n {
		t.Fatalf("after one batch: %d expunge records, %d messages", v, m)
	}
	batch()
	if v := countRows(t, s, `SELECT count(*) FROM vanished WHERE account = $1`, a.ID); v != 0 {
		t.Fatalf("%d expunge records left after two batches", v)
	}
	var msgs, unseen int
	var size int64
	s.pool.QueryRow(bg, `SELECT messages, size, unseen FROM mailboxes WHERE account = $1 AND id = $2`, a.ID, mbox).Scan(&msgs, &size, &unseen)
	if msgs != 1 || size != 1 || unseen != 1 {
		t.Fatalf("after two batches the mailbox counts %d messages, %d bytes, %d unseen; want 1", msgs, size, unseen)
	}
	if u, _ := s.Usage(a.ID); u.Messages != 1 || u.Bytes != 1 {
		t.Fatalf("after two batches the usage is %+v", u)
	}
	if _, err := liveMailbox(s, a.ID, "INBOX"); err == nil {
		t.Fatal("a mailbox being destroyed still has its name")
	}
	startDeletion(t, s, a.Address(), clk.now())
	if _, err := s.PurgeAccount(bg, a.Address(), clk.now().Add(60*24*time.Hour), 0, op); err != nil {
		t.Fatal(err)
	}
	if c := countRows(t, s, `SELECT count(*) FROM blobs`); c != 0 {
		t.Fatalf("%d bodies left", c)
	}
}

// liveMailbox finds a mailbox not being deleted by name.
func liveMailbox(s *Store, acct uint64, name string) (uint32, error) {
	var id uint32
	err := s.pool.QueryRow(bg, `SELECT id FROM mailboxes WHERE account = $1 AND name = $2 AND NOT deleting`, acct, name).Scan(&id)
	return id, err
}

// TestSealedPurge: with a hold, a purge keeps the content sealed (its
// usage still counted, the consent and CMS object kept) until
// DestroySealed runs after the seal ends, on any node; a login
// registered again meanwhile leaves the sealed tombstone alone.
func TestSealedPurge(t *testing.T) {
	s := openTest(t, false)
	s2 := openAgain(t, s, Options{DSN: s.pool.Config().ConnString()})
	clk := withClock(s)
	a := newAccount(t, s, "alice@example.kz")
	b := newAccount(t, s, "bob@example.kz")
	putTestMessage(t, s, a.ID, "INBOX", []byte("Subject: kept\r\n\r\nbody\r\n"), false)
	putTestMessage(t, s, b.ID, "INBOX", []byte("Subject: gone\r\n\r\nbody\r\n"), false)
	cons := &accounts.Consent{IIN: "IIN900101300123", Verified: true, RecordedAt: clk.now()}
	if _, err := s.RecordConsent(bg, a.Address(), a.ID, cons, []byte("cms"), false, op); err != nil {
		t.Fatal(err)
	}
	startDeletion(t, s, a.Address(), clk.now())
	startDeletion(t, s, b.Address(), clk.now())
	at := clk.now().Add(60 * 24 * time.Hour)
	year := 365 * 24 * time.Hour
	got, err := s.PurgeAccount(bg, a.Address(), at, year, op)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != accounts.Purged || !got.SealedUntil.Equal(at.Add(year)) || got.Consent == nil {
		t.Fatalf("sealed tombstone: %+v", got)
	}
	if n := countRows(t, s, `SELECT count(*) FROM messages WHERE account = $1`, a.ID); n != 1 {
		t.Fatalf("sealed content: %d messages", n)
	}
	if u, err := s.Usage(a.ID); err != nil || u.Messages != 1 {
		t.Fatalf("sealed usage: %+v %v", u, err)
	}
	// Bob's purge is interrupted after its tombstone (sealed until
	// now): the next DestroySealed finishes it.
	if _, err := s.UpdateAccount(bg, b.Address(), "user.purge", func(x *accounts.Account) error {
		if err := x.Purge(at); err != nil {
			return err
		}
		x.SealedUntil = at
		return nil
	}, op); err != nil {
		t.Fatal(err)
	}
	// The login is registered again: the sealed tombstone keeps its
	// row and content, without the address.
	again := newAccount(t, s, "alice@example.kz")
	if n := countRows(t, s, `SELECT count(*) FROM messages WHERE account = $1`, a.ID); n != 1 {
		t.Fatal("registering the login again destroyed sealed content")
	}

	destroyed, err := s2.DestroySealed(bg, at.Add(time.Hour), op)
	if err != nil || len(destroyed) != 1 || destroyed[0] != "bob@example.kz" {
		t.Fatalf("DestroySealed before alice's seal ends: %v %v", destroyed, err)
	}
	if n := countRows(t, s, `SELECT count(*) FROM mailboxes WHERE account = $1`, b.ID); n != 0 {
		t.Fatalf("bob's interrupted purge left %d mailboxes", n)
	}
	destroyed, err = s2.DestroySealed(bg, at.Add(year+time.Second), op)
	if err != nil || len(destroyed) != 1 || destroyed[0] != "alice@example.kz" {
		t.Fatalf("DestroySealed after the seal: %v %v", destroyed, err)
	}
	if e := lastAudit(t, s); e.Action != "user.destroy-sealed" || e.AccountID != a.ID {
		t.Fatalf("audit: %+v", e)
	}
	old, err := s.AccountByID(a.ID)
	if err != nil || !old.SealedUntil.IsZero() || old.Consent != nil {
		t.Fatalf("the destroyed tombstone: %+v %v", old, err)
	}
	for _, q := range []string{`SELECT count(*) FROM mailboxes WHERE account = $1`, `SELECT count(*) FROM usage WHERE account = $1`, `SELECT count(*) FROM consent_cms WHERE account = $1`} {
		if n := countRows(t, s, q, a.ID); n != 0 {
			t.Fatalf("%s: %d", q, n)
		}
	}
	// The new alice is untouched, and nothing is left to destroy.
	if n := countRows(t, s, `SELECT count(*) FROM mailboxes WHERE account = $1`, again.ID); n != len(store.DefaultMailboxes) {
		t.Fatalf("the new alice has %d mailboxes", n)
	}
	if destroyed, err := s.DestroySealed(bg, at.Add(2*year), op); err != nil || len(destroyed) != 0 {
		t.Fatalf("DestroySealed again: %v %v", destroyed, err)
	}
}

// TestLowSpace: PostgreSQL has no local disk to watch.
func TestLowSpace(t *testing.T) {
	s := openTest(t, false)
	if s.LowSpace() {
		t.Fatal("LowSpace")
	}
}
