package imapd

import (
	"crypto/tls"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// coalescingConn gathers go-imap's writes: go-imap flushes after every
// response line, so a FETCH of 10,000 messages would cost 10,000 write
// system calls (and, over TLS, 10,000 records). Writes collect in a
// buffer that is sent when it fills, before the connection reads (the
// server never waits for the client with unsent bytes), and at the
// latest flushDelay after the first unsent byte (for updates written
// from the IDLE goroutine while the reader waits).
//
// A full buffer is handed to a sender goroutine, so that encrypting and
// writing one buffer overlaps with the session filling the next (a large
// FETCH spends half its time in TLS and write). At most maxQueued
// buffers wait. The sender lives until the next flush (the session
// reading its next command, or the timed flush once the sender has
// nothing left), so one command's response has one sender, and an idle
// connection holds neither a buffer nor a goroutine.
type coalescingConn struct {
	net.Conn
	mu      sync.Mutex
	cond    sync.Cond // signalled when the queue shrinks or the sender stops
	buf     []byte    // guarded by mu
	queue   [][]byte  // full buffers for the sender, in order; guarded by mu
	sending bool      // the sender goroutine runs; guarded by mu
	stop    bool      // the sender is to end once the queue is empty; guarded by mu
	waiting bool      // the sender waits for work; guarded by mu
	timer   *time.Timer
	pending bool        // a timed flush is scheduled; guarded by mu
	err     error       // a background write's failure; guarded by mu
	raw     *batchConn  // under the TLS of an implicit-TLS connection, or nil
	shook   atomic.Bool // raw's TLS handshake is done

	// The write deadline go-imap asks for (Unix nanoseconds, 0 for
	// none) is applied by the writer to its own writes, not at once:
	// go-imap sets one at every response's start, literal and end, and
	// each would cost a timer update, three per message of a FETCH.
	wantBy    atomic.Int64
	appliedBy int64 // the deadline set on Conn; only the writer uses it

	reading  bool          // a Read waits for the client; guarded by mu
	readHook func()        // runs when that Read returns; guarded by mu
	readWait chan struct{} // closed when a Read starts; guarded by mu
}

// A connection sending a large response holds at most maxQueued+2
// pieces (one filling, the queued, the one being written) and one record
// batch, about 1 MiB; a short response holds 16 KiB. 256 KiB
// pieces made BODY.PEEK[] faster than 64 KiB ones in every alternating
// pair measured (docs/BENCHMARKS.md): fewer wake-ups on both sides of
// the socket, fewer hand-offs to the sender.
const (
	coalesceLimit = 256 << 10
	flushDelay    = 2 * time.Millisecond
	maxQueued     = 1
)

// writeStall bounds a write made while go-imap asks for no deadline
// (between responses the sender may still be writing the last one): a
// client that accepts nothing for this long is gone. It is go-imap's own
// bound for writing a literal. A variable for tests.
var writeStall = 5 * time.Minute

// pieces recycles coalescing buffers: a connection holds one only while
// it has unsent bytes, so idle connections cost nothing, and a small one
// until its response outgrows it, so the many short responses do not
// each hold a 256 KiB piece.
var pieces = newTwoSizes(16<<10, coalesceLimit)

// twoSizes recycles byte buffers of two capacities.
type twoSizes struct {
	small, large       sync.Pool
	smallCap, largeCap int
}

func newTwoSizes(small, large int) *twoSizes {
	p := &twoSizes{smallCap: small, largeCap: large}
	p.small.New = func() any { b := make([]byte, 0, small); return &b }
	p.large.New = func() any { b := make([]byte, 0, large); return &b }
	return p
}

// get returns an empty buffer of the small capacity when n fits in it,
// else of the large one.
func (p *twoSizes) get(n int) []byte {
	if n <= p.smallCap {
		return (*p.small.Get().(*[]byte))[:0]
	}
	return (*p.large.Get().(*[]byte))[:0]
}

// put takes back a buffer of either capacity; others (grown past the
// large one) are left to the collector.
func (p *twoSizes) put(b []byte) {
	b = b[:0]
	switch cap(b) {
	case p.smallCap:
		p.small.Put(&b)
	case p.largeCap:
		p.large.Put(&b)
	}
}

func newCoalescingConn(c net.Conn) *coalescingConn {
	cc := &coalescingConn{Conn: c}
	cc.cond.L = &cc.mu
	return cc
}

func (c *coalescingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for len(p) > 0 {
		if c.err != nil {
			return n, c.err
		}
		if c.buf == nil {
			c.buf = pieces.get(len(p))
		} else if len(c.buf)+len(p) > cap(c.buf) && cap(c.buf) < coalesceLimit {
			// The response outgrew the small buffer.
			large := append(pieces.get(coalesceLimit), c.buf...)
			pieces.put(c.buf)
			c.buf = large
		}
		k := min(len(p), coalesceLimit-len(c.buf))
		c.buf = append(c.buf, p[:k]...)
		p, n = p[k:], n+k
		if len(c.buf) == coalesceLimit {
			c.enqueueLocked()
		}
	}
	if c.buf != nil && !c.pending {
		c.pending = true
		if c.timer == nil {
			c.timer = time.AfterFunc(flushDelay, c.timedFlush)
		} else {
			c.timer.Reset(flushDelay)
		}
	}
	return n, c.err
}

// enqueueLocked hands the full buffer to the sender, starting it when
// needed and waiting while maxQueued buffers are already waiting.
func (c *coalescingConn) enqueueLocked() {
	for len(c.queue) >= maxQueued && c.err == nil {
		c.cond.Wait()
	}
	c.queue = append(c.queue, c.buf)
	c.buf = nil
	if !c.sending {
		c.sending = true
		go c.send()
	} else {
		c.cond.Broadcast() // the sender may be waiting for work
	}
}

// send writes the queued buffers in order, waiting for more, until a
// flush tells it to stop (or a write fails).
func (c *coalescingConn) send() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		for len(c.queue) > 0 {
			b := c.queue[0]
			n := copy(c.queue, c.queue[1:])
			c.queue[n] = nil
			c.queue = c.queue[:n]
			var err error
			if c.err == nil {
				c.mu.Unlock()
				err = c.writeOut(b)
				c.mu.Lock()
			}
			if err != nil && c.err == nil {
				c.err = err
			}
			pieces.put(b)
			c.cond.Broadcast()
		}
		if c.stop || c.err != nil {
			break
		}
		c.waiting = true
		c.cond.Wait() // for a buffer, or the word to stop
		c.waiting = false
	}
	c.sending, c.stop = false, false
	c.cond.Broadcast()
}

