package imapd

import (
	"log/slog"
	"strings"

	"abox/accounts"
	"abox/imapd/wire"
)

// ID (RFC 2971): the client names itself, the server answers in kind.
// The client's fields are logged, kept on the session and put into the
// account's login history (at login, or when sent after it); all are
// bounded as RFC 2971 §3.3 bounds a client:
// at most 30 pairs, field names of 30 octets, values of 1024.

const (
	maxIDPairs    = 30
	maxIDField    = 30
	maxIDValueLen = 1024
)

// IDField is one field a client sent in ID; Nil marks a NIL value.
type IDField struct {
	Name, Value string
	Nil         bool
}

// cmdID answers ID in any state (RFC 2971 §3.1).
func cmdID(c *conn, _ string, a *wire.Args, _ bool) status {
	if !a.SP() {
		return badArgs(a)
	}
	fields, ok := idParams(a)
	if !ok || a.End() != nil {
		return badArgs(a)
	}
	if c.sess.acct != nil {
		done, err := c.sess.enter("ID")
		done()
		if err != nil {
			return answer("ID", err)
		}
	}
	c.sess.clientID = fields
	if len(fields) > 0 {
		attrs := make([]any, 0, len(fields))
		for _, f := range fields {
			if !f.Nil {
				attrs = append(attrs, slog.String(f.Name, f.Value))
			}
		}
		c.sess.log.Info("client ID", slog.Group("id", attrs...))
		if c.sess.acct != nil {
			c.sess.noteClientID()
		}
	}
	c.w.Raw(`* ID ("name" "abox" "version" `).String(c.srv.version()).Raw(")").CRLF()
	return okWith("", "ID completed")
}

// clientString is the client's ID as one line for the login history:
// its name and version, else every field, bounded.
func clientString(fields []IDField) string {
	var name, version string
	var all []string
	for _, f := range fields {
		if f.Nil {
			continue
		}
		switch strings.ToLower(f.Name) {
		case "name":
			name = f.Value
		case "version":
			version = f.Value
		}
		all = append(all, f.Name+"="+f.Value)
	}
	s := strings.TrimSpace(name + " " + version)
	if s == "" {
		s = strings.Join(all, " ")
	}
	if len(s) > 200 {
		s = s[:200]
	}
	return strings.ToValidUTF8(s, "?")
}

// noteClientID puts the client's ID into the account's login history.
// A failure to record it is logged, never the client's problem.
func (s *session) noteClientID() {
	ctx, cancel := s.ctx()
	defer cancel()
	if err := s.srv.cfg.Policy.NoteClientID(ctx, s.acct.ID, accounts.ServiceIMAP, s.ip, clientString(s.clientID)); err != nil {
		s.log.Warn("client ID not recorded in the login history", "err", err)
	}
}

// idParams reads id-params-list: NIL or a list of field and value
// pairs. Pairs past the 30th are read and dropped; names and values are
// cut to RFC 2971's lengths.
func idParams(a *wire.Args) ([]IDField, bool) {
	if a.AcceptWord("NIL") {
		return nil, true
	}
	var fields []IDField
	ok := a.List(true, func() bool {
		name, ok := a.String()
		if !ok || !a.SP() {
			return false
		}
		v, isNil, ok := a.NString()
		if !ok {
			return false
		}
		if len(fields) < maxIDPairs {
			fields = append(fields, IDField{Name: cut(name, maxIDField), Value: cut(v, maxIDValueLen), Nil: isNil})
		}
		return true
	})
	return fields, ok
}

// cut shortens s to at most n bytes, not splitting a UTF-8 sequence.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}
