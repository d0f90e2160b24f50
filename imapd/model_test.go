package imapd_test

// A generated client (issue 14, "Done when"): several sessions on one
// account run thousands of random interleaved commands against INBOX and
// Archive, with SMTP deliveries and APPENDs among them, and every
// response is checked against a model of what that session was told
// (model_session_test.go) and against the mailboxes' truth
// (model_truth_test.go). The commands run one at a time from one
// goroutine, so each command's effect is known exactly when its answer
// arrives and no check depends on timing; IDLE interleaves by staying
// open across other sessions' commands until the session's next turn.
//
//	go test -run TestModelRandomSessions -model.seed=N -model.ops=100000 ./imapd/

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

var (
	modelSeed             = flag.Uint64("model.seed", 0, "seed of TestModelRandomSessions (0: a new one, logged)")
	modelOps              = flag.Int("model.ops", 3000, "commands TestModelRandomSessions runs")
	modelMessages         = flag.Int("model.messages", 60, "TestModelRandomSessions keeps its two mailboxes between a quarter of this many messages and this many (above 256, FETCH and SEARCH work in several chunks)")
	modelAnnounceKeywords = flag.Bool("model.announce-keywords", true,
		"TestModelRandomSessions fails when FETCH shows a keyword its session was not told of in FLAGS (false: counted and logged)")
)

// syncEvery is how many commands run between two comparisons of every
// session's model with the mailbox.
const syncEvery = 200

// modelDriver runs the generated client.
type modelDriver struct {
	t        *testing.T
	seed     uint64
	rng      *rand.Rand
	srv      *server
	user     string
	tr       *truth
	sessions []*modelSession
	checker  *imapConn // STATUS after deliveries; the fresh reads

	op          int
	errs        []string
	recent      []string // the last commands and their answers
	counts      map[string]int
	unannounced map[string]int // keywords shown but not announced
}

func (d *modelDriver) fail(format string, args ...any) {
	if len(d.errs) < 20 {
		d.errs = append(d.errs, fmt.Sprintf(format, args...))
	}
}

// record keeps a command and its answer for the failure report.
func (d *modelDriver) record(name string, r resp) {
	cmd, _, _ := strings.Cut(r.cmd, "\r\n")
	var b strings.Builder
	fmt.Fprintf(&b, "[%d] %s: %s", d.op, name, cmd)
	for i, l := range r.untagged {
		if i == 12 {
			fmt.Fprintf(&b, "\n    ... %d more", len(r.untagged)-i)
			break
		}
		b.WriteString("\n    " + trim(l))
	}
	b.WriteString("\n    => " + r.status + " " + trim(r.text))
	d.recent = append(d.recent, b.String())
	if len(d.recent) > 40 {
		d.recent = d.recent[1:]
	}
}

func (d *modelDriver) check() {
	if len(d.errs) == 0 {
		return
	}
	d.t.Fatalf("model test failed at command %d, seed %d (rerun with -model.seed=%d):\n%s\n\nthe last commands:\n%s",
		d.op, d.seed, d.seed, strings.Join(d.errs, "\n"), strings.Join(d.recent, "\n"))
}

// TestModelRandomSessions: four sessions of one account, three on INBOX
// and one on Archive (each re-SELECTs now and then, either mailbox),
// run -model.ops random commands: FETCH and UID FETCH (UID FLAGS) of
// sets with "*" and ranges, STORE and UID STORE of system flags and
// keywords (+, -, replace, .SILENT), COPY and MOVE both ways, EXPUNGE,
// UID EXPUNGE, SEARCH and UID SEARCH by flags, keywords, UIDs and
// numbers, NOOP, CHECK, IDLE across other sessions' commands, APPEND,
// and SMTP deliveries. Every 200 commands and at the end, every session
// (after NOOP) must know exactly the mailbox a fresh EXAMINE reads,
// UIDs and flags, and so must the truth.
func TestModelRandomSessions(t *testing.T) {
	t.Parallel()
	seed := *modelSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (rerun with -model.seed=%d)", seed, seed)
	e := newEnv(t)
	e.OK("class", "set", "busy", "--imap-commands-per-minute", "0", "--received-per-day", "0")
	user := e.addUser("alice", "--class", "busy")
	d := &modelDriver{t: t, seed: seed, rng: rand.New(rand.NewPCG(seed, 14)), srv: e.start(), user: user,
		tr: newTruth("INBOX", "Archive"), counts: map[string]int{}, unannounced: map[string]int{}}
	d.checker = dialIMAPS(t, d.srv.imaps, "checker")
	d.checker.login(user)
	for range 8 {
		d.deliver()
	}
	for range *modelMessages/2 - 8 {
		d.appendQuietly()
	}
	for i, box := range []string{"INBOX", "INBOX", "INBOX", "Archive"} {
		s := &modelSession{d: d, name: fmt.Sprintf("s%d", i+1)}
		s.c = dialIMAPS(t, d.srv.imaps, s.name)
		s.c.login(user)
		if i == 2 {
			// One IMAP4rev2 client (ESEARCH answers, no \Recent).
			s.c.ok("ENABLE IMAP4rev2")
		}
		d.opSelect(s, box)
		d.sessions = append(d.sessions, s)
	}
	d.check()
	start := time.Now()
	for d.op = 1; d.op <= *modelOps; d.op++ {
		d.step()
		if d.op%syncEvery == 0 {
			d.sync()
		}
		d.check()
	}
	d.sync()
	d.check()
	d.logSummary(time.Since(start))
}

