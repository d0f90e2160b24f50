package smtpd

// Fuzz targets for the parsers smtpd owns: MAIL/RCPT paths, BDAT
// arguments and the dot-stuffed DATA reader. Their seeds (run by a plain
// `go test`) come from ../testdata/smtp/ and from the f.Add calls here;
// `go test -fuzz=FuzzReadData ./smtpd/` explores further.

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

const seedDir = "../testdata/smtp"

// seedLines returns the non-comment lines of a seed file.
func seedLines(tb testing.TB, name string) []string {
	tb.Helper()
	raw, err := os.ReadFile(filepath.Join(seedDir, name))
	if err != nil {
		tb.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(raw), "\n") {
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		out = append(out, l)
	}
	return out
}

// seedStreams returns the raw DATA streams of testdata/smtp/data.
func seedStreams(tb testing.TB) map[string][]byte {
	tb.Helper()
	files, err := filepath.Glob(filepath.Join(seedDir, "data", "*.txt"))
	if err != nil || len(files) == 0 {
		tb.Fatalf("no DATA seeds in %s/data (%v)", seedDir, err)
	}
	out := map[string][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		out[filepath.Base(f)] = b
	}
	return out
}

func FuzzParsePath(f *testing.F) {
	for _, l := range seedLines(f, "paths.txt") {
		f.Add(l)
	}
	f.Fuzz(func(t *testing.T, line string) {
		keyword := "FROM:"
		if len(line) >= 3 && strings.EqualFold(line[:3], "TO:") {
			keyword = "TO:"
		}
		p, err := parsePath(line, keyword)
		if err != nil {
			return
		}
		if len(p.addr) > 256 {
			t.Errorf("parsePath(%q) accepted a %d-byte address", line, len(p.addr))
		}
		for k := range p.params {
			if k == "" || k != strings.ToUpper(k) || strings.ContainsAny(k, " =") {
				t.Errorf("parsePath(%q): bad parameter key %q", line, k)
			}
		}
		// A valid mailbox survives being written back in canonical form.
		if p.addr != "" && validMailbox(p.addr, true) {
			canon := keyword + "<" + p.addr + ">"
			for k, v := range p.params {
				canon += " " + k
				if v != "" {
					canon += "=" + v
				}
			}
			q, err := parsePath(canon, keyword)
			if err != nil || q.addr != p.addr || len(q.params) != len(p.params) {
				t.Errorf("parsePath(%q) = %q %v, but its canonical form %q parses as %q %v (%v)", line, p.addr, p.params, canon, q.addr, q.params, err)
			}
		}
	})
}

func FuzzParseBDAT(f *testing.F) {
	for _, l := range seedLines(f, "bdat.txt") {
		f.Add(l)
	}
	f.Fuzz(func(t *testing.T, arg string) {
		size, last, err := parseBDAT(arg)
		if err != nil {
			return
		}
		if size < 0 {
			t.Errorf("parseBDAT(%q) = %d", arg, size)
		}
		canon := strconv.FormatInt(size, 10)
		if last {
			canon += " LAST"
		}
		if s2, l2, err := parseBDAT(canon); err != nil || s2 != size || l2 != last {
			t.Errorf("parseBDAT(%q) = %d %v, but %q gives %d %v %v", arg, size, last, canon, s2, l2, err)
		}
	})
}

// streamConn is the part of a net.Conn that readData uses, reading from
// a byte slice.
type streamConn struct {
	net.Conn // nil: any other method panics
	r        *bytes.Reader
}

func (s *streamConn) Read(p []byte) (int, error)      { return s.r.Read(p) }
func (s *streamConn) SetReadDeadline(time.Time) error { return nil }

// dataConn is a session whose next bytes are stream, built like the
// server builds one (same buffer sizes).
func dataConn(stream []byte) (*conn, *streamConn) {
	s := New(Config{Log: slog.New(slog.DiscardHandler)})
	nc := &streamConn{r: bytes.NewReader(stream)}
	return newConn(s, nc, netip.MustParseAddr("127.0.0.1")), nc
}

// readDataResult runs readData over stream and reports what it left
// unread.
func readDataResult(stream []byte, limit int64) (body []byte, tooBig bool, rest []byte, err error) {
	c, nc := dataConn(stream)
	body, tooBig, err = c.readData(limit, 0)
	buffered, _ := c.br.Peek(c.br.Buffered())
	tail, _ := io.ReadAll(nc.r)
	return body, tooBig, append(append([]byte{}, buffered...), tail...), err
}

