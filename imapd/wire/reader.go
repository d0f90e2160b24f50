package wire

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// Defaults for a Reader's zero limits.
const (
	DefaultMaxText    = 64 << 10 // bytes of command text, literals excluded
	DefaultMaxLiteral = 64 << 10 // bytes of one literal, unless LiteralLimit says otherwise
	DefaultMaxParts   = 1024     // literals in one command
	// MaxLiteralMinus is the largest non-synchronizing literal LITERAL-
	// allows (RFC 7888 §4).
	MaxLiteralMinus = 4096
)

// Command is one client command as read: a tag, then the rest of the
// command as text with the literals it carried.
type Command struct {
	Tag  string
	Name string // the first word after the tag, upper-cased ("UID" for UID commands)
	args Args
}

// Args returns a parser over the command's arguments (everything after
// the name).
func (c *Command) Args() *Args {
	a := c.args
	return &a
}

// segment is a piece of a command: text (up to a literal or the line's
// end) or a literal's bytes.
type segment struct {
	data    []byte
	literal bool
	binary  bool // a literal8 (~{n})
}

// ErrLineTooLong: the command's text passed Reader.MaxText. The rest of
// the line was read and dropped; the session answers BAD.
var ErrLineTooLong = errors.New("command line too long")

// SyntaxError is a command that cannot be read as one (a bad tag, a
// malformed literal): the line was read to its end; the session answers
// BAD with the tag when there is one.
type SyntaxError struct {
	Tag string
	Msg string
}

func (e *SyntaxError) Error() string { return "syntax error: " + e.Msg }

// LiteralRefused: LiteralLimit refused a literal. A synchronizing one was
// never requested, so the command is over and the session answers with
// Err as a tagged NO (or BAD). A non-synchronizing one is already on its
// way: NonSync is set and the session must answer and then close the
// connection (RFC 7888 §4 allows it); its bytes are never read as
// commands.
type LiteralRefused struct {
	Tag     string
	Name    string
	Size    int64
	NonSync bool
	Err     error
}

func (e *LiteralRefused) Error() string {
	return fmt.Sprintf("literal of %d bytes refused: %v", e.Size, e.Err)
}

func (e *LiteralRefused) Unwrap() error { return e.Err }

// Reader reads commands from a buffered connection.
type Reader struct {
	br *bufio.Reader
	// MaxText bounds a command's text (literals excluded); MaxParts the
	// literals it may carry.
	MaxText, MaxParts int
	// Continue sends a continuation request ("+ ...") and flushes, for
	// a synchronizing literal that was accepted.
	Continue func() error
	// LiteralLimit says whether a literal of size bytes may follow in
	// cmd (read so far: its tag and name are set); nil means
	// DefaultMaxLiteral for every literal.
	LiteralLimit func(cmd *Command, size int64, literal8 bool) error
	// LiteralMinus: only LITERAL- is offered, so non-synchronizing
	// literals over MaxLiteralMinus are refused.
	LiteralMinus bool
}

// NewReader returns a Reader on br.
func NewReader(br *bufio.Reader) *Reader { return &Reader{br: br} }

// Reset makes r read from br (a connection lends its buffer back while
// it waits for input, and takes one again when input comes).
func (r *Reader) Reset(br *bufio.Reader) { r.br = br }

// Buffered says how many bytes the client sent that are not read yet.
func (r *Reader) Buffered() int { return r.br.Buffered() }

// ReadCommand reads one whole command. Errors other than the ones
// declared here come from the connection.
func (r *Reader) ReadCommand() (*Command, error) {
	maxText, maxParts := r.MaxText, r.MaxParts
	if maxText <= 0 {
		maxText = DefaultMaxText
	}
	if maxParts <= 0 {
		maxParts = DefaultMaxParts
	}
	cmd := &Command{}
	text := 0
	first := true
	for {
		line, tooLong, err := r.readLine(maxText - text)
		if err != nil {
			return nil, err
		}
		text += len(line)
		if tooLong {
			if first {
				cmd.head(line) // for the tag of the answer
			}
			return nil, r.lineError(cmd, ErrLineTooLong)
		}
		body := trimEOL(line)
		if first {
			first = false
			rest, err := cmd.head(body)
			if err != nil {
				return nil, err
			}
			body = rest
		}
		lit, ok, err := literalAtEnd(body)
		if err != nil {
			return nil, &SyntaxError{Tag: cmd.Tag, Msg: err.Error()}
		}
		if !ok {
			cmd.args.add(segment{data: body})
			return cmd, nil
		}
		cmd.args.add(segment{data: body[:len(body)-lit.markLen]})
		if len(cmd.args.segs) > 2*maxParts {
			return nil, r.refuse(cmd, lit, fmt.Errorf("more than %d literals in one command", maxParts))
		}
		if err := r.checkLiteral(cmd, lit); err != nil {
			return nil, r.refuse(cmd, lit, err)
		}
		if lit.sync && r.Continue != nil {
			if err := r.Continue(); err != nil {
				return nil, err
			}
		}
		data := make([]byte, lit.size)
		if _, err := io.ReadFull(r.br, data); err != nil {
			return nil, err
		}
		cmd.args.add(segment{data: data, literal: true, binary: lit.binary})
	}
}

