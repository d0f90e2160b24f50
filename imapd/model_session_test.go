package imapd_test

// One session of the model test and its model of what it was told: the
// sequence-number → UID map, the flags of each message, the flags the
// mailbox announced. Every untagged response is applied in wire order,
// as RFC 9051 §7.5 / RFC 3501 §7.4.1 say a client must, and checked
// against what the session knew before and against the truth.

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// modelSession is a raw-line IMAP session and its model.
type modelSession struct {
	d    *modelDriver
	name string
	c    *imapConn
	box  string // selected mailbox

	uids      []uint32           // seq n is uids[n-1]; 0: not told yet
	flags     map[uint32]flagSet // flags told, by UID
	expunged  map[uint32]bool    // UIDs told expunged in this selection
	announced map[string]bool    // the last FLAGS response, lower case

	idleTag   string // set while the session idles
	idleSince int    // the truth's tick when the IDLE began
}

// respCtx is what one command's responses are checked against, and
// what they told.
type respCtx struct {
	cmd       string
	noExpunge bool // FETCH, STORE, SEARCH by sequence number (RFC 9051 §7.5.1); CLOSE
	uidCmd    bool // a UID command: every FETCH response carries UID (§6.4.9)
	since     int  // FETCH FLAGS may show any state since this tick (IDLE); -1: the current one

	fetched     map[uint32]bool // sequence numbers a FETCH response named
	search      []uint32
	searched    bool
	copyUID     string // "v src dst" of an untagged COPYUID (MOVE)
	uidValidity uint32
	uidNext     uint32
}

var (
	mExistsRE  = regexp.MustCompile(`^\* (\d+) EXISTS$`)
	mExpungeRE = regexp.MustCompile(`^\* (\d+) EXPUNGE$`)
	mFetchRE   = regexp.MustCompile(`^\* (\d+) FETCH \((.*)\)$`)
	mUIDRE     = regexp.MustCompile(`(?:^| )UID (\d+)(?: |$)`)
	mFlagsRE   = regexp.MustCompile(`(?:^| )FLAGS \(([^)]*)\)`)
	mFlagsResp = regexp.MustCompile(`^\* FLAGS \(([^)]*)\)$`)
	mCopyUIDRE = regexp.MustCompile(`\[COPYUID (\d+) ([0-9:,]+) ([0-9:,]+)\]`)
	mUIDValRE  = regexp.MustCompile(`\[UIDVALIDITY (\d+)\]`)
	mUIDNextRE = regexp.MustCompile(`\[UIDNEXT (\d+)\]`)
)

func atoi32(s string) uint32 {
	n, _ := strconv.ParseUint(s, 10, 32)
	return uint32(n)
}

func (s *modelSession) fail(ctx *respCtx, format string, args ...any) {
	s.d.fail("%s: %s: %s", s.name, ctx.cmd, fmt.Sprintf(format, args...))
}

func (s *modelSession) count() int { return len(s.uids) }

// unknown says whether some message's UID or flags were not told yet.
func (s *modelSession) unknown() bool {
	for _, uid := range s.uids {
		if _, ok := s.flags[uid]; uid == 0 || !ok {
			return true
		}
	}
	return false
}

// reset forgets the selected mailbox (before SELECT).
func (s *modelSession) reset(box string) {
	s.box, s.uids = box, nil
	s.flags, s.expunged, s.announced = map[uint32]flagSet{}, map[uint32]bool{}, map[string]bool{}
}

// run sends one command, applies and checks its responses, and wants
// OK (every command the generator makes is valid when it is sent).
func (s *modelSession) run(ctx *respCtx) resp {
	r := s.c.do("%s", ctx.cmd)
	s.d.record(s.name, r)
	for _, l := range r.untagged {
		s.see(l, ctx)
	}
	if r.status != "OK" {
		s.fail(ctx, "answered %s %s", r.status, r.text)
	}
	return r
}

