package pgstore

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"abox/accounts"
	"abox/store"
	"abox/store/pgstore/pgtest"
)

// broadcastAccounts creates accounts on example.kz (login → class) and
// returns them by login.
func broadcastAccounts(t *testing.T, s *Store, classes map[string]string) map[string]accounts.Account {
	t.Helper()
	op := store.Audit{Actor: store.ActorOperator}
	if err := s.AddDomain(bg, "example.kz", op); err != nil {
		t.Fatal(err)
	}
	logins := make([]string, 0, len(classes))
	for l := range classes {
		logins = append(logins, l)
	}
	slices.Sort(logins)
	out := map[string]accounts.Account{}
	for _, l := range logins {
		a, err := s.CreateAccount(bg, accounts.Account{Login: l, Domain: "example.kz", Class: classes[l], Phone: "+77010000000", PasswordHash: "x"}, op)
		if err != nil {
			t.Fatal(err)
		}
		out[l] = a
	}
	return out
}

// inboxOf reads an account's INBOX counters.
func inboxOf(t *testing.T, s *Store, acct uint64) (messages, uidNext, unseen, modseq int64) {
	t.Helper()
	if err := s.pool.QueryRow(bg, `SELECT messages, uid_next, unseen, highest_modseq FROM mailboxes WHERE account = $1 AND name = 'INBOX'`,
		acct).Scan(&messages, &uidNext, &unseen, &modseq); err != nil {
		t.Fatal(err)
	}
	return
}

