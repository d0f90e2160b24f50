package smtpd

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"abox/accounts"
	"abox/policy"
)

// cmdMail starts a transaction (RFC 5321 §4.1.1.2).
func (c *conn) cmdMail(arg string) {
	if !c.needHello() {
		return
	}
	if c.tx != nil {
		c.writeReply(reply{503, "5.5.1", "Nested MAIL command"})
		return
	}
	if c.submission() {
		if c.tls == nil {
			c.writeReply(reply{530, "5.7.0", "Must issue a STARTTLS command first"})
			return
		}
		if c.ident == nil {
			c.writeReply(reply{530, "5.7.0", "Authentication required"})
			return
		}
		// A block, deletion or password change since AUTH ends the
		// session (user agreement 2.7-2.8): a thief's open connection
		// must not outlive the password it stole.
		if c.ident.Account != nil {
			acct, err := c.s.cfg.Policy.Recheck(c.ident, accounts.ServiceSubmission)
			var refusal *policy.Refusal
			if err != nil && !errors.As(err, &refusal) {
				// The account could not be read (the storage is out
				// of reach): no decision, the session goes on.
				c.writeReply(replyFor(err, c.log))
				return
			}
			if err != nil {
				c.log.Info("submission session ends", "reason", policy.ReasonOf(err))
				c.writeReply(reply{421, "4.7.0", "Session ended: " + policy.ReasonOf(err) + ", closing connection"})
				c.closed = true
				return
			}
			c.ident.Account = acct
		}
	}
	p, err := parsePath(arg, "FROM:")
	if err != nil {
		c.badCommand(reply{501, "5.5.4", "Syntax: MAIL FROM:<address> [parameters]"})
		return
	}
	tx := &transaction{from: p.addr}
	for k, v := range p.params {
		switch k {
		case "SIZE":
			if tx.declaredSize, err = parseSizeParam(v); err != nil {
				c.badCommand(reply{501, "5.5.4", "SIZE takes a number of octets"})
				return
			}
		case "BODY":
			if !strings.EqualFold(v, "7BIT") && !strings.EqualFold(v, "8BITMIME") {
				c.badCommand(reply{501, "5.5.4", "BODY must be 7BIT or 8BITMIME"})
				return
			}
			tx.eightBit = strings.EqualFold(v, "8BITMIME")
		case "RET":
			if !c.offersDSN() {
				c.badCommand(reply{501, "5.5.4", "Unsupported MAIL parameter " + k})
				return
			}
			if tx.ret = strings.ToUpper(v); tx.ret != "FULL" && tx.ret != "HDRS" {
				c.badCommand(reply{501, "5.5.4", "RET must be FULL or HDRS"})
				return
			}
		case "ENVID":
			if !c.offersDSN() {
				c.badCommand(reply{501, "5.5.4", "Unsupported MAIL parameter " + k})
				return
			}
			id, ok := decodeXtext(v)
			if !ok || id == "" || len(v) > 100 {
				c.badCommand(reply{501, "5.5.4", "ENVID must be xtext of at most 100 characters"})
				return
			}
			tx.envid = id
		case "REQUIRETLS":
			if !c.offersRequireTLS() || v != "" {
				c.badCommand(reply{501, "5.5.4", "REQUIRETLS takes no value and needs TLS"})
				return
			}
			tx.requireTLS = true
		case "SMTPUTF8":
			if v != "" {
				c.badCommand(reply{501, "5.5.4", "SMTPUTF8 takes no value"})
				return
			}
			tx.utf8 = true
		case "AUTH":
			// RFC 4954 §5: accepted and not trusted.
		default:
			c.badCommand(reply{501, "5.5.4", "Unsupported MAIL parameter " + k})
			return
		}
	}
	if tx.from != "" && !validMailbox(tx.from, tx.utf8) {
		if !tx.utf8 && !isASCII(tx.from) {
			c.writeReply(reply{553, "5.6.7", "Non-ASCII address needs SMTPUTF8"})
			return
		}
		c.badCommand(reply{501, "5.1.7", "Invalid sender address"})
		return
	}
	if largest := c.s.cfg.Policy.LargestMessageSize(); largest > 0 && tx.declaredSize > largest {
		c.refuse(fmt.Errorf("declared size: %w", &policy.Refusal{Kind: policy.ErrTooBig, Reason: fmt.Sprintf("messages are limited to %d bytes", largest)}))
		return
	}
	if c.submission() {
		if tx.from == "" || !c.ident.Owns(tx.from) {
			c.refuse(&policy.Refusal{Kind: policy.ErrSenderDenied, Reason: fmt.Sprintf("%s may not send as <%s>", c.ident.Name(), tx.from)})
			return
		}
	}
	if err := c.s.cfg.Policy.Limits.AllowMessage(c.ip, c.s.cfg.Policy.Now()); err != nil {
		c.refuse(err)
		return
	}
	if c.ident != nil && c.ident.Sender != nil {
		if err := c.s.cfg.Policy.Limits.AllowSender(c.ident.Sender.Name, c.s.cfg.Policy.Now()); err != nil {
			c.refuse(err)
			return
		}
	}
	tx.pt = c.s.cfg.Policy.Begin(policy.Envelope{
		Submission: c.submission(), Hostname: c.s.cfg.Hostname, SessionID: c.id, ClientIP: c.ip, Helo: c.helo,
		Protocol: c.withProtocol(tx), TLS: c.tls, Identity: c.ident, MailFrom: tx.from, DeclaredSize: tx.declaredSize,
		Ret: tx.ret, EnvID: tx.envid, RequireTLS: tx.requireTLS, SMTPUTF8: tx.utf8, EightBit: tx.eightBit,
		Buffer: getDataBuf,
	})
	c.tx = tx
	c.writeReply(reply{250, "2.1.0", "Sender OK"})
}

