package smtpd

import (
	"bufio"
	"crypto/rand"
	"crypto/tls"
	"encoding/base32"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"abox/policy"
)

// maxCommandLine bounds a command line. RFC 5321 §4.5.3.1.4 says 512;
// AUTH with an initial response needs up to 12,288 (RFC 4954 §4).
const maxCommandLine = 16 << 10

// conn is one SMTP session. It is used by one goroutine; only idle and
// the deadline are touched by Shutdown (guarded by mu).
type conn struct {
	s     *Server
	nc    net.Conn
	br    *bufio.Reader
	bw    *bufio.Writer
	ip    netip.Addr
	id    string
	log   *slog.Logger
	tls   *tls.ConnectionState
	helo  string
	esmtp bool
	ident *policy.Identity // authenticated submitter
	tx    *transaction
	bad   int
	// unknown counts recipients refused as unknown in this session
	// (enumeration, see cmdRcpt).
	unknown  int
	refusals map[string]int // refusals given, by kind (refuse)
	closed   bool

	// readIdle, when set, is the longest wait for each read from the
	// network (the data block timeout), and readEnd the latest deadline
	// (the whole DATA's); netReader applies them.
	readIdle time.Duration
	readEnd  time.Time

	mu   sync.Mutex
	idle bool // waiting for a command outside a transaction
}

// netReader reads the session's connection for its bufio.Reader. While
// readIdle is set, every read from the network first moves the read
// deadline: one call per buffer fill, not one per line.
type netReader struct{ c *conn }

func (r netReader) Read(p []byte) (int, error) {
	c := r.c
	if c.readIdle > 0 {
		next := time.Now().Add(c.readIdle)
		if next.After(c.readEnd) {
			next = c.readEnd
		}
		c.nc.SetReadDeadline(next)
	}
	return c.nc.Read(p)
}

// transaction is the state from MAIL FROM to the end of DATA/BDAT.
type transaction struct {
	from         string // "" is the null reverse-path
	utf8         bool
	eightBit     bool // BODY=8BITMIME
	declaredSize int64
	// ret, envid and requireTLS are MAIL's DSN and REQUIRETLS parameters.
	ret, envid string
	requireTLS bool
	// pt is policy's side of the transaction: the recipients, and what
	// happens to the message (policy/accept.go).
	pt         *policy.Transaction
	bdat       []byte // chunks so far
	bdatTooBig bool
	bdatFailed bool
}

// rcpts are the recipients accepted so far.
func (tx *transaction) rcpts() []*policy.Recipient { return tx.pt.Recipients() }

func newConn(s *Server, nc net.Conn, ip netip.Addr) *conn {
	c := &conn{s: s, nc: nc, ip: ip, id: newID()}
	c.br = bufio.NewReaderSize(netReader{c}, 4096)
	c.bw = bufio.NewWriterSize(nc, 4096)
	c.log = s.cfg.Log.With("listener", s.cfg.Name, "session", c.id, "remote", ip.String())
	return c
}

func newID() string {
	var b [10]byte
	rand.Read(b[:])
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))
}

// refuseConnection answers a connection that will not be served.
func (c *conn) refuseConnection(text string) {
	c.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	c.writeReply(reply{421, "4.7.0", text})
	c.bw.Flush()
}

func (c *conn) serve() {
	defer c.logRefusals()
	defer c.dropTx()
	defer func() {
		if r := recover(); r != nil {
			c.log.Error("smtp: panic", "panic", r)
			c.writeReply(reply{421, "4.3.0", "Internal error, closing connection"})
			c.bw.Flush()
		}
	}()
	if c.s.cfg.ImplicitTLS {
		tc, ok := c.nc.(*tls.Conn)
		if !ok {
			c.log.Error("smtp: implicit TLS listener without TLS")
			return
		}
		tc.SetDeadline(time.Now().Add(30 * time.Second))
		if err := tc.Handshake(); err != nil {
			c.log.Debug("TLS handshake failed", "err", err)
			return
		}
		tc.SetDeadline(time.Time{})
		st := tc.ConnectionState()
		c.tls = &st
	}
	c.log.Debug("session start")
	c.writeReply(reply{220, "", c.s.cfg.Hostname + " ESMTP abox ready"})
	c.flush()
	for !c.closed {
		line, err := c.readCommand()
		switch {
		case errors.Is(err, errLineTooLong):
			c.badCommand(reply{500, "5.5.2", "Line too long"})
		case err != nil:
			c.endOnReadError(err)
			return
		default:
			c.dispatch(line)
		}
		if c.br.Buffered() == 0 || c.closed {
			if err := c.flush(); err != nil {
				return
			}
		}
	}
}

