package policy

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"abox/accounts"
	"abox/store"
)

// scriptedTransport answers each recipient from a table (by address;
// default delivered) and records what it was given. The real transport
// (package outbound) and real servers are tested in outbound and
// cmd/abox; this one isolates the sender loop's decisions.
type scriptedTransport struct {
	mu      sync.Mutex
	answers map[string]OutOutcome
	sent    []OutMessage
	dsn     bool
}

func (s *scriptedTransport) Send(_ context.Context, domain string, m *OutMessage) OutResult {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sent = append(s.sent, *m)
	res := OutResult{Host: "mx." + domain, SupportsDSN: s.dsn}
	for _, r := range m.Recipients {
		o, ok := s.answers[r.Address]
		if !ok {
			o = OutOutcome{Status: OutDelivered, Code: 250, Enhanced: "2.0.0", Text: "ok", Remote: true}
		}
		res.Recipients = append(res.Recipients, o)
	}
	return res
}

func (s *scriptedTransport) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sent)
}

type outboundFixture struct {
	e     *Engine
	st    *store.Store
	clk   *fakeClock
	tr    *scriptedTransport
	alice accounts.Account
	stop  func()
}

func (c *fakeClock) Add(d time.Duration) { c.Set(c.Now().Add(d)) }

func newOutboundFixture(t *testing.T, cfg OutboundConfig) *outboundFixture {
	t.Helper()
	clk := &fakeClock{t: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)}
	st, err := store.Open(filepath.Join(t.TempDir(), store.FileName), store.Options{Clock: clk.Now, WAL: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	op := store.Audit{Actor: store.ActorOperator}
	if err := st.AddDomain(context.Background(), "example.kz", op); err != nil {
		t.Fatal(err)
	}
	alice, err := st.CreateAccount(context.Background(), accounts.Account{Login: "alice", Domain: "example.kz", Phone: "+77010000000", PasswordHash: "x"}, op)
	if err != nil {
		t.Fatal(err)
	}
	tr := &scriptedTransport{answers: map[string]OutOutcome{}}
	cfg.Transport, cfg.Hostname = tr, "mx.example.kz"
	cfg.Logger = slog.New(slog.NewTextHandler(testWriter{t}, nil))
	e := New(st, Config{Clock: clk.Now, Outbound: &cfg})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = e.RunOutbound(ctx) }()
	f := &outboundFixture{e: e, st: st, clk: clk, tr: tr, alice: alice}
	f.stop = func() { cancel(); <-done }
	t.Cleanup(f.stop)
	return f
}

// submit sends a message as alice to rcpts through the acceptance path.
func (f *outboundFixture) submit(t *testing.T, rcpts map[string]RcptParams, extra string) Accepted {
	t.Helper()
	id := &Identity{Account: &f.alice}
	tx := f.e.Begin(Envelope{Submission: true, Hostname: "mx.example.kz", SessionID: "s1", ClientIP: netip.MustParseAddr("192.0.2.7"),
		Helo: "alices-laptop", Protocol: "ESMTPSA", Identity: id, MailFrom: "alice@example.kz"})
	for addr, p := range rcpts {
		if _, err := tx.AddRecipient(addr, p); err != nil {
			t.Fatalf("RCPT %s: %v", addr, err)
		}
	}
	acc, err := tx.Deliver(context.Background(), []byte("From: alice@example.kz\r\nTo: someone\r\nSubject: hello\r\nMessage-ID: <m1@example.kz>\r\n"+extra+"\r\nhello\r\n"))
	if err != nil {
		t.Fatalf("deliver: %v", err)
	}
	return acc
}