// readDataModel is readData's documented behaviour written line by line
// over the whole input (no buffer): lines end at LF; a line starts after
// CRLF only; ".\r\n" there ends the data; a leading dot there is removed;
// a bare LF is stored as CRLF; past limit the body is dropped.
func readDataModel(stream []byte, limit int64) (body []byte, tooBig bool, consumed int, ok bool) {
	atLineStart := true
	out := []byte{}
	pos := 0
	for {
		i := bytes.IndexByte(stream[pos:], '\n')
		if i < 0 {
			return nil, false, 0, false
		}
		line := stream[pos : pos+i+1]
		pos += i + 1
		crlf := bytes.HasSuffix(line, []byte("\r\n"))
		if atLineStart && string(line) == ".\r\n" {
			return out, tooBig, pos, true
		}
		if atLineStart && line[0] == '.' {
			line = line[1:]
		}
		l := append([]byte{}, line...)
		if !crlf {
			l = append(l[:len(l)-1], '\r', '\n')
		}
		atLineStart = crlf
		if !tooBig {
			if limit > 0 && int64(len(out)+len(l)) > limit {
				tooBig, out = true, nil
			} else {
				out = append(out, l...)
			}
		}
	}
}

func FuzzReadData(f *testing.F) {
	for _, b := range seedStreams(f) {
		f.Add(b, uint16(0))
		if len(b) < 4096 {
			// Longer seeds with a limit would hit the bug that
			// TestReadDataOversizedLongLines shows.
			f.Add(b, uint16(16))
		}
	}
	f.Fuzz(func(t *testing.T, stream []byte, limit uint16) {
		body, tooBig, rest, err := readDataResult(stream, int64(limit))
		wantBody, wantTooBig, consumed, ok := readDataModel(stream, int64(limit))
		if !ok {
			if err == nil {
				t.Fatalf("readData(%s) = %s with no terminating line", q(stream), q(body))
			}
			return
		}
		if err != nil {
			t.Fatalf("readData(%s, limit %d): %v; want the data up to byte %d", q(stream), limit, err, consumed)
		}
		if tooBig != wantTooBig || !tooBig && !bytes.Equal(body, wantBody) {
			t.Fatalf("readData(%s, limit %d) = %s, tooBig %v; want %s, %v", q(stream), limit, q(body), tooBig, q(wantBody), wantTooBig)
		}
		if !bytes.Equal(rest, stream[consumed:]) {
			t.Fatalf("readData(%s) left %s unread, want %s", q(stream), q(rest), q(stream[consumed:]))
		}
		if !tooBig && bytes.Contains(bytes.ReplaceAll(body, []byte("\r\n"), nil), []byte("\n")) {
			t.Fatalf("readData(%s) stored a bare LF: %s", q(stream), q(body))
		}
	})
}

// normalizeContent is what the server stores for content: bare LFs become
// CRLF and the last line is ended.
func normalizeContent(content []byte) []byte {
	var out []byte
	for i, ch := range content {
		if ch == '\n' && (i == 0 || content[i-1] != '\r') {
			out = append(out, '\r')
		}
		out = append(out, ch)
	}
	if !bytes.HasSuffix(out, []byte("\r\n")) {
		out = append(out, '\r', '\n')
	}
	return out
}

// dotStuff is what a client sends for CRLF content (RFC 5321 §4.5.2).
func dotStuff(content []byte) []byte {
	var out []byte
	for _, l := range bytes.SplitAfter(content, []byte("\r\n")) {
		if len(l) > 0 && l[0] == '.' {
			out = append(out, '.')
		}
		out = append(out, l...)
	}
	return append(out, ".\r\n"...)
}

// FuzzDataRoundTrip: whatever a client dot-stuffs, readData gives back,
// and it stops exactly after the terminating line.
func FuzzDataRoundTrip(f *testing.F) {
	f.Add([]byte("Subject: x\r\n\r\nhello\r\n"), uint16(0))
	f.Add([]byte(".\r\n..\r\n.x\r\n"), uint16(0))
	f.Add([]byte("a\nb\n.\n"), uint16(4))
	f.Add([]byte("no final newline"), uint16(0))
	f.Add(bytes.Repeat([]byte("x"), 9000), uint16(0))
	f.Add(append(bytes.Repeat([]byte("y"), 4094), "\r\n.dot\r\n"...), uint16(100))
	f.Add([]byte(""), uint16(1))
	f.Fuzz(func(t *testing.T, content []byte, limit uint16) {
		want := normalizeContent(content)
		stream := append(dotStuff(want), "NOOP\r\n"...)
		body, tooBig, rest, err := readDataResult(stream, int64(limit))
		if err != nil {
			t.Fatalf("readData of dot-stuffed %s (limit %d): %v", q(want), limit, err)
		}
		if string(rest) != "NOOP\r\n" {
			t.Fatalf("readData of dot-stuffed %s left %s unread, want the next command", q(want), q(rest))
		}
		over := limit > 0 && len(want) > int(limit)
		if tooBig != over || !over && !bytes.Equal(body, want) {
			t.Fatalf("readData of dot-stuffed %s (limit %d) = %s, tooBig %v", q(want), limit, q(body), tooBig)
		}
	})
}