// endOnReadError says goodbye the way RFC 5321 §4.5.3.2 and §3.8 expect.
func (c *conn) endOnReadError(err error) {
	var ne net.Error
	switch {
	case c.s.isClosing() && errors.As(err, &ne) && ne.Timeout():
		c.writeReply(reply{421, "4.3.2", c.s.cfg.Hostname + " shutting down, try again later"})
	case errors.As(err, &ne) && ne.Timeout():
		c.writeReply(reply{421, "4.4.2", c.s.cfg.Hostname + " timeout, closing connection"})
	default:
		return // the client went away
	}
	c.flush()
}

var errLineTooLong = errors.New("line too long")

// readCommand reads one command line without its CRLF. While it waits
// outside a transaction the session counts as idle, so Shutdown can wake
// it to say goodbye.
func (c *conn) readCommand() (string, error) {
	// The deadline is set under c.mu: a wake-up from Shutdown (which sets
	// it to now under the same lock) must not be overwritten.
	c.mu.Lock()
	c.idle = c.tx == nil
	wake := c.idle && c.s.isClosing()
	if wake && c.br.Buffered() == 0 {
		c.idle = false
		c.mu.Unlock()
		return "", os.ErrDeadlineExceeded
	}
	switch {
	case wake:
		c.nc.SetReadDeadline(time.Now())
	case c.helo == "":
		// Until EHLO a client has shown nothing: it gets a short wait,
		// so idle connections cannot hold the listener's slots.
		c.nc.SetReadDeadline(time.Now().Add(c.s.cfg.HelloTimeout))
	default:
		c.nc.SetReadDeadline(time.Now().Add(c.s.cfg.CommandTimeout))
	}
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.idle = false
		c.mu.Unlock()
	}()
	var line []byte
	tooLong := false
	for {
		frag, err := c.br.ReadSlice('\n')
		if !tooLong && len(line)+len(frag) > maxCommandLine {
			tooLong, line = true, nil
		} else if !tooLong {
			line = append(line, frag...)
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err != nil {
			return "", err
		}
		break
	}
	if tooLong {
		return "", errLineTooLong
	}
	return strings.TrimRight(string(line), "\r\n"), nil
}

// wakeIfIdle makes an idle session's read fail now (called by Shutdown).
func (c *conn) wakeIfIdle() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.idle {
		c.nc.SetReadDeadline(time.Now())
	}
}

func (c *conn) writeReply(r reply) {
	lines := strings.Split(r.text, "\n")
	for i, l := range lines {
		sep := " "
		if i < len(lines)-1 {
			sep = "-"
		}
		if r.enh != "" {
			fmt.Fprintf(c.bw, "%d%s%s %s\r\n", r.code, sep, r.enh, l)
		} else {
			fmt.Fprintf(c.bw, "%d%s%s\r\n", r.code, sep, l)
		}
	}
}

func (c *conn) flush() error {
	c.nc.SetWriteDeadline(time.Now().Add(c.s.cfg.CommandTimeout))
	return c.bw.Flush()
}

// badCommand answers a command that could not be understood, and ends a
// session that sends too many of them.
func (c *conn) badCommand(r reply) {
	c.writeReply(r)
	c.bad++
	if c.bad >= c.s.cfg.MaxBadCommands {
		c.writeReply(reply{421, "4.7.0", "Too many errors, closing connection"})
		c.closed = true
	}
}