// cmdRcpt adds a recipient after asking policy (RFC 5321 §4.1.1.3).
func (c *conn) cmdRcpt(arg string) {
	if !c.needHello() {
		return
	}
	if c.tx == nil {
		c.writeReply(reply{503, "5.5.1", "Send MAIL first"})
		return
	}
	if c.tx.bdat != nil {
		c.writeReply(reply{503, "5.5.1", "RCPT not allowed during BDAT"})
		return
	}
	p, err := parsePath(arg, "TO:")
	if err != nil || p.addr == "" {
		c.badCommand(reply{501, "5.5.4", "Syntax: RCPT TO:<address>"})
		return
	}
	var rp policy.RcptParams
	for k, v := range p.params {
		ok := c.offersDSN()
		switch {
		case !ok:
		case k == "NOTIFY":
			rp.Notify, ok = parseNotify(v)
		case k == "ORCPT":
			rp.ORcpt, ok = parseORcpt(v)
		default:
			ok = false
		}
		if !ok {
			c.badCommand(reply{501, "5.5.4", "Unsupported or malformed RCPT parameter " + k})
			return
		}
	}
	// The bare <Postmaster> is a recipient too (RFC 5321 §4.1.1.3).
	if !strings.EqualFold(p.addr, "postmaster") && !validMailbox(p.addr, c.tx.utf8) {
		if !c.tx.utf8 && !isASCII(p.addr) {
			c.writeReply(reply{553, "5.6.7", "Non-ASCII address needs SMTPUTF8"})
			return
		}
		c.badCommand(reply{501, "5.1.3", "Invalid recipient address"})
		return
	}
	if len(c.tx.rcpts()) >= c.maxRecipients() {
		c.writeReply(reply{452, "4.5.3", fmt.Sprintf("Too many recipients (at most %d per message)", c.maxRecipients())})
		return
	}
	// Enumeration: past its share of unknown recipients a session ends,
	// and an address past its hourly share is deferred, whatever it asks
	// for next, so neither reply tells mailboxes apart. Trusted networks
	// and trusted senders (a biller's batch may name closed accounts)
	// are exempt.
	if c.unknown >= c.s.cfg.MaxUnknownRecipients && !c.s.cfg.Policy.Trusted(c.ip) {
		c.s.cfg.Metrics.rejected(c.s.cfg.Name, "too many unknown recipients")
		c.writeReply(reply{421, "4.7.0", "Too many unknown recipients, closing connection"})
		c.closed = true
		return
	}
	sender := c.ident != nil && c.ident.Sender != nil
	if !sender {
		if err := c.s.cfg.Policy.Limits.AllowRecipient(c.ip, c.s.cfg.Policy.Now()); err != nil {
			c.refuse(err)
			return
		}
	}
	if _, err := c.tx.pt.AddRecipient(p.addr, rp); err != nil {
		if errors.Is(err, policy.ErrUnknownUser) && !sender {
			c.unknown++
			c.s.cfg.Policy.Limits.UnknownRecipient(c.ip, c.s.cfg.Policy.Now())
		}
		c.refuse(err)
		return
	}
	c.writeReply(reply{250, "2.1.5", "Recipient OK"})
}

