package outbound

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/textproto"
	"strings"
	"time"
)

// go-smtp v0.26.0's Client has no exported StartTLS: it offers STARTTLS
// only through NewClientStartTLS/DialStartTLS, which greet and EHLO
// themselves and, when STARTTLS is not advertised, fail and close the
// connection. Opportunistic TLS needs the EHLO reply first and the same
// connection afterwards either way. So the first client greets and says
// EHLO, this file sends STARTTLS on the raw connection and does the
// handshake, and a second go-smtp client speaks over TLS. That client
// insists on reading a 220 greeting, which a server does not send after
// STARTTLS (RFC 3207 §4.2), so greetedConn supplies it.

// startTLS sends STARTTLS (RFC 3207 §4) and, on 220, does the handshake
// under s.t.pol and says EHLO again (§4.2: the client MUST discard what
// it learned before TLS). A refusal of the command leaves the session in
// plaintext unless TLS is required.
func (s *session) startTLS(ctx context.Context) *hostFailure {
	c, t := s.c, s.t
	s.raw.SetDeadline(time.Now().Add(c.cfg.CommandTimeout))
	if _, err := io.WriteString(s.raw, "STARTTLS\r\n"); err != nil {
		return fail(s.errOutcome(ctx, err))
	}
	// A fresh reader: whatever the server may have sent after its EHLO
	// reply stays unread in go-smtp's buffer and is dropped with it, so
	// that nothing injected before TLS is taken as said under TLS (the
	// STARTTLS command injection of CVE-2011-0411, the client's side).
	// Nothing follows the 220 before our ClientHello, so the buffer
	// cannot swallow TLS bytes.
	_, _, err := textproto.NewReader(bufio.NewReader(&replyLimit{Conn: s.raw})).ReadResponse(220)
	var refused *textproto.Error
	switch {
	case errors.As(err, &refused):
		s.raw.SetDeadline(time.Time{})
		if t.pol.requireTLS {
			s.quit()
			return fail(t.pol.refuse(t.host, "STARTTLS refused by "+t.String()+": "+oneLine(refused.Msg)))
		}
		c.log.Info("outbound: STARTTLS refused, going on in plaintext", "host", t.host, "addr", t.addr.String(), "reply", oneLine(refused.Msg))
		return nil
	case err != nil:
		return fail(s.errOutcome(ctx, err))
	}
	tc := tls.Client(s.raw, c.tlsConfig(t.host, t.pol, &s.v))
	if err := tc.HandshakeContext(ctx); err != nil {
		err = ctxErr(ctx, err)
		if s.v.checked && s.v.err != nil {
			return fail(t.pol.refuse(t.host, "certificate of "+t.String()+" not valid: "+s.v.err.Error()))
		}
		if t.pol.requireTLS {
			return fail(t.pol.refuse(t.host, "TLS handshake with "+t.String()+" failed: "+err.Error()))
		}
		o := local(451, "4.7.5", "TLS handshake with "+t.String()+" failed: "+err.Error())
		o.RemoteMTA = t.host
		return &hostFailure{o: o, plainRetry: ctx.Err() == nil}
	}
	s.raw.SetDeadline(time.Time{})
	if s.v.checked && s.v.err != nil {
		// Only an unenforced check gets here: MTA-STS testing (RFC 8461
		// §5: deliver, and report the failure).
		c.log.Warn("outbound: certificate check failed, delivering anyway (MTA-STS testing)", "host", t.host, "addr", t.addr.String(), "err", s.v.err)
	}
	s.tlsConn = tc
	s.sc = c.newSMTP(&greetedConn{Conn: tc, greeting: strings.NewReader("220 TLS\r\n")})
	if err := s.sc.Hello(c.cfg.Hostname); err != nil {
		return fail(s.errOutcome(ctx, err))
	}
	return nil
}

// greetedConn reads greeting before the connection's own bytes. Owned
// by the go-smtp client's single reader.
type greetedConn struct {
	net.Conn
	greeting *strings.Reader
}

func (g *greetedConn) Read(p []byte) (int, error) {
	if g.greeting.Len() > 0 {
		return g.greeting.Read(p)
	}
	return g.Conn.Read(p)
}