// see applies one untagged response.
func (s *modelSession) see(line string, ctx *respCtx) {
	switch {
	case mExistsRE.MatchString(line):
		s.exists(atoi32(mExistsRE.FindStringSubmatch(line)[1]), ctx)
	case mExpungeRE.MatchString(line):
		s.expunge(atoi32(mExpungeRE.FindStringSubmatch(line)[1]), ctx)
	case mFetchRE.MatchString(line):
		m := mFetchRE.FindStringSubmatch(line)
		s.fetch(atoi32(m[1]), m[2], ctx)
	case mFlagsResp.MatchString(line):
		s.announced = map[string]bool{}
		for f := range parseFlagList(mFlagsResp.FindStringSubmatch(line)[1]) {
			s.announced[f] = true
		}
	case strings.HasPrefix(line, "* SEARCH"):
		ctx.searched = true
		for _, f := range strings.Fields(strings.TrimPrefix(line, "* SEARCH")) {
			ctx.search = append(ctx.search, atoi32(f))
		}
	case strings.HasPrefix(line, "* ESEARCH"):
		// IMAP4rev2 answers SEARCH so (RFC 9051 §7.3.4); ALL is left
		// out when nothing matched.
		ctx.searched = true
		if _, all, ok := strings.Cut(line, " ALL "); ok {
			ctx.search = append(ctx.search, parseUIDList(strings.Fields(all)[0])...)
		}
	case strings.HasPrefix(line, "* VANISHED"), strings.HasPrefix(line, "* BYE"), strings.HasPrefix(line, "* NO"), strings.HasPrefix(line, "* BAD"):
		s.fail(ctx, "unexpected %q", line)
	case strings.HasPrefix(line, "* OK "):
		if m := mCopyUIDRE.FindStringSubmatch(line); m != nil {
			ctx.copyUID = m[1] + " " + m[2] + " " + m[3]
		}
		if m := mUIDValRE.FindStringSubmatch(line); m != nil {
			ctx.uidValidity = atoi32(m[1])
		}
		if m := mUIDNextRE.FindStringSubmatch(line); m != nil {
			ctx.uidNext = atoi32(m[1])
		}
	}
}

// exists: the count only grows by EXISTS (RFC 9051 §7.4.1); the new
// messages' UIDs are not known until a FETCH tells them.
func (s *modelSession) exists(n uint32, ctx *respCtx) {
	if int(n) < s.count() {
		s.fail(ctx, "EXISTS %d below the %d messages it was told of", n, s.count())
		return
	}
	for s.count() < int(n) {
		s.uids = append(s.uids, 0)
	}
}

// expunge: RFC 9051 §7.5.1: n is in 1..count, names a message that is
// gone, and every higher number drops by one. None may come during a
// FETCH, STORE or SEARCH by sequence number.
func (s *modelSession) expunge(seq uint32, ctx *respCtx) {
	if ctx.noExpunge {
		s.fail(ctx, "EXPUNGE %d during a command that may not send one (RFC 9051 §7.5.1, §6.4.1)", seq)
	}
	if seq == 0 || int(seq) > s.count() {
		s.fail(ctx, "EXPUNGE %d with %d messages", seq, s.count())
		return
	}
	if uid := s.uids[seq-1]; uid != 0 {
		if s.d.tr.present(s.box, uid) != nil {
			s.fail(ctx, "EXPUNGE %d is UID %d, which is still in %s", seq, uid, s.box)
		}
		s.expunged[uid] = true
		delete(s.flags, uid)
	}
	s.uids = append(s.uids[:seq-1], s.uids[seq:]...)
}

// fetch checks one FETCH response: its number against the count, its
// UID against what the session was told of that number (RFC 9051
// §2.3.1.2: never contradicted), its flags against the truth.
func (s *modelSession) fetch(seq uint32, items string, ctx *respCtx) {
	if seq == 0 || int(seq) > s.count() {
		s.fail(ctx, "FETCH %d with %d messages: (%s)", seq, s.count(), items)
		return
	}
	if ctx.fetched == nil {
		ctx.fetched = map[uint32]bool{}
	}
	ctx.fetched[seq] = true
	known := s.uids[seq-1]
	uid := known
	if m := mUIDRE.FindStringSubmatch(items); m != nil {
		uid = atoi32(m[1])
		if !s.checkUID(seq, uid, ctx) {
			return
		}
	} else if ctx.uidCmd {
		s.fail(ctx, "FETCH %d without UID in answer to a UID command (RFC 9051 §6.4.9)", seq)
	}
	m := mFlagsRE.FindStringSubmatch(items)
	if m == nil || uid == 0 {
		return
	}
	fs := parseFlagList(m[1])
	s.checkKeywords(fs, ctx)
	if s.d.tr.present(s.box, uid) != nil && !s.d.tr.flagsSeenSince(s.box, uid, ctx.since, fs) {
		s.fail(ctx, "FETCH %d UID %d FLAGS %v, but the message has %v", seq, uid, fs, s.d.tr.present(s.box, uid).flags())
	}
	s.flags[uid] = fs
}