func (d *modelDriver) logSummary(took time.Duration) {
	names := make([]string, 0, len(d.counts))
	for n := range d.counts {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		fmt.Fprintf(&b, " %s=%d", n, d.counts[n])
	}
	d.t.Logf("%d commands in %v (seed %d), %d messages at the end;%s", *modelOps, took.Round(time.Millisecond), d.seed, d.tr.count(), b.String())
	// Sessions that fell more than the feed's buffer behind were
	// brought back in line from the store (view.resync): counted, so a
	// run says whether it went through that path.
	d.t.Logf("%.0f view resyncs after change-feed overflows", d.srv.metric(d.t, "abox_imap_view_resyncs_total"))
	if len(d.unannounced) > 0 {
		d.t.Logf("keywords shown in FETCH but never announced in FLAGS (RFC 9051 §7.3.5; -model.announce-keywords fails on them): %v", d.unannounced)
	}
}

// modelOp is one kind of command and how often the generator picks it.
type modelOp struct {
	name   string
	weight int
	run    func()
}

func when(ok bool, w int) int {
	if ok {
		return w
	}
	return 0
}

// step runs one command of a random session.
func (d *modelDriver) step() {
	s := d.sessions[d.rng.IntN(len(d.sessions))]
	if s.idleTag != "" {
		d.counts["IDLE"]++
		d.opIdleDone(s)
		return
	}
	if s.unknown() && d.rng.IntN(3) != 0 {
		d.counts["FETCH new"]++
		d.opFetchUnknown(s)
		return
	}
	// Commands that change messages name only messages whose UIDs the
	// session knows, so the truth knows what they changed.
	known := s.count() > 0 && !s.unknown()
	total := d.tr.count()
	grow, shrink := total < *modelMessages/4, total > *modelMessages
	other := "Archive"
	if s.box == "Archive" || d.rng.IntN(10) < 6 {
		other = "INBOX"
	}
	ops := []modelOp{
		{"FETCH", 8, func() { d.opFetch(s, false) }},
		{"UID FETCH", 8, func() { d.opFetch(s, true) }},
		{"STORE", when(known, 8), func() { d.opStore(s, false, d.someFlags(3)) }},
		{"UID STORE", when(known, 8), func() { d.opStore(s, true, d.someFlags(3)) }},
		{`STORE \Deleted`, when(known, 3+when(shrink, 12)), func() { d.opStore(s, d.rng.IntN(2) == 0, []string{`\Deleted`}) }},
		{"EXPUNGE", when(known, 3+when(shrink, 6)), func() { d.opExpunge(s, false) }},
		{"UID EXPUNGE", when(known, 2+when(shrink, 4)), func() { d.opExpunge(s, true) }},
		{"COPY", when(known && !shrink, 2), func() { d.opCopy(s, false, false) }},
		{"UID COPY", when(known && !shrink, 2), func() { d.opCopy(s, true, false) }},
		{"MOVE", when(known, 3), func() { d.opCopy(s, false, true) }},
		{"UID MOVE", when(known, 3), func() { d.opCopy(s, true, true) }},
		{"SEARCH", 5, func() { d.opSearch(s, false) }},
		{"UID SEARCH", 5, func() { d.opSearch(s, true) }},
		{"NOOP", 4, func() { d.opNoop(s, "NOOP") }},
		{"CHECK", 2, func() { d.opNoop(s, "CHECK") }},
		{"IDLE", 5, func() { d.opIdleStart(s) }},
		{"SELECT", 2, func() { d.opSelect(s, other) }},
		{"CLOSE", when(known, 1), func() { d.opClose(s, "CLOSE") }},
		{"UNSELECT", 1, func() { d.opClose(s, "UNSELECT") }},
		{"APPEND", when(!shrink, 3+when(grow, 6)), func() { d.opAppend(s, []string{"INBOX", "Archive"}[d.rng.IntN(3)/2]) }},
		{"deliver", when(!shrink, 3+when(grow, 6)), d.deliver},
	}
	sum := 0
	for _, o := range ops {
		sum += o.weight
	}
	n := d.rng.IntN(sum)
	for _, o := range ops {
		if n < o.weight {
			d.counts[o.name]++
			o.run()
			return
		}
		n -= o.weight
	}
}

