package imapd

import (
	"strings"

	"abox/imapd/wire"
	"abox/store"
)

// Keyword announcement (RFC 3501 §7.2.6, RFC 9051 §7.3.5): the FLAGS
// response lists the flags and keywords a mailbox has, and a client may
// take a keyword it was never told of for garbage. So a session's list
// starts with the mailbox's flags and the keywords the store holds for
// it (SELECT), and grows whenever the session meets a keyword it has not
// announced: in a change from the feed (announced with the other
// updates, before their FETCH FLAGS) or in a message a FETCH or STORE is
// about to show (announced right before that response). Each growth
// sends the whole list again in FLAGS and, read-write, PERMANENTFLAGS.
// The list never shrinks while the mailbox is selected: a FLAGS that
// drops a keyword still set on a message would contradict the client's
// own copy of it.

// keywordList is what a session announced in FLAGS, and whether it must
// announce again.
type keywordList struct {
	flags   []string        // announced, in order
	known   map[string]bool // lower case
	pending bool            // grown since the last announcement
	stored  int             // keywords the store held at SELECT
}

func newKeywordList(fixed, stored []string) keywordList {
	k := keywordList{known: map[string]bool{}, stored: len(stored)}
	k.flags = make([]string, 0, len(fixed)+len(stored))
	for _, f := range fixed {
		k.known[strings.ToLower(f)] = true
		k.flags = append(k.flags, f)
	}
	k.learn(stored)
	k.pending = false // SELECT announces them itself
	return k
}

// learn adds the keywords of flags not announced yet and reports whether
// there were any. System flags are announced from the start; \Recent is
// never in FLAGS (it cannot be stored).
// A list never set up (a view outside a session, in tests) learns
// nothing.
func (k *keywordList) learn(flags []string) bool {
	if k.known == nil {
		return false
	}
	grew := false
	for _, f := range flags {
		if f == "" || strings.HasPrefix(f, `\`) {
			continue
		}
		if l := strings.ToLower(f); !k.known[l] {
			k.known[l] = true
			k.flags = append(k.flags, f)
			grew = true
		}
	}
	if grew {
		k.pending = true
	}
	return grew
}

// permanent is PERMANENTFLAGS: every flag announced, and \* while the
// mailbox may still take new keywords (store.MaxMailboxKeywords).
func (k *keywordList) permanent() []string {
	out := append([]string{}, k.flags...)
	if len(k.flags)-len(mailboxFlags) < store.MaxMailboxKeywords && k.stored < store.MaxMailboxKeywords {
		out = append(out, `\*`)
	}
	return out
}

// write writes the FLAGS response and, read-write, the
// PERMANENTFLAGS one, and takes the list as announced.
func (k *keywordList) write(w *wire.Writer, readOnly bool) {
	w.Raw("* FLAGS ").Flags(k.flags).CRLF()
	if readOnly {
		// RFC 3501 §6.3.2: a read-only mailbox has no permanent flags.
		w.Raw("* OK [PERMANENTFLAGS ()] Read-only mailbox").CRLF()
	} else {
		w.Raw("* OK [PERMANENTFLAGS ").Flags(k.permanent()).Raw("] Flags permitted").CRLF()
	}
	k.pending = false
}

// announceKeywords is called right before a response shows flags: a
// keyword the client was not told of is announced first.
func (s *session) announceKeywords(w *wire.Writer, flags []string) {
	v := s.sel
	if v == nil {
		return
	}
	if v.kw.learn(flags) || v.kw.pending {
		v.kw.write(w, v.readOnly)
	}
}