// maxRecipients is the server's limit, or a subscriber's class limit when
// lower.
func (c *conn) maxRecipients() int {
	n := c.s.cfg.MaxRecipients
	if c.ident != nil && c.ident.Account != nil {
		if l, err := c.s.cfg.Policy.LimitsOf(c.ident.Account); err == nil && l.RecipientsPerMessage > 0 {
			n = min(n, int(l.RecipientsPerMessage))
		}
	}
	return n
}

// refuse answers with the reply policy's decision maps to. A session
// logs the first refusal of each kind, with attrs, and counts the rest
// (logRefusals; issue 13: one rate-limit line was logged 78 times in a
// session).
func (c *conn) refuse(err error, attrs ...any) {
	r := replyFor(err, c.log)
	kind := reasonLabel(err)
	c.s.cfg.Metrics.rejected(c.s.cfg.Name, kind)
	if c.refusals == nil {
		c.refusals = map[string]int{}
	}
	if c.refusals[kind]++; c.refusals[kind] == 1 {
		c.log.Info("refused", append([]any{"code", r.code, "reason", r.text}, attrs...)...)
	}
	c.writeReply(r)
}

// logRefusals logs, at the end of a session, how many refusals of each
// kind it gave beyond the first (which refuse logged).
func (c *conn) logRefusals() {
	var again []any
	for kind, n := range c.refusals {
		if n > 1 {
			again = append(again, slog.Int(kind, n-1))
		}
	}
	if len(again) > 0 {
		c.log.Info("refused again", slog.Group("times", again...))
	}
}

// sizeLimit is the most a message in this transaction may hold: the
// largest limit among its recipients (each is checked again at delivery).
func (tx *transaction) sizeLimit() int64 {
	var m int64
	for _, r := range tx.rcpts() {
		if r.Limits.MaxMessageSize == 0 {
			return 0
		}
		m = max(m, r.Limits.MaxMessageSize)
	}
	return m
}

// cmdData receives the message (RFC 5321 §4.1.1.4).
func (c *conn) cmdData(arg string) {
	if !c.needHello() {
		return
	}
	switch {
	case arg != "":
		c.badCommand(reply{501, "5.5.4", "DATA takes no argument"})
		return
	case c.tx == nil:
		c.writeReply(reply{503, "5.5.1", "Send MAIL first"})
		return
	case c.tx.bdat != nil:
		c.writeReply(reply{503, "5.5.1", "DATA not allowed after BDAT"})
		return
	case len(c.tx.rcpts()) == 0:
		c.writeReply(reply{503, "5.5.1", "No valid recipients"})
		return
	}
	c.writeReply(reply{354, "", "Start mail input; end with <CRLF>.<CRLF>"})
	if err := c.flush(); err != nil {
		c.closed = true
		return
	}
	start := time.Now()
	body, tooBig, err := c.readData(c.tx.sizeLimit(), c.tx.declaredSize)
	if err != nil {
		c.log.Info("DATA interrupted", "err", err)
		c.closed = true
		return
	}
	tx := c.tx
	c.tx = nil
	if tooBig {
		c.abandon(tx, nil)
		c.refuse(&policy.Refusal{Kind: policy.ErrTooBig, Reason: fmt.Sprintf("message exceeds %d bytes", heldLimit(tx.sizeLimit()))})
		return
	}
	c.finish(tx, body, start)
	// Nothing keeps the message once finish returns: the store copies
	// what it keeps (write-ahead log) or has committed it.
	putDataBuf(body)
}

