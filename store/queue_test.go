package store

import (
	"bytes"
	"errors"
	"path/filepath"
	"testing"
	"time"
)

func queued(domain string, rcpts ...string) *QueueEntry {
	e := &QueueEntry{Domain: domain, From: "alice@example.kz"}
	for _, r := range rcpts {
		e.Recipients = append(e.Recipients, QueueRecipient{Address: r})
	}
	return e
}

// TestQueueLifecycle: entries written with a delivery share its body,
// count against the sender's daily limit, are leased when due, retried,
// finished, and their body references released; abox check agrees at
// every step.
func TestQueueLifecycle(t *testing.T) {
	s, clk := openTest(t)
	a := addAccount(t, s, "alice@example.kz")
	b := addAccount(t, s, "bob@example.kz")
	body := msg(1)
	d := &Delivery{Body: body, Recipients: []Recipient{{Account: b.ID}}, AllOrNothing: true,
		Sender: &SenderCount{Account: a.ID, MaxSentPerDay: 10},
		Queue:  []*QueueEntry{queued("one.test", "x@one.test", "y@one.test"), queued("two.test", "z@two.test")}}
	if _, err := s.Deliver(ctx, d); err != nil {
		t.Fatal(err)
	}
	if d.Queue[0].ID == 0 || d.Queue[0].Blob != d.Queue[1].Blob {
		t.Fatalf("entries %+v %+v", d.Queue[0], d.Queue[1])
	}
	if u, _ := s.Usage(a.ID); u.Sent != 4 {
		t.Fatalf("sent counter %d, want 4 (one local copy, three remote recipients)", u.Sent)
	}
	rep := mustCheck(t, s)
	_ = rep
	st, err := s.QueueStats()
	if err != nil || st.Entries != 2 || !st.Oldest.Equal(clk.Now()) {
		t.Fatalf("stats %+v %v", st, err)
	}
	// Over the daily limit: nothing is written, nothing queued.
	over := &Delivery{Body: msg(2), AllOrNothing: true, Sender: &SenderCount{Account: a.ID, MaxSentPerDay: 10},
		Queue: []*QueueEntry{queued("one.test", "1@one.test", "2@one.test", "3@one.test", "4@one.test", "5@one.test", "6@one.test", "7@one.test")}}
	if _, err := s.Deliver(ctx, over); !errors.Is(err, ErrDailyLimit) {
		t.Fatalf("over the sent limit: %v", err)
	}

	got, err := s.QueueLease(ctx, 10, time.Minute, nil)
	if err != nil || len(got) != 2 {
		t.Fatalf("lease: %d entries, %v", len(got), err)
	}
	if again, _ := s.QueueLease(ctx, 10, time.Minute, nil); len(again) != 0 {
		t.Fatalf("leased entries leased again: %d", len(again))
	}
	mustCheck(t, s)
	raw, err := s.QueueBody(&got[0])
	if err != nil || !bytes.Equal(raw, body) {
		t.Fatalf("body %q %v", raw, err)
	}
	// One recipient delivered, one deferred: retried later.
	e := got[0]
	e.Recipients[0].Status = QueueDelivered
	e.Attempts++
	e.NextAttempt = clk.Now().Add(5 * time.Minute)
	if err := s.QueueUpdate(ctx, &e); err != nil {
		t.Fatal(err)
	}
	// The other one finished at its first attempt.
	f := got[1]
	f.Recipients[0].Status = QueueFailed
	if err := s.QueueUpdate(ctx, &f); err != nil {
		t.Fatal(err)
	}
	mustCheck(t, s)
	if st, _ := s.QueueStats(); st.Entries != 1 {
		t.Fatalf("%d entries after one finished", st.Entries)
	}
	clk.Add(4 * time.Minute)
	if due, _ := s.QueueLease(ctx, 10, time.Minute, nil); len(due) != 0 {
		t.Fatalf("an entry due in 5 minutes was leased after 4")
	}
	clk.Add(time.Minute)
	due, _ := s.QueueLease(ctx, 10, time.Minute, nil)
	if len(due) != 1 || due[0].ID != e.ID || due[0].Pending() != 1 || due[0].Attempts != 1 {
		t.Fatalf("due after 5 minutes: %+v", due)
	}
	due[0].Recipients[1].Status = QueueDelivered
	if err := s.QueueUpdate(ctx, &due[0]); err != nil {
		t.Fatal(err)
	}
	if st, _ := s.QueueStats(); st.Entries != 0 || !st.Oldest.IsZero() {
		t.Fatalf("stats of an empty queue %+v", st)
	}
	mustCheck(t, s)
	if n, err := s.QueueReleaseBodies(ctx, 100); n != 2 || err != nil {
		t.Fatalf("released %d, %v", n, err)
	}
	mustCheck(t, s)
}

