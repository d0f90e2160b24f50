package outbound

import (
	"bufio"
	"crypto/tls"
	"errors"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// randomLoopback picks an address in 127.0.0.0/8 other than 127.0.0.1,
// so that each test can have its own port 25 and 443.
func randomLoopback() netip.Addr {
	return netip.AddrFrom4([4]byte{127, byte(1 + rand.IntN(254)), byte(rand.IntN(256)), byte(1 + rand.IntN(254))})
}

// listenLoopback listens on port of a fresh random loopback address.
func listenLoopback(t *testing.T, port int) net.Listener {
	t.Helper()
	for range 20 {
		ln, err := net.Listen("tcp", netip.AddrPortFrom(randomLoopback(), uint16(port)).String())
		if errors.Is(err, syscall.EADDRINUSE) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		return ln
	}
	t.Fatal("no free loopback address")
	return nil
}

// unusedLoopback is an address nothing listens on: connections to it
// are refused at once.
func unusedLoopback(t *testing.T) netip.Addr {
	t.Helper()
	ln := listenLoopback(t, 25)
	a := netip.MustParseAddrPort(ln.Addr().String()).Addr()
	ln.Close()
	return a
}

func addrOf(ln net.Listener) netip.Addr {
	return netip.MustParseAddrPort(ln.Addr().String()).Addr()
}

// mxOpts shapes a receiving server.
type mxOpts struct {
	cert       *tls.Certificate // STARTTLS offered when set
	badTLS     bool             // STARTTLS offered, every handshake fails
	dsn        bool
	utf8       bool
	requireTLS bool  // advertised under TLS only, as go-smtp does
	maxSize    int64 // SIZE
	auth       bool  // AUTH PLAIN under TLS
	implicit   bool  // implicit TLS (cert required)
}

// received is what one transaction of the server saw; conn numbers the
// connection that carried it, from 1.
type received struct {
	conn       int
	tls        bool
	from       string
	mail       smtp.MailOptions
	rcpts      []string
	rcptOpts   []smtp.RcptOptions
	data       []byte
	user, pass string
	authed     bool
}

// mxServer is a receiving SMTP server (go-smtp's) on a random loopback
// address, recording every session and every transaction.
type mxServer struct {
	addr netip.Addr

	mu       sync.Mutex
	conns    int // accepted
	open     int // accepted and not yet closed
	connIDs  map[*smtp.Conn]int
	sessions []*received // one per session, then one per later MAIL
	rcptErr  map[string]*smtp.SMTPError
	dataErr  *smtp.SMTPError
	authErr  error
}

func newMX(t *testing.T, opts mxOpts) *mxServer {
	t.Helper()
	ln := listenLoopback(t, 25)
	m := &mxServer{addr: addrOf(ln), rcptErr: map[string]*smtp.SMTPError{}, connIDs: map[*smtp.Conn]int{}}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		r := &received{}
		_, r.tls = c.TLSConnectionState()
		m.mu.Lock()
		// go-smtp starts a new session after STARTTLS, on the same Conn.
		if m.connIDs[c] == 0 {
			m.connIDs[c] = len(m.connIDs) + 1
		}
		r.conn = m.connIDs[c]
		m.sessions = append(m.sessions, r)
		m.mu.Unlock()
		return &session_{m: m, r: r, auth: opts.auth}, nil
	}))
	srv.Domain = "mx.test"
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	srv.EnableDSN, srv.EnableSMTPUTF8, srv.EnableREQUIRETLS = opts.dsn, opts.utf8, opts.requireTLS
	srv.MaxMessageBytes = opts.maxSize
	srv.ErrorLog = log.New(io.Discard, "", 0)
	switch {
	case opts.badTLS:
		srv.TLSConfig = &tls.Config{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return nil, errors.New("no certificate today")
		}}
	case opts.cert != nil:
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{*opts.cert}}
	}
	var l net.Listener = &countingListener{Listener: ln, m: m}
	if opts.implicit {
		l = tls.NewListener(l, srv.TLSConfig)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return m
}

// transactions are the records that got MAIL.
func (m *mxServer) transactions() []received {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []received
	for _, r := range m.sessions {
		if r.from != "" || len(r.rcpts) > 0 || r.data != nil {
			out = append(out, *r)
		}
	}
	return out
}

func (m *mxServer) allSessions() []received {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []received
	for _, r := range m.sessions {
		out = append(out, *r)
	}
	return out
}

func (m *mxServer) connections() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.conns
}

// openConnections is how many connections the server has not closed.
func (m *mxServer) openConnections() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.open
}

type countingListener struct {
	net.Listener
	m *mxServer
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.m.mu.Lock()
	l.m.conns++
	l.m.open++
	l.m.mu.Unlock()
	return &countedConn{Conn: c, m: l.m}, nil
}

type countedConn struct {
	net.Conn
	m    *mxServer
	once sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() {
		c.m.mu.Lock()
		c.m.open--
		c.m.mu.Unlock()
	})
	return c.Conn.Close()
}

// session_ records one go-smtp session into r, under m.mu.
type session_ struct {
	m    *mxServer
	r    *received
	auth bool
}

func (s *session_) Reset()        {}
func (s *session_) Logout() error { return nil }

