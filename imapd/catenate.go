package imapd

import (
	"errors"
	"fmt"
	"math"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/emersion/go-imap/v2"

	"abox/imapd/wire"
	"abox/store"
	"abox/store/msginfo"
)

// CATENATE (RFC 4469): an APPEND message built from TEXT literals and
// URLs of messages, or sections of them, the user already has. URLs are
// RFC 5092 IMAP URLs relative to this server and user
// ("/INBOX;UIDVALIDITY=7/;UID=20/;SECTION=1.2"): an absolute URL names
// a host and a user this server cannot vouch for, so it is refused.

// catPart is one part of a CATENATE message: a TEXT literal's bytes or
// a URL.
type catPart struct {
	text  []byte
	url   string
	isURL bool
}

// catenateArg reads the parts after the word CATENATE (RFC 4469 §5):
//
//	"(" cat-part *(SP cat-part) ")"
//	cat-part     = text-literal / url
//	text-literal = "TEXT" SP literal
//	url          = "URL" SP astring
func catenateArg(a *wire.Args) ([]catPart, bool) {
	if !a.SP() {
		return nil, false
	}
	var parts []catPart
	ok := a.List(false, func() bool {
		switch {
		case a.AcceptWord("TEXT"):
			if !a.SP() {
				return false
			}
			data, _, ok := a.Literal()
			parts = append(parts, catPart{text: data})
			return ok
		case a.AcceptWord("URL"):
			if !a.SP() {
				return false
			}
			u, ok := a.AString()
			parts = append(parts, catPart{url: u, isURL: true})
			return ok
		}
		return false
	})
	return parts, ok
}

// catenate builds a CATENATE message from its parts, at most limit
// bytes (NO [TOOBIG], RFC 4469 §5 and RFC 7889). A URL that cannot be
// served is NO [BADURL url] and nothing is appended. src carries the
// command's reads of stored messages from one message to the next.
func (s *session) catenate(parts []catPart, limit int64, src *urlSource) ([]byte, error) {
	var body []byte
	for _, p := range parts {
		data := p.text
		if p.isURL {
			var err error
			if data, err = s.urlData(p.url, src); err != nil {
				return nil, err
			}
		}
		if limit > 0 && int64(len(body))+int64(len(data)) > limit {
			return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeTooBig,
				Text: fmt.Sprintf("the message would be larger than %d bytes", limit)}
		}
		body = append(body, data...)
	}
	return body, nil
}

// maxURLReads bounds the bytes of stored messages one APPEND's URLs may
// read. A URL's section is cut from its whole message, and a command's
// text has room for thousands of URLs: without it, one command could
// copy a large message thousands of times.
const maxURLReads = 256 << 20

// urlSource is what one APPEND's URLs have read: the last message (URLs
// to several sections of one message read it once) and the bytes read.
type urlSource struct {
	blob  uint64
	body  []byte
	info  *msginfo.Info
	bytes int64
}

// message returns a stored message's body and structure.
func (u *urlSource) message(s *session, blob uint64) ([]byte, *msginfo.Info, error) {
	if u.body != nil && u.blob == blob {
		return u.body, u.info, nil
	}
	body, raw, err := s.srv.cfg.Store.Body(blob)
	if err != nil {
		return nil, nil, err
	}
	if u.bytes += int64(len(body)); u.bytes > maxURLReads {
		return nil, nil, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeLimit,
			Text: fmt.Sprintf("the URLs of one APPEND may read at most %d bytes of stored messages", maxURLReads)}
	}
	info, err := msginfo.Decode(raw)
	if err != nil {
		info = msginfo.Parse(body)
	}
	u.blob, u.body, u.info = blob, body, info
	return body, info, nil
}

// errBadURL explains why a URL was refused; badURL makes it an answer.
var errBadURL = errors.New("bad URL")

// badURL is the answer to a URL that cannot be served (RFC 4469 §5:
// "BADURL" SP url-resp-text).
func badURL(raw string, why error) error {
	return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCode("BADURL " + urlRespText(raw)),
		Text: "CATENATE failed: " + strings.TrimPrefix(why.Error(), errBadURL.Error()+": ")}
}

// urlRespText writes a URL as url-resp-text: any TEXT-CHAR but "]"
// (RFC 4469 erratum 2002); anything else percent-encoded, as a URL may.
func urlRespText(raw string) string {
	var b strings.Builder
	for i := 0; i < len(raw); i++ {
		ch := raw[i]
		if ch <= ' ' || ch == ']' || ch >= 0x7f {
			fmt.Fprintf(&b, "%%%02X", ch)
			continue
		}
		b.WriteByte(ch)
	}
	return b.String()
}

