package policy

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"abox/store"
)

func testEngine(t *testing.T, spam SpamConfig) *Engine {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), store.FileName), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return New(st, Config{Spam: spam})
}

// TestSpamCorpus runs the pipeline over testdata/spam with the verdict
// each message must get.
func TestSpamCorpus(t *testing.T) {
	tests := []struct {
		file     string
		patterns bool
		want     Action
		reason   string // a substring of the reasons
	}{
		{"newsletter.eml", false, Accept, ""},
		{"phishing-display-name.eml", false, Accept, "display name"},
		{"exe-in-zip.eml", false, Reject, "invoice.zip contains invoice.pdf: Windows executable"},
		{"malformed-mime.eml", false, Accept, "multipart without boundary"},
		{"gtube.eml", false, Reject, "GTUBE"},
		{"gtube-yjs.eml", false, Accept, ""},
		{"gtube-yjs.eml", true, Junk, "YJS"},
		{"bare-minimum.eml", false, Junk, "no From"},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			body, err := os.ReadFile(filepath.Join("..", "testdata", "spam", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			e := testEngine(t, SpamConfig{TestPatterns: tc.patterns})
			v := e.Score(context.Background(), &Inspection{Body: body, ClientIP: netip.MustParseAddr("192.0.2.1"), Recipients: 1})
			if v.Action != tc.want || !strings.Contains(v.Reasons(), tc.reason) {
				t.Fatalf("verdict %s score %.1f reasons %q; want %s with %q", v.Action, v.Score, v.Reasons(), tc.want, tc.reason)
			}
		})
	}
}

// TestWellFormedMessageScoresZero: SPEC says a well-formed message with
// no DNS data scores below the junk threshold.
func TestWellFormedMessageScoresZero(t *testing.T) {
	e := testEngine(t, SpamConfig{})
	body := []byte("From: A <a@example.org>\r\nTo: b@example.kz\r\nSubject: hi\r\nDate: Wed, 25 Nov 2026 10:00:00 +0000\r\nMessage-ID: <1@example.org>\r\n\r\nhello\r\n")
	if v := e.Score(context.Background(), &Inspection{Body: body, Recipients: 1}); v.Score != 0 || v.Action != Accept {
		t.Fatalf("%+v", v)
	}
}

func TestForbiddenBySniffing(t *testing.T) {
	tests := []struct {
		name, file string
		data       []byte
		want       bool
	}{
		{"pe renamed to pdf", "report.pdf", []byte("MZ\x90\x00"), true},
		{"elf", "data.bin", []byte("\x7fELF\x02\x01"), true},
		{"shell script", "notes.txt", []byte("#!/bin/sh\nrm -rf /\n"), true},
		{"js by name", "invoice.js", []byte("var a = 1"), true},
		{"docm by name", "form.docm", []byte("PK\x03\x04"), true},
		{"ole with macros", "old.doc", append([]byte{0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1}, []byte("_\x00V\x00B\x00A\x00_\x00P\x00R\x00O\x00J\x00E\x00C\x00T")...), true},
		{"ole without macros", "old.doc", []byte{0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1, 0, 0}, false},
		{"pdf", "bill.pdf", []byte("%PDF-1.7"), false},
		{"plain text", "a.txt", []byte("hello"), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := forbidden(tc.file, tc.data, 0) != ""; got != tc.want {
				t.Fatalf("forbidden = %v, want %v", got, tc.want)
			}
		})
	}
}