// TestBroadcast: a broadcast started, resumed and stepped to the end on
// two nodes delivers one copy to every active account (of its class),
// skips those over quota, counts the refusals, keeps one body, tells
// every node's subscribers, and is not repeated unless asked.
func TestBroadcast(t *testing.T) {
	clk := newQueueClock()
	o := clk.opts(pgtest.Database(t))
	w := pgtest.ObjectServer(t)
	o.Objects = ObjectOptions{Endpoint: w.Endpoint(), Bucket: w.NewBucket(), AccessKey: w.AccessKey, SecretKey: w.SecretKey, CreateBucket: true}
	o.InlineMax = 64
	s := openQueueStore(t, o)
	s2 := openAgain(t, s, o)
	acct := broadcastAccounts(t, s, map[string]string{"a1": "", "a2": "organization", "a3": "", "a4": "", "a5": "", "a6": ""})
	// a3 is blocked: not a recipient.
	if err := s.tx(bg, func(tx pgx.Tx) error {
		a := acct["a3"]
		a.State = accounts.Blocked
		return putAccount(bg, tx, &a)
	}); err != nil {
		t.Fatal(err)
	}
	body := queueBody(300)
	b, resumed, err := s.StartBroadcast(bg, store.Broadcast{Source: "src-1", Sender: "akimat", MessageID: "<b1@example.kz>"}, body, []byte("S"), false)
	if err != nil || resumed || b.ID == 0 || b.Blob == 0 || b.Hash == "" || b.Done {
		t.Fatalf("start: %+v %v %v", b, resumed, err)
	}
	if n := blobRefs(t, s, b.Blob); n != 1 {
		t.Fatalf("body refs %d after start, want 1", n)
	}
	sub := s2.Subscribe(acct["a1"].ID, func() {})
	defer sub.Close()

	pick := func(a *accounts.Account) (store.Recipient, error) {
		switch a.Login {
		case "a4":
			return store.Recipient{}, store.SkipNoConsent("consent-expired")
		case "a5":
			return store.Recipient{MaxBytes: 10, NotReceived: true}, nil
		}
		return store.Recipient{MaxBytes: 1 << 20, NotReceived: true}, nil
	}
	// The first step on one node, the rest on the other after a rerun
	// of the same file resumes it.
	b, err = s.BroadcastStep(bg, b.ID, 2, pick)
	if err != nil || b.Done || b.Scanned != 2 || b.Delivered != 2 || b.Cursor != acct["a2"].ID {
		t.Fatalf("first step: %+v %v", b, err)
	}
	again, resumed, err := s2.StartBroadcast(bg, store.Broadcast{Source: "src-1", Sender: "akimat"}, body, []byte("S"), false)
	if err != nil || !resumed || again.ID != b.ID || again.Cursor != b.Cursor {
		t.Fatalf("resume: %+v %v %v", again, resumed, err)
	}
	for !b.Done {
		if b, err = s2.BroadcastStep(bg, b.ID, 2, pick); err != nil {
			t.Fatal(err)
		}
	}
	if b.Scanned != 5 || b.Delivered != 3 || b.Skipped != 1 || b.Refused != 1 || b.DoneAt.IsZero() || b.Cursor != acct["a6"].ID {
		t.Fatalf("done: %+v", b)
	}
	if len(b.Sample) != 1 || !strings.Contains(b.Sample[0], "a5@example.kz") || !strings.Contains(b.Sample[0], store.ErrOverQuota.Error()) {
		t.Fatalf("skipped sample %q", b.Sample)
	}
	if again, err := s.BroadcastStep(bg, b.ID, 2, pick); err != nil || again.Delivered != 3 || !again.Done {
		t.Fatalf("a step of a finished broadcast: %+v %v", again, err)
	}
	// One body: a reference per copy, the broadcast's own released.
	if n := blobRefs(t, s, b.Blob); n != 3 {
		t.Fatalf("body refs %d, want 3", n)
	}
	for login, want := range map[string]int64{"a1": 1, "a2": 1, "a3": 0, "a4": 0, "a5": 0, "a6": 1} {
		msgs, uidNext, unseen, modseq := inboxOf(t, s, acct[login].ID)
		if msgs != want || uidNext != 1+want || unseen != want || modseq != 1+want {
			t.Fatalf("%s INBOX: %d messages, uidnext %d, %d unseen, modseq %d", login, msgs, uidNext, unseen, modseq)
		}
	}
	var blob, size int64
	var seen bool
	if err := s.pool.QueryRow(bg, `SELECT blob, size, seen FROM messages WHERE account = $1 AND uid = 1`, acct["a1"].ID).Scan(&blob, &size, &seen); err != nil ||
		uint64(blob) != b.Blob || size != int64(len(body)) || seen {
		t.Fatalf("a1's copy: blob %d size %d seen %v %v", blob, size, seen, err)
	}
	if u, err := s.Usage(acct["a1"].ID); err != nil || u.Bytes != int64(len(body)) || u.Messages != 1 || u.Received != 0 {
		t.Fatalf("a1's usage %+v %v", u, err)
	}
	// The other node's subscriber saw the copy arrive.
	if err := s2.SyncFeed(bg); err != nil {
		t.Fatal(err)
	}
	if cs, lost := sub.Take(); lost || len(cs) != 1 || cs[0].Kind != store.MessageAdded || cs[0].UID != 1 || cs[0].ModSeq != 2 {
		t.Fatalf("a1's changes %+v lost %v", cs, lost)
	}
	var audits int
	s.pool.QueryRow(bg, `SELECT count(*) FROM audit WHERE data->>'action' IN ('broadcast.start', 'broadcast.done')`).Scan(&audits)
	if audits != 2 {
		t.Fatalf("%d broadcast audit entries, want 2", audits)
	}

	// Not twice, unless asked.
	if _, _, err := s.StartBroadcast(bg, store.Broadcast{Source: "src-1", Sender: "akimat"}, body, []byte("S"), false); !errors.Is(err, store.ErrAlreadyBroadcast) {
		t.Fatalf("second broadcast of a finished one: %v", err)
	}
	b2, resumed, err := s.StartBroadcast(bg, store.Broadcast{Source: "src-1", Sender: "akimat"}, body, []byte("S"), true)
	if err != nil || resumed || b2.ID == b.ID || b2.Blob != b.Blob {
		t.Fatalf("again: %+v %v %v", b2, resumed, err)
	}
	if n := blobRefs(t, s, b.Blob); n != 4 {
		t.Fatalf("body refs %d with a second broadcast of it, want 4", n)
	}
	if _, err := s.BroadcastStep(bg, 999, 2, pick); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("step of a missing broadcast: %v", err)
	}
}

