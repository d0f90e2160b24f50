package msginfo

import (
	"io"

	gomessage "github.com/emersion/go-message"
)

// MaxNesting bounds how deep MIME parts (multiparts and attached
// messages) are parsed: deeper ones are opaque (application/octet-stream
// in BODYSTRUCTURE; a message that has them is refused by the content
// checks, which cannot look inside). Real mail stays within a handful
// of levels; each level costs another pass over the bytes inside it, so
// without a bound a message nested 10,000 deep cost quadratic time.
// Postfix allows 100 (mime_nesting_limit), Dovecot 100.
const MaxNesting = 32

// MaxParts bounds how many parts of one message are parsed; the parts
// after it are not described (they stay in the bytes).
const MaxParts = 10000

// WalkFunc is called for every part in order: depth 0 is the message
// itself. tooDeep says the part is a multipart at MaxNesting, whose
// parts are not parsed: its body is then the whole multipart.
type WalkFunc func(depth int, part *gomessage.Entity, tooDeep bool, err error) error

// Walk calls fn for e and each of its parts, depth first, descending at
// most MaxNesting levels and visiting at most MaxParts parts. Unlike
// go-message's Entity.Walk it does not copy the path for every part
// (quadratic in the depth).
func Walk(e *gomessage.Entity, fn WalkFunc) error {
	n := 0
	return walk(e, 0, &n, fn)
}

func walk(e *gomessage.Entity, depth int, n *int, fn WalkFunc) error {
	*n++
	mr := e.MultipartReader()
	tooDeep := mr != nil && depth >= MaxNesting
	if err := fn(depth, e, tooDeep, nil); err != nil {
		return err
	}
	if mr == nil || tooDeep {
		return nil
	}
	for *n < MaxParts {
		part, err := mr.NextPart()
		if err == io.EOF {
			return nil
		}
		if err != nil && !gomessage.IsUnknownCharset(err) && !gomessage.IsUnknownEncoding(err) {
			return err
		}
		if part == nil {
			return nil
		}
		if err := walk(part, depth+1, n, fn); err != nil {
			return err
		}
	}
	return nil
}
