package outbound

import (
	"bufio"
	"context"
	"io"
	"net/textproto"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
)

// Connection reuse (Config.MaxIdlePerDomain and the rest). A session
// that ends its transaction healthy, the final reply read, gets RSET
// and is parked in Client.idle under its destination; the next Deliver
// to that destination takes it, if it can carry the message, instead
// of resolving and connecting. A parked session belongs to the cache;
// a taken one to the Deliver that took it, alone.

// Bounds of the waits of reuse: RSET as Postfix's smtp_rset_timeout;
// the QUIT of an idle session short, since nothing depends on its reply
// and a silent server must not hold up the janitor or Close.
const (
	rsetTimeout     = 20 * time.Second
	idleQuitTimeout = 2 * time.Second
)

// sessionInfo is what a session showed once greeted: what Result
// reports and what a message may need. Fixed when open returns (the
// EHLO reply holds for the session's life), so a parked session is
// matched without touching its connection.
type sessionInfo struct {
	host, addr, tls, security   string
	dsn, smtputf8, eightBitMIME bool
	// requireTLS: requireTLSCheck passes, so a REQUIRETLS message
	// (RFC 8689 §4.2.1) may use this session.
	requireTLS bool
	// maxSize is the SIZE limit (RFC 1870), 0 when none.
	maxSize int
}

func (s *session) describe() sessionInfo {
	i := sessionInfo{
		host: s.t.host, addr: s.t.addr.String(),
		dsn: s.has("DSN"), smtputf8: s.has("SMTPUTF8"), eightBitMIME: s.has("8BITMIME"),
		requireTLS: s.requireTLSCheck() == nil,
	}
	i.security, i.tls = s.security()
	if n, ok := s.sc.MaxMessageSize(); ok {
		i.maxSize = n
	}
	return i
}

// fits says a parked session can carry env as a fresh connection would:
// nothing the message needs is missing, so reusing it never turns into
// a refusal that another connection might have avoided. A message with
// DSN parameters waits for a session that passes them on (RFC 3461).
func (i sessionInfo) fits(env *envelope) bool {
	switch {
	case env.mail.RequireTLS && !i.requireTLS,
		env.needUTF8 && !i.smtputf8,
		env.mail.Body == smtp.Body8BitMIME && !i.eightBitMIME,
		i.maxSize > 0 && len(env.body) > i.maxSize,
		env.dsn && !i.dsn:
		return false
	}
	return true
}

// cacheKey is the destination whose sessions may carry a message for
// domain: the smarthost takes every domain's mail.
func (c *Client) cacheKey(domain string) string {
	if c.smarthost.host != "" {
		// A space is in no domain name.
		return "smarthost " + c.cfg.Smarthost
	}
	return domain
}

// deliverReused runs the transaction on an idle session to key, when
// one fits env, and reports whether it did; false leaves res as it
// found it, for a fresh connection. A session the server closed while
// it was idle (its timeout, RFC 5321 §4.5.3.2.7) is found out at MAIL,
// as an I/O error or the 421 it SHOULD send before closing (§3.8):
// nothing was accepted, so the message simply goes on a new
// connection; no outcome comes from it, and nothing can be sent twice.
func (c *Client) deliverReused(ctx context.Context, domain, key string, env *envelope, res *Result) bool {
	if c.idle == nil {
		return false
	}
	s := c.idle.take(key, env, time.Now())
	if s == nil {
		return false
	}
	s.watch(ctx)
	i := s.info
	res.Host, res.Addr, res.TLS, res.Security, res.SupportsDSN = i.host, i.addr, i.tls, i.security, i.dsn
	end := s.transaction(ctx, env, res.Recipients)
	if end == txnMailLost && ctx.Err() == nil {
		c.log.Info("outbound: idle session closed by the server, reconnecting", "domain", domain, "host", i.host, "addr", i.addr, "messages", s.uses)
		s.close()
		setAll(res.Recipients, env.rcpts, local(451, "4.3.0", "not attempted"))
		res.Host, res.Addr, res.TLS, res.Security, res.SupportsDSN = "", "", "none", SecurityNone, false
		return false
	}
	c.release(key, s, end == txnDone)
	c.logAttempt(domain, i.host, i.addr, res, "", "reused", true)
	return true
}