// dataBufs recycles DATA buffers (8 KiB and up) between messages. Each
// entry holds a buffer: one taken out is not put back empty, so putting
// a buffer never overwrites another.
var dataBufs sync.Pool

// maxPooledData: larger buffers are left to the collector, so that one
// big message does not pin its size for ever.
const maxPooledData = 256 << 10

func getDataBuf(n int) []byte {
	if p, _ := dataBufs.Get().(*[]byte); p != nil && cap(*p) >= n {
		return (*p)[:0]
	}
	return make([]byte, 0, max(n, 8<<10))
}

func putDataBuf(b []byte) {
	if cap(b) < 8<<10 || cap(b) > maxPooledData {
		return
	}
	b = b[:0]
	dataBufs.Put(&b)
}

// readData reads a dot-stuffed message up to the terminating line
// (RFC 5321 §4.5.2). Only CRLF.CRLF ends it (a bare LF never does, so
// no message can be smuggled past another server's idea of the end);
// bare LFs in the content are stored as CRLF. Past limit (0 = none) the
// rest is read and discarded and tooBig is set. A line counts as
// starting after CRLF only: after a bare LF neither the terminator nor
// dot-unstuffing applies.
func (c *conn) readData(limit, sizeHint int64) (body []byte, tooBig bool, err error) {
	limit = heldLimit(limit)
	// RFC 5321 §4.5.3.2.6: 3 minutes for each read of the data, within
	// the session's limit for the whole of it.
	c.readIdle, c.readEnd = 3*time.Minute, time.Now().Add(c.s.cfg.DataTimeout)
	defer func() { c.readIdle = 0 }()
	// Start at the size the client declared (MAIL FROM SIZE=, RFC 1870)
	// when it is plausible, or at 8 KiB, rather than doubling up to it.
	initial := 8 << 10
	if sizeHint > 0 && sizeHint <= limit && sizeHint <= 16<<20 {
		initial = int(sizeHint) + 512
	}
	buf := bytes.NewBuffer(getDataBuf(initial))
	var line []byte
	atLineStart := true
	for {
		// Read one whole line, keeping its bytes only while the
		// message still fits (with slack for the dot framing, checked
		// exactly below); its length, first byte and last two bytes are
		// all the framing needs.
		line = line[:0]
		n := 0
		var first byte
		var last2 [2]byte
		for {
			frag, err := c.br.ReadSlice('\n')
			if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
				return nil, false, err
			}
			if n == 0 && len(frag) > 0 {
				first = frag[0]
			}
			n += len(frag)
			switch len(frag) {
			case 0:
			case 1:
				last2 = [2]byte{last2[1], frag[0]}
			default:
				last2 = [2]byte{frag[len(frag)-2], frag[len(frag)-1]}
			}
			if !tooBig {
				if int64(buf.Len()+len(line)+len(frag)) > limit+1024 {
					tooBig, line, buf = true, nil, &bytes.Buffer{}
				} else {
					line = append(line, frag...)
				}
			}
			if err == nil {
				break
			}
		}
		crlf := last2 == [2]byte{'\r', '\n'}
		if atLineStart && crlf && n == 3 && first == '.' {
			return buf.Bytes(), tooBig, nil
		}
		wasLineStart := atLineStart
		atLineStart = crlf
		if tooBig {
			continue
		}
		if wasLineStart && len(line) > 0 && line[0] == '.' {
			line = line[1:]
		}
		if !crlf {
			line = append(line[:len(line)-1], '\r', '\n')
		}
		if int64(buf.Len()+len(line)) > limit {
			tooBig, buf = true, &bytes.Buffer{}
			continue
		}
		buf.Write(line)
	}
}

// maxMessage caps what the server holds of one message, whatever the
// classes allow (0 = unlimited included), so a client cannot make it
// hold an unbounded amount.
const maxMessage = 1 << 30

