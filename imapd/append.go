package imapd

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/emersion/go-imap/v2"

	"abox/imapd/wire"
	"abox/store"
)

// literalReader is an APPEND message read whole by the command reader.
type literalReader struct {
	*bytes.Reader
	n int64
}

func (l literalReader) Size() int64 { return l.n }

// appendCaps are the APPEND extensions built here.
var appendCaps = []string{"MULTIAPPEND", "CATENATE"}

// cmdAppend answers APPEND (RFC 9051 §6.3.12) with APPENDUID (RFC
// 4315), MULTIAPPEND (RFC 3502: several messages, stored all or none)
// and CATENATE (RFC 4469: a message made of TEXT literals and URLs of
// the user's own messages). The literals were read with the command,
// each checked against the account's limit before a byte of it was
// (appendLiteral).
//
//	append         = "APPEND" SP mailbox 1*append-message
//	append-message = append-opts SP append-data
//	append-opts    = [SP flag-list] [SP date-time]
//	append-data    = literal / literal8 / "CATENATE" SP "(" cat-part *(SP cat-part) ")"
func cmdAppend(c *conn, _ string, a *wire.Args, _ bool) status {
	if !a.SP() {
		return badArgs(a)
	}
	name, ok, bad := c.mailboxArg(a)
	if !ok {
		return bad
	}
	var msgs []appendMessage
	for a.Accept(' ') {
		m, badMsg := appendMessageArg(a)
		if badMsg != nil {
			return *badMsg
		}
		msgs = append(msgs, m)
	}
	if len(msgs) == 0 || a.End() != nil {
		return badArgs(a)
	}
	for _, m := range msgs {
		// RFC 3502 §6.3.11: a zero-length message literal is an error,
		// and is how a client cancels an APPEND it has begun.
		if m.parts == nil && len(m.data) == 0 {
			return status{"NO", "", "APPEND cancelled: a message of zero length"}
		}
	}
	if len(msgs) == 1 && msgs[0].parts == nil {
		m := msgs[0]
		res, err := c.sess.Append(name, literalReader{bytes.NewReader(m.data), int64(len(m.data))}, &imap.AppendOptions{Flags: m.flags, Time: m.date})
		if err != nil {
			return answer("APPEND", err)
		}
		return okWith(fmt.Sprintf("APPENDUID %d %d", res.UIDValidity, res.UID), "APPEND completed")
	}
	res, err := c.sess.appendMessages(name, msgs)
	if err != nil {
		return answer("APPEND", err)
	}
	uids := fmt.Sprint(res[0].UID)
	if last := res[len(res)-1].UID; last != res[0].UID {
		uids += fmt.Sprintf(":%d", last) // one transaction: consecutive UIDs
	}
	return okWith(fmt.Sprintf("APPENDUID %d %s", res[0].UIDValidity, uids), "APPEND completed")
}

// appendMessage is one message of an APPEND: its options and either its
// literal or, for CATENATE, its parts.
type appendMessage struct {
	flags []imap.Flag
	date  time.Time
	data  []byte
	parts []catPart
}

// appendMessageArg reads append-opts SP append-data (after the space
// before them); bad is the answer when they cannot be read.
func appendMessageArg(a *wire.Args) (m appendMessage, bad *status) {
	fail := func() (appendMessage, *status) { st := badArgs(a); return m, &st }
	if a.Peek() == '(' {
		if !a.List(true, func() bool {
			f, ok := a.Flag(false)
			m.flags = append(m.flags, imap.Flag(f))
			return ok
		}) || !a.SP() {
			return fail()
		}
	}
	if a.Peek() == '"' {
		t, ok := a.Quoted()
		if !ok || !a.SP() {
			return fail()
		}
		d, err := time.Parse("_2-Jan-2006 15:04:05 -0700", t)
		if err != nil {
			return m, &status{"BAD", "", fmt.Sprintf("bad date-time %q", t)}
		}
		m.date = d
	}
	if a.AcceptWord("CATENATE") {
		var ok bool
		if m.parts, ok = catenateArg(a); !ok {
			return fail()
		}
		return m, nil
	}
	var ok bool
	if m.data, _, ok = a.Literal(); !ok {
		return fail()
	}
	return m, nil
}

// appendBudget counts the literals of the APPEND being read; the
// connection resets it before reading each command.
type appendBudget struct {
	bytes    int64
	literals int
}