// release ends one Deliver's use of s: parked for the next message
// when healthy, young enough and accepted by the cache; otherwise QUIT.
func (c *Client) release(key string, s *session, healthy bool) {
	s.uses++
	if !healthy || c.idle == nil || s.uses >= c.cfg.ReuseLimit || time.Since(s.opened) >= c.cfg.ReuseTime {
		s.quit()
		return
	}
	// RSET (RFC 5321 §4.1.1.5) ends whatever the transaction left (MAIL
	// taken but every RCPT refused, say) and proves the server still
	// answers before the session waits; a session that never sent MAIL
	// needs neither.
	if s.dirty {
		if err := s.rset(); err != nil {
			c.log.Info("outbound: RSET failed, not reusing the session", "host", s.t.host, "addr", s.t.addr.String(), "err", err)
			s.quit()
			return
		}
		s.dirty = false
	}
	if !s.stop() {
		// The caller's context ended: its watcher is closing the
		// connection.
		s.close()
		return
	}
	evicted, ok := c.idle.put(key, s, time.Now())
	if !ok {
		// Closed meanwhile.
		s.quit()
		return
	}
	closeIdle(evicted)
}

// rset sends RSET and reads its reply on the connection go-smtp speaks
// over. go-smtp v0.26.0's Client.Reset also forgets the EHLO (it clears
// didHello), so its next command would say EHLO again: one more round
// trip per message, and the extensions learned anew under the session
// already matched against them. As for STARTTLS (starttls.go), the
// reply is read with a reader of its own: after the final reply to
// DATA a server sends nothing unasked, so go-smtp's buffer is empty and
// stays in step.
func (s *session) rset() error {
	conn := s.raw
	if s.tlsConn != nil {
		conn = s.tlsConn
	}
	conn.SetDeadline(time.Now().Add(min(s.c.cfg.CommandTimeout, rsetTimeout)))
	defer conn.SetDeadline(time.Time{})
	if _, err := io.WriteString(conn, "RSET\r\n"); err != nil {
		return err
	}
	_, _, err := textproto.NewReader(bufio.NewReader(&replyLimit{Conn: conn})).ReadResponse(250)
	return err
}

func (c *Client) startReuse() {
	c.idle = newIdleCache(c.cfg)
	c.stopJanitor, c.janitorDone = make(chan struct{}), make(chan struct{})
	go c.janitor()
}

// janitor closes expired idle sessions until Close. It looks four
// times per IdleTimeout (or ReuseTime, if shorter), so a session
// outstays either by a quarter at most.
func (c *Client) janitor() {
	defer close(c.janitorDone)
	t := time.NewTicker(max(min(c.cfg.IdleTimeout, c.cfg.ReuseTime)/4, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-c.stopJanitor:
			return
		case <-t.C:
			closeIdle(c.idle.expire(time.Now()))
		}
	}
}

// Close closes every idle session, with QUIT, and stops the goroutine
// that expires them; it returns when they are closed. A Deliver running
// meanwhile, or called later, still works: its session then ends with
// its message, as with DisableReuse. Close is safe to call more than
// once.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		if c.idle == nil {
			return
		}
		close(c.stopJanitor)
		<-c.janitorDone
		closeIdle(c.idle.close())
	})
	return nil
}

// closeIdle QUITs sessions nobody uses, all at once so that one silent
// server does not hold up the rest: at most MaxIdle goroutines, each
// done within idleQuitTimeout, waited for here.
func closeIdle(ss []*session) {
	var wg sync.WaitGroup
	for _, s := range ss {
		wg.Go(func() { s.quitWithin(idleQuitTimeout) })
	}
	wg.Wait()
}