// urlData returns what a URL names in the user's own mailboxes.
//
// SPEC counts the first FETCH of an official letter's body as the
// subscriber's reading of it, and the evidence log records every
// retrieval of its body. A CATENATE copies the body into a new message
// that is not official, so its later reading would go unrecorded: the
// body of an official letter (the whole message, TEXT, or any part) is
// refused as a URL; its HEADER, which a FETCH may read without it
// counting, is allowed.
func (s *session) urlData(raw string, src *urlSource) ([]byte, error) {
	u, err := parseIMAPURL(raw)
	if err != nil {
		return nil, badURL(raw, err)
	}
	mb, err := s.srv.cfg.Store.MailboxByName(s.acct.ID, u.mailbox)
	if errors.Is(err, store.ErrNoMailbox) {
		return nil, badURL(raw, fmt.Errorf("no mailbox %q", u.mailbox))
	}
	if err != nil {
		return nil, noFor(err, s.log)
	}
	if u.uidValidity != 0 && u.uidValidity != mb.UIDValidity {
		return nil, badURL(raw, fmt.Errorf("the UIDVALIDITY of %s is %d", mb.Name, mb.UIDValidity))
	}
	msgs, err := s.srv.cfg.Store.MessagesByUID(s.acct.ID, mb.ID, []uint32{u.uid})
	if err != nil {
		return nil, noFor(err, s.log)
	}
	if len(msgs) == 0 {
		return nil, badURL(raw, fmt.Errorf("no message with UID %d in %s", u.uid, mb.Name))
	}
	m := msgs[0]
	headerOnly := len(u.section.Part) == 0 && u.section.Specifier == imap.PartSpecifierHeader
	if m.Official() && !headerOnly {
		return nil, badURL(raw, errors.New("the body of an official letter is read by FETCH only, so its reading is recorded"))
	}
	body, info, err := src.message(s, m.Blob)
	if errors.Is(err, store.ErrNotFound) {
		return nil, badURL(raw, fmt.Errorf("the message with UID %d was expunged", u.uid))
	}
	if err != nil {
		return nil, noFor(err, s.log)
	}
	if !sectionExists(info.Structure, &u.section) {
		return nil, badURL(raw, fmt.Errorf("message %d has no section %s", u.uid, u.sectionText))
	}
	return urlSection(body, info, &u.section), nil
}

// urlSection extracts a URL's section the way FETCH BODY.PEEK[section]
// does (one wrapper, so the extraction FETCH uses is the one used here).
func urlSection(body []byte, info *msginfo.Info, sec *imap.FetchItemBodySection) []byte {
	return bodySection(body, info, sec)
}

// imapURL is what CATENATE takes from an RFC 5092 IMAP URL: a message of
// one of the user's mailboxes, or a section of it.
type imapURL struct {
	mailbox     string
	uidValidity uint32 // 0: not given
	uid         uint32
	section     imap.FetchItemBodySection
	sectionText string
}

// parseIMAPURL reads a URL relative to this server and user (RFC 5092
// §6, imessagepart):
//
//	"/" enc-mailbox [";UIDVALIDITY=" nz-number] "/;UID=" nz-number
//	    ["/;SECTION=" enc-section] ["/;PARTIAL=" number ["." nz-number]]
func parseIMAPURL(raw string) (imapURL, error) {
	var u imapURL
	if i := strings.Index(raw, "://"); i >= 0 || !strings.HasPrefix(raw, "/") {
		return u, fmt.Errorf("%w: only URLs relative to this server and user (\"/mailbox;UIDVALIDITY=n/;UID=n\") are accepted", errBadURL)
	}
	pieces := strings.Split(raw[1:], ";")
	if len(pieces) < 2 {
		return u, fmt.Errorf("%w: no UID", errBadURL)
	}
	mailbox := pieces[0]
	params := pieces[1:]
	if !hasParam(params[0], "UIDVALIDITY") {
		var ok bool
		if mailbox, ok = strings.CutSuffix(mailbox, "/"); !ok {
			return u, fmt.Errorf("%w: expected \"/;UID=\" after the mailbox", errBadURL)
		}
	}
	name, err := url.PathUnescape(mailbox)
	if err != nil || name == "" || !utf8.ValidString(name) {
		return u, fmt.Errorf("%w: bad mailbox name %q", errBadURL, mailbox)
	}
	if strings.EqualFold(name, "INBOX") {
		name = "INBOX"
	}
	u.mailbox = name
	return u, u.params(params)
}

// hasParam says whether a URL piece is NAME=... (names are
// case-insensitive, as RFC 5092's ABNF strings are).
func hasParam(piece, name string) bool {
	return len(piece) > len(name) && strings.EqualFold(piece[:len(name)+1], name+"=")
}

