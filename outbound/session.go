package outbound

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/netip"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// target is one address of one host, with the policy for that host.
type target struct {
	host string
	addr netip.AddrPort
	pol  hostPolicy
}

func (t target) String() string { return t.host + "[" + t.addr.String() + "]" }

// session is one open SMTP connection, greeted and, as the policy asks,
// encrypted and authenticated. Owned by one goroutine.
type session struct {
	c   *Client
	t   target
	raw net.Conn
	// sc speaks SMTP over raw, or over tlsConn after STARTTLS.
	sc      *smtp.Client
	tlsConn *tls.Conn
	v       verification
	// stop releases the context watcher that closes raw on
	// cancellation.
	stop func() bool

	// For reuse (reuse.go): info is fixed when open returns; opened is
	// when the connection was made, uses how many messages it has
	// carried, dirty that MAIL went out since the last RSET.
	info   sessionInfo
	opened time.Time
	uses   int
	dirty  bool
}

// hostFailure is why an address could not take the message: the
// caller moves on to the next address or host.
type hostFailure struct {
	o Outcome
	// plainRetry: the TLS handshake failed and nothing requires TLS, so
	// this address is tried once more without STARTTLS, as Postfix does
	// (a broken TLS stack should not stop mail that would otherwise go
	// out in cleartext, RFC 7435 §3).
	plainRetry bool
}

func fail(o Outcome) *hostFailure { return &hostFailure{o: o} }

// open connects to t and readies the session for a transaction:
// greeting and EHLO (RFC 5321 §4.1.1.1), STARTTLS per t.pol (skipped
// when plain is set), AUTH for a smarthost.
func (c *Client) open(ctx context.Context, t target, plain bool) (*session, *hostFailure) {
	dctx, cancel := context.WithTimeout(ctx, c.cfg.ConnectTimeout)
	raw, err := c.dial(dctx, "tcp", t.addr.String())
	cancel()
	if err != nil {
		o := local(451, "4.4.1", "connect to "+t.String()+": "+ctxErr(ctx, err).Error())
		o.RemoteMTA = t.host
		return nil, fail(o)
	}
	s := &session{c: c, t: t, raw: raw, opened: time.Now()}
	s.watch(ctx)
	if f := s.greet(ctx, plain); f != nil {
		s.close()
		return nil, f
	}
	if t.pol.auth {
		if f := s.authenticate(ctx); f != nil {
			s.quit()
			return nil, f
		}
	}
	s.info = s.describe()
	return s, nil
}

// watch ties the session to the context of the Deliver using it. go-smtp
// bounds each command with its own deadline but knows no context:
// closing the connection is how cancellation reaches it.
func (s *session) watch(ctx context.Context) {
	raw := s.raw
	s.stop = context.AfterFunc(ctx, func() { raw.Close() })
}

func (s *session) greet(ctx context.Context, plain bool) *hostFailure {
	c, t := s.c, s.t
	conn := s.raw
	if t.pol.implicitTLS {
		s.raw.SetDeadline(c.handshakeDeadline())
		tc := tls.Client(s.raw, c.tlsConfig(t.host, t.pol, &s.v))
		if err := tc.HandshakeContext(ctx); err != nil {
			return fail(t.pol.refuse(t.host, "TLS handshake failed: "+ctxErr(ctx, err).Error()))
		}
		s.raw.SetDeadline(time.Time{})
		s.tlsConn, conn = tc, tc
	}
	s.sc = c.newSMTP(conn)
	if err := s.sc.Hello(c.cfg.Hostname); err != nil {
		return fail(s.errOutcome(ctx, err))
	}
	if s.tlsConn != nil || t.pol.noSTARTTLS {
		return nil
	}
	if ok, _ := s.sc.Extension("STARTTLS"); ok && !plain {
		return s.startTLS(ctx)
	}
	if t.pol.requireTLS {
		s.quit()
		return fail(t.pol.refuse(t.host, "STARTTLS not offered by "+t.String()))
	}
	return nil
}

