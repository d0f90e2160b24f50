package imapd_test

import (
	"context"
	"flag"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"abox/accounts"
	"abox/cmd/abox/aboxtest"
	"abox/store"
	"abox/store/msginfo"
	"abox/store/pgstore"
)

// mbsyncMessages is the mailbox TestMbsyncFirstSyncStandardClass syncs.
// The issue asks for 100,000 if the test stays well under a minute. On
// the shared two-core machine, with the server built with the race
// detector as `make test` builds it, filling took 4 s and mbsync's sync
// 10 s per 10,000 messages (one UID FETCH each) on a quiet machine, so
// 100,000 would take over two minutes. 20,000 took 150 s while the rest
// of the suite shared the machine; 10,000 stay near a minute there and
// still need 16 times the 600 commands the old per-session limit
// allowed. Without the race detector 100,000 pass (filled in 16 s,
// synced in 52 s):
//
//	go test -run FirstSync ./imapd/ -args -mbsync-messages=100000
const mbsyncMessages = 10_000

// TestMbsyncFirstSyncStandardClass: mbsync's first sync of a mailbox of
// many messages, on the standard class with its default limits, succeeds
// (issue 13, "Default limits": it failed with NO [LIMIT] Too many
// commands after 600 commands, one UID FETCH per message). The account's
// command budget serves the whole sync: no command is refused.
func TestMbsyncFirstSyncStandardClass(t *testing.T) {
	aboxtest.SkipInCluster(t, "fills 10,000 letters through the store before the sync: minutes on PostgreSQL, past the cluster run's budget (TestCommandBudget* test the budget there)")
	t.Parallel()
	e := newEnv(t)
	alice := e.addUser("alice") // standard class, defaults untouched
	n := *mbsyncMessagesFlag
	start := time.Now()
	fillInbox(t, e, alice, n)
	t.Logf("filled in %v (logged, not asserted)", time.Since(start).Round(time.Second))
	s := e.start()
	local, sync := mbsyncRun(t, e, s, alice)
	start = time.Now()
	sync("first")
	t.Logf("synced in %v (logged, not asserted)", time.Since(start).Round(time.Second))
	if files := maildirFiles(t, filepath.Join(local, "INBOX")); len(files) != n {
		t.Fatalf("local INBOX after the first sync: %d messages, want %d", len(files), n)
	}
	commands := s.metric(t, "abox_imap_commands_total")
	refused := s.metric(t, "abox_imap_rate_limited_total")
	delayed := s.metric(t, "abox_imap_commands_delayed_total")
	t.Logf("mbsync synced %d messages in %.0f commands (%.0f refused, %.0f delayed)", n, commands, refused, delayed)
	if commands <= 600 {
		t.Errorf("the sync took %.0f commands: it no longer needs more than the old 600 a minute, so it tests nothing", commands)
	}
	if refused != 0 {
		t.Errorf("%.0f commands refused during a first sync", refused)
	}
}

// fillInbox delivers n small messages to the account's INBOX through the
// store itself, before the server starts (SMTP would take longer than
// the sync).
func fillInbox(t *testing.T, e *env, addr string, n int) {
	t.Helper()
	var st interface {
		Account(address string) (accounts.Account, error)
		Deliver(ctx context.Context, d *store.Delivery) ([]store.Delivered, error)
	}
	if sh := e.SharedStore(); sh != nil { // the harness's cluster mode
		pg, err := pgstore.Open(context.Background(), pgstore.Options{DSN: sh.DSN, InlineMax: sh.InlineMax, MaxConns: 8,
			Objects: pgstore.ObjectOptions{Endpoint: sh.ObjectEndpoint, Bucket: sh.ObjectBucket, AccessKey: sh.ObjectAccessKey, SecretKey: sh.ObjectSecretKey}})
		if err != nil {
			t.Fatal(err)
		}
		defer pg.Close()
		st = pg
	} else {
		bolt, err := store.Open(filepath.Join(e.Dir, store.FileName), store.Options{LockTimeout: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer bolt.Close()
		st = bolt
	}
	acct, err := st.Account(addr)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 8 {
				body := []byte(crlf(fmt.Sprintf("From: <office@gov.kz>\nTo: <%s>\nSubject: sync %d\nDate: Mon, 05 Jan 2026 09:00:00 +0000\nMessage-ID: <sync-%d@gov.kz>\n\nmessage %d of the first sync\n", addr, i, i, i)))
				d := &store.Delivery{Body: body, Structure: msginfo.Compute(body), InternalDate: time.Now(),
					Recipients: []store.Recipient{{Account: acct.ID}}}
				if _, err := st.Deliver(context.Background(), d); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

var mbsyncMessagesFlag = flag.Int("mbsync-messages", mbsyncMessages, "messages TestMbsyncFirstSyncStandardClass syncs")