var statusUIDNextRE = regexp.MustCompile(`UIDNEXT (\d+)`)

// deliver sends a message to INBOX over SMTP; its UID is the one before
// UIDNEXT (nothing else runs meanwhile).
func (d *modelDriver) deliver() {
	msg := simpleMessage(d.user, "delivered", "body")
	if err := deliver(d.srv.smtp, "sender@gov.kz", []string{d.user}, msg); err != nil {
		d.fail("delivery: %v", err)
		return
	}
	r := d.checker.ok("STATUS INBOX (UIDNEXT)")
	m := statusUIDNextRE.FindStringSubmatch(strings.Join(r.untagged, "\n"))
	if m == nil {
		d.fail("STATUS INBOX (UIDNEXT): no UIDNEXT in %q", r.untagged)
		return
	}
	if uid := atoi32(m[1]) - 1; !d.tr.add("INBOX", uid, flagSet{}) {
		d.fail("delivery: UIDNEXT %s after it, but UID %d was used before", m[1], uid)
	}
}

// appendQuietly APPENDs a message to INBOX from the checker (which has
// nothing selected), to fill the mailbox before the sessions start.
func (d *modelDriver) appendQuietly() {
	msg := simpleMessage(d.user, "seed", "body")
	r := d.checker.ok("APPEND INBOX () %s", literal(msg))
	m := appendUIDRE.FindStringSubmatch(r.text)
	if m == nil || !d.tr.add("INBOX", atoi32(m[2]), flagSet{}) {
		d.fail("APPEND INBOX: %s %s", r.status, r.text)
	}
}

// sync ends every IDLE, sends NOOP in every session and fetches what a
// session was not told yet; then a fresh EXAMINE of each mailbox, the
// truth and every session's model must agree on UIDs and flags.
func (d *modelDriver) sync() {
	for _, s := range d.sessions {
		if s.idleTag != "" {
			d.opIdleDone(s)
		}
		d.opNoop(s, "NOOP")
		d.opFetchUnknown(s)
	}
	fresh := map[string][]uint32{}
	for _, box := range []string{"INBOX", "Archive"} {
		uids, flags := d.freshRead(box)
		fresh[box] = uids
		if want := d.tr.uids(box); !slices.Equal(uids, want) {
			d.fail("fresh EXAMINE %s: UIDs %v, the truth %v", box, trimUIDs(uids), trimUIDs(want))
			continue
		}
		for _, uid := range uids {
			if want := d.tr.present(box, uid).flags(); !flags[uid].equal(want) {
				d.fail("fresh EXAMINE %s: UID %d has %v, the truth %v", box, uid, flags[uid], want)
			}
		}
	}
	for _, s := range d.sessions {
		if !slices.Equal(s.uids, fresh[s.box]) {
			d.fail("%s after NOOP: %s is %v, a fresh EXAMINE %v", s.name, s.box, trimUIDs(s.uids), trimUIDs(fresh[s.box]))
			continue
		}
		for _, uid := range s.uids {
			if want := d.tr.present(s.box, uid).flags(); !s.flags[uid].equal(want) {
				d.fail("%s after NOOP: UID %d has %v, the mailbox %v", s.name, uid, s.flags[uid], want)
			}
		}
	}
}

// freshRead reads a mailbox as a newly selected session sees it.
func (d *modelDriver) freshRead(box string) ([]uint32, map[uint32]flagSet) {
	c := d.checker
	c.selectBox("EXAMINE", box)
	r := c.ok("UID FETCH 1:* (UID FLAGS)")
	c.ok("UNSELECT")
	var uids []uint32
	flags := map[uint32]flagSet{}
	for _, l := range r.untagged {
		m := mFetchRE.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		u, f := mUIDRE.FindStringSubmatch(m[2]), mFlagsRE.FindStringSubmatch(m[2])
		if u == nil || f == nil {
			d.fail("fresh EXAMINE %s: %q lacks UID or FLAGS", box, l)
			continue
		}
		uids = append(uids, atoi32(u[1]))
		flags[atoi32(u[1])] = parseFlagList(f[1])
	}
	return uids, flags
}
