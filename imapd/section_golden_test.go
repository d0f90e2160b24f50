package imapd

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"

	"abox/imapd/wire"
	"abox/store/msginfo"
)

var updateGolden = flag.Bool("update", false, "rewrite the golden files of TestFetchGolden")

// TestFetchGolden writes, for every message in testdata/fetch, what
// FETCH answers for ENVELOPE, BODY, BODYSTRUCTURE and the sections of
// every part, and compares it with the message's .golden file (go test
// ./imapd/ -run TestFetchGolden -update rewrites them; read the diff).
// The structure goes through the stored record first, so the golden
// output is what a client gets from a stored message.
func TestFetchGolden(t *testing.T) {
	files, _ := filepath.Glob("../testdata/fetch/*.eml")
	if len(files) == 0 {
		t.Fatal("no corpus in testdata/fetch")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			msg, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			got := fetchGolden(t, msg)
			golden := strings.TrimSuffix(f, ".eml") + ".golden"
			if *updateGolden {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to write it)", err)
			}
			if got != string(want) {
				t.Errorf("FETCH output differs from %s:\n--- got\n%s\n--- want\n%s", golden, got, want)
			}
		})
	}
}

func fetchGolden(t *testing.T, msg []byte) string {
	parsed := msginfo.Parse(msg)
	info, err := msginfo.Decode(msginfo.Encode(parsed))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	line := func(format string, args ...any) { fmt.Fprintf(&out, format+"\n", args...) }
	line("ENVELOPE %s", written(func(r *FetchResponseWriter) { r.writeEnvelope(info) }, false, false))
	line("BODY %s", written(func(r *FetchResponseWriter) { r.writeStructure(info) }, true, false))
	line("BODYSTRUCTURE %s", written(func(r *FetchResponseWriter) { r.writeStructure(info) }, false, true))
	sec := func(spec string, s *imap.FetchItemBodySection) {
		line("BODY[%s] %q", spec, bodySection(msg, info, s))
	}
	sec("HEADER", &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader})
	sec("TEXT", &imap.FetchItemBodySection{Specifier: imap.PartSpecifierText})
	sec("HEADER.FIELDS (SUBJECT from)", &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"SUBJECT", "from"}})
	sec("HEADER.FIELDS.NOT (Subject)", &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, HeaderFieldsNot: []string{"Subject"}})
	line("BODY[]<2.5> %q", bodySection(msg, info, &imap.FetchItemBodySection{Partial: &imap.SectionPartial{Offset: 2, Size: 5}}))
	for _, path := range partPaths(info.Structure, nil) {
		p := pathString(path)
		sec(p, &imap.FetchItemBodySection{Part: path})
		sec(p+".MIME", &imap.FetchItemBodySection{Part: path, Specifier: imap.PartSpecifierMIME})
		sec(p+".HEADER", &imap.FetchItemBodySection{Part: path, Specifier: imap.PartSpecifierHeader})
		sec(p+".TEXT", &imap.FetchItemBodySection{Part: path, Specifier: imap.PartSpecifierText})
		if data, ok := binarySection(msg, info, path); ok {
			line("BINARY[%s] %q", p, data)
		} else {
			line("BINARY[%s] NO [UNKNOWN-CTE]", p)
		}
	}
	sec("99", &imap.FetchItemBodySection{Part: []int{99}})
	return out.String()
}

// written is what fn writes in a FETCH response, without the response's
// own framing.
func written(fn func(r *FetchResponseWriter), body, bodyStr bool) string {
	var buf bytes.Buffer
	bw := bufio.NewWriter(&buf)
	fw := &FetchWriter{w: wire.NewWriter(bw), body: body, bodyStr: bodyStr}
	r := &FetchResponseWriter{f: fw, w: fw.w}
	fn(r)
	bw.Flush()
	s := buf.String()
	_, s, _ = strings.Cut(s, " ") // the item's name
	return s
}

