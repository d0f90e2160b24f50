package main

import (
	"bytes"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"abox/store"
)

func readMbox(t *testing.T, in string) []*mboxMessage {
	t.Helper()
	mr, err := newMboxReader(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	var out []*mboxMessage
	for {
		m, err := mr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
}

func TestMboxReaderEdges(t *testing.T) {
	if got := readMbox(t, ""); len(got) != 0 {
		t.Fatalf("empty file gave %d messages", len(got))
	}
	// CRLF file, no blank line at the very end, deeper quoting.
	in := "From a@x Thu Jan  1 00:00:00 2026\r\nSubject: one\r\n\r\n>>From two levels\r\n\r\n" +
		"From b@x Fri Jan  2 00:00:00 2026\r\nSubject: two\r\n\r\nlast line"
	got := readMbox(t, in)
	if len(got) != 2 {
		t.Fatalf("%d messages, want 2", len(got))
	}
	if string(got[0].body) != "Subject: one\r\n\r\n>From two levels\r\n" {
		t.Errorf("first body %q", got[0].body)
	}
	if string(got[1].body) != "Subject: two\r\n\r\nlast line" {
		t.Errorf("second body %q", got[1].body)
	}
	if !got[1].date.Equal(time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("second date %v", got[1].date)
	}
	if _, err := newMboxReader(strings.NewReader("Subject: not an mbox\n")); err == nil {
		t.Error("a file without a From line was taken for an mbox")
	}
}

// TestMboxRoundTrip: what writeMbox writes, the reader reads back
// byte for byte (as CRLF), whatever "From " lines the body holds.
func TestMboxRoundTrip(t *testing.T) {
	bodies := []string{
		"Subject: a\r\n\r\nFrom the start\r\n>From quoted\r\n>>From twice\r\n\r\nFrom after a blank line\r\n",
		"Subject: b\r\n\r\nno final line end",
		"Subject: c\r\n\r\n\r\n\r\n",
	}
	var buf bytes.Buffer
	date := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	for _, b := range bodies {
		if err := writeMbox(&buf, store.Message{InternalDate: date}, []byte(b)); err != nil {
			t.Fatal(err)
		}
	}
	got := readMbox(t, buf.String())
	if len(got) != len(bodies) {
		t.Fatalf("%d messages back, want %d:\n%s", len(got), len(bodies), buf.String())
	}
	for i, m := range got {
		want := bodies[i]
		if !strings.HasSuffix(want, "\r\n") {
			want += "\r\n" // mbox ends every message with a line end
		}
		if string(m.body) != want {
			t.Errorf("message %d: %q, want %q", i, m.body, want)
		}
		if !m.date.Equal(date) {
			t.Errorf("message %d date %v", i, m.date)
		}
	}
}

func TestMaildirFlags(t *testing.T) {
	flags := []string{store.FlagSeen, store.FlagAnswered, "$Forwarded", "$Label1"}
	info := maildirInfo(flags)
	if info != ":2,PRS" {
		t.Fatalf("info %q", info)
	}
	back := flagsFromMaildirName("123.abc" + info)
	slices.Sort(back)
	want := []string{"$Forwarded", store.FlagAnswered, store.FlagSeen}
	slices.Sort(want)
	if !slices.Equal(back, want) {
		t.Fatalf("flags back %v, want %v", back, want)
	}
}
