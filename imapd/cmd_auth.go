package imapd

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"time"

	"abox/imapd/wire"
)

// The commands of any state and of the not-authenticated state (RFC
// 9051 §6.1, §6.2), ENABLE, UNAUTHENTICATE, NAMESPACE and IDLE.

// capabilities lists what the session offers now: login only under TLS
// (LOGINDISABLED and no AUTH= before it), STARTTLS until then.
func (c *conn) capabilities() string {
	caps := []string{"IMAP4rev1", "IMAP4rev2", "LITERAL+", "SASL-IR", "ENABLE", "IDLE", "UTF8=ACCEPT",
		"ID"}
	if c.sess.acct == nil {
		if c.tls {
			caps = append(caps, "AUTH=PLAIN")
		} else {
			caps = append(caps, "LOGINDISABLED")
			if c.srv.cfg.TLS != nil {
				caps = append(caps, "STARTTLS")
			}
		}
		return strings.Join(caps, " ")
	}
	caps = append(caps, "NAMESPACE", "UIDPLUS", "MOVE", "UNSELECT", "SPECIAL-USE", "ESEARCH", "SEARCHRES",
		"LIST-EXTENDED", "LIST-STATUS", "STATUS=SIZE", "BINARY", "CHILDREN", "UNAUTHENTICATE")
	caps = append(caps, "SORT", "SORT=DISPLAY", "ESORT", "THREAD=ORDEREDSUBJECT", "THREAD=REFERENCES", "WITHIN")
	caps = append(caps, "CONTEXT=SEARCH", "CONTEXT=SORT")
	caps = append(caps, "CONDSTORE", "QRESYNC")
	caps = append(caps, quotaCaps...)
	caps = append(caps, objectIDCaps...)
	caps = append(caps, previewCaps...)
	// APPENDLIMIT without a value (RFC 7889 §2): the limit is the
	// account's class's, and STATUS (APPENDLIMIT) tells it.
	caps = append(caps, "APPENDLIMIT")
	caps = append(caps, "COMPRESS=DEFLATE")
	caps = append(caps, appendCaps...)
	caps = append(caps, createCaps...)
	caps = append(caps, "NOTIFY")
	return strings.Join(caps, " ")
}

func cmdCapability(c *conn, _ string, a *wire.Args, _ bool) status {
	if a.End() != nil {
		return badArgs(a)
	}
	c.w.Raw("* CAPABILITY ").Raw(c.capabilities()).CRLF()
	return okWith("", "CAPABILITY completed")
}

func cmdNoop(c *conn, _ string, a *wire.Args, _ bool) status {
	if a.End() != nil {
		return badArgs(a)
	}
	if c.sess.acct != nil {
		done, err := c.sess.enter("NOOP")
		done()
		if err != nil {
			return answer("NOOP", err)
		}
		c.sess.syncFeed() // NOOP and CHECK report what any node committed (syncfeed.go)
	}
	return okWith("", "NOOP completed")
}

func cmdLogout(c *conn, _ string, a *wire.Args, _ bool) status {
	if a.End() != nil {
		return badArgs(a)
	}
	// Nothing of the mailbox after the BYE (RFC 3501 §6.1.3: BYE, then
	// the tagged OK): a client that read BYE has closed it already, and
	// imaptest counts updates there as numbering errors.
	_ = c.sess.Unselect()
	c.w.Raw("* BYE Logging out").CRLF()
	c.closing.Store(true)
	return okWith("", "LOGOUT completed")
}

// cmdStartTLS answers, flushes, then upgrades (RFC 9051 §6.2.1); it
// writes its own answer, since the next bytes are TLS.
func cmdStartTLS(c *conn, tag string, a *wire.Args, _ bool) status {
	if a.End() != nil {
		return badArgs(a)
	}
	if c.tls || c.srv.cfg.TLS == nil {
		return status{"BAD", "", "TLS is already active or not offered"}
	}
	c.writeStatus(tag, okWith("", "Begin TLS negotiation now"))
	if err := c.w.Flush(); err != nil {
		c.closing.Store(true)
		return status{}
	}
	if c.br.Buffered() > 0 {
		// Sent in clear after STARTTLS: never trusted (RFC 9051 §11.1).
		c.closing.Store(true)
		return status{}
	}
	if err := c.startTLS(); err != nil {
		c.closing.Store(true)
	}
	return status{} // answered
}

func cmdLogin(c *conn, _ string, a *wire.Args, _ bool) status {
	if !c.tls {
		return status{"NO", "PRIVACYREQUIRED", "LOGIN is allowed only under TLS (STARTTLS first)"}
	}
	var user, pass string
	ok := a.SP()
	if ok {
		user, ok = a.AString()
	}
	if ok {
		ok = a.SP()
	}
	if ok {
		pass, ok = a.AString()
	}
	if !ok || a.End() != nil {
		return badArgs(a)
	}
	return c.login(user, pass)
}

// login authenticates and answers with the capabilities of the new
// state (RFC 9051 §6.2.3).
func (c *conn) login(user, pass string) status {
	c.sess.idling.Unlock() // the password check may wait; nothing writes meanwhile
	err := c.sess.Login(user, pass)
	c.sess.idling.Lock()
	if err != nil {
		return answer("LOGIN", err)
	}
	return okWith("CAPABILITY "+c.capabilities(), "Logged in")
}

