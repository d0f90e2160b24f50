package imapd_test

// The truth of the model test: what the account's mailboxes hold, kept
// by the test itself from the commands it ran (one at a time, so every
// command's effect is known exactly when its answer arrives) and from
// the server's own reports of new UIDs (APPENDUID, COPYUID, UIDNEXT after
// an SMTP delivery). A flag change is kept with the tick it happened at,
// so what an IDLE session was pushed can be checked against the states
// the message went through while it idled.

import (
	"slices"
	"strings"
)

// flagSet is a message's flags, keyed in lower case (flags are case-
// insensitive, RFC 9051 §2.3.2). \Recent is left out: it belongs to a
// session, not to the message, and no command sets it.
type flagSet map[string]bool

func parseFlagList(list string) flagSet {
	fs := flagSet{}
	for _, f := range strings.Fields(list) {
		if f = strings.ToLower(f); f != `\recent` {
			fs[f] = true
		}
	}
	return fs
}

func flagsOf(flags []string) flagSet { return parseFlagList(strings.Join(flags, " ")) }

func (fs flagSet) clone() flagSet {
	out := make(flagSet, len(fs))
	for f := range fs {
		out[f] = true
	}
	return out
}

func (fs flagSet) String() string {
	keys := make([]string, 0, len(fs))
	for f := range fs {
		keys = append(keys, f)
	}
	slices.Sort(keys)
	return "(" + strings.Join(keys, " ") + ")"
}

func (fs flagSet) equal(o flagSet) bool { return fs.String() == o.String() }

// storeOp is a STORE's operation: "+", "-" or "" (replace).
func (fs flagSet) apply(op string, flags []string) flagSet {
	arg := flagsOf(flags)
	out := fs.clone()
	switch op {
	case "+":
		for f := range arg {
			out[f] = true
		}
	case "-":
		for f := range arg {
			delete(out, f)
		}
	default:
		out = arg
	}
	return out
}

// flagState is a message's flags from tick on.
type flagState struct {
	tick  int
	flags flagSet
}

type truthMsg struct {
	hist []flagState // oldest first
	gone bool        // expunged (UIDs are never reused)
}

func (m *truthMsg) flags() flagSet { return m.hist[len(m.hist)-1].flags }

// truthBox is one mailbox as stored.
type truthBox struct {
	name        string
	uidValidity uint32
	msgs        map[uint32]*truthMsg // every UID it ever held
}

// truth is the account's INBOX and the other mailbox of the test.
type truth struct {
	tick  int
	boxes map[string]*truthBox
}

func newTruth(names ...string) *truth {
	t := &truth{boxes: map[string]*truthBox{}}
	for _, n := range names {
		t.boxes[n] = &truthBox{name: n, msgs: map[uint32]*truthMsg{}}
	}
	return t
}

// add records a new message; it reports false when the UID was used
// before (UIDs only grow, RFC 9051 §2.3.1.1).
func (t *truth) add(box string, uid uint32, flags flagSet) bool {
	b := t.boxes[box]
	if _, ok := b.msgs[uid]; ok {
		return false
	}
	t.tick++
	b.msgs[uid] = &truthMsg{hist: []flagState{{t.tick, flags}}}
	return true
}

// present is the message uid if it is in box now.
func (t *truth) present(box string, uid uint32) *truthMsg {
	if m := t.boxes[box].msgs[uid]; m != nil && !m.gone {
		return m
	}
	return nil
}

// ever says whether box ever held uid.
func (t *truth) ever(box string, uid uint32) bool { return t.boxes[box].msgs[uid] != nil }

func (t *truth) setFlags(box string, uid uint32, flags flagSet) {
	m := t.present(box, uid)
	if m == nil || m.flags().equal(flags) {
		return
	}
	t.tick++
	m.hist = append(m.hist, flagState{t.tick, flags})
}

func (t *truth) expunge(box string, uid uint32) {
	if m := t.present(box, uid); m != nil {
		t.tick++
		m.gone = true
	}
}

// flagsSeenSince says whether uid of box had the flags fs at some point
// from tick since on (since < 0: now).
func (t *truth) flagsSeenSince(box string, uid uint32, since int, fs flagSet) bool {
	m := t.boxes[box].msgs[uid]
	if since < 0 {
		return m.flags().equal(fs)
	}
	first := 0
	for i, st := range m.hist {
		if st.tick <= since {
			first = i
		}
	}
	for _, st := range m.hist[first:] {
		if st.flags.equal(fs) {
			return true
		}
	}
	return false
}

// uids are the UIDs in box now, ascending.
func (t *truth) uids(box string) []uint32 {
	var out []uint32
	for uid, m := range t.boxes[box].msgs {
		if !m.gone {
			out = append(out, uid)
		}
	}
	slices.Sort(out)
	return out
}

// withFlag are the UIDs in box now that have flag.
func (t *truth) withFlag(box, flag string) []uint32 {
	var out []uint32
	for _, uid := range t.uids(box) {
		if t.present(box, uid).flags()[strings.ToLower(flag)] {
			out = append(out, uid)
		}
	}
	return out
}

func (t *truth) count() int {
	n := 0
	for name := range t.boxes {
		n += len(t.uids(name))
	}
	return n
}
