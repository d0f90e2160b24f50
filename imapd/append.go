package imapd

import (
	"bytes"
	"fmt"
	"io"
	"time"

	"github.com/emersion/go-imap/v2"

	"abox/imapd/wire"
)

// literalReader is an APPEND message read whole by the command reader.
type literalReader struct {
	*bytes.Reader
	n int64
}

func (l literalReader) Size() int64 { return l.n }

// cmdAppend answers APPEND (RFC 9051 §6.3.12) with APPENDUID (RFC 4315).
// The message's literal was read with the command, its size checked
// against the account's limit before a byte of it was.
func cmdAppend(c *conn, _ string, a *wire.Args, _ bool) status {
	if !a.SP() {
		return badArgs(a)
	}
	name, ok, bad := c.mailboxArg(a)
	if !ok {
		return bad
	}
	if !a.SP() {
		return badArgs(a)
	}
	o := &imap.AppendOptions{}
	if a.Peek() == '(' {
		if !a.List(true, func() bool {
			f, ok := a.Flag(false)
			o.Flags = append(o.Flags, imap.Flag(f))
			return ok
		}) || !a.SP() {
			return badArgs(a)
		}
	}
	if a.Peek() == '"' {
		t, ok := a.Quoted()
		if !ok || !a.SP() {
			return badArgs(a)
		}
		d, err := time.Parse("_2-Jan-2006 15:04:05 -0700", t)
		if err != nil {
			return status{"BAD", "", fmt.Sprintf("bad date-time %q", t)}
		}
		o.Time = d
	}
	data, _, ok := a.Literal()
	if !ok || a.End() != nil {
		return badArgs(a)
	}
	res, err := c.sess.Append(name, literalReader{bytes.NewReader(data), int64(len(data))}, o)
	if err != nil {
		return answer("APPEND", err)
	}
	return okWith(fmt.Sprintf("APPENDUID %d %d", res.UIDValidity, res.UID), "APPEND completed")
}

// Append answers APPEND (RFC 9051 §6.3.12) with APPENDUID. The size and
// quota are checked from the literal's announced length before a byte of
// it is kept.
func (s *session) Append(mailbox string, r imap.LiteralReader, options *imap.AppendOptions) (*imap.AppendData, error) {
	done, err := s.enter("APPEND")
	defer done()
	if err != nil {
		return nil, err
	}
	if err := validFlags(options.Flags); err != nil {
		return nil, err
	}
	size := r.Size()
	if err := s.srv.cfg.Policy.CheckAppend(s.acct, size); err != nil {
		return nil, noFor(err, s.log)
	}
	mb, err := s.srv.cfg.Store.MailboxByName(s.acct.ID, mailbox)
	if err != nil {
		return nil, tryCreate(err, s.log)
	}
	var buf bytes.Buffer
	buf.Grow(int(size))
	if _, err := io.Copy(&buf, io.LimitReader(r, size)); err != nil {
		return nil, err
	}
	date := options.Time
	if date.IsZero() {
		date = s.srv.cfg.Policy.Now()
	}
	ctx, cancel := s.ctx()
	defer cancel()
	res, err := s.srv.cfg.Policy.Append(ctx, s.acct, mb.Name, storeFlags(options.Flags), date, buf.Bytes())
	if err != nil {
		return nil, tryCreate(err, s.log)
	}
	return &imap.AppendData{UID: imap.UID(res.UID), UIDValidity: res.UIDValidity}, nil
}