// writeOut writes b to the connection, as one system call when the TLS
// runs over a batchConn. Writes are serialised: by the sender, or by a
// flush once the sender has stopped.
func (c *coalescingConn) writeOut(b []byte) error {
	if err := c.armWrite(); err != nil {
		return err
	}
	if c.raw == nil {
		_, err := c.Conn.Write(b)
		return err
	}
	// The handshake's flights must not wait in a batch: it reads the
	// client's answer before Write returns.
	if err := c.handshake(); err != nil {
		return err
	}
	c.raw.begin(len(b))
	_, err := c.Conn.Write(b)
	if e := c.raw.end(); err == nil {
		err = e
	}
	return err
}

// armWrite sets the write deadline go-imap last asked for, or writeStall
// from now when it asked for none, if that is not the one already set.
func (c *coalescingConn) armWrite() error {
	by := c.wantBy.Load()
	if by == 0 {
		by = time.Now().Add(writeStall).UnixNano()
		if c.appliedBy != 0 && by-c.appliedBy < int64(writeStall/2) {
			return nil // set recently enough from a stall bound
		}
	}
	if by == c.appliedBy {
		return nil
	}
	c.appliedBy = by
	return c.Conn.SetWriteDeadline(time.Unix(0, by))
}

func (c *coalescingConn) timedFlush() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sending && !c.waiting && c.err == nil {
		// A response is still being sent: the partial buffer goes
		// with the next one, or at the next flush; look again later.
		c.timer.Reset(flushDelay)
		return
	}
	if err := c.flushLocked(); err != nil && c.err == nil {
		c.err = err
	}
}

