package imapd

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"

	"abox/imapd/wire"
)

// Timeouts of a connection (RFC 9051 §5.4: at least 30 minutes of
// inactivity once logged in; a client that has not logged in gets one).
const (
	preLoginTimeout = time.Minute
	idleTimeout     = 35 * time.Minute
	commandTimeout  = 5 * time.Minute // to send the rest of a command once begun, and to take our answer
	maxBadCommands  = 20              // in a row, then BYE
	// preLoginLiteral bounds a literal before login (LOGIN and
	// AUTHENTICATE carry a name and a password, nothing more).
	preLoginLiteral = 8 << 10
)

// state is where a session is in RFC 9051 §3.
type state int

const (
	notAuthenticated state = iota
	authenticated
	selectedState
	loggedOut
)

// conn is one IMAP connection. Its goroutine reads and runs commands;
// everything written to the client is written under wmu (the IDLE
// pusher and Shutdown's BYE write from other goroutines).
type conn struct {
	srv  *Server
	nc   net.Conn
	br   *bufio.Reader
	bw   *bufio.Writer // taken from writers while the connection writes, nil when idle
	dw   *deadlineWriter
	rd   *wire.Reader
	w    *wire.Writer
	tls  bool
	rec  *recordConn // under crypto/tls: its records leave together (records.go)
	sess *session
	z    *deflater // COMPRESS=DEFLATE: output goes through it (compress.go)

	wmu       sync.Mutex  // guards w and bw
	cmdName   string      // the command running (handlers shared by several names)
	bad       int         // BAD answers in a row
	rev2      bool        // ENABLE IMAP4rev2
	utf8      bool        // ENABLE UTF8=ACCEPT (or IMAP4rev2)
	utf8Asked bool        // UTF8=ACCEPT itself was enabled
	closing   atomic.Bool // LOGOUT or BYE: stop after this command
	inRun     atomic.Bool // a command holds the writer (the connection's goroutine)

	appendBudget appendBudget // the literals of the APPEND being read (append.go)

	// While the connection waits for input it holds no read buffer:
	// the first bytes that come are read into pre (connwait.go).
	pre        [16]byte
	npre, ipre uint8
	preErr     error
	idleTag    string // IDLE waits for DONE (cmdIdle, finishIdle)
}

func newConn(srv *Server, nc net.Conn, tlsOn bool) *conn {
	c := &conn{srv: srv, nc: nc, tls: tlsOn}
	// A small reader (commands are short; a literal larger than it is
	// read straight into its own slice) and no writer until something
	// is written: an idle connection holds as little as it can.
	c.br = readers.Get().(*bufio.Reader)
	c.br.Reset(connSource{c})
	c.dw = &deadlineWriter{c}
	c.rd = wire.NewReader(c.br)
	c.w = wire.NewWriter(nil)
	c.rd.Continue = c.continueLiteral
	c.rd.LiteralLimit = c.literalLimit
	return c
}

// deadlineWriter bounds every write to the client, so one that does
// not read cannot hold the session for ever.
type deadlineWriter struct{ c *conn }

func (d *deadlineWriter) Write(p []byte) (int, error) {
	d.c.nc.SetWriteDeadline(time.Now().Add(commandTimeout))
	if d.c.rec == nil {
		return d.c.nc.Write(p)
	}
	d.c.rec.gather()
	n, err := d.c.nc.Write(p)
	if serr := d.c.rec.send(); err == nil && serr != nil {
		n, err = 0, serr
	}
	return n, err
}

func (c *conn) continueLiteral() error {
	var err error
	c.writeLocked(func() { c.w.Raw("+ Ready for literal data").CRLF() })
	if err = c.w.Err(); err == nil && c.closing.Load() {
		err = net.ErrClosed
	}
	return err
}

// writers are the connections' output buffers, lent while a connection
// writes: 10,000 idle connections hold none.
var writers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 64<<10) }}

// hold gives the connection an output buffer (the writer's lock held).
func (c *conn) hold() {
	if c.bw == nil {
		c.bw = writers.Get().(*bufio.Writer)
		c.bw.Reset(c.dw)
		if c.z != nil {
			c.bw.Reset(c.z)
		}
		c.w.Reset(c.bw)
	}
}