// waitFor polls cond (the loop runs on its own goroutine).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// inbox returns the messages in alice's INBOX.
func (f *outboundFixture) inbox(t *testing.T) []string {
	t.Helper()
	mb, err := f.st.MailboxByName(f.alice.ID, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := f.st.Messages(f.alice.ID, mb.ID, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range msgs {
		b, _, err := f.st.Body(m.Blob)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(b))
	}
	return out
}

func (f *outboundFixture) queueSize(t *testing.T) int64 {
	t.Helper()
	st, err := f.st.QueueStats()
	if err != nil {
		t.Fatal(err)
	}
	return st.Entries
}

// TestOutboundDeliversOncePerDomain: recipients on two domains make two
// entries, each sent once with its own recipients, without the
// Return-Path and without the subscriber's address in Received; the
// queue is empty afterwards.
func TestOutboundDeliversOncePerDomain(t *testing.T) {
	f := newOutboundFixture(t, OutboundConfig{})
	acc := f.submit(t, map[string]RcptParams{"x@one.test": {}, "y@one.test": {}, "z@two.test": {}}, "")
	if acc.Queued != 2 || acc.Held {
		t.Fatalf("queued %d entries (held %v), want 2", acc.Queued, acc.Held)
	}
	waitFor(t, "two sends", func() bool { return f.tr.count() == 2 && f.queueSize(t) == 0 })
	byDomain := map[int]int{}
	for _, m := range f.tr.sent {
		byDomain[len(m.Recipients)]++
		body := string(m.Body)
		if strings.HasPrefix(body, "Return-Path:") || strings.Contains(body, "192.0.2.7") || strings.Contains(body, "alices-laptop") {
			t.Errorf("sent message leaks the trace of final delivery or the client:\n%s", body)
		}
		if !strings.HasPrefix(body, "Received: by mx.example.kz (abox) with ESMTPSA id s1") {
			t.Errorf("sent message starts %q", body[:min(len(body), 80)])
		}
	}
	if byDomain[2] != 1 || byDomain[1] != 1 {
		t.Fatalf("sends by recipient count %v", byDomain)
	}
	if u, _ := f.st.Usage(f.alice.ID); u.Sent != 3 {
		t.Fatalf("sent counter %d, want 3", u.Sent)
	}
}

// TestOutboundRetriesThenBounces: a deferred recipient is tried again
// with backoff, gets one delay notification after DelayWarning, and a
// failure notification with the last reply at the end of the lifetime;
// a refused recipient bounces at once; notifications are never sent
// for a notification.
func TestOutboundRetriesThenBounces(t *testing.T) {
	f := newOutboundFixture(t, OutboundConfig{Lifetime: 2 * time.Hour, DelayWarning: 30 * time.Minute, RetryMin: 10 * time.Minute, RetryMax: 20 * time.Minute})
	f.tr.answers["later@slow.test"] = OutOutcome{Status: OutDeferred, Code: 451, Enhanced: "4.7.1", Text: "greylisted", Remote: true}
	f.tr.answers["nobody@slow.test"] = OutOutcome{Status: OutFailed, Code: 550, Enhanced: "5.1.1", Text: "no such user", Remote: true}
	f.submit(t, map[string]RcptParams{"later@slow.test": {}, "nobody@slow.test": {}}, "")
	waitFor(t, "the first attempt and its bounce", func() bool { return len(f.inbox(t)) == 1 })
	bounce := f.inbox(t)[0]
	for _, want := range []string{"Return-Path: <>", "multipart/report; report-type=delivery-status", "Final-Recipient: rfc822; nobody@slow.test",
		"Action: failed", "Status: 5.1.1", "Diagnostic-Code: smtp; 550 5.1.1 no such user", "Remote-MTA: dns; mx.slow.test", "Content-Type: message/rfc822"} {
		if !strings.Contains(bounce, want) {
			t.Errorf("bounce lacks %q:\n%s", want, bounce)
		}
	}
	if strings.Contains(bounce, "later@slow.test") {
		t.Errorf("the bounce names the deferred recipient too")
	}
	attempts := f.tr.count()
	// Not due yet: no attempt.
	f.clk.Add(9 * time.Minute)
	f.e.WakeOutbound()
	time.Sleep(50 * time.Millisecond)
	if f.tr.count() != attempts {
		t.Fatalf("an attempt before the backoff ended")
	}
	for step := 0; step < 20 && f.queueSize(t) > 0; step++ {
		// To the next attempt the loop recorded, and on.
		l, _ := f.st.QueueList(store.QueueFilter{})
		f.clk.Set(l[0].NextAttempt)
		n := f.tr.count()
		f.e.WakeOutbound()
		waitFor(t, "an attempt", func() bool { return f.tr.count() > n })
		waitFor(t, "the attempt recorded", func() bool {
			l, _ := f.st.QueueList(store.QueueFilter{})
			return len(l) == 0 || !l[0].Leased
		})
	}
	if f.queueSize(t) != 0 {
		t.Fatal("the entry outlived its lifetime")
	}
	box := f.inbox(t)
	if len(box) != 3 {
		t.Fatalf("%d notifications, want 3 (failed, delayed, failed at expiry)", len(box))
	}
	if !strings.Contains(box[1], "Action: delayed") || !strings.Contains(box[1], "Will-Retry-Until:") || !strings.Contains(box[1], "later@slow.test") {
		t.Errorf("second notice is not the delay warning:\n%s", box[1])
	}
	if !strings.Contains(box[2], "Action: failed") || !strings.Contains(box[2], "gave up after 2h0m0s: 451 4.7.1 greylisted") {
		t.Errorf("last notice is not the expiry:\n%s", box[2])
	}
	// Attempts at 0, +10m, +30m, +50m, +70m, +90m, +110m and the last
	// at the end of the lifetime, +120m.
	if got := f.tr.count(); got != 8 {
		t.Errorf("%d attempts over 2 hours with 10-20 minute backoff, want 8", got)
	}
	if rep, err := f.st.Check(); err != nil || len(rep.Problems) > 0 {
		t.Fatalf("check: %v %v", rep.Problems, err)
	}
}

// TestOutboundNotifyParameters: NOTIFY=NEVER sends nothing on failure;
// NOTIFY=SUCCESS to a server without DSN gets "relayed"; to one with DSN
// nothing (the remote side reports); a local recipient with
// NOTIFY=SUCCESS gets "delivered"; RET=HDRS returns the header only.
func TestOutboundNotifyParameters(t *testing.T) {
	f := newOutboundFixture(t, OutboundConfig{})
	f.tr.answers["gone@a.test"] = OutOutcome{Status: OutFailed, Code: 550, Enhanced: "5.1.1", Text: "gone", Remote: true}
	f.submit(t, map[string]RcptParams{"gone@a.test": {Notify: []string{"NEVER"}}, "ok@a.test": {Notify: []string{"SUCCESS"}, ORcpt: "rfc822;Ok@A.test"}}, "")
	waitFor(t, "the relayed notice", func() bool { return len(f.inbox(t)) == 1 })
	n := f.inbox(t)[0]
	if !strings.Contains(n, "Action: relayed") || !strings.Contains(n, "Original-Recipient: rfc822; Ok@A.test") || strings.Contains(n, "gone@a.test") {
		t.Fatalf("notice:\n%s", n)
	}
	f.tr.dsn = true
	f.submit(t, map[string]RcptParams{"ok2@a.test": {Notify: []string{"SUCCESS"}}}, "")
	waitFor(t, "the send", func() bool { return f.queueSize(t) == 0 && f.tr.count() == 2 })
	time.Sleep(50 * time.Millisecond)
	if len(f.inbox(t)) != 1 {
		t.Fatalf("a DSN-capable server's success was reported by us too")
	}
	// A local recipient (alice writes to herself) asking for SUCCESS.
	f.submit(t, map[string]RcptParams{"alice@example.kz": {Notify: []string{"SUCCESS"}}}, "")
	box := f.inbox(t)
	if len(box) != 3 || !strings.Contains(box[2], "Action: delivered") {
		t.Fatalf("no delivered notice for a local recipient: %d messages", len(box))
	}
}

// TestOutboundHoldsBulk: past HoldAfter remote recipients within an hour
// an account's further mail is held, sent only after a release.
func TestOutboundHoldsBulk(t *testing.T) {
	f := newOutboundFixture(t, OutboundConfig{HoldAfter: 3})
	f.submit(t, map[string]RcptParams{"a@x.test": {}, "b@x.test": {}}, "")
	acc := f.submit(t, map[string]RcptParams{"c@y.test": {}, "d@y.test": {}}, "")
	if !acc.Held {
		t.Fatal("the fourth remote recipient within an hour was not held")
	}
	waitFor(t, "the first message sent", func() bool { return f.tr.count() == 1 })
	held, err := f.st.QueueList(store.QueueFilter{Held: true})
	if err != nil || len(held) != 1 || !strings.Contains(held[0].HeldReason, "4 remote recipients within an hour") {
		t.Fatalf("held %+v %v", held, err)
	}
	time.Sleep(50 * time.Millisecond)
	if f.tr.count() != 1 {
		t.Fatal("a held entry was sent")
	}
	if _, err := f.st.QueueChange(context.Background(), held[0].ID, store.QueueRelease, "", store.Audit{Actor: store.ActorOperator}); err != nil {
		t.Fatal(err)
	}
	f.e.WakeOutbound()
	waitFor(t, "the released entry sent", func() bool { return f.tr.count() == 2 })
}

// TestOutboundRefusals: trusted senders and sessions without outbound
// get the relay refusal; a bad domain is refused at RCPT.
func TestOutboundRefusals(t *testing.T) {
	f := newOutboundFixture(t, OutboundConfig{})
	tx := f.e.Begin(Envelope{Submission: true, Identity: &Identity{Sender: &accounts.Sender{Name: "billing", Kind: accounts.Billing}}, MailFrom: "bills@example.kz"})
	if _, err := tx.AddRecipient("x@other.test", RcptParams{}); err == nil || !strings.Contains(err.Error(), "outbound relay is for subscribers") {
		t.Fatalf("trusted sender to another domain: %v", err)
	}
	tx = f.e.Begin(Envelope{Submission: true, Identity: &Identity{Account: &f.alice}, MailFrom: "alice@example.kz"})
	if _, err := tx.AddRecipient("x@nodot", RcptParams{}); err == nil {
		t.Fatal("a domain without a dot was accepted")
	}
	st, _ := store.Open(filepath.Join(t.TempDir(), store.FileName), store.Options{})
	defer st.Close()
	plain := New(st, Config{})
	if _, err := plain.CheckRecipient("x@other.test", RcptOptions{Submission: true}); err == nil || !strings.Contains(err.Error(), "outbound relay not enabled") {
		t.Fatalf("without outbound: %v", err)
	}
}

// testWriter sends log lines to the test's log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// TestOutboundIdleWritesNothing: with nothing queued the sender loop
// only reads: no log record, no commit (an idle server must not fsync
// every second).
func TestOutboundIdleWritesNothing(t *testing.T) {
	f := newOutboundFixture(t, OutboundConfig{})
	time.Sleep(200 * time.Millisecond) // the start's lease release
	before := f.st.WriterStats()
	time.Sleep(2500 * time.Millisecond) // two ticks and a checkpoint delay
	after := f.st.WriterStats()
	if after.LogRecords != before.LogRecords || after.Commits != before.Commits {
		t.Fatalf("an idle sender loop wrote: %d log records, %d commits", after.LogRecords-before.LogRecords, after.Commits-before.Commits)
	}
}

// gatedTransport blocks every Send until released and records how many
// run at once per domain.
type gatedTransport struct {
	mu        sync.Mutex
	running   map[string]int
	most      map[string]int
	sent      int
	gate      chan struct{}
	delivered chan string
}

func (g *gatedTransport) Send(ctx context.Context, domain string, m *OutMessage) OutResult {
	g.mu.Lock()
	g.running[domain]++
	g.most[domain] = max(g.most[domain], g.running[domain])
	g.mu.Unlock()
	select {
	case <-g.gate:
	case <-ctx.Done():
	}
	g.mu.Lock()
	g.running[domain]--
	g.sent++
	g.mu.Unlock()
	g.delivered <- domain
	res := OutResult{}
	for range m.Recipients {
		res.Recipients = append(res.Recipients, OutOutcome{Status: OutDelivered, Code: 250})
	}
	return res
}

// TestOutboundPerDomainConcurrency: at most PerDomain attempts run to
// one domain while another domain's mail goes past them, also when that
// domain's waiting entries would fill every free slot (3 slots, 6
// entries to a domain allowed 2, queued before the other's).
func TestOutboundPerDomainConcurrency(t *testing.T) {
	f := newOutboundFixture(t, OutboundConfig{PerDomain: 2, Concurrency: 3})
	f.stop()
	g := &gatedTransport{running: map[string]int{}, most: map[string]int{}, gate: make(chan struct{}), delivered: make(chan string, 100)}
	f.e.cfg.Outbound.Transport = g
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = f.e.RunOutbound(ctx) }()
	defer func() { cancel(); <-done }()
	for i := range 6 {
		f.submit(t, map[string]RcptParams{fmt.Sprintf("r%d@busy.test", i): {}}, "")
	}
	f.submit(t, map[string]RcptParams{"x@other.test": {}}, "")
	waitFor(t, "two to busy.test and one to other.test running", func() bool {
		g.mu.Lock()
		defer g.mu.Unlock()
		return g.running["busy.test"] == 2 && g.running["other.test"] == 1
	})
	for range 7 {
		g.gate <- struct{}{}
	}
	waitFor(t, "all sent", func() bool { g.mu.Lock(); defer g.mu.Unlock(); return g.sent == 7 })
	if g.most["busy.test"] != 2 {
		t.Fatalf("at most %d attempts ran to one domain, want 2", g.most["busy.test"])
	}
}

