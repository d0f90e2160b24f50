package imapd

import (
	"log/slog"
	"runtime/debug"
	"sync"

	"abox/imapd/wire"
)

// ID (RFC 2971): the client names itself, the server answers in kind.
// The client's fields are logged and kept on the session (for the login
// history to come); both are bounded as RFC 2971 §3.3 bounds a client:
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

// serverVersion is abox's version for ID: the module version the binary
// was built as, else its VCS revision, else "devel".
var serverVersion = sync.OnceValue(func() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			return s.Value[:12]
		}
	}
	return "devel"
})

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
	}
	c.w.Raw(`* ID ("name" "abox" "version" `).String(serverVersion()).Raw(")").CRLF()
	return okWith("", "ID completed")
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