// q quotes b for a message, shortened.
func q(b []byte) string {
	if len(b) > 120 {
		return strconv.Quote(string(b[:60])) + "..." + strconv.Quote(string(b[len(b)-40:])) + " (" + strconv.Itoa(len(b)) + " bytes)"
	}
	return strconv.Quote(string(b))
}

// TestReadDataSeeds names what each DATA seed must give.
func TestReadDataSeeds(t *testing.T) {
	streams := seedStreams(t)
	tests := []struct {
		file string
		body string // "" with err for no terminator
		rest string
		err  error
	}{
		{"simple.txt", "Subject: hi\r\n\r\nhello\r\n", "", nil},
		{"dots.txt", ".leading dot\r\n..two dots\r\n space\r\n", "", nil},
		{"bare-lf.txt", "a\r\nb\r\n.\r\nc\r\n", "", nil},
		{"lf-dot-smuggle.txt", "x\r\n.\r\nMAIL FROM:<smuggled@example.kz>\r\n", "", nil},
		{"trailing-commands.txt", "body\r\n", "QUIT\r\n", nil},
		{"empty.txt", "", "", nil},
		{"no-terminator.txt", "", "", io.EOF},
		{"bare-cr.txt", "a\rb\r\r\n\r.\r\n", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			stream, ok := streams[tt.file]
			if !ok {
				t.Fatalf("no seed %s", tt.file)
			}
			body, tooBig, rest, err := readDataResult(stream, 0)
			if !errors.Is(err, tt.err) {
				t.Fatalf("err %v, want %v", err, tt.err)
			}
			if err == nil && (string(body) != tt.body || tooBig || string(rest) != tt.rest) {
				t.Errorf("body %q tooBig %v rest %q; want %q false %q", body, tooBig, rest, tt.body, tt.rest)
			}
		})
	}
}

// TestReadDataOversizedLongLines: once a message is over the limit, a
// later line longer than the read buffer must not hide the terminator.
// (Integration twin: TestOversizedLongLines.)
func TestReadDataOversizedLongLines(t *testing.T) {
	stream := []byte("Subject: long lines\r\n\r\n" + strings.Repeat("a", 5000) + "\r\n.\r\nQUIT\r\n")
	_, tooBig, rest, err := readDataResult(stream, 16)
	if err != nil {
		t.Fatalf("PRODUCT BUG: readData past the limit, then a line longer than the 4 KiB read buffer: %v (only the line's first fragment is kept, so its CRLF is not seen and the terminating line is taken for content)", err)
	}
	if !tooBig || string(rest) != "QUIT\r\n" {
		t.Errorf("tooBig %v, rest %q; want true and the next command", tooBig, rest)
	}
}

// TestDataConnBufferSize notes when the session's read buffer no longer
// matches the size the *-buffer-edge seeds were made for.
func TestDataConnBufferSize(t *testing.T) {
	c, _ := dataConn(nil)
	if c.br.Size() != 4096 {
		t.Logf("session read buffer is %d bytes; the *-buffer-edge seeds were made for 4096", c.br.Size())
	}
}

// TestReadDataDeadline drives readData over a pipe with real deadlines:
// a client that trickles lines keeps the data going until the DATA
// deadline, then the read fails with a timeout.
func TestReadDataDeadline(t *testing.T) {
	for _, tc := range []struct {
		name     string
		lines    int
		wantBody bool
	}{
		{"finishes in time", 5, true},
		{"trickles past the deadline", 1000, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, cli := net.Pipe()
			defer cli.Close()
			s := New(Config{Log: slog.New(slog.DiscardHandler), DataTimeout: 600 * time.Millisecond})
			c := newConn(s, srv, netip.MustParseAddr("127.0.0.1"))
			go func() {
				for range tc.lines {
					if _, err := cli.Write([]byte("a line\r\n")); err != nil {
						return
					}
					time.Sleep(20 * time.Millisecond)
				}
				cli.Write([]byte(".\r\n"))
			}()
			body, _, err := c.readData(0, 0)
			if tc.wantBody {
				if err != nil || len(body) != tc.lines*len("a line\r\n") {
					t.Fatalf("body %q, err %v", body, err)
				}
				return
			}
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("err %v, want the DATA deadline", err)
			}
		})
	}
}