// release flushes and lends the buffer back (the writer's lock held).
func (c *conn) release() error {
	if c.bw == nil {
		return nil
	}
	err := c.w.Flush()
	c.bw.Reset(nil)
	writers.Put(c.bw)
	c.bw = nil
	c.w.Reset(nil)
	return err
}

// literalLimit decides a literal's fate before a byte of it is read:
// before login only small ones (and no APPEND at all), APPEND's message
// up to the account's limit, everything else small.
func (c *conn) literalLimit(cmd *wire.Command, size int64, _ bool) error {
	name := cmd.Name
	if c.sess.acct == nil {
		if name == "APPEND" {
			return errNotAuthenticated
		}
		if size > preLoginLiteral {
			return fmt.Errorf("literals before login are limited to %d bytes", preLoginLiteral)
		}
		return nil
	}
	if name == "APPEND" {
		return c.appendLiteral(size)
	}
	if size > wire.DefaultMaxLiteral {
		return fmt.Errorf("literals of %s are limited to %d bytes", name, wire.DefaultMaxLiteral)
	}
	return nil
}

var errNotAuthenticated = errors.New("not authenticated")

type errTooBig struct{ limit int64 }

func (e errTooBig) Error() string { return fmt.Sprintf("messages are limited to %d bytes", e.limit) }

// serve greets the client and serves the connection until it ends
// (loop and resume, connwait.go).
func (c *conn) serve() {
	if tc, ok := c.nc.(*tls.Conn); ok && !tc.ConnectionState().HandshakeComplete {
		if err := handshake(tc); err != nil {
			c.end()
			return
		}
	}
	c.writeLocked(func() {
		c.w.Raw("* OK [CAPABILITY ").Raw(c.capabilities()).Raw("] abox IMAP ready").CRLF()
	})
	c.loop()
}

// loop reads and runs commands until the connection ends, or until it
// must wait for the client with nothing read: then it hands the
// connection to a new goroutine (resume) and returns.
func (c *conn) loop() {
	defer func() {
		if v := recover(); v != nil {
			c.sess.log.Error("imap: panic", "panic", v, "stack", string(debug.Stack()))
			c.writeLocked(func() { c.w.Raw("* BYE Internal error").CRLF() })
			c.end()
		}
	}()
	for !c.closing.Load() {
		timeout := idleTimeout
		if c.sess.acct == nil {
			timeout = preLoginTimeout
		}
		c.nc.SetReadDeadline(time.Now().Add(timeout))
		c.appendBudget = appendBudget{}
		if c.lendReader() {
			go c.resume()
			return
		}
		if c.idleTag != "" {
			c.finishIdle()
			c.sess.armBetween()
			continue
		}
		cmd, err := c.rd.ReadCommand()
		c.sess.stopPush() // NOTIFY's pusher stays out while a command runs
		if err != nil {
			if !c.readError(err) {
				break
			}
			c.sess.armBetween()
			continue
		}
		c.nc.SetReadDeadline(time.Time{})
		c.run(cmd)
		if c.idleTag == "" {
			c.sess.armBetween()
		}
	}
	c.end()
}

// readError answers a command that could not be read, and says whether
// the connection goes on.
func (c *conn) readError(err error) bool {
	var se *wire.SyntaxError
	var lr *wire.LiteralRefused
	switch {
	case errors.As(err, &lr):
		c.writeLocked(func() {
			tag := lr.Tag
			switch {
			case errors.Is(lr.Err, errNotAuthenticated):
				c.w.Raw(tag).Raw(" BAD Log in first").CRLF()
			default:
				code := "TOOBIG"
				if !errors.As(lr.Err, new(errTooBig)) && lr.Name != "APPEND" {
					code = "LIMIT"
				}
				if ac := appendRefusedCode(lr.Err); ac != "" {
					code = ac
				}
				c.w.Raw(tag).Raw(" NO [").Raw(code).Raw("] ").Raw(sanitize(lr.Err.Error())).CRLF()
			}
			if lr.NonSync {
				// Its bytes are on their way and are never read as
				// commands (RFC 7888 §4 allows closing here).
				c.w.Raw("* BYE A literal was refused; closing").CRLF()
			}
		})
		return !lr.NonSync
	case errors.As(err, &se):
		c.badLocked(se.Tag, se.Msg)
		return c.bad < maxBadCommands
	case errors.Is(err, os.ErrDeadlineExceeded):
		c.writeLocked(func() { c.w.Raw("* BYE Autologout; idle for too long").CRLF() })
		return false
	}
	return false // the client went away
}

