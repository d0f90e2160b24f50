package imapd

import (
	"bufio"
	"strings"
	"sync"
	"time"
)

// An idle connection (IDLE, or a client that keeps its connection open
// between commands) holds as little as it can: no output buffer (conn.go
// lends it while writing), no read buffer, and a goroutine with a small
// stack. A goroutine's stack only grows while it runs commands (a FETCH,
// a login's password check) and shrinks at collections by half at most,
// and only when three quarters are unused; so the goroutine that ran the
// commands does not wait: loop hands the connection to a new one
// (resume), whose stack is what one read of the connection needs, and
// returns. Measured in docs/BENCHMARKS.md ("IDLE memory").

// readers are the connections' read buffers, lent while a connection
// reads: an idle connection holds none.
var readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4<<10) }}

// connSource is what a connection's read buffer reads from: the bytes
// read while it had none, then the connection (c.nc as it is now, so
// STARTTLS needs no new source).
type connSource struct{ c *conn }

func (s connSource) Read(p []byte) (int, error) {
	c := s.c
	if c.ipre < c.npre {
		n := copy(p, c.pre[c.ipre:c.npre])
		c.ipre += uint8(n)
		return n, nil
	}
	if err := c.preErr; err != nil {
		c.preErr = nil
		return 0, err
	}
	return c.nc.Read(p)
}

// lendReader gives the read buffer back when nothing waits in it, and
// says whether it did. A compressed connection keeps its buffers: the
// inflater reads from the raw one (compress.go).
func (c *conn) lendReader() bool {
	if c.z != nil || c.br == nil || c.br.Buffered() > 0 || c.ipre < c.npre || c.preErr != nil {
		return false
	}
	c.br.Reset(nil)
	readers.Put(c.br)
	c.br = nil
	c.rd.Reset(nil)
	return true
}

// resume waits for the client's next bytes on a fresh goroutine, takes a
// read buffer again and goes on serving (loop). A read error is kept for
// the buffer's first read, so the loop answers it as before.
func (c *conn) resume() {
	n, err := c.nc.Read(c.pre[:])
	c.npre, c.ipre = uint8(n), 0
	if n == 0 {
		c.preErr = err
	}
	c.br = readers.Get().(*bufio.Reader)
	c.br.Reset(connSource{c})
	c.rd.Reset(c.br)
	c.loop()
}

// end closes the connection; it runs on its last goroutine.
func (c *conn) end() {
	c.sess.Close()
	c.nc.Close()
	if c.br != nil && c.z == nil {
		c.br.Reset(nil)
		readers.Put(c.br)
		c.br = nil
	}
	c.srv.conns.Done()
}

// finishIdle reads the DONE that ends IDLE (RFC 2177) and answers the
// IDLE command. The pusher is stopped (waiting for one that is
// writing) before the writer is taken, so nothing follows the tagged OK.
func (c *conn) finishIdle() {
	s := c.sess
	tag := c.idleTag
	c.idleTag = ""
	line, err := readLine(c, 64)
	s.stopPush()
	c.nc.SetReadDeadline(time.Time{})
	st := okWith("", "IDLE terminated")
	switch {
	case err != nil:
		c.closing.Store(true)
		st = status{"BAD", "", "IDLE ended without DONE"}
	case !strings.EqualFold(line, "DONE"):
		st = status{"BAD", "", "Expected DONE"}
	}
	if st.typ == "BAD" {
		c.bad++
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.hold()
	c.inRun.Store(true)
	s.idling.Lock()
	if st.typ == "OK" {
		// What arrived after the last push goes before the answer, as
		// after any command.
		if err := s.flush(&UpdateWriter{w: c.w}, true); err == nil {
			s.notifyFlush(&UpdateWriter{w: c.w})
		}
	}
	s.idling.Unlock()
	c.writeStatus(tag, st)
	c.inRun.Store(false)
	if err := c.release(); err != nil {
		c.closing.Store(true)
	}
}