// checkUID checks a UID a FETCH response gives for seq and takes it as
// told.
func (s *modelSession) checkUID(seq, uid uint32, ctx *respCtx) bool {
	known := s.uids[seq-1]
	switch {
	case s.expunged[uid]:
		s.fail(ctx, "FETCH %d names UID %d, which it was told was expunged", seq, uid)
		return false
	case known != 0 && known != uid:
		s.fail(ctx, "FETCH %d is UID %d, but it was told seq %d is UID %d", seq, uid, seq, known)
		return false
	case known != 0:
		return true
	case !s.d.tr.ever(s.box, uid):
		s.fail(ctx, "FETCH %d names UID %d, which %s never held", seq, uid, s.box)
		return false
	}
	// A first UID for this number must sit between its neighbours'.
	for i := int(seq) - 2; i >= 0; i-- {
		if s.uids[i] != 0 {
			if s.uids[i] >= uid {
				s.fail(ctx, "FETCH %d is UID %d, not above seq %d's UID %d", seq, uid, i+1, s.uids[i])
				return false
			}
			break
		}
	}
	for i := int(seq); i < s.count(); i++ {
		if s.uids[i] != 0 {
			if s.uids[i] <= uid {
				s.fail(ctx, "FETCH %d is UID %d, not below seq %d's UID %d", seq, uid, i+1, s.uids[i])
				return false
			}
			break
		}
	}
	s.uids[seq-1] = uid
	return true
}

// checkKeywords: a keyword a FETCH shows should have been announced in
// FLAGS first (RFC 9051 §7.3.5, imaptest's "keyword never announced").
func (s *modelSession) checkKeywords(fs flagSet, ctx *respCtx) {
	for f := range fs {
		if strings.HasPrefix(f, `\`) || s.announced[f] {
			continue
		}
		if *modelAnnounceKeywords {
			s.fail(ctx, "FETCH shows keyword %s, never announced in FLAGS", f)
		} else {
			s.d.unannounced[f]++
		}
	}
}

// setRange is one range of a sequence or UID set; 0 stands for "*".
type setRange struct{ lo, hi uint32 }

func renderSet(rs []setRange) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		num := func(n uint32) string {
			if n == 0 {
				return "*"
			}
			return strconv.Itoa(int(n))
		}
		if r.lo == r.hi {
			parts[i] = num(r.lo)
		} else {
			parts[i] = num(r.lo) + ":" + num(r.hi)
		}
	}
	return strings.Join(parts, ",")
}

// seqPair is one message a set names: its number and UID (0 when the
// session was not told it).
type seqPair struct{ seq, uid uint32 }

// resolveSeqs is the messages a sequence set names (RFC 9051 §9: "*" is
// the last, a:b is b:a).
func (s *modelSession) resolveSeqs(rs []setRange) []seqPair {
	n := uint32(s.count())
	in := map[uint32]bool{}
	for _, r := range rs {
		lo, hi := r.lo, r.hi
		if lo == 0 {
			lo = n
		}
		if hi == 0 {
			hi = n
		}
		lo, hi = min(lo, hi), max(lo, hi)
		for q := max(lo, 1); q <= min(hi, n); q++ {
			in[q] = true
		}
	}
	var out []seqPair
	for q := uint32(1); q <= n; q++ {
		if in[q] {
			out = append(out, seqPair{q, s.uids[q-1]})
		}
	}
	return out
}

// resolveUIDs is the known messages a UID set names ("*" is the last
// UID, which the caller makes sure the session knows).
func (s *modelSession) resolveUIDs(rs []setRange) []seqPair {
	var last uint32
	if n := s.count(); n > 0 {
		last = s.uids[n-1]
	}
	var out []seqPair
	for i, uid := range s.uids {
		for _, r := range rs {
			lo, hi := r.lo, r.hi
			if lo == 0 {
				lo = last
			}
			if hi == 0 {
				hi = last
			}
			if uid != 0 && uid >= min(lo, hi) && uid <= max(lo, hi) {
				out = append(out, seqPair{uint32(i + 1), uid})
				break
			}
		}
	}
	return out
}

// parseUIDList expands a COPYUID set ("3:5,9") in order.
func parseUIDList(set string) []uint32 {
	var out []uint32
	for _, part := range strings.Split(set, ",") {
		lo, hi, ok := strings.Cut(part, ":")
		a := atoi32(lo)
		b := a
		if ok {
			b = atoi32(hi)
		}
		if a <= b {
			for u := a; u <= b; u++ {
				out = append(out, u)
			}
		} else {
			for u := a; u >= b; u-- {
				out = append(out, u)
			}
		}
	}
	return out
}
