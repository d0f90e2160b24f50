package imapd

import (
	"net"
	"sync"
	"time"
)

// coalescingConn gathers go-imap's writes: go-imap flushes after every
// response line, so a FETCH of 10,000 messages would cost 10,000 write
// system calls (and, over TLS, 10,000 records). Writes collect in a
// buffer that is sent when it fills, before the connection reads (the
// server never waits for the client with unsent bytes), and at the
// latest flushDelay after the first unsent byte (for updates written
// from the IDLE goroutine while the reader waits).
type coalescingConn struct {
	net.Conn
	mu      sync.Mutex
	buf     []byte // guarded by mu
	timer   *time.Timer
	pending bool  // a timed flush is scheduled; guarded by mu
	err     error // a background write's failure; guarded by mu
}

const (
	coalesceLimit = 64 << 10
	flushDelay    = 2 * time.Millisecond
)

// buffers recycles coalescing buffers: a connection holds one only while
// it has unsent bytes, so idle connections cost nothing.
var buffers = sync.Pool{New: func() any { b := make([]byte, 0, coalesceLimit); return &b }}

func newCoalescingConn(c net.Conn) *coalescingConn {
	cc := &coalescingConn{Conn: c}
	return cc
}

func (c *coalescingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return 0, c.err
	}
	if len(c.buf)+len(p) > coalesceLimit {
		if err := c.flushLocked(); err != nil {
			return 0, err
		}
		if len(p) >= coalesceLimit {
			return c.Conn.Write(p)
		}
	}
	if c.buf == nil {
		c.buf = (*buffers.Get().(*[]byte))[:0]
	}
	c.buf = append(c.buf, p...)
	if !c.pending {
		c.pending = true
		if c.timer == nil {
			c.timer = time.AfterFunc(flushDelay, c.timedFlush)
		} else {
			c.timer.Reset(flushDelay)
		}
	}
	return len(p), nil
}

func (c *coalescingConn) timedFlush() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.flushLocked(); err != nil && c.err == nil {
		c.err = err
	}
}

// flushLocked sends the buffer. Caller holds c.mu.
func (c *coalescingConn) flushLocked() error {
	c.pending = false
	if len(c.buf) == 0 {
		return nil
	}
	_, err := c.Conn.Write(c.buf)
	b := c.buf[:0]
	buffers.Put(&b)
	c.buf = nil // an idle connection keeps no buffer
	return err
}

// Flush sends what is buffered.
func (c *coalescingConn) Flush() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return c.err
	}
	return c.flushLocked()
}

// Read sends what is buffered first: a server must not wait for the
// client while holding its answer.
func (c *coalescingConn) Read(p []byte) (int, error) {
	if err := c.Flush(); err != nil {
		return 0, err
	}
	return c.Conn.Read(p)
}

// SetWriteDeadline sends the buffer first when the deadline cuts writes
// off (crypto/tls sets one to "now" after its close_notify alert).
func (c *coalescingConn) SetWriteDeadline(t time.Time) error {
	if !t.IsZero() && !t.After(time.Now()) {
		c.Flush()
	}
	return c.Conn.SetWriteDeadline(t)
}

func (c *coalescingConn) SetDeadline(t time.Time) error {
	if !t.IsZero() && !t.After(time.Now()) {
		c.Flush()
	}
	return c.Conn.SetDeadline(t)
}

func (c *coalescingConn) Close() error {
	c.Conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	c.Flush()
	c.mu.Lock()
	if c.timer != nil {
		c.timer.Stop()
	}
	c.mu.Unlock()
	return c.Conn.Close()
}

// coalescingListener wraps every accepted connection.
type coalescingListener struct{ net.Listener }

func (l coalescingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return newCoalescingConn(c), nil
}