// partPaths lists every part number a client can ask for, depth first.
func partPaths(bs imap.BodyStructure, path []int) [][]int {
	var out [][]int
	switch p := bs.(type) {
	case *imap.BodyStructureMultiPart:
		for i, c := range p.Children {
			child := append(append([]int(nil), path...), i+1)
			out = append(out, child)
			if _, multi := c.(*imap.BodyStructureMultiPart); multi {
				out = append(out, partPaths(c, child)[0:]...)
				continue
			}
			if s, ok := c.(*imap.BodyStructureSinglePart); ok && s.MessageRFC822 != nil {
				out = append(out, messageParts(s.MessageRFC822.BodyStructure, child)...)
			}
		}
	case *imap.BodyStructureSinglePart:
		if len(path) == 0 {
			out = append(out, []int{1})
			if p.MessageRFC822 != nil {
				out = append(out, messageParts(p.MessageRFC822.BodyStructure, []int{1})...)
			}
		}
	}
	return out
}

func messageParts(inner imap.BodyStructure, path []int) [][]int {
	if _, multi := inner.(*imap.BodyStructureMultiPart); multi {
		return partPaths(inner, path)
	}
	return [][]int{append(append([]int(nil), path...), 1)}
}

func pathString(p []int) string {
	s := make([]string, len(p))
	for i, n := range p {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ".")
}

// TestEnvelopeOfOldRecord: a record stored before the header's own
// envelope was kept (msginfo version 2: Own is nil) is served from its
// decoded envelope as before, encoded words made again.
func TestEnvelopeOfOldRecord(t *testing.T) {
	info := msginfo.Parse([]byte("Date: Sat, 01 Feb 2007 01:02:03 +0200\r\nSubject: =?utf-8?q?caf=C3=A9?=\r\n" +
		"From: Real <a@b.example>\r\nTo: team: x@y.example;\r\n\r\nbody\r\n"))
	info.Own, info.Parts = nil, nil
	got := written(func(r *FetchResponseWriter) { r.writeEnvelope(info) }, false, false)
	// The date is formatted again from its parsed time: the weekday the
	// sender got wrong (1 Feb 2007 was a Thursday) is corrected.
	want := `("Thu, 01 Feb 2007 01:02:03 +0200" "=?utf-8?q?caf=C3=A9?=" (("Real" NIL "a" "b.example")) (("Real" NIL "a" "b.example")) (("Real" NIL "a" "b.example")) ((NIL NIL "x" "y.example")) NIL NIL NIL NIL)`
	if got != want {
		t.Fatalf("\n got %s\nwant %s", got, want)
	}
}

// FuzzSections: no message and no part number makes section extraction
// fail, and every answer is a piece of the message's bytes (or, for
// HEADER.FIELDS, of its header plus a line end).
func FuzzSections(f *testing.F) {
	files, _ := filepath.Glob("../testdata/fetch/*.eml")
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, byte(3), byte(1))
	}
	f.Fuzz(func(t *testing.T, msg []byte, p1, p2 byte) {
		info := msginfo.Parse(msg)
		paths := [][]int{nil, {int(p1 % 8)}, {int(p1 % 8), int(p2 % 8)}, {1, 1, 1}}
		specs := []imap.PartSpecifier{imap.PartSpecifierNone, imap.PartSpecifierHeader, imap.PartSpecifierText, imap.PartSpecifierMIME}
		for _, path := range paths {
			for _, sp := range specs {
				data := bodySection(msg, info, &imap.FetchItemBodySection{Part: path, Specifier: sp})
				if len(data) > 0 && !bytes.Contains(msg, data) {
					t.Fatalf("BODY[%v %s] is not the message's bytes: %q", path, sp, data)
				}
			}
			bodySection(msg, info, &imap.FetchItemBodySection{Part: path, Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"subject", "x"}})
			bodySection(msg, info, &imap.FetchItemBodySection{Part: path, Specifier: imap.PartSpecifierHeader, HeaderFieldsNot: []string{"from"}})
			if len(path) > 0 {
				binarySection(msg, info, path)
			}
		}
	})
}
