package main

// Fuzz targets for the mailbox-file readers and writers of mailfmt.go
// (abox import / export): the mboxrd reader on any bytes, the mboxrd
// write-then-read round trip, the Maildir ":2," flag letters and the
// Maildir++ folder names. Seeds: ../../testdata/mail/sample.mbox, the
// messages of ../../testdata/spam/ and the f.Add calls here.

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"abox/store"
)

const repoTestdata = "../../testdata"

// seedMessages returns the real-shaped messages of testdata: each
// message of sample.mbox (as read) and each testdata/spam/*.eml.
func seedMessages(tb testing.TB) [][]byte {
	tb.Helper()
	raw, err := os.ReadFile(filepath.Join(repoTestdata, "mail", "sample.mbox"))
	if err != nil {
		tb.Fatal(err)
	}
	mr, err := newMboxReader(bytes.NewReader(raw))
	if err != nil {
		tb.Fatal(err)
	}
	var out [][]byte
	for {
		m, err := mr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, m.body)
	}
	files, _ := filepath.Glob(filepath.Join(repoTestdata, "spam", "*.eml"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, b)
	}
	if len(out) < 4 {
		tb.Fatalf("only %d seed messages in %s", len(out), repoTestdata)
	}
	return out
}

// readAllMbox reads every message of an mbox file; err is
// newMboxReader's or Next's first error other than io.EOF.
func readAllMbox(data []byte) (msgs []*mboxMessage, read int64, err error) {
	mr, err := newMboxReader(bytes.NewReader(data))
	if err != nil {
		return nil, 0, err
	}
	for {
		m, err := mr.Next()
		if err == io.EOF {
			return msgs, mr.read, nil
		}
		if err != nil {
			return msgs, mr.read, err
		}
		msgs = append(msgs, m)
	}
}

var knownFlags = []string{store.FlagSeen, store.FlagAnswered, store.FlagFlagged, store.FlagDeleted, store.FlagDraft, "$Forwarded"}