// flushLocked sends everything: it waits for the sender to finish the
// queue, then writes the partial buffer itself. Caller holds c.mu.
func (c *coalescingConn) flushLocked() error {
	c.pending = false
	for c.sending {
		// Told on every round: a writer may have started a new sender
		// while this one waited.
		c.stop = true
		c.cond.Broadcast()
		c.cond.Wait()
	}
	if len(c.buf) == 0 || c.err != nil {
		return c.err
	}
	err := c.writeOut(c.buf)
	pieces.put(c.buf)
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

// handshake runs the implicit TLS handshake, once, on a goroutine that
// ends with it. Key exchange (X25519MLKEM768 above all) needs a deep
// stack; run on the connection's goroutine it would grow that stack for
// the connection's whole life, and a Go stack only shrinks at garbage
// collections, by half each time. This keeps an idle connection's
// goroutine small.
func (c *coalescingConn) handshake() error {
	if c.shook.Load() {
		return nil
	}
	done := make(chan error, 1)
	go func() { done <- c.Conn.(*tls.Conn).Handshake() }()
	if err := <-done; err != nil {
		return err
	}
	c.shook.Store(true)
	return nil
}

// Read sends what is buffered first: a server must not wait for the
// client while holding its answer.
func (c *coalescingConn) Read(p []byte) (int, error) {
	if err := c.Flush(); err != nil {
		return 0, err
	}
	if c.raw != nil {
		if err := c.handshake(); err != nil {
			return 0, err
		}
	}
	c.mu.Lock()
	c.reading = true
	if c.readWait != nil {
		close(c.readWait)
		c.readWait = nil
	}
	c.mu.Unlock()
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	c.reading = false
	hook := c.readHook
	c.readHook = nil
	c.mu.Unlock()
	if hook != nil {
		hook()
	}
	return n, err
}

// onRead arranges for fn to run when the client's next bytes (or a read
// error) arrive, before the reader gets them; nil cancels. The channel
// it returns is closed once a Read is waiting for the client (at once if
// one already is): from then on the reader has nothing buffered that fn
// would miss.
func (c *coalescingConn) onRead(fn func()) <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.readHook, c.readWait = fn, nil
	if fn == nil {
		return nil
	}
	ch := make(chan struct{})
	if c.reading {
		close(ch)
	} else {
		c.readWait = ch
	}
	return ch
}

// SetWriteDeadline records a deadline for the writes to come (armWrite
// applies it). One that cuts writes off (crypto/tls sets one to "now"
// after its close_notify alert) sends the buffer first and applies at
// once.
func (c *coalescingConn) SetWriteDeadline(t time.Time) error {
	if t.IsZero() {
		c.wantBy.Store(0)
		return nil
	}
	if t.After(time.Now()) {
		c.wantBy.Store(t.UnixNano())
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.flushLocked() // under the deadline asked for before; no writer runs after it while c.mu is held
	c.wantBy.Store(t.UnixNano())
	c.appliedBy = t.UnixNano()
	return c.Conn.SetWriteDeadline(t)
}

func (c *coalescingConn) SetDeadline(t time.Time) error {
	if err := c.SetWriteDeadline(t); err != nil {
		return err
	}
	return c.Conn.SetReadDeadline(t)
}

func (c *coalescingConn) Close() error {
	// Bounds a write in progress too, not only the flush's.
	by := time.Now().Add(5 * time.Second)
	c.wantBy.Store(by.UnixNano())
	c.Conn.SetWriteDeadline(by)
	c.Flush()
	c.mu.Lock()
	if c.timer != nil {
		c.timer.Stop()
	}
	c.mu.Unlock()
	return c.Conn.Close()
}

// coalescingListener wraps every accepted connection; with tls set it
// also runs the implicit TLS itself, over a batchConn.
type coalescingListener struct {
	net.Listener
	tls *tls.Config
}

func (l coalescingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if l.tls == nil {
		return newCoalescingConn(c), nil
	}
	raw := &batchConn{Conn: c}
	cc := newCoalescingConn(tls.Server(raw, l.tls))
	cc.raw = raw
	return cc, nil
}

// batchConn sits under crypto/tls, which writes each record of at most
// 16 KiB with its own system call. Between begin and end the records
// collect and go out in one write: a 256 KiB buffer costs one system
// call, not sixteen. Outside a batch (the handshake, alerts) writes pass
// straight through.
type batchConn struct {
	net.Conn
	mu       sync.Mutex
	batching bool
	buf      []byte
}

func (b *batchConn) Write(p []byte) (int, error) {
	b.mu.Lock()
	if b.batching {
		b.buf = append(b.buf, p...)
		b.mu.Unlock()
		return len(p), nil
	}
	b.mu.Unlock()
	return b.Conn.Write(p)
}

// begin starts a batch for the records of n bytes.
func (b *batchConn) begin(n int) {
	b.mu.Lock()
	b.batching = true
	if b.buf == nil {
		b.buf = records.get(n + (n/(16<<10)+1)*recordOverhead)
	}
	b.mu.Unlock()
}

// end sends the batch.
func (b *batchConn) end() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.batching = false
	var err error
	if len(b.buf) > 0 {
		_, err = b.Conn.Write(b.buf)
	}
	records.put(b.buf)
	b.buf = nil
	return err
}

// recordOverhead is more than a TLS 1.3 record adds to its payload
// (header 5, content type 1, tag 16; TLS 1.2's explicit nonce 8).
const recordOverhead = 32

// records recycles batches: one small piece's records, or one full
// piece's.
var records = newTwoSizes(pieces.smallCap+2*recordOverhead, coalesceLimit+(coalesceLimit/(16<<10)+1)*recordOverhead)