// cmdAuthenticate runs AUTHENTICATE PLAIN (RFC 9051 §6.2.2, RFC 4616),
// with an initial response (SASL-IR, RFC 4959) or after a continuation.
func cmdAuthenticate(c *conn, _ string, a *wire.Args, _ bool) status {
	if !a.SP() {
		return badArgs(a)
	}
	mech, ok := a.Atom()
	if !ok {
		return badArgs(a)
	}
	if !strings.EqualFold(mech, "PLAIN") {
		return status{"NO", "", "Unsupported mechanism; use PLAIN"}
	}
	if !c.tls {
		return status{"NO", "PRIVACYREQUIRED", "AUTHENTICATE is allowed only under TLS (STARTTLS first)"}
	}
	var resp string
	if a.Accept(' ') {
		r, ok := a.Atom()
		if !ok {
			return badArgs(a)
		}
		resp = r
	} else {
		c.w.Raw("+ ").CRLF()
		if err := c.w.Flush(); err != nil {
			c.closing.Store(true)
			return status{}
		}
		c.nc.SetReadDeadline(time.Now().Add(preLoginTimeout))
		line, err := readLine(c, preLoginLiteral)
		if err != nil {
			c.closing.Store(true)
			return status{}
		}
		resp = line
	}
	if a.End() != nil {
		return badArgs(a)
	}
	if resp == "*" {
		return status{"BAD", "", "Authentication cancelled"}
	}
	raw := []byte{}
	if resp != "=" {
		var err error
		if raw, err = base64.StdEncoding.DecodeString(resp); err != nil {
			return status{"BAD", "", "Invalid base64"}
		}
	}
	parts := bytes.Split(raw, []byte{0})
	if len(parts) != 3 {
		return status{"NO", "AUTHENTICATIONFAILED", "Malformed credentials"}
	}
	authz, user, pass := string(parts[0]), string(parts[1]), string(parts[2])
	if authz != "" && !strings.EqualFold(authz, user) {
		// RFC 4616 §2: acting as another identity is not supported.
		return status{"NO", "AUTHORIZATIONFAILED", "Authorization identity not supported"}
	}
	return c.login(user, pass)
}

// readLine reads one line from the client (a SASL response, DONE),
// without its line end, refusing more than max bytes.
func readLine(c *conn, max int) (string, error) {
	var line []byte
	for {
		frag, err := c.br.ReadSlice('\n')
		line = append(line, frag...)
		if len(line) > max {
			return "", errors.New("line too long")
		}
		if err == nil {
			break
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return "", err
		}
	}
	return strings.TrimRight(string(line), "\r\n"), nil
}

func cmdEnable(c *conn, _ string, a *wire.Args, _ bool) status {
	var enabled []string
	for !a.AtEnd() {
		if !a.SP() {
			return badArgs(a)
		}
		ext, ok := a.Atom()
		if !ok {
			return badArgs(a)
		}
		switch strings.ToUpper(ext) {
		case "IMAP4REV2":
			if !c.rev2 {
				c.rev2, c.utf8 = true, true
				enabled = append(enabled, "IMAP4rev2")
			}
		case "UTF8=ACCEPT":
			if !c.utf8Asked {
				c.utf8, c.utf8Asked = true, true
				enabled = append(enabled, "UTF8=ACCEPT")
			}
		case "CONDSTORE", "QRESYNC":
			enabled = append(enabled, c.enableRFC7162(strings.ToUpper(ext) == "QRESYNC")...)
		}
	}
	c.w.UTF8 = c.utf8
	c.w.Raw("* ENABLED")
	for _, e := range enabled {
		c.w.SP().Raw(e)
	}
	c.w.CRLF()
	return okWith("", "ENABLE completed")
}

func cmdUnauthenticate(c *conn, _ string, a *wire.Args, _ bool) status {
	if a.End() != nil {
		return badArgs(a)
	}
	c.sess.Unauthenticate()
	c.rev2, c.utf8, c.utf8Asked, c.w.UTF8 = false, false, false, false
	c.sess.condstore, c.sess.qresync = false, false
	return okWith("", "UNAUTHENTICATE completed")
}

func cmdNamespace(c *conn, _ string, a *wire.Args, _ bool) status {
	if a.End() != nil {
		return badArgs(a)
	}
	done, err := c.sess.enter("NAMESPACE")
	done()
	if err != nil {
		return answer("NAMESPACE", err)
	}
	c.w.Raw(`* NAMESPACE (("" "/")) NIL NIL`).CRLF()
	return okWith("", "NAMESPACE completed")
}

// cmdIdle answers with a continuation and sends updates as they are
// committed until the client's DONE (RFC 2177). The command returns
// once the pusher is armed, and the connection's loop waits for DONE
// holding no lock (and no buffer, connwait.go): the pusher writes under
// the session's lock. finishIdle answers it.
func cmdIdle(c *conn, tag string, a *wire.Args, _ bool) status {
	if a.End() != nil {
		return badArgs(a)
	}
	s := c.sess
	done, err := s.enter("IDLE")
	done()
	if err != nil {
		return answer("IDLE", err)
	}
	s.syncFeed()
	if s.sel != nil {
		if err := s.flush(&UpdateWriter{w: c.w}, true); err != nil {
			return status{}
		}
	}
	c.w.Raw("+ idling").CRLF()
	// The output buffer goes back while the session idles (possibly
	// hours): updates take one when they come.
	if err := c.release(); err != nil {
		c.closing.Store(true)
		return status{}
	}
	s.idleW = &UpdateWriter{w: c.w, c: c}
	s.armed.Store(true)
	if s.pushPending(false) {
		s.wake() // the pusher waits for the session's lock, held until the command returns
	}
	c.idleTag = tag
	return status{} // answered by finishIdle
}