func (r *Reader) checkLiteral(cmd *Command, lit literalMark) error {
	if !lit.sync && r.LiteralMinus && lit.size > MaxLiteralMinus {
		return fmt.Errorf("a non-synchronizing literal may hold at most %d bytes (LITERAL-)", MaxLiteralMinus)
	}
	if r.LiteralLimit != nil {
		return r.LiteralLimit(cmd, lit.size, lit.binary)
	}
	if lit.size > DefaultMaxLiteral {
		return fmt.Errorf("literal of %d bytes is larger than %d", lit.size, DefaultMaxLiteral)
	}
	return nil
}

func (r *Reader) refuse(cmd *Command, lit literalMark, err error) error {
	return &LiteralRefused{Tag: cmd.Tag, Name: cmd.Name, Size: lit.size, NonSync: !lit.sync, Err: err}
}

// lineError reads the rest of an over-long line and returns err for it.
func (r *Reader) lineError(cmd *Command, err error) error {
	for {
		_, tooLong, rerr := r.readLine(DefaultMaxText)
		if rerr != nil {
			return rerr
		}
		if !tooLong {
			break
		}
	}
	if cmd.Tag == "" {
		return err
	}
	return &SyntaxError{Tag: cmd.Tag, Msg: err.Error()}
}

// readLine reads up to and including the next LF. Past max bytes it
// stops (tooLong), returning what it kept and leaving the rest of the
// line unread.
func (r *Reader) readLine(max int) (line []byte, tooLong bool, err error) {
	for {
		frag, err := r.br.ReadSlice('\n')
		if len(line)+len(frag) > max {
			return append(line, frag[:max-len(line)]...), true, nil
		}
		line = append(line, frag...)
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err != nil {
			if errors.Is(err, io.EOF) && len(line) > 0 {
				err = io.ErrUnexpectedEOF
			}
			return nil, false, err
		}
		return line, false, nil
	}
}

func trimEOL(b []byte) []byte {
	b = bytes.TrimSuffix(b, []byte("\n"))
	return bytes.TrimSuffix(b, []byte("\r"))
}

// head takes the tag and the command name off the first line.
func (c *Command) head(line []byte) ([]byte, error) {
	sp := bytes.IndexByte(line, ' ')
	tag := line
	if sp >= 0 {
		tag = line[:sp]
	}
	if len(tag) == 0 || !validTag(tag) {
		return nil, &SyntaxError{Msg: "bad or missing tag"}
	}
	c.Tag = string(tag)
	if sp < 0 {
		return nil, &SyntaxError{Tag: c.Tag, Msg: "missing command"}
	}
	rest := line[sp+1:]
	end := bytes.IndexByte(rest, ' ')
	name := rest
	if end >= 0 {
		name = rest[:end]
		rest = rest[end:]
	} else {
		rest = nil
	}
	if len(name) == 0 || !isAtom(name) {
		return nil, &SyntaxError{Tag: c.Tag, Msg: "missing or bad command name"}
	}
	c.Name = string(bytes.ToUpper(name))
	return rest, nil
}

// validTag: tag = 1*<any ASTRING-CHAR except "+"> (RFC 9051 §9).
func validTag(b []byte) bool {
	for _, ch := range b {
		if ch == '+' || !isAStringChar(ch) {
			return false
		}
	}
	return true
}

// literalMark is a literal announced at the end of a line.
type literalMark struct {
	size    int64
	sync    bool
	binary  bool
	markLen int // bytes of "{n}" (and "~", "+", "-") at the end of the line
}

// literalAtEnd finds "{n}", "{n+}", "{n-}" or "~{n}" ending a line.
func literalAtEnd(b []byte) (literalMark, bool, error) {
	if len(b) == 0 || b[len(b)-1] != '}' {
		return literalMark{}, false, nil
	}
	open := bytes.LastIndexByte(b, '{')
	if open < 0 {
		return literalMark{}, false, nil
	}
	inner := b[open+1 : len(b)-1]
	m := literalMark{sync: true, markLen: len(b) - open}
	if n := len(inner); n > 0 && (inner[n-1] == '+' || inner[n-1] == '-') {
		m.sync = false
		inner = inner[:n-1]
	}
	if len(inner) == 0 || len(inner) > 19 {
		return literalMark{}, false, fmt.Errorf("bad literal size %q", inner)
	}
	for _, ch := range inner {
		if ch < '0' || ch > '9' {
			// Not a literal: "{" and "}" inside some other token (they
			// are not atom characters, so this is a syntax error).
			return literalMark{}, false, fmt.Errorf("bad literal %q", b[open:])
		}
	}
	size, err := strconv.ParseInt(string(inner), 10, 64)
	if err != nil || size > 1<<40 {
		return literalMark{}, false, fmt.Errorf("literal size %q out of range", inner)
	}
	m.size = size
	if open > 0 && b[open-1] == '~' {
		m.binary = true
		m.markLen++
	}
	return m, true, nil
}