func (c *conn) dispatch(line string) {
	verb, arg := parseCommand(line)
	switch verb {
	case "EHLO", "HELO":
		c.cmdHello(verb == "EHLO", arg)
	case "MAIL":
		c.cmdMail(arg)
	case "RCPT":
		c.cmdRcpt(arg)
	case "DATA":
		c.cmdData(arg)
	case "BDAT":
		c.cmdBDAT(arg)
	case "RSET":
		if arg != "" {
			c.badCommand(reply{501, "5.5.4", "RSET takes no argument"})
			return
		}
		c.dropTx()
		c.writeReply(reply{250, "2.0.0", "OK"})
	case "NOOP":
		c.writeReply(reply{250, "2.0.0", "OK"})
	case "QUIT":
		c.writeReply(reply{221, "2.0.0", c.s.cfg.Hostname + " closing connection"})
		c.closed = true
	case "STARTTLS":
		c.cmdStartTLS(arg)
	case "AUTH":
		c.cmdAuth(arg)
	case "VRFY":
		c.writeReply(reply{252, "2.5.0", "Cannot VRFY user, but will accept message for local recipients"})
	case "HELP":
		c.writeReply(reply{214, "2.0.0", "See RFC 5321; commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT STARTTLS AUTH VRFY"})
	case "EXPN", "TURN", "ETRN", "SEND", "SOML", "SAML":
		c.writeReply(reply{502, "5.5.1", verb + " not implemented"})
	case "":
		c.badCommand(reply{500, "5.5.2", "Empty command"})
	default:
		c.badCommand(reply{500, "5.5.2", "Command not recognized"})
	}
}

func (c *conn) submission() bool { return c.s.cfg.Mode == Submission }

// cmdHello answers EHLO/HELO (RFC 5321 §4.1.1.1) and resets any
// transaction.
func (c *conn) cmdHello(extended bool, arg string) {
	if arg == "" {
		c.badCommand(reply{501, "5.5.4", "Domain or address literal required"})
		return
	}
	c.dropTx()
	c.helo, c.esmtp, c.tx = strings.Fields(arg)[0], extended, nil
	greet := c.s.cfg.Hostname + " greets " + c.helo
	if !extended {
		c.writeReply(reply{250, "", greet})
		return
	}
	caps := []string{greet, "PIPELINING"}
	if size := c.s.cfg.Policy.AdvertisedSize(); size > 0 {
		caps = append(caps, fmt.Sprintf("SIZE %d", size))
	} else {
		caps = append(caps, "SIZE")
	}
	caps = append(caps, "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES", "CHUNKING")
	if c.tls == nil && c.s.cfg.TLS != nil {
		caps = append(caps, "STARTTLS")
	}
	if c.submission() && c.tls != nil && c.ident == nil {
		caps = append(caps, "AUTH PLAIN LOGIN")
	}
	if c.offersDSN() {
		caps = append(caps, "DSN")
	}
	if c.offersRequireTLS() {
		caps = append(caps, "REQUIRETLS")
	}
	c.writeReply(reply{250, "", strings.Join(caps, "\n")})
}

// cmdStartTLS upgrades the connection (RFC 3207 §4) and forgets
// everything learned before it.
func (c *conn) cmdStartTLS(arg string) {
	switch {
	case arg != "":
		c.badCommand(reply{501, "5.5.4", "STARTTLS takes no argument"})
		return
	case c.s.cfg.TLS == nil:
		c.writeReply(reply{502, "5.5.1", "TLS not available"})
		return
	case c.tls != nil:
		c.writeReply(reply{503, "5.5.1", "TLS already active"})
		return
	}
	c.writeReply(reply{220, "2.0.0", "Ready to start TLS"})
	if err := c.flush(); err != nil {
		c.closed = true
		return
	}
	// Anything the client pipelined after STARTTLS was sent in clear
	// text and must not be trusted (RFC 3207 §5).
	if c.br.Buffered() > 0 {
		c.log.Warn("client pipelined after STARTTLS; closing")
		c.closed = true
		return
	}
	tc := tls.Server(c.nc, c.s.cfg.TLS)
	tc.SetDeadline(time.Now().Add(30 * time.Second))
	if err := tc.Handshake(); err != nil {
		c.log.Debug("STARTTLS handshake failed", "err", err)
		c.closed = true
		return
	}
	tc.SetDeadline(time.Time{})
	st := tc.ConnectionState()
	c.mu.Lock()
	c.nc, c.tls = tc, &st
	c.mu.Unlock()
	c.br.Reset(netReader{c})
	c.bw.Reset(tc)
	c.dropTx()
	c.helo, c.esmtp, c.ident, c.tx = "", false, nil, nil
}

// needHello refuses commands before EHLO/HELO (RFC 5321 §4.1.4).
func (c *conn) needHello() bool {
	if c.helo == "" {
		c.writeReply(reply{503, "5.5.1", "Send EHLO or HELO first"})
		return false
	}
	return true
}