// authenticate sends AUTH PLAIN (RFC 4954, RFC 4616). The session is
// encrypted and verified: parseSmarthost refuses a user without TLS.
func (s *session) authenticate(ctx context.Context) *hostFailure {
	c, t := s.c, s.t
	if !s.sc.SupportsAuth(sasl.Plain) {
		o := local(451, "4.7.0", "smarthost "+t.String()+" does not offer AUTH PLAIN")
		o.RemoteMTA = t.host
		return fail(o)
	}
	err := s.sc.Auth(sasl.NewPlainClient("", c.cfg.SmarthostUser, c.cfg.SmarthostPassword))
	if err == nil {
		return nil
	}
	// A refused login is our configuration's fault, never the
	// recipient's: like every host failure it ends Deferred
	// (failures.final; Postfix's smtp_sasl_auth_soft_bounce), so that
	// fixing the password lets the queue drain.
	return fail(s.errOutcome(ctx, err))
}

// errOutcome is errOutcome for this session, with the context's error
// when cancellation is what broke the connection.
func (s *session) errOutcome(ctx context.Context, err error) Outcome {
	return errOutcome(ctxErr(ctx, err), s.t.host)
}

// newSMTP wraps conn in go-smtp's client with abox's timeouts and a
// bound on each reply.
func (c *Client) newSMTP(conn net.Conn) *smtp.Client {
	sc := smtp.NewClient(&replyLimit{Conn: conn})
	sc.CommandTimeout = c.cfg.CommandTimeout
	sc.SubmissionTimeout = c.cfg.DataTimeout
	return sc
}

// security is Result.Security and Result.TLS of the open session.
func (s *session) security() (security, tlsDesc string) {
	if s.tlsConn == nil {
		if s.t.pol.label == SecuritySmarthost {
			return SecuritySmarthost, "none"
		}
		return SecurityNone, "none"
	}
	tlsDesc = tlsString(s.tlsConn.ConnectionState())
	switch {
	case s.t.pol.label == SecuritySmarthost:
		return SecuritySmarthost, tlsDesc
	case s.v.authenticated() && len(s.t.pol.dane) > 0:
		return SecurityDANE, tlsDesc
	case s.v.authenticated() && s.t.pol.label == SecurityMTASTS:
		return SecurityMTASTS, tlsDesc
	}
	return SecuritySTARTTLS, tlsDesc
}

// quitTimeout bounds the wait for QUIT's reply, which changes nothing.
const quitTimeout = 10 * time.Second

// quit ends the session politely; its reply does not matter.
func (s *session) quit() { s.quitWithin(quitTimeout) }

func (s *session) quitWithin(d time.Duration) {
	if s.sc != nil {
		s.sc.CommandTimeout = min(s.sc.CommandTimeout, d)
		s.sc.Quit()
	}
	s.close()
}

func (s *session) close() {
	s.stop()
	s.raw.Close()
}

// ctxErr prefers the context's error: "context deadline exceeded" says
// more than the "use of closed network connection" it caused.
func ctxErr(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return cerr
	}
	return err
}

// maxReplySize bounds one reply, all its lines: an EHLO reply is a few
// hundred octets, and RFC 5321 §4.5.3.1.5 allows 512 per line.
const maxReplySize = 64 << 10

var errReplyTooLong = errors.New("reply longer than 64 KiB")

// replyLimit caps what the server may send between two of our writes.
// go-smtp (through net/textproto) bounds a reply's line length but not
// its number of lines, so a hostile server could otherwise grow a
// reply until CommandTimeout. Owned by the session's goroutine.
type replyLimit struct {
	net.Conn
	n int
}

func (r *replyLimit) Write(p []byte) (int, error) {
	r.n = 0
	return r.Conn.Write(p)
}

func (r *replyLimit) Read(p []byte) (int, error) {
	if r.n >= maxReplySize {
		return 0, errReplyTooLong
	}
	p = p[:min(len(p), maxReplySize-r.n)]
	n, err := r.Conn.Read(p)
	r.n += n
	return n, err
}