// TestQueueOperatorActions: hold keeps an entry from being leased,
// release makes it due now, retry makes a deferred entry due now, drop
// removes it; a leased entry dropped meanwhile is not brought back by
// the attempt's update.
func TestQueueOperatorActions(t *testing.T) {
	s, clk := openTest(t)
	a := addAccount(t, s, "alice@example.kz")
	d := &Delivery{Body: msg(1), AllOrNothing: true, Sender: &SenderCount{Account: a.ID},
		Queue: []*QueueEntry{queued("one.test", "x@one.test"), queued("two.test", "y@two.test")}}
	if _, err := s.Deliver(ctx, d); err != nil {
		t.Fatal(err)
	}
	one, two := d.Queue[0].ID, d.Queue[1].ID
	if _, err := s.QueueChange(ctx, one, QueueHold, "looks like a compromised account", op); err != nil {
		t.Fatal(err)
	}
	got, _ := s.QueueLease(ctx, 10, time.Minute, nil)
	if len(got) != 1 || got[0].ID != two {
		t.Fatalf("leased %+v, want only entry %d", got, two)
	}
	if held, _ := s.QueueList(QueueFilter{Held: true}); len(held) != 1 || held[0].HeldReason != "looks like a compromised account" {
		t.Fatalf("held list %+v", held)
	}
	mustCheck(t, s)
	// Dropped while being sent: the attempt's outcome does not revive it.
	if _, err := s.QueueChange(ctx, two, QueueDrop, "", op); err != nil {
		t.Fatal(err)
	}
	got[0].Attempts, got[0].NextAttempt = 1, clk.Now().Add(time.Hour)
	if err := s.QueueUpdate(ctx, &got[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := s.QueueGet(two); !errors.Is(err, ErrNotFound) {
		t.Fatalf("dropped entry: %v", err)
	}
	mustCheck(t, s)
	if _, err := s.QueueChange(ctx, one, QueueRelease, "", op); err != nil {
		t.Fatal(err)
	}
	got, _ = s.QueueLease(ctx, 10, time.Minute, nil)
	if len(got) != 1 || got[0].ID != one {
		t.Fatalf("after release leased %+v", got)
	}
	got[0].Attempts, got[0].NextAttempt = 1, clk.Now().Add(time.Hour)
	if err := s.QueueUpdate(ctx, &got[0]); err != nil {
		t.Fatal(err)
	}
	if due, _ := s.QueueLease(ctx, 10, time.Minute, nil); len(due) != 0 {
		t.Fatal("a deferred entry was due at once")
	}
	if _, err := s.QueueChange(ctx, one, QueueRetry, "", op); err != nil {
		t.Fatal(err)
	}
	if due, _ := s.QueueLease(ctx, 10, time.Minute, nil); len(due) != 1 {
		t.Fatal("retry did not make the entry due")
	}
	mustCheck(t, s)
	entries, err := s.ListAudit(AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, e := range entries {
		if len(e.Action) > 6 && e.Action[:6] == "queue." {
			actions = append(actions, e.Action)
		}
	}
	if want := []string{"queue.hold", "queue.drop", "queue.release", "queue.retry"}; !equalStrings(actions, want) {
		t.Fatalf("audited %q, want %q", actions, want)
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestQueueSurvivesCrash: entries written with an acknowledged delivery
// and leases taken since are in the log; after a crash the entries are
// there, a lease is released at start, and check agrees.
func TestQueueSurvivesCrash(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	s := openWALTest(t, path)
	a := addAccount(t, s, "alice@example.kz")
	s.Close()
	s = openWALTest(t, path)
	for i := range 20 {
		d := &Delivery{Body: msg(i), AllOrNothing: true, Sender: &SenderCount{Account: a.ID},
			Queue: []*QueueEntry{queued("one.test", "x@one.test")}}
		if _, err := s.Deliver(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	before := s.WriterStats()
	got, err := s.QueueLease(ctx, 5, time.Hour, nil)
	if err != nil || len(got) != 5 {
		t.Fatalf("lease %d %v", len(got), err)
	}
	for i := range 3 {
		got[i].Recipients[0].Status = QueueDelivered
		if err := s.QueueUpdate(ctx, &got[i]); err != nil {
			t.Fatal(err)
		}
	}
	if after := s.WriterStats(); after.Commits != before.Commits {
		t.Fatalf("leases and updates committed %d checkpoints; they belong in the log", after.Commits-before.Commits)
	}
	s2 := crashAndReopen(t, s, path)
	defer s2.Close()
	mustCheck(t, s2)
	if st, _ := s2.QueueStats(); st.Entries != 17 {
		t.Fatalf("%d entries after the crash, want 17", st.Entries)
	}
	n, err := s2.QueueReleaseLeases(ctx)
	if err != nil || n != 2 {
		t.Fatalf("released %d leases, %v (want 2)", n, err)
	}
	due, _ := s2.QueueLease(ctx, 100, time.Minute, nil)
	if len(due) != 17 {
		t.Fatalf("%d due after the restart, want 17", len(due))
	}
	mustCheck(t, s2)
}
