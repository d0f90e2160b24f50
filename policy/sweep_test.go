package policy

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"abox/accounts"
	"abox/store"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

var ctx = context.Background()

func lifecycleEnv(t *testing.T) (*Engine, *store.Store, *fakeClock) {
	t.Helper()
	clk := &fakeClock{t: time.Date(2025, 1, 10, 12, 0, 0, 0, time.UTC)}
	st, err := store.Open(filepath.Join(t.TempDir(), store.FileName), store.Options{Clock: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	st.AddDomain(ctx, "example.kz", store.Audit{Actor: store.ActorOperator})
	return New(st, Config{Clock: clk.Now}), st, clk
}

func register(t *testing.T, st *store.Store, login string) accounts.Account {
	t.Helper()
	a, err := st.CreateAccount(ctx, accounts.Account{Login: login, Domain: "example.kz", PasswordHash: "x"}, store.Audit{Actor: store.ActorOperator})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func sweep(t *testing.T, e *Engine, clk *fakeClock, at time.Time, dry bool) []SweepAction {
	t.Helper()
	clk.Set(at)
	var acts []SweepAction
	if err := e.Sweep(ctx, at, dry, func(a SweepAction) { acts = append(acts, a) }); err != nil {
		t.Fatal(err)
	}
	return acts
}

func actions(acts []SweepAction) string {
	var out []string
	for _, a := range acts {
		out = append(out, a.Action+" "+a.Account)
	}
	return strings.Join(out, ", ")
}

func TestInactivityLifecycle(t *testing.T) {
	e, st, clk := lifecycleEnv(t)
	t0 := clk.Now()
	register(t, st, "alice")        // never used again: warned, graced, purged
	register(t, st, "bob")          // restored inside the grace
	r := register(t, st, "rolebox") // exempt role account
	st.UpdateAccount(ctx, r.Address(), "user.set", func(a *accounts.Account) error { a.Exempt = true; return nil }, store.Audit{Actor: store.ActorOperator})

	steps := []struct {
		name string
		at   time.Time
		dry  bool
		want string
	}{
		{"10 months: nothing", t0.AddDate(0, 10, 0), false, ""},
		{"11 months and a day, dry run", t0.AddDate(0, 11, 1), true, "warn alice@example.kz, warn bob@example.kz"},
		{"11 months and a day", t0.AddDate(0, 11, 1), false, "warn alice@example.kz, warn bob@example.kz"},
		{"warned once only", t0.AddDate(0, 11, 20), false, ""},
		{"12 months and a day", t0.AddDate(1, 0, 1), false, "pending-deletion alice@example.kz, pending-deletion bob@example.kz"},
	}
	for _, s := range steps {
		if got := actions(sweep(t, e, clk, s.at, s.dry)); got != s.want {
			t.Fatalf("%s: actions %q, want %q", s.name, got, s.want)
		}
	}
	alice, _ := st.Account("alice@example.kz")
	if alice.State != accounts.PendingDeletion || !alice.GraceUntil.Equal(accounts.GraceEnd(t0.AddDate(1, 0, 1))) {
		t.Fatalf("alice %+v", alice)
	}
	inbox, _ := st.MailboxByName(alice.ID, "INBOX")
	msgs, _ := st.Messages(alice.ID, inbox.ID, 0, 0)
	if len(msgs) != 1 {
		t.Fatalf("alice has %d warning letters, want 1", len(msgs))
	}
	body, _, _ := st.Body(msgs[0].Blob)
	for _, want := range []string{"2.10.2", "2.12.1", "Пользовательского соглашения", "Пайдаланушы келісімінің", "user agreement"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("warning letter lacks %q", want)
		}
	}
	// Bob restores inside the grace; the next sweep leaves him alone.
	clk.Set(t0.AddDate(1, 0, 10))
	if _, err := st.UpdateAccount(ctx, "bob@example.kz", "user.restore", func(a *accounts.Account) error { return a.Restore(clk.Now()) }, store.Audit{Actor: store.ActorOperator}); err != nil {
		t.Fatal(err)
	}
	if got := actions(sweep(t, e, clk, t0.AddDate(1, 0, 15), false)); got != "" {
		t.Fatalf("inside the grace: %q", got)
	}
	// After the grace alice is purged and her login freed.
	if got := actions(sweep(t, e, clk, t0.AddDate(1, 1, 3), false)); got != "purge alice@example.kz" {
		t.Fatalf("after the grace: %q", got)
	}
	alice, _ = st.Account("alice@example.kz")
	if alice.State != accounts.Purged || alice.PasswordHash != "" || alice.PurgedAt.IsZero() {
		t.Fatalf("alice after purge %+v", alice)
	}
	if rep, _ := st.Check(); len(rep.Problems) > 0 {
		t.Fatal(rep.Problems)
	}
	// The login registers again with an empty mailbox and new UIDVALIDITY.
	again := register(t, st, "alice")
	newInbox, _ := st.MailboxByName(again.ID, "INBOX")
	if again.ID == alice.ID || newInbox.Messages != 0 || newInbox.UIDValidity == inbox.UIDValidity {
		t.Fatalf("re-registered %+v inbox %+v", again, newInbox)
	}
	audit, _ := st.ListAudit(store.AuditFilter{Account: "alice@example.kz"})
	var acts []string
	for _, a := range audit {
		acts = append(acts, a.Action)
	}
	if got := strings.Join(acts, " "); got != "user.add user.warn-inactive user.pending-deletion user.purge user.add" {
		t.Fatalf("audit %q", got)
	}
	if role, _ := st.Account("rolebox@example.kz"); role.State != accounts.Active {
		t.Fatalf("exempt account %s", role.State)
	}
}

func TestRetentionSweep(t *testing.T) {
	e, st, clk := lifecycleEnv(t)
	t0 := clk.Now()
	a := register(t, st, "alice")
	for _, target := range []string{`\Trash`, `\Junk`, ""} {
		st.Deliver(ctx, &store.Delivery{Body: []byte("Subject: " + target + "\r\n\r\nx\r\n"), Recipients: []store.Recipient{{Account: a.ID, SpecialUse: target}}})
	}
	if got := actions(sweep(t, e, clk, t0.AddDate(0, 0, 29), false)); got != "" {
		t.Fatalf("29 days: %q", got)
	}
	got := sweep(t, e, clk, t0.AddDate(0, 0, 31), false)
	if actions(got) != "retention alice@example.kz, retention alice@example.kz" {
		t.Fatalf("31 days: %q", actions(got))
	}
	inbox, _ := st.MailboxByName(a.ID, "INBOX")
	trash, _ := st.MailboxByName(a.ID, "Trash")
	if inbox.Messages != 1 || trash.Messages != 0 {
		t.Fatalf("inbox %d trash %d", inbox.Messages, trash.Messages)
	}
	// A class maximum age takes INBOX mail too.
	st.SetClass(ctx, "standard", func(c *accounts.Class) error { c.MaxAge = 60 * 24 * time.Hour; return nil }, store.Audit{Actor: store.ActorOperator})
	if got := actions(sweep(t, e, clk, t0.AddDate(0, 0, 61), false)); got != "max-age alice@example.kz" {
		t.Fatalf("max age: %q", got)
	}
	if u, _ := st.Usage(a.ID); u.Messages != 0 || u.Bytes != 0 {
		t.Fatalf("usage %+v", u)
	}
}

// TestBlockedUnusedAccountIsDeleted: clause 2.10.2 applies to blocked
// accounts too. A block is not a use; the blocked account gets no warning
// letter, enters the grace after 12 months, and a restore keeps the block.
func TestBlockedUnusedAccountIsDeleted(t *testing.T) {
	e, st, clk := lifecycleEnv(t)
	t0 := clk.Now()
	register(t, st, "carol")
	clk.Set(t0.AddDate(0, 2, 0))
	if _, err := st.UpdateAccount(ctx, "carol@example.kz", "user.block", func(a *accounts.Account) error {
		return a.Block("abuse report", clk.Now())
	}, store.Audit{Actor: store.ActorOperator}); err != nil {
		t.Fatal(err)
	}
	if got := actions(sweep(t, e, clk, t0.AddDate(0, 11, 1), false)); got != "" {
		t.Fatalf("11 months: %q, want no warning to a blocked account", got)
	}
	if got := actions(sweep(t, e, clk, t0.AddDate(1, 0, 1), false)); got != "pending-deletion carol@example.kz" {
		t.Fatalf("12 months after the last use: %q, want the blocked account in the grace", got)
	}
	clk.Set(t0.AddDate(1, 0, 5))
	c, err := st.UpdateAccount(ctx, "carol@example.kz", "user.restore", func(a *accounts.Account) error { return a.Restore(clk.Now()) }, store.Audit{Actor: store.ActorOperator})
	if err != nil {
		t.Fatal(err)
	}
	if c.State != accounts.Blocked || c.BlockReason != "abuse report" {
		t.Fatalf("restored: %s %q, want blocked with its reason", c.State, c.BlockReason)
	}
}

// TestSweepAuditRetention: the sweep removes audit entries older than
// audit-retention, oldest first, with their by-account index (a listing
// for the account still works), and keeps the newer ones; with no
// retention nothing goes.
func TestSweepAuditRetention(t *testing.T) {
	clk := &fakeClock{t: time.Date(2025, 1, 10, 12, 0, 0, 0, time.UTC)}
	st, err := store.Open(filepath.Join(t.TempDir(), store.FileName), store.Options{Clock: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	op := store.Audit{Actor: store.ActorOperator}
	st.AddDomain(ctx, "example.kz", op)
	register(t, st, "old")
	clk.Set(clk.Now().Add(400 * 24 * time.Hour))
	register(t, st, "new")
	before, _ := st.ListAudit(store.AuditFilter{})

	keep := New(st, Config{Clock: clk.Now})
	if err := keep.sweepAudit(ctx, clk.Now(), false, nil); err != nil {
		t.Fatal(err)
	}
	if after, _ := st.ListAudit(store.AuditFilter{}); len(after) != len(before) {
		t.Fatalf("without a retention %d of %d entries stayed", len(after), len(before))
	}

	e := New(st, Config{Clock: clk.Now, AuditRetention: 365 * 24 * time.Hour})
	if err := e.sweepAudit(ctx, clk.Now(), true, nil); err != nil { // a dry run removes nothing
		t.Fatal(err)
	}
	if after, _ := st.ListAudit(store.AuditFilter{}); len(after) != len(before) {
		t.Fatalf("a dry run removed audit entries")
	}
	// Through the whole sweep (which adds entries of its own: the old
	// account is warned and moved to deletion).
	sweep(t, e, clk, clk.Now(), false)
	after, err := st.ListAudit(store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range after {
		if a.At.Before(clk.Now().Add(-365 * 24 * time.Hour)) {
			t.Errorf("an entry older than the retention stayed: %+v", a)
		}
	}
	var accts []string
	for _, a := range after {
		accts = append(accts, a.Action+" "+a.Account)
	}
	if got := strings.Join(accts, ","); !strings.HasPrefix(got, "user.add new@example.kz") || strings.Contains(got, "user.add old@") {
		t.Fatalf("after the sweep: %s (before: %d entries)", got, len(before))
	}
	old, err := st.ListAudit(store.AuditFilter{Account: "old@example.kz"})
	if err != nil {
		t.Fatalf("listing the pruned account: %v", err)
	}
	for _, a := range old {
		if a.Action == "user.add" {
			t.Fatalf("the old account's registration entry stayed: %+v", a)
		}
	}
	if rep, err := st.Check(); err != nil || len(rep.Problems) != 0 {
		t.Fatalf("check: %+v %v", rep, err)
	}
}