// maxAppendCommand bounds the bytes of one APPEND with several literals
// (MULTIAPPEND, CATENATE's TEXT parts, and the messages CATENATE
// builds), when the account's message size limit is smaller: the
// command is held in memory until it is read whole and stored in one
// transaction.
const maxAppendCommand = 64 << 20

// appendCommandBound is the bound on the bytes of one APPEND with
// several literals or messages, for an account whose messages are
// limited to limit bytes: maxAppendCommand, or one message if that is
// larger, so the largest single message always fits.
func appendCommandBound(limit int64) int64 { return max(maxAppendCommand, limit) }

// appendLiteral decides on a literal of an APPEND before a byte of it is
// read: each within the account's message size limit (APPENDLIMIT, NO
// [TOOBIG]), and, from the second literal of the command on, their sum
// within appendCommandBound (NO [LIMIT]) and the storage the account
// has left (NO [OVERQUOTA]). A synchronizing literal refused here is
// never requested and the command ends; a refused non-synchronizing
// one ends the connection (conn.readError): RFC 3502 §6.3.11 lets the
// server either read all the literals or close.
func (c *conn) appendLiteral(size int64) error {
	if limit := int64(c.sess.appendLimit()); limit > 0 && size > limit {
		return errTooBig{limit}
	}
	b := &c.appendBudget
	b.bytes += size
	b.literals++
	if b.literals == 1 {
		return nil // one message: as large as the limit allows, quota checked when stored
	}
	if limit := appendCommandBound(int64(c.sess.appendLimit())); b.bytes > limit {
		return appendRefused{imap.ResponseCodeLimit, fmt.Sprintf("one APPEND may carry at most %d bytes", limit)}
	}
	// The account as it is now (a quota raised or lowered meanwhile),
	// as the command will see it when it runs.
	acct, err := c.sess.srv.cfg.Store.AccountByID(c.sess.acct.ID)
	if err != nil {
		return nil // the command answers for it
	}
	room, err := c.sess.srv.cfg.Policy.AppendRoom(&acct)
	if err == nil && room >= 0 && b.bytes > room {
		return appendRefused{imap.ResponseCodeOverQuota, "the messages would pass the mailbox's quota"}
	}
	return nil
}

// appendRefused is a literal of an APPEND refused with a response code
// other than TOOBIG.
type appendRefused struct {
	code imap.ResponseCode
	text string
}

func (e appendRefused) Error() string { return e.text }

// appendRefusedCode is the response code of a refused APPEND literal,
// or "" when it is not an appendRefused.
func appendRefusedCode(err error) string {
	var ar appendRefused
	if errors.As(err, &ar) {
		return string(ar.code)
	}
	return ""
}

// appendMessages stores the messages of a MULTIAPPEND, or a CATENATE
// message, in one transaction: all of them or none (RFC 3502 §6.3.11).
// CATENATE's parts are resolved first, so a bad URL stores nothing.
func (s *session) appendMessages(mailbox string, msgs []appendMessage) ([]store.Delivered, error) {
	done, err := s.enter("APPEND")
	defer done()
	if err != nil {
		return nil, err
	}
	mb, err := s.srv.cfg.Store.MailboxByName(s.acct.ID, mailbox)
	if err != nil {
		return nil, tryCreate(err, s.log)
	}
	limit := int64(s.appendLimit())
	total := int64(0)
	src := &urlSource{}
	out := make([]store.AppendMessage, len(msgs))
	for i, m := range msgs {
		if err := validFlags(m.flags); err != nil {
			return nil, err
		}
		body := m.data
		if m.parts != nil {
			if body, err = s.catenate(m.parts, limit, src); err != nil {
				return nil, err
			}
		}
		if total += int64(len(body)); total > appendCommandBound(limit) {
			return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeLimit,
				Text: fmt.Sprintf("one APPEND may carry at most %d bytes", appendCommandBound(limit))}
		}
		date := m.date
		if date.IsZero() {
			date = s.srv.cfg.Policy.Now()
		}
		out[i] = store.AppendMessage{Body: body, Flags: storeFlags(m.flags), InternalDate: date}
	}
	ctx, cancel := s.ctx()
	defer cancel()
	res, err := s.srv.cfg.Policy.AppendMessages(ctx, s.acct, mb.Name, out)
	if err != nil {
		return nil, tryCreate(err, s.log)
	}
	return res, nil
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