func FuzzMboxRead(f *testing.F) {
	raw, err := os.ReadFile(filepath.Join(repoTestdata, "mail", "sample.mbox"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(raw)
	f.Add(bytes.ReplaceAll(raw, []byte("\n"), []byte("\r\n")))
	for _, m := range seedMessages(f) {
		f.Add(append([]byte("From a@b.kz Thu Jan  1 00:00:00 2026\n"), m...))
	}
	f.Add([]byte(""))
	f.Add([]byte("From "))
	f.Add([]byte("From x\n\nFrom y\nFrom z\n\n>From q\n\n\nFrom \r\n"))
	f.Add([]byte("Subject: not an mbox\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		msgs, read, err := readAllMbox(data)
		if err != nil {
			if bytes.HasPrefix(data, []byte("From ")) {
				t.Fatalf("mbox %q: %v", data, err)
			}
			return
		}
		if read != int64(len(data)) {
			t.Fatalf("mbox of %d bytes: reader counted %d", len(data), read)
		}
		if len(data) > 0 && len(msgs) == 0 {
			t.Fatalf("mbox %q: no message", data)
		}
		if n := bytes.Count(data, []byte("From ")); len(msgs) > n {
			t.Fatalf("mbox %q: %d messages from %d From lines", data, len(msgs), n)
		}
		total := 0
		for i, m := range msgs {
			total += len(m.body)
			// The store keeps CRLF: no bare LF comes out.
			if bytes.Contains(bytes.ReplaceAll(m.body, []byte("\r\n"), nil), []byte("\n")) {
				t.Fatalf("mbox %q: message %d has a bare LF: %q", data, i, m.body)
			}
			if !slices.IsSorted(m.flags) {
				t.Fatalf("mbox %q: message %d flags %v not sorted", data, i, m.flags)
			}
			for _, fl := range m.flags {
				if !slices.Contains(knownFlags, fl) {
					t.Fatalf("mbox %q: message %d has flag %q", data, i, fl)
				}
			}
			if !m.date.IsZero() && m.date.Location() != time.UTC {
				t.Fatalf("mbox %q: message %d date %v not UTC", data, i, m.date)
			}
		}
		// At most every LF becomes CRLF.
		if total > 2*len(data) {
			t.Fatalf("mbox of %d bytes gave %d bytes of messages", len(data), total)
		}
		// What it read, written out and read again, is the same
		// (the reader's output is the writer's domain).
		var buf bytes.Buffer
		for _, m := range msgs {
			if err := writeMbox(&buf, store.Message{InternalDate: time.Unix(0, 0)}, m.body); err != nil {
				t.Fatal(err)
			}
		}
		again, _, err := readAllMbox(buf.Bytes())
		if err != nil || len(again) != len(msgs) {
			t.Fatalf("mbox %q: %d messages, rewritten as %q: %d messages (%v)", data, len(msgs), buf.Bytes(), len(again), err)
		}
		for i := range msgs {
			if want := mboxExpected(msgs[i].body); want != nil && !bytes.Equal(again[i].body, want) {
				t.Fatalf("mbox %q: message %d %q, rewritten and read back %q", data, i, msgs[i].body, again[i].body)
			}
		}
	})
}

// mboxExpected is what a message of the store comes back as after
// export and import: CRLF line ends and a final line end. nil where the
// LF file cannot carry it: a CR just before a line end (export writes
// "\r\r\n" as "\r\n", which import reads as a plain line end).
func mboxExpected(body []byte) []byte {
	want := bytes.Clone(body)
	if !bytes.HasSuffix(want, []byte("\n")) {
		want = append(want, '\r', '\n')
	}
	if bytes.Contains(want, []byte("\r\r\n")) {
		return nil
	}
	return want
}

// storeForm turns any bytes into a message as the store keeps it: bare
// LFs become CRLF (as SMTP DATA and IMAP APPEND store them).
func storeForm(b []byte) []byte {
	var out []byte
	for i, c := range b {
		if c == '\n' && (i == 0 || b[i-1] != '\r') {
			out = append(out, '\r')
		}
		out = append(out, c)
	}
	return out
}

// FuzzMboxRoundTrip: messages written with writeMbox are read back as
// the same messages, with the same date, whatever "From " and ">From "
// lines they hold.
func FuzzMboxRoundTrip(f *testing.F) {
	seeds := seedMessages(f)
	for i, m := range seeds {
		f.Add(m, seeds[(i+1)%len(seeds)], int64(1767225600+i*86400))
	}
	f.Add([]byte("From the start\r\n>From quoted\r\n\r\nFrom after a blank\r\n"), []byte(""), int64(0))
	f.Add([]byte("Return-Path: <a b@c>\r\n\r\n"), []byte("no final line end"), int64(-62135596800))
	f.Add([]byte("\r\n\r\n"), []byte(">>From\r\nFrom \r\n"), int64(253402300799))
	f.Fuzz(func(t *testing.T, a, b []byte, unix int64) {
		// ANSIC dates have a four-digit year: 0001 to 9999.
		const first, last = -62135596800, 253402300799
		date := time.Unix(first+(unix%(last-first+1)+(last-first+1))%(last-first+1), 0).UTC()
		bodies := [][]byte{storeForm(a), storeForm(b)}
		var buf bytes.Buffer
		for _, body := range bodies {
			if err := writeMbox(&buf, store.Message{InternalDate: date}, body); err != nil {
				t.Fatal(err)
			}
		}
		msgs, read, err := readAllMbox(buf.Bytes())
		if err != nil || read != int64(buf.Len()) {
			t.Fatalf("mbox %q: %v (read %d of %d)", buf.Bytes(), err, read, buf.Len())
		}
		if len(msgs) != len(bodies) {
			t.Fatalf("wrote %d messages, read %d:\n%q", len(bodies), len(msgs), buf.Bytes())
		}
		for i, m := range msgs {
			if !m.date.Equal(date) {
				t.Errorf("message %d: date %v, wrote %v (From line %q)", i, m.date, date, firstLine(buf.Bytes()))
			}
			if want := mboxExpected(bodies[i]); want != nil && !bytes.Equal(m.body, want) {
				t.Errorf("message %d: wrote %q, read %q\nfile %q", i, bodies[i], m.body, buf.Bytes())
			}
		}
	})
}

func firstLine(b []byte) []byte {
	l, _, _ := bytes.Cut(b, []byte("\n"))
	return l
}

// maildirLetters is the set of known info letters after the last ":2,"
// of name, in ASCII order; "" when there is no ":2,".
func maildirLetters(name string) (string, bool) {
	i := strings.LastIndex(name, ":2,")
	if i < 0 {
		return "", false
	}
	var out []byte
	for _, c := range []byte("DFPRST") {
		if strings.IndexByte(name[i+3:], c) >= 0 {
			out = append(out, c)
		}
	}
	return string(out), true
}

func FuzzMaildirFlags(f *testing.F) {
	f.Add("1767225600.M1P2.host:2,", `\Seen`)
	f.Add("1767225600.M1P2.host:2,FRS", `\seen \ANSWERED $forwarded $Label1`)
	f.Add("1767225600.V1I2.abox,S=10:2,DFPRST", `\Draft \Flagged $Forwarded \Answered \Seen \Deleted`)
	f.Add("a:2,b:2,S", "")
	f.Add("no info", `\Recent`)
	f.Add("x:2,SSaz,", "")
	f.Add("x:1,S", "")
	f.Fuzz(func(t *testing.T, name, flagList string) {
		got := flagsFromMaildirName(name)
		letters, hasInfo := maildirLetters(name)
		if !hasInfo && got != nil {
			t.Fatalf("flagsFromMaildirName(%q) = %v without \":2,\"", name, got)
		}
		for _, fl := range got {
			if !slices.Contains(knownFlags, fl) {
				t.Fatalf("flagsFromMaildirName(%q): unknown flag %q", name, fl)
			}
		}
		// The flags say exactly what the letters say.
		if info := maildirInfo(got); info != ":2,"+letters {
			t.Fatalf("flagsFromMaildirName(%q) = %v, written back as %q; want %q", name, got, info, ":2,"+letters)
		}
		// Flags written as a file name come back: each known flag (any
		// case) once, and no other.
		flags := strings.Fields(flagList)
		info := maildirInfo(flags)
		if !slices.IsSorted([]byte(info[3:])) {
			t.Fatalf("maildirInfo(%q) = %q: letters not in ASCII order", flags, info)
		}
		back := flagsFromMaildirName("1767225600.V1I2.abox,S=10" + info)
		var want []string
		for _, k := range knownFlags {
			if slices.ContainsFunc(flags, func(g string) bool { return strings.EqualFold(g, k) }) {
				want = append(want, k)
			}
		}
		slices.Sort(back)
		slices.Sort(want)
		if !slices.Equal(back, want) {
			t.Fatalf("flags %q written as %q came back as %v, want %v", flags, info, back, want)
		}
	})
}

// FuzzMaildirFolderName: export puts every mailbox in a Maildir++
// folder directly inside the export directory (never the directory
// itself, except INBOX, and never outside it), and import's reading of
// that folder's name gives the mailbox back, dots and empty levels
// turned into "_".
func FuzzMaildirFolderName(f *testing.F) {
	for _, n := range []string{"INBOX", "inbox", "Sent", "Archive/2026", "a.b/c", "", "/", "//", "a//b", "a/", "..", "../x",
		"Входящие/Счета", "a\x00b", ".hidden"} {
		f.Add(n)
	}
	const root = "/export/maildir"
	f.Fuzz(func(t *testing.T, name string) {
		dir := maildirDirFor(root, name)
		if strings.EqualFold(name, "INBOX") {
			if dir != root {
				t.Fatalf("maildirDirFor(%q) = %q, want the root", name, dir)
			}
			return
		}
		if filepath.Dir(dir) != root {
			t.Fatalf("maildirDirFor(%q) = %q: not directly inside %s", name, dir, root)
		}
		base := filepath.Base(dir)
		// maildirFolders lists names like this one.
		if len(base) < 2 || base[0] != '.' || base == ".." {
			t.Fatalf("maildirDirFor(%q) = %q: import would not list it", name, dir)
		}
		parts := strings.Split(name, "/")
		for i, p := range parts {
			if p == "" {
				p = "_"
			}
			parts[i] = strings.ReplaceAll(p, ".", "_")
		}
		if back, want := strings.ReplaceAll(base[1:], ".", "/"), strings.Join(parts, "/"); back != want {
			t.Fatalf("mailbox %q exported as %q imports as %q, want %q", name, dir, back, want)
		}
	})
}

// FuzzLineEnds: what import makes of a Maildir file (toCRLF) has no bare
// LF, changes nothing else, and is stable; export's toLF undoes it.
func FuzzLineEnds(f *testing.F) {
	for _, m := range seedMessages(f) {
		f.Add(m)
		f.Add(toLF(m))
	}
	f.Add([]byte("a\rb\r\r\n\n\r\n\r"))
	f.Fuzz(func(t *testing.T, b []byte) {
		crlf := toCRLF(b)
		if bytes.Contains(bytes.ReplaceAll(crlf, []byte("\r\n"), nil), []byte("\n")) {
			t.Fatalf("toCRLF(%q) = %q: a bare LF", b, crlf)
		}
		if !bytes.Equal(bytes.ReplaceAll(crlf, []byte("\r\n"), []byte("\n")), bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n"))) {
			t.Fatalf("toCRLF(%q) = %q: more than line ends changed", b, crlf)
		}
		if again := toCRLF(crlf); !bytes.Equal(again, crlf) {
			t.Fatalf("toCRLF not stable on %q: %q, then %q", b, crlf, again)
		}
		if !bytes.Equal(toLF(crlf), toLF(b)) {
			t.Fatalf("toLF(toCRLF(%q)) = %q, want %q", b, toLF(crlf), toLF(b))
		}
		if len(crlf) > 2*len(b) {
			t.Fatalf("toCRLF(%q) = %d bytes", b, len(crlf))
		}
	})
}