// badLocked answers BAD (tagged when the tag could be read).
func (c *conn) badLocked(tag, msg string) {
	c.bad++
	c.writeLocked(func() {
		if tag == "" {
			tag = "*"
		}
		c.w.Raw(tag).Raw(" BAD ").Raw(sanitize(msg)).CRLF()
		if c.bad >= maxBadCommands {
			c.w.Raw("* BYE Too many errors").CRLF()
		}
	})
}

// writeLocked runs fn with the writer and flushes.
func (c *conn) writeLocked(fn func()) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.hold()
	fn()
	if err := c.release(); err != nil {
		c.closing.Store(true)
	}
}

// bye says goodbye and ends the connection's reads: from inside a
// command (which holds the writer), or from the IDLE pusher, which writes
// while no command runs. Other goroutines use tryBye.
func (c *conn) bye(text string) {
	if c.inRun.Load() {
		c.w.Raw("* BYE ").Raw(sanitize(text)).CRLF() // flushed at the command's end
		c.closing.Store(true)
		c.nc.SetReadDeadline(time.Now())
		return
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.byeLocked(text)
}

// byeLocked writes the goodbye with the writer held and no command
// running, flushes it and ends reads (c.nc is stable under wmu: STARTTLS
// replaces it inside a command).
func (c *conn) byeLocked(text string) {
	c.hold()
	c.w.Raw("* BYE ").Raw(sanitize(text)).CRLF()
	if err := c.release(); err != nil {
		c.closing.Store(true)
	}
	c.closing.Store(true)
	c.nc.SetReadDeadline(time.Now())
}

// sanitize keeps response text on one line.
func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}

// startTLS upgrades the connection (RFC 9051 §6.2.1). Whatever the
// client sent after STARTTLS in clear is discarded (RFC 9051 §11.1).
func (c *conn) startTLS() error {
	rec := &recordConn{Conn: c.nc}
	tc := tls.Server(rec, c.srv.cfg.TLS)
	if err := handshake(tc); err != nil {
		return err
	}
	c.nc, c.tls, c.rec = tc, true, rec
	c.br.Reset(connSource{c})
	return nil
}

// status is a command's tagged answer.
type status struct {
	typ  string // OK, NO, BAD
	code string
	text string
}

// answerFor turns a command's error into its tagged answer.
func answerFor(name string, err error) status {
	if err == nil {
		return status{"OK", "", name + " completed"}
	}
	var ie *imap.Error
	if errors.As(err, &ie) {
		st := status{typ: string(ie.Type), code: string(ie.Code), text: ie.Text}
		if st.typ == "" {
			st.typ = "NO"
		}
		if st.text == "" {
			st.text = name + " failed"
		}
		return st
	}
	if errors.Is(err, wire.ErrSyntax) {
		return status{"BAD", "", err.Error()}
	}
	return status{"NO", "", err.Error()}
}

func (c *conn) writeStatus(tag string, st status) {
	c.w.Raw(tag).SP().Raw(st.typ).SP()
	if st.code != "" {
		c.w.Raw("[").Raw(st.code).Raw("] ")
	}
	c.w.Raw(sanitize(st.text)).CRLF()
}

var _ io.Writer = (*deadlineWriter)(nil)

// handshake runs a TLS handshake on a goroutine that ends with it: key
// exchange (X25519MLKEM768) needs a deep stack, and a goroutine's stack
// only shrinks at collections, by half each time, so the connection's
// own goroutine stays small for the hours it may idle.
func handshake(tc *tls.Conn) error {
	done := make(chan error, 1)
	go func() {
		tc.SetDeadline(time.Now().Add(30 * time.Second))
		err := tc.Handshake()
		tc.SetDeadline(time.Time{})
		done <- err
	}()
	return <-done
}
