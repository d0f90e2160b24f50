package imapd_test

import (
	"bufio"
	"compress/flate"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
)

// countingConn counts the bytes read from the socket under TLS: what
// the wire carried.
type countingConn struct {
	net.Conn
	in atomic.Int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.in.Add(int64(n))
	return n, err
}

// deflateConn is the client side of COMPRESS=DEFLATE over a real
// socket: compress/flate both ways, a sync flush after each command.
type deflateConn struct {
	zw *flate.Writer
	nc net.Conn
	r  *bufio.Reader
}

func (d *deflateConn) Read(p []byte) (int, error)  { return d.r.Read(p) }
func (d *deflateConn) Write(p []byte) (int, error) { return d.nc.Write(p) }

type flushingWriter struct{ d *deflateConn }

func (f flushingWriter) Write(p []byte) (int, error) {
	n, err := f.d.zw.Write(p)
	if err == nil {
		err = f.d.zw.Flush()
	}
	return n, err
}

// compressed turns COMPRESS DEFLATE on for c and returns it reading
// and writing through deflate.
func compressed(t *testing.T, c *imapConn) {
	t.Helper()
	c.ok("COMPRESS DEFLATE")
	zw, _ := flate.NewWriter(c.nc, flate.DefaultCompression)
	d := &deflateConn{zw: zw, nc: c.nc}
	c.r = bufio.NewReader(flate.NewReader(struct{ io.Reader }{c.r}))
	c.nc = &writeThrough{Conn: c.nc, w: flushingWriter{d}}
}

// writeThrough sends writes through w (the compressor) and keeps the
// connection's deadlines.
type writeThrough struct {
	net.Conn
	w io.Writer
}

func (w *writeThrough) Write(p []byte) (int, error) { return w.w.Write(p) }

// TestCompressDeflate: after COMPRESS DEFLATE the session goes on
// compressed both ways (commands with literals, IDLE with an update
// pushed by an SMTP delivery), a second COMPRESS is refused with
// COMPRESSIONACTIVE, and fetching the headers of a mailbox moves far
// fewer bytes than without compression.
func TestCompressDeflate(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.addUser("alice")
	n := 60
	if v, err := strconv.Atoi(os.Getenv("ABOX_COMPRESS_MESSAGES")); err == nil && v > 0 {
		n = v // docs/BENCHMARKS.md's figure: 10,000
		e.OK("class", "set", "standard", "--received-per-day", "0")
	}
	s := e.start()
	for i := 0; i < n; i++ {
		s.mustDeliver(alice, simpleMessage(alice, fmt.Sprintf("Invoice %d for March", i), "Please pay.\r\n"))
	}
	fetch := "UID FETCH 1:* (UID FLAGS RFC822.SIZE BODY.PEEK[HEADER])"

	plainBytes := headerBytes(t, s, alice, fetch, false)
	zBytes := headerBytes(t, s, alice, fetch, true)
	t.Logf("FETCH headers of %d messages: %d bytes on the wire plain, %d compressed", n, plainBytes, zBytes)
	if zBytes*2 > plainBytes {
		t.Errorf("compressed FETCH took %d bytes, plain %d: not even halved", zBytes, plainBytes)
	}

	c := dialIMAPS(t, s.imaps, "alice")
	c.login(alice)
	if !c.caps()["COMPRESS=DEFLATE"] {
		t.Fatal("COMPRESS=DEFLATE not advertised after login")
	}
	compressed(t, c)
	c.no("COMPRESSIONACTIVE", "COMPRESS DEFLATE")
	c.selectBox("SELECT", "INBOX")
	c.ok("APPEND INBOX %s", literal(simpleMessage(alice, "appended", "body\r\n")))
	if r := c.ok("UID SEARCH SUBJECT appended"); !r.has("SEARCH ") || strings.TrimSpace(strings.TrimPrefix(r.find("SEARCH")[0], "* SEARCH")) == "" {
		t.Fatalf("appended message not found over the compressed session:\n%s", r)
	}
	tag := c.idle()
	s.mustDeliver(alice, simpleMessage(alice, "while idle", "hello\r\n"))
	c.waitFor(existsRE)
	c.done(tag)
	c.ok("LOGOUT")
}

// headerBytes fetches with or without compression on a fresh session
// and returns the bytes the FETCH's answer took on the wire (TLS
// records included).
func headerBytes(t *testing.T, s *server, user, fetch string, z bool) int64 {
	t.Helper()
	c := dialIMAPS(t, s.imaps, "measure")
	cc := &countingConn{Conn: c.nc}
	c.nc = cc
	c.r = bufio.NewReader(cc)
	c.login(user)
	if z {
		compressed(t, c)
	}
	c.selectBox("EXAMINE", "INBOX")
	before := cc.in.Load()
	c.ok("%s", fetch)
	return cc.in.Load() - before
}