// TestBroadcastClass: a class's broadcast stores copies only in that
// class's accounts, with the flags the pick gives, and looks at every
// active account on its way.
func TestBroadcastClass(t *testing.T) {
	clk := newQueueClock()
	s := clk.open(t)
	acct := broadcastAccounts(t, s, map[string]string{"a1": "", "a2": "organization", "a3": "", "a4": "organization"})
	b, _, err := s.StartBroadcast(bg, store.Broadcast{Source: "src-2", Sender: "bank", Class: "organization"}, queueBody(20), nil, false)
	if err != nil {
		t.Fatal(err)
	}
	picked := 0
	pick := func(a *accounts.Account) (store.Recipient, error) {
		picked++
		return store.Recipient{Flags: []string{`\seen`, "$Bill", `\Seen`}, NotReceived: false}, nil
	}
	if b, err = s.BroadcastStep(context.Background(), b.ID, 10, pick); err != nil || !b.Done {
		t.Fatalf("step: %+v %v", b, err)
	}
	if b.Scanned != 4 || b.Delivered != 2 || picked != 2 {
		t.Fatalf("class broadcast: %+v, %d picked", b, picked)
	}
	for login, want := range map[string]int64{"a1": 0, "a2": 1, "a3": 0, "a4": 1} {
		if msgs, _, unseen, _ := inboxOf(t, s, acct[login].ID); msgs != want || unseen != 0 {
			t.Fatalf("%s INBOX: %d messages, %d unseen", login, msgs, unseen)
		}
	}
	var flags []string
	if err := s.pool.QueryRow(bg, `SELECT flags FROM messages WHERE account = $1`, acct["a2"].ID).Scan(&flags); err != nil ||
		!slices.Equal(flags, []string{`\Seen`, "$Bill"}) {
		t.Fatalf("flags %q %v", flags, err)
	}
	if u, _ := s.Usage(acct["a2"].ID); u.Received != 1 || u.Day != store.DayNumber(clk.get()) {
		t.Fatalf("a2's usage %+v", u)
	}
}

// TestBroadcastTwoNodesStepping: two nodes stepping the same broadcast
// at once take turns on its row: every account gets exactly one copy.
func TestBroadcastTwoNodesStepping(t *testing.T) {
	clk := newQueueClock()
	s := clk.open(t)
	s2 := openAgain(t, s, clk.opts(s.pool.Config().ConnString()))
	classes := map[string]string{}
	for i := range 8 {
		classes[string(rune('a'+i))+"x"] = ""
	}
	acct := broadcastAccounts(t, s, classes)
	b, _, err := s.StartBroadcast(bg, store.Broadcast{Source: "src-3", Sender: "akimat"}, queueBody(20), nil, false)
	if err != nil {
		t.Fatal(err)
	}
	pick := func(a *accounts.Account) (store.Recipient, error) { return store.Recipient{NotReceived: true}, nil }
	done := make(chan error, 2)
	for _, node := range []*Store{s, s2} {
		go func() {
			for {
				got, err := node.BroadcastStep(bg, b.ID, 1, pick)
				if err != nil || got.Done {
					done <- err
					return
				}
			}
		}()
	}
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	final, err := s.BroadcastStep(bg, b.ID, 1, pick)
	if err != nil || final.Delivered != 8 || final.Scanned != 8 {
		t.Fatalf("final %+v %v", final, err)
	}
	for login, a := range acct {
		if msgs, _, _, _ := inboxOf(t, s, a.ID); msgs != 1 {
			t.Fatalf("%s has %d copies", login, msgs)
		}
	}
}