// params reads the URL's ";NAME=value" pieces in RFC 5092's order; each
// but the last ends with the "/" before the next.
func (u *imapURL) params(pieces []string) error {
	order := []string{"UIDVALIDITY", "UID", "SECTION", "PARTIAL"}
	next := 0
	for i, piece := range pieces {
		if i < len(pieces)-1 {
			var ok bool
			if piece, ok = strings.CutSuffix(piece, "/"); !ok {
				return fmt.Errorf("%w: expected \"/\" before \";%s\"", errBadURL, pieces[i+1])
			}
		}
		k := next
		for k < len(order) && !hasParam(piece, order[k]) {
			k++
		}
		if k == len(order) {
			return fmt.Errorf("%w: %q is not supported here", errBadURL, ";"+piece)
		}
		next = k + 1
		if err := u.param(order[k], piece[len(order[k])+1:]); err != nil {
			return err
		}
	}
	if u.uid == 0 {
		return fmt.Errorf("%w: no UID", errBadURL)
	}
	return nil
}

func (u *imapURL) param(name, value string) error {
	switch name {
	case "UIDVALIDITY", "UID":
		n, err := strconv.ParseUint(value, 10, 32)
		if err != nil || n == 0 || value[0] == '0' {
			return fmt.Errorf("%w: bad %s %q", errBadURL, name, value)
		}
		if name == "UID" {
			u.uid = uint32(n)
		} else {
			u.uidValidity = uint32(n)
		}
	case "SECTION":
		sec, err := url.PathUnescape(value)
		if err != nil || !parseURLSection(sec, &u.section) {
			return fmt.Errorf("%w: section %q is not supported (part numbers, HEADER, TEXT, MIME)", errBadURL, value)
		}
		u.sectionText = sec
	case "PARTIAL":
		off, size, _ := strings.Cut(value, ".")
		o, err := strconv.ParseUint(off, 10, 32)
		p := &imap.SectionPartial{Offset: int64(o), Size: math.MaxInt64}
		if err == nil && size != "" {
			var n uint64
			if n, err = strconv.ParseUint(size, 10, 32); err == nil && n == 0 {
				err = errBadURL
			}
			p.Size = int64(n)
		}
		if err != nil {
			return fmt.Errorf("%w: bad PARTIAL %q", errBadURL, value)
		}
		u.section.Partial = p
	}
	return nil
}

// parseURLSection reads a section (RFC 9051's section-spec without
// HEADER.FIELDS): part numbers, optionally followed by HEADER, TEXT or
// MIME, or HEADER or TEXT alone.
func parseURLSection(s string, sec *imap.FetchItemBodySection) bool {
	for s != "" {
		word, rest, _ := strings.Cut(s, ".")
		n, err := strconv.Atoi(word)
		if err != nil {
			break
		}
		if n <= 0 || word[0] == '0' {
			return false
		}
		sec.Part = append(sec.Part, n)
		s = rest
	}
	switch strings.ToUpper(s) {
	case "":
		return len(sec.Part) > 0
	case "HEADER":
		sec.Specifier = imap.PartSpecifierHeader
	case "TEXT":
		sec.Specifier = imap.PartSpecifierText
	case "MIME":
		sec.Specifier = imap.PartSpecifierMIME
		return len(sec.Part) > 0
	default:
		return false
	}
	return true
}

// sectionExists says whether a message has the section (RFC 9051
// §6.4.5): a multipart's parts are numbered from 1; a message's (or a
// message/rfc822 part's) body is part 1 when it is not multipart; other
// single parts have none; HEADER and TEXT after a part number need a
// message/rfc822 part.
func sectionExists(bs imap.BodyStructure, sec *imap.FetchItemBodySection) bool {
	var node imap.BodyStructure // nil: the message itself
	for _, n := range sec.Part {
		body := bs // the body of the message node is (or encapsulates)
		switch p := node.(type) {
		case *imap.BodyStructureMultiPart:
			if n > len(p.Children) {
				return false
			}
			node = p.Children[n-1]
			continue
		case *imap.BodyStructureSinglePart:
			if p.MessageRFC822 == nil {
				return false
			}
			body = p.MessageRFC822.BodyStructure
		}
		switch b := body.(type) {
		case *imap.BodyStructureMultiPart:
			if n > len(b.Children) {
				return false
			}
			node = b.Children[n-1]
		case *imap.BodyStructureSinglePart:
			if n != 1 {
				return false
			}
			node = b
		default:
			return false
		}
	}
	if len(sec.Part) > 0 && (sec.Specifier == imap.PartSpecifierHeader || sec.Specifier == imap.PartSpecifierText) {
		p, ok := node.(*imap.BodyStructureSinglePart)
		return ok && p.MessageRFC822 != nil
	}
	return true
}
