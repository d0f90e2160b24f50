package policy

import (
	"bytes"
	"context"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// testEngine is an engine whose DNS checks ask a test server holding
// the corpus's records.
func testEngine(t *testing.T, spam SpamConfig) *Engine {
	t.Helper()
	e, _ := dnsEngine(t, corpusZone(), Config{Spam: spam})
	return e
}

// corpusZone is the DNS data of the corpus (testdata/spam/README.md):
// the DKIM key and DMARC policy of sender.test.
func corpusZone() zone {
	return zone{txt: map[string][]string{
		"sel._domainkey.sender.test": {dkimRecord()},
		"_dmarc.sender.test":         {"v=DMARC1; p=reject"},
	}}
}

var update = flag.Bool("update", false, "rewrite the generated testdata (the DKIM-signed corpus messages)")

// TestDKIMCorpusFiles writes dkim-valid.eml and dkim-broken.eml with
// -update: a bill signed by sender.test with testKey, and the same bill
// with its amount changed after signing.
func TestDKIMCorpusFiles(t *testing.T) {
	if !*update {
		t.Skip("run with -update to regenerate testdata/spam/dkim-*.eml")
	}
	bill := []byte("From: Utility Billing <billing@sender.test>\r\nTo: alice@example.kz\r\n" +
		"Subject: Your bill for November\r\nDate: Wed, 25 Nov 2026 10:00:00 +0600\r\n" +
		"Message-ID: <bill-2026-11-0042@sender.test>\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n\r\n" +
		"Dear subscriber,\r\n\r\nYour bill for November is 4 520 KZT, due on 10 December.\r\n" +
		"Account 0042-7781.\r\n")
	valid := sign(t, bill, "sender.test")
	broken := bytes.Replace(valid, []byte("4 520 KZT"), []byte("9 520 KZT"), 1)
	for name, b := range map[string][]byte{"dkim-valid.eml": valid, "dkim-broken.eml": broken} {
		if err := os.WriteFile(filepath.Join("..", "testdata", "spam", name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
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
		{"dkim-valid.eml", false, Accept, ""},
		{"dkim-broken.eml", false, Junk, "DKIM signature fails (sender.test: body hash did not verify); DMARC fail for sender.test (p=reject)"},
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

// nestedMessage is a well-formed message whose attachment sits inside
// levels nested multiparts.
func nestedMessage(levels int, attachment string) []byte {
	var b strings.Builder
	b.WriteString("From: A <a@example.org>\r\nTo: b@example.kz\r\nSubject: nested\r\nDate: Wed, 25 Nov 2026 10:00:00 +0000\r\nMessage-ID: <n@example.org>\r\nMIME-Version: 1.0\r\n")
	for i := range levels {
		b.WriteString("Content-Type: multipart/mixed; boundary=\"l" + strings.Repeat("x", i%3) + string(rune('a'+i%26)) + strings.Repeat("0", i) + "\"\r\n\r\n")
		b.WriteString("--l" + strings.Repeat("x", i%3) + string(rune('a'+i%26)) + strings.Repeat("0", i) + "\r\n")
	}
	b.WriteString("Content-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"" + attachment + "\"\r\nContent-Transfer-Encoding: base64\r\n\r\nTVqQAAMAAAAEAAAA//8AALgAAAAAAAAAQAAAAAAAAAA=\r\n")
	for i := levels - 1; i >= 0; i-- {
		b.WriteString("--l" + strings.Repeat("x", i%3) + string(rune('a'+i%26)) + strings.Repeat("0", i) + "--\r\n")
	}
	return []byte(b.String())
}

// TestDeepNestingRefused: the content checks look into MIME parts down
// to msginfo.MaxNesting levels; a message nested deeper cannot be
// checked and is refused (it could hide a program where nothing looks).
func TestDeepNestingRefused(t *testing.T) {
	e := testEngine(t, SpamConfig{})
	for _, tc := range []struct {
		name   string
		body   []byte
		want   Action
		reason string
	}{
		{"program 10 levels down", nestedMessage(10, "invoice.pdf"), Reject, "Windows executable"},
		{"a program named .txt 10 levels down", nestedMessage(10, "notes.txt"), Reject, "Windows executable"},
		{"40 levels", nestedMessage(40, "notes.txt"), Reject, "nested deeper than 32"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := e.Score(context.Background(), &Inspection{Body: tc.body, Recipients: 1})
			if v.Action != tc.want || !strings.Contains(v.Reasons(), tc.reason) {
				t.Fatalf("verdict %s reasons %q; want %s with %q", v.Action, v.Reasons(), tc.want, tc.reason)
			}
		})
	}
}