// TestOutboundAsksOnlyForWhatTheLetterNeeds: SMTPUTF8 and 8BITMIME asked
// for by the client go on to the next hop only when the letter has
// non-ASCII in its envelope or header (SMTPUTF8) or body (8BITMIME).
func TestOutboundAsksOnlyForWhatTheLetterNeeds(t *testing.T) {
	f := newOutboundFixture(t, OutboundConfig{})
	cases := []struct {
		name, msg      string
		utf8, eightBit bool
	}{
		{"ascii", "Subject: hello\r\n\r\nhello\r\n", false, false},
		{"utf-8 body", "Subject: hello\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nпривет\r\n", false, true},
		{"utf-8 header", "Subject: привет\r\n\r\nhello\r\n", true, true},
	}
	for i, tc := range cases {
		tx := f.e.Begin(Envelope{Submission: true, Hostname: "mx.example.kz", SessionID: "s", Protocol: "UTF8SMTPSA",
			Identity: &Identity{Account: &f.alice}, MailFrom: "alice@example.kz", SMTPUTF8: true, EightBit: true})
		if _, err := tx.AddRecipient(fmt.Sprintf("r%d@far.test", i), RcptParams{}); err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Deliver(context.Background(), []byte("From: alice@example.kz\r\nMessage-ID: <u"+fmt.Sprint(i)+"@example.kz>\r\n"+tc.msg)); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the send", func() bool { return f.tr.count() == i+1 })
		f.tr.mu.Lock()
		m := f.tr.sent[i]
		f.tr.mu.Unlock()
		if m.SMTPUTF8 != tc.utf8 || m.EightBit != tc.eightBit {
			t.Errorf("%s: SMTPUTF8 %v, 8BITMIME %v; want %v, %v", tc.name, m.SMTPUTF8, m.EightBit, tc.utf8, tc.eightBit)
		}
	}
}