func (s *session_) Mail(from string, opts *smtp.MailOptions) error {
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	if s.r.from != "" {
		// A later transaction on the same connection.
		r := *s.r
		r.from, r.mail, r.rcpts, r.rcptOpts, r.data = "", smtp.MailOptions{}, nil, nil, nil
		s.r = &r
		s.m.sessions = append(s.m.sessions, s.r)
	}
	s.r.from = from
	if from == "" {
		s.r.from = "<>"
	}
	if opts != nil {
		s.r.mail = *opts
	}
	return nil
}

func (s *session_) Rcpt(to string, opts *smtp.RcptOptions) error {
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	if err := s.m.rcptErr[to]; err != nil {
		return err
	}
	s.r.rcpts = append(s.r.rcpts, to)
	var o smtp.RcptOptions
	if opts != nil {
		o = *opts
	}
	s.r.rcptOpts = append(s.r.rcptOpts, o)
	return nil
}

func (s *session_) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	s.r.data = b
	if s.m.dataErr != nil {
		return s.m.dataErr
	}
	return nil
}

func (s *session_) AuthMechanisms() []string {
	if !s.auth {
		return nil
	}
	return []string{sasl.Plain}
}

func (s *session_) Auth(mech string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(identity, user, pass string) error {
		s.m.mu.Lock()
		defer s.m.mu.Unlock()
		s.r.user, s.r.pass = user, pass
		if s.m.authErr != nil {
			return s.m.authErr
		}
		s.r.authed = true
		return nil
	}), nil
}

// rawServer runs handle for every connection to a random loopback
// address on port; it is for servers go-smtp will not imitate (a 421
// greeting, silence, no 8BITMIME).
func rawServer(t *testing.T, port int, handle func(c net.Conn)) netip.Addr {
	t.Helper()
	ln := listenLoopback(t, port)
	var wg sync.WaitGroup
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				handle(c)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return addrOf(ln)
}

// scripted is a minimal SMTP server: greeting, EHLO with the given
// extensions, 250 to everything else, QUIT; it records the commands.
type scripted struct {
	// replies overrides the reply to a command line; a 421 reply, or
	// "close", ends the connection after it.
	replies map[string]string
	// closeInData drops the connection in the middle of the message.
	closeInData bool
	// idleClose, when set, is how long the server waits for a command
	// after its reply to RSET; then it says idleReply, if any, and
	// closes, as a server timing out an idle client does.
	idleClose time.Duration
	idleReply string

	mu     sync.Mutex
	cmds   []string
	conns  [][]string // the commands of each connection
	closed int        // connections ended
}

func (s *scripted) handle(greeting string, exts []string) func(net.Conn) {
	return func(c net.Conn) {
		s.mu.Lock()
		n := len(s.conns)
		s.conns = append(s.conns, nil)
		s.mu.Unlock()
		defer func() {
			s.mu.Lock()
			s.closed++
			s.mu.Unlock()
		}()
		io.WriteString(c, greeting+"\r\n")
		br := bufio.NewReader(c)
		idle := false
		for {
			if idle {
				c.SetReadDeadline(time.Now().Add(s.idleClose))
			} else if s.idleClose > 0 {
				c.SetReadDeadline(time.Now().Add(10 * time.Second))
			}
			line, err := br.ReadString('\n')
			var ne net.Error
			if idle && errors.As(err, &ne) && ne.Timeout() {
				if s.idleReply != "" {
					io.WriteString(c, s.idleReply+"\r\n")
				}
				return
			}
			if err != nil {
				return
			}
			line = strings.TrimRight(line, "\r\n")
			s.mu.Lock()
			s.cmds = append(s.cmds, line)
			s.conns[n] = append(s.conns[n], line)
			s.mu.Unlock()
			idle = s.idleClose > 0 && strings.EqualFold(line, "RSET")
			if r, ok := s.replies[line]; ok {
				if r != "close" {
					io.WriteString(c, r+"\r\n")
				}
				if r == "close" || strings.HasPrefix(r, "421") {
					return
				}
				continue
			}
			verb := strings.ToUpper(strings.Fields(line + " x")[0])
			switch verb {
			case "EHLO":
				reply := "250-scripted.test"
				for _, e := range exts {
					reply += "\r\n250-" + e
				}
				io.WriteString(c, reply+"\r\n250 ENHANCEDSTATUSCODES\r\n")
			case "QUIT":
				io.WriteString(c, "221 2.0.0 bye\r\n")
				return
			case "DATA":
				io.WriteString(c, "354 go on\r\n")
				if s.closeInData {
					br.ReadString('\n')
					return
				}
				for {
					l, err := br.ReadString('\n')
					if err != nil || l == ".\r\n" {
						break
					}
				}
				io.WriteString(c, "250 2.0.0 ok\r\n")
			default:
				io.WriteString(c, "250 2.0.0 ok\r\n")
			}
		}
	}
}

func (s *scripted) commands() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.cmds...)
}

// verbs are the command verbs of each connection so far.
func (s *scripted) verbs() [][]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([][]string, len(s.conns))
	for i, cmds := range s.conns {
		for _, c := range cmds {
			out[i] = append(out[i], strings.ToUpper(strings.Fields(c + " x")[0]))
		}
	}
	return out
}

func (s *scripted) closedConnections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}
