package imapd_test

// The commands of the model test's generated client: each picks its
// arguments from what its session was told, updates the truth with the
// command's effect, runs it, and checks what the command itself must
// answer.

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

var appendUIDRE = regexp.MustCompile(`\[APPENDUID (\d+) (\d+)\]`)

// flagPool are the flags STORE and APPEND use: system flags and
// keywords, announced ($Forwarded) and not.
var flagPool = []string{`\Seen`, `\Flagged`, `\Deleted`, `\Answered`, `\Draft`, "$Label1", "$Label2", "$Forwarded", "Work"}

func (d *modelDriver) someFlags(max int) []string {
	n := 1 + d.rng.IntN(max)
	var out []string
	for range n {
		f := flagPool[d.rng.IntN(len(flagPool))]
		if !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out
}

// recase writes some flags in another case: flags are case-insensitive
// (RFC 9051 §2.3.2), so -FLAGS ($LABEL1) removes $Label1.
func (d *modelDriver) recase(flags []string) []string {
	out := slices.Clone(flags)
	for i, f := range out {
		switch d.rng.IntN(6) {
		case 0:
			out[i] = strings.ToUpper(f)
		case 1:
			out[i] = strings.ToLower(f)
		}
	}
	return out
}

// seqSet makes a sequence set of the session's numbering (n > 0).
func (d *modelDriver) seqSet(n int) []setRange {
	r := func() uint32 { return uint32(1 + d.rng.IntN(n)) }
	switch d.rng.IntN(6) {
	case 0:
		return []setRange{{r(), r()}}
	case 1:
		return []setRange{{r(), 0}} // n:*
	case 2:
		return []setRange{{0, 0}} // *
	case 3:
		return []setRange{{r(), r()}, {r(), r()}}
	case 4:
		return []setRange{{0, r()}} // *:n
	}
	x := r()
	return []setRange{{x, x}}
}

// uidSet makes a UID set from the UIDs the session knows (it knows
// them all: see known), sometimes past the last or of expunged ones.
func (d *modelDriver) uidSet(s *modelSession) []setRange {
	r := func() uint32 { return s.uids[d.rng.IntN(s.count())] }
	last := s.uids[s.count()-1]
	switch d.rng.IntN(8) {
	case 0:
		return []setRange{{r(), r()}}
	case 1:
		return []setRange{{r(), 0}}
	case 2:
		return []setRange{{0, 0}}
	case 3:
		return []setRange{{1, 0}}
	case 4:
		return []setRange{{r(), r()}, {r(), r()}}
	case 5:
		return []setRange{{last + 1 + uint32(d.rng.IntN(5)), 0}} // past the last: still names it (RFC 9051 §9)
	case 6:
		x := r()
		return []setRange{{x, x}, {last + 50, last + 60}}
	}
	x := r()
	return []setRange{{x, x}}
}

func uidPrefix(byUID bool) string {
	if byUID {
		return "UID "
	}
	return ""
}

// opFetch: FETCH or UID FETCH of (UID FLAGS); every message named that is
// still in the mailbox gets a response.
func (d *modelDriver) opFetch(s *modelSession, byUID bool) {
	if s.count() == 0 {
		d.opNoop(s, "NOOP")
		return
	}
	if byUID && s.unknown() {
		byUID = false
	}
	var pairs []seqPair
	var set []setRange
	if byUID {
		set = d.uidSet(s)
		pairs = s.resolveUIDs(set)
	} else {
		set = d.seqSet(s.count())
		pairs = s.resolveSeqs(set)
	}
	items := "(UID FLAGS)"
	if !byUID && d.rng.IntN(5) == 0 {
		items = "(FLAGS)"
	}
	ctx := &respCtx{cmd: fmt.Sprintf("%sFETCH %s %s", uidPrefix(byUID), renderSet(set), items), noExpunge: !byUID, uidCmd: byUID, since: -1}
	s.run(ctx)
	for _, p := range pairs {
		if p.uid != 0 && d.tr.present(s.box, p.uid) != nil && !ctx.fetched[p.seq] {
			s.fail(ctx, "no FETCH response for %d (UID %d), which is in %s", p.seq, p.uid, s.box)
		}
	}
}

// opFetchUnknown fetches what the session was not told yet (a client's
// answer to EXISTS).
func (d *modelDriver) opFetchUnknown(s *modelSession) {
	var set []setRange
	for i, uid := range s.uids {
		if _, ok := s.flags[uid]; uid == 0 || !ok {
			q := uint32(i + 1)
			if n := len(set); n > 0 && set[n-1].hi == q-1 {
				set[n-1].hi = q
			} else {
				set = append(set, setRange{q, q})
			}
		}
	}
	if len(set) == 0 {
		return
	}
	s.run(&respCtx{cmd: "FETCH " + renderSet(set) + " (UID FLAGS)", noExpunge: true, since: -1})
}

// opStore: STORE or UID STORE, +FLAGS, -FLAGS or FLAGS, .SILENT or not
// (RFC 9051 §6.4.6). Without .SILENT each message still there answers
// with its new flags; with it, the session applies the change itself.
func (d *modelDriver) opStore(s *modelSession, byUID bool, flags []string) {
	var set []setRange
	var pairs []seqPair
	if byUID {
		set = d.uidSet(s)
		pairs = s.resolveUIDs(set)
	} else {
		set = d.seqSet(s.count())
		pairs = s.resolveSeqs(set)
	}
	op := []string{"+", "+", "-", ""}[d.rng.IntN(4)]
	if op == "" && d.rng.IntN(6) == 0 {
		flags = nil // FLAGS (): clears every flag
	}
	flags = d.recase(flags)
	silent := d.rng.IntN(3) == 0
	item := op + "FLAGS"
	if silent {
		item += ".SILENT"
	}
	for _, p := range pairs {
		if m := d.tr.present(s.box, p.uid); m != nil {
			d.tr.setFlags(s.box, p.uid, m.flags().apply(op, flags))
		}
	}
	ctx := &respCtx{cmd: fmt.Sprintf("%sSTORE %s %s (%s)", uidPrefix(byUID), renderSet(set), item, strings.Join(flags, " ")), noExpunge: !byUID, uidCmd: byUID, since: -1}
	s.run(ctx)
	for _, p := range pairs {
		if silent {
			if fs, ok := s.flags[p.uid]; ok && !s.expunged[p.uid] {
				s.flags[p.uid] = fs.apply(op, flags)
			}
			continue
		}
		if d.tr.present(s.box, p.uid) != nil && !ctx.fetched[p.seq] {
			s.fail(ctx, "no FETCH FLAGS for %d (UID %d): STORE without .SILENT answers each message", p.seq, p.uid)
		}
	}
}

// opExpunge: EXPUNGE, or UID EXPUNGE of some UIDs (RFC 4315 §2.1). Every
// message removed that the session knows is reported to it.
func (d *modelDriver) opExpunge(s *modelSession, byUID bool) {
	cmd := "EXPUNGE"
	in := func(uint32) bool { return true }
	if byUID {
		a, b := s.uids[d.rng.IntN(s.count())], s.uids[d.rng.IntN(s.count())]
		a, b = min(a, b), max(a, b)
		in = func(u uint32) bool { return u >= a && u <= b }
		cmd = fmt.Sprintf("UID EXPUNGE %d:%d", a, b)
	}
	var removed []uint32
	for _, uid := range d.tr.withFlag(s.box, `\Deleted`) {
		if in(uid) {
			removed = append(removed, uid)
			d.tr.expunge(s.box, uid)
		}
	}
	ctx := &respCtx{cmd: cmd, since: -1}
	s.run(ctx)
	d.mustBeTold(s, ctx, removed)
}

// mustBeTold checks that the session got an EXPUNGE for each of uids it
// knew.
func (d *modelDriver) mustBeTold(s *modelSession, ctx *respCtx, uids []uint32) {
	for _, uid := range uids {
		if slices.Contains(s.uids, uid) {
			s.fail(ctx, "UID %d was removed, and the session still has it at %d", uid, slices.Index(s.uids, uid)+1)
		}
	}
}

// opCopy: COPY or MOVE (RFC 6851), by number or UID, to the other
// mailbox. COPYUID maps the messages still there to their new UIDs;
// flags go with them.
func (d *modelDriver) opCopy(s *modelSession, byUID, move bool) {
	dest := "Archive"
	if s.box == "Archive" {
		dest = "INBOX"
	}
	var set []setRange
	var pairs []seqPair
	if byUID {
		set = d.uidSet(s)
		pairs = s.resolveUIDs(set)
	} else {
		set = d.seqSet(s.count())
		pairs = s.resolveSeqs(set)
	}
	var src []uint32
	srcFlags := map[uint32]flagSet{}
	for _, p := range pairs {
		if m := d.tr.present(s.box, p.uid); m != nil {
			src = append(src, p.uid)
			srcFlags[p.uid] = m.flags()
			if move {
				d.tr.expunge(s.box, p.uid)
			}
		}
	}
	verb := "COPY"
	if move {
		verb = "MOVE"
	}
	ctx := &respCtx{cmd: fmt.Sprintf("%s%s %s %s", uidPrefix(byUID), verb, renderSet(set), dest), uidCmd: byUID, since: -1}
	r := s.run(ctx)
	cu := ctx.copyUID
	if m := mCopyUIDRE.FindStringSubmatch(r.text); m != nil {
		cu = m[1] + " " + m[2] + " " + m[3]
	}
	if len(src) == 0 {
		return
	}
	f := strings.Fields(cu)
	if len(f) != 3 {
		s.fail(ctx, "no COPYUID for UIDs %v", src)
		return
	}
	from, to := parseUIDList(f[1]), parseUIDList(f[2])
	if !slices.Equal(from, src) || len(to) != len(from) {
		s.fail(ctx, "COPYUID %s, want the source UIDs %v", cu, src)
		return
	}
	d.checkUIDValidity(s, ctx, dest, atoi32(f[0]))
	for i, u := range to {
		if !d.tr.add(dest, u, srcFlags[from[i]]) {
			s.fail(ctx, "COPYUID gives UID %d, which %s held before", u, dest)
		}
	}
	if move {
		d.mustBeTold(s, ctx, src)
	}
}

func (d *modelDriver) checkUIDValidity(s *modelSession, ctx *respCtx, box string, v uint32) {
	b := d.tr.boxes[box]
	if b.uidValidity == 0 {
		b.uidValidity = v
	}
	if v != b.uidValidity {
		s.fail(ctx, "UIDVALIDITY of %s is %d, was %d", box, v, b.uidValidity)
	}
}

// searchKey is one SEARCH criterion and what it matches.
type searchKey struct {
	text  string
	match func(p seqPair, fs flagSet) bool
}

func (d *modelDriver) searchKey(s *modelSession) searchKey {
	flag := func(name, f string, want bool) searchKey {
		return searchKey{name, func(_ seqPair, fs flagSet) bool { return fs[strings.ToLower(f)] == want }}
	}
	switch d.rng.IntN(9) {
	case 0:
		return flag("FLAGGED", `\Flagged`, true)
	case 1:
		return flag("UNSEEN", `\Seen`, false)
	case 2:
		return flag("DELETED", `\Deleted`, true)
	case 3:
		return flag("KEYWORD $Label1", "$Label1", true)
	case 4:
		return flag("UNKEYWORD Work", "Work", false)
	case 5:
		a, b := d.flagKey(), d.flagKey()
		return searchKey{"OR " + a.text + " " + b.text, func(p seqPair, fs flagSet) bool { return a.match(p, fs) || b.match(p, fs) }}
	case 6:
		if !s.unknown() && s.count() > 0 {
			set := d.uidSet(s)
			in := map[uint32]bool{}
			for _, p := range s.resolveUIDs(set) {
				in[p.uid] = true
			}
			return searchKey{"UID " + renderSet(set), func(p seqPair, _ flagSet) bool { return in[p.uid] }}
		}
	case 7:
		if s.count() > 0 {
			set := d.seqSet(s.count())
			in := map[uint32]bool{}
			for _, p := range s.resolveSeqs(set) {
				in[p.seq] = true
			}
			return searchKey{renderSet(set), func(p seqPair, _ flagSet) bool { return in[p.seq] }}
		}
	}
	return searchKey{"ALL", func(seqPair, flagSet) bool { return true }}
}

func (d *modelDriver) flagKey() searchKey {
	f := flagPool[d.rng.IntN(len(flagPool))]
	text := "KEYWORD " + f
	if strings.HasPrefix(f, `\`) {
		text = strings.ToUpper(f[1:])
	}
	return searchKey{text, func(_ seqPair, fs flagSet) bool { return fs[strings.ToLower(f)] }}
}

// opSearch: SEARCH or UID SEARCH (RFC 9051 §6.4.4). Every message the
// session knows that is still there and matches is found; everything
// found is a message the session knows of and, unless it is gone
// meanwhile (RFC 2180 §4.1.3 lets it be found or not), matches.
func (d *modelDriver) opSearch(s *modelSession, byUID bool) {
	k := d.searchKey(s)
	ctx := &respCtx{cmd: uidPrefix(byUID) + "SEARCH " + k.text, noExpunge: !byUID, since: -1}
	pairs := s.resolveSeqs([]setRange{{1, 0}})
	s.run(ctx)
	if !ctx.searched {
		s.fail(ctx, "no SEARCH response")
		return
	}
	found := map[uint32]bool{}
	for _, n := range ctx.search {
		found[n] = true
	}
	for _, p := range pairs {
		m := d.tr.present(s.box, p.uid)
		if p.uid == 0 || m == nil {
			continue
		}
		key := p.seq
		if byUID {
			key = p.uid
		}
		if match := k.match(p, m.flags()); match != found[key] {
			s.fail(ctx, "message %d (UID %d, flags %v): found %v, matches %v", p.seq, p.uid, m.flags(), found[key], match)
		}
	}
	for _, n := range ctx.search {
		switch {
		case !byUID && (n == 0 || int(n) > len(pairs)):
			s.fail(ctx, "found %d with %d messages", n, len(pairs))
		case byUID && s.expunged[n]:
			s.fail(ctx, "found UID %d, which it was told was expunged", n)
		case byUID && !d.tr.ever(s.box, n):
			s.fail(ctx, "found UID %d, which %s never held", n, s.box)
		}
	}
}

func (d *modelDriver) opNoop(s *modelSession, cmd string) { s.run(&respCtx{cmd: cmd, since: -1}) }

// opIdleStart begins IDLE (RFC 2177); the session's next turn ends it,
// after other sessions' commands: what was pushed meanwhile is read then.
func (d *modelDriver) opIdleStart(s *modelSession) {
	ctx := &respCtx{cmd: "IDLE", since: -1}
	tag := s.c.nextTag()
	s.c.send(tag + " IDLE\r\n")
	for {
		line, err := s.c.readResponse(ioTimeout)
		if err != nil {
			s.fail(ctx, "%v", err)
			return
		}
		if strings.HasPrefix(line, "+") {
			break
		}
		if strings.HasPrefix(line, tag+" ") {
			s.fail(ctx, "refused: %s", line)
			return
		}
		s.see(line, ctx)
	}
	s.idleTag, s.idleSince = tag, d.tr.tick
}

func (d *modelDriver) opIdleDone(s *modelSession) {
	ctx := &respCtx{cmd: "IDLE (DONE)", since: s.idleSince}
	s.c.send("DONE\r\n")
	r, err := s.c.readTagged(s.idleTag, "IDLE")
	s.idleTag = ""
	d.record(s.name, r)
	if err != nil {
		s.fail(ctx, "%v", err)
		return
	}
	for _, l := range r.untagged {
		s.see(l, ctx)
	}
	if r.status != "OK" {
		s.fail(ctx, "answered %s %s", r.status, r.text)
	}
}

// opSelect (re)selects a mailbox: the session starts over from EXISTS,
// which counts every message in it now.
func (d *modelDriver) opSelect(s *modelSession, box string) {
	s.reset(box)
	ctx := &respCtx{cmd: "SELECT " + box, since: -1}
	s.run(ctx)
	if want := len(d.tr.uids(box)); s.count() != want {
		s.fail(ctx, "EXISTS %d, the mailbox has %d", s.count(), want)
	}
	d.checkUIDValidity(s, ctx, box, ctx.uidValidity)
	for uid := range d.tr.boxes[box].msgs {
		if uid >= ctx.uidNext {
			s.fail(ctx, "UIDNEXT %d, but UID %d was used", ctx.uidNext, uid)
		}
	}
}

// opClose: CLOSE expunges what is \Deleted without a word (RFC 9051
// §6.4.1), UNSELECT leaves it (RFC 3691); the session selects again.
func (d *modelDriver) opClose(s *modelSession, cmd string) {
	box := s.box
	if cmd == "CLOSE" {
		for _, uid := range d.tr.withFlag(box, `\Deleted`) {
			d.tr.expunge(box, uid)
		}
	}
	s.run(&respCtx{cmd: cmd, noExpunge: true, since: -1})
	d.opSelect(s, box)
}

// opAppend: APPEND with flags (RFC 9051 §6.3.12) answers APPENDUID.
func (d *modelDriver) opAppend(s *modelSession, box string) {
	var flags []string
	if d.rng.IntN(2) == 0 {
		flags = d.someFlags(2)
	}
	msg := simpleMessage(d.user, "appended", "body")
	ctx := &respCtx{cmd: fmt.Sprintf("APPEND %s (%s) %s", box, strings.Join(flags, " "), literal(msg)), since: -1}
	r := s.run(ctx)
	m := appendUIDRE.FindStringSubmatch(r.text)
	if m == nil {
		s.fail(ctx, "no APPENDUID: %s", r.text)
		return
	}
	d.checkUIDValidity(s, ctx, box, atoi32(m[1]))
	if !d.tr.add(box, atoi32(m[2]), flagsOf(flags)) {
		s.fail(ctx, "APPENDUID %s, a UID %s held before", m[2], box)
	}
}