// heldLimit is the most the server keeps of one message under a size
// limit (0 = none): the limit, never above maxMessage. Sums checked
// against it cannot overflow.
func heldLimit(limit int64) int64 {
	if limit <= 0 || limit > maxMessage {
		return maxMessage
	}
	return limit
}

// fits says whether add more bytes keep a total of have within limit,
// for any add a client may announce (0 <= have <= limit): have+add would
// overflow int64 for add near its maximum and pass the check.
func fits(have, add, limit int64) bool {
	return add <= limit-have
}

// cmdBDAT receives one chunk (RFC 3030 §2).
func (c *conn) cmdBDAT(arg string) {
	size, last, err := parseBDAT(arg)
	if err != nil {
		c.badCommand(reply{501, "5.5.4", "Syntax: BDAT <size> [LAST]"})
		return
	}
	// The chunk follows the command whatever the reply, so it is read
	// (or skipped) before answering.
	ok := c.helo != "" && c.tx != nil && len(c.tx.rcpts()) > 0 && !c.tx.bdatFailed
	limit := int64(maxMessage)
	if ok {
		limit = heldLimit(c.tx.sizeLimit())
		if c.tx.bdat == nil {
			c.tx.bdat = []byte{}
		}
	}
	start := time.Now()
	c.nc.SetReadDeadline(time.Now().Add(c.s.cfg.DataTimeout))
	switch {
	case !ok || c.tx.bdatTooBig || !fits(int64(len(c.tx.bdat)), size, limit):
		if _, err := io.CopyN(io.Discard, c.br, size); err != nil {
			c.closed = true
			return
		}
		if ok {
			c.tx.bdatTooBig, c.tx.bdat = true, c.tx.bdat[:0]
		}
	default:
		// The buffer grows as bytes arrive, never on the client's word.
		buf := bytes.NewBuffer(c.tx.bdat)
		if _, err := io.CopyN(buf, c.br, size); err != nil {
			c.closed = true
			return
		}
		c.tx.bdat = buf.Bytes()
	}
	switch {
	case !c.needHelloQuiet():
		c.writeReply(reply{503, "5.5.1", "Send EHLO or HELO first"})
	case c.tx == nil:
		c.writeReply(reply{503, "5.5.1", "Send MAIL first"})
	case len(c.tx.rcpts()) == 0:
		c.writeReply(reply{503, "5.5.1", "No valid recipients"})
	case c.tx.bdatFailed:
		c.writeReply(reply{503, "5.5.1", "Transaction failed; send RSET"})
	case !last && !c.tx.bdatTooBig:
		c.writeReply(reply{250, "2.0.0", fmt.Sprintf("%d octets received", size)})
	case !last:
		// RFC 3030 §2: after a failed chunk the client should RSET.
		c.tx.bdatFailed = true
		c.refuse(&policy.Refusal{Kind: policy.ErrTooBig, Reason: fmt.Sprintf("message exceeds %d bytes", heldLimit(c.tx.sizeLimit()))})
	default:
		tx := c.tx
		c.tx = nil
		if tx.bdatTooBig {
			c.abandon(tx, nil)
			c.refuse(&policy.Refusal{Kind: policy.ErrTooBig, Reason: fmt.Sprintf("message exceeds %d bytes", heldLimit(tx.sizeLimit()))})
			return
		}
		c.finish(tx, normalizeCRLF(tx.bdat), start)
	}
}

func (c *conn) needHelloQuiet() bool { return c.helo != "" }

// normalizeCRLF stores bare LFs as CRLF, as DATA does.
func normalizeCRLF(b []byte) []byte {
	if !bytes.Contains(b, []byte("\n")) || bytes.Count(b, []byte("\n")) == bytes.Count(b, []byte("\r\n")) {
		return b
	}
	out := make([]byte, 0, len(b)+64)
	for i, ch := range b {
		if ch == '\n' && (i == 0 || b[i-1] != '\r') {
			out = append(out, '\r')
		}
		out = append(out, ch)
	}
	return out
}
