package store

import (
	"bytes"
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

// TestAppendMessagesAllInOneTransaction: consecutive UIDs, shared bodies,
// flags and counters, in one write.
func TestAppendMessagesAllInOneTransaction(t *testing.T) {
	s, _ := openTest(t)
	a := addAccount(t, s, "alice@example.kz")
	big := append(msg(9), bytes.Repeat([]byte("x"), 20<<10)...) // a body in a segment
	msgs := []AppendMessage{{Body: msg(1), Flags: []string{`\Seen`}}, {Body: big}, {Body: msg(1), Flags: []string{"$Label"}}}
	res, err := s.AppendMessages(ctx, a.ID, "Drafts", msgs, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 3 {
		t.Fatalf("%d results", len(res))
	}
	for i, r := range res {
		if r.UID != res[0].UID+uint32(i) || r.UIDValidity != res[0].UIDValidity || r.Mailbox != res[0].Mailbox || r.Account != a.ID {
			t.Fatalf("result %d: %+v (first %+v)", i, r, res[0])
		}
	}
	mb, err := s.MailboxByName(a.ID, "Drafts")
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Messages(a.ID, mb.ID, 0, 10)
	if err != nil || len(got) != 3 {
		t.Fatalf("%d messages, %v", len(got), err)
	}
	if !got[0].Seen() || got[1].Seen() || got[0].Blob != got[2].Blob || got[0].Blob == got[1].Blob {
		t.Fatalf("records: %+v", got)
	}
	body, _, err := s.Body(got[1].Blob)
	if err != nil || !bytes.Equal(body, big) {
		t.Fatalf("body of the second: %d bytes, %v", len(body), err)
	}
	u, _ := s.Usage(a.ID)
	if u.Messages != 3 || u.Bytes != int64(2*len(msg(1))+len(big)) || u.Received != 0 {
		t.Fatalf("usage %+v", u)
	}
	if rep := mustCheck(t, s); rep.Messages != 3 || rep.Bodies != 2 {
		t.Fatalf("check: %+v", rep)
	}
}

// TestAppendMessagesAllOrNothing: a quota passed by the sum, a mailbox
// that is not there, or no message at all stores nothing.
func TestAppendMessagesAllOrNothing(t *testing.T) {
	s, _ := openTest(t)
	a := addAccount(t, s, "alice@example.kz")
	three := []AppendMessage{{Body: msg(1)}, {Body: msg(2)}, {Body: msg(3)}}
	cases := []struct {
		name          string
		mailbox       string
		msgs          []AppendMessage
		bytes, count  int64
		want          error
		wantInMessage string
	}{
		{"bytes passed by the third", "INBOX", three, int64(len(msg(1)) + len(msg(2)) + 1), 0, ErrOverQuota, "message 3 of 3"},
		{"messages passed by the second", "INBOX", three, 0, 1, ErrOverQuota, "message 2 of 3"},
		{"no such mailbox", "Nowhere", three, 0, 0, ErrNoMailbox, "message 1 of 3"},
		{"nothing", "INBOX", nil, 0, 0, ErrNothingToAppend, ""},
	}
	for _, tc := range cases {
		_, err := s.AppendMessages(ctx, a.ID, tc.mailbox, tc.msgs, tc.bytes, tc.count)
		if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.wantInMessage) {
			t.Errorf("%s: %v, want %v (%q)", tc.name, err, tc.want, tc.wantInMessage)
		}
		if rep := mustCheck(t, s); rep.Messages != 0 || rep.Bodies != 0 {
			t.Fatalf("%s: stored part of it: %+v", tc.name, rep)
		}
		if u, _ := s.Usage(a.ID); u.Messages != 0 || u.Bytes != 0 {
			t.Fatalf("%s: usage %+v", tc.name, u)
		}
	}
	// The quota that fits all three takes them.
	if _, err := s.AppendMessages(ctx, a.ID, "INBOX", three, 0, 3); err != nil {
		t.Fatal(err)
	}
}

// TestAppendMessagesThroughTheLog: with the write-ahead log (as the
// server runs), a failed MULTIAPPEND between two good ones leaves no
// trace, and what was acknowledged survives a reopen.
func TestAppendMessagesThroughTheLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	s := openWALTest(t, path)
	a := addAccount(t, s, "alice@example.kz")
	if _, err := s.AppendMessages(ctx, a.ID, "INBOX", []AppendMessage{{Body: msg(1)}, {Body: msg(2)}}, 0, 10); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AppendMessages(ctx, a.ID, "INBOX", []AppendMessage{{Body: msg(3)}, {Body: msg(4)}, {Body: msg(5)}}, 0, 4); !errors.Is(err, ErrOverQuota) {
		t.Fatalf("want over quota, got %v", err)
	}
	res, err := s.AppendMessages(ctx, a.ID, "INBOX", []AppendMessage{{Body: msg(6)}, {Body: msg(7)}}, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	// The failed one took no UIDs: they follow the first call's.
	if res[0].UID != 3 || res[1].UID != 4 {
		t.Fatalf("UIDs %d, %d after a failed MULTIAPPEND, want 3, 4", res[0].UID, res[1].UID)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openWALTest(t, path)
	defer s.Close()
	if rep := mustCheck(t, s); rep.Messages != 4 || rep.Bodies != 4 {
		t.Fatalf("after reopening: %+v", rep)
	}
}
