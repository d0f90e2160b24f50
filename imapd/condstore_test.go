package imapd_test

// CONDSTORE and QRESYNC (RFC 7162) with raw commands, a real client
// (go-imap's imapclient) and the bytes a QRESYNC reselect costs.

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
)

var (
	highestRE = regexp.MustCompile(`\[HIGHESTMODSEQ (\d+)\]`)
	modseqRE  = regexp.MustCompile(`MODSEQ \((\d+)\)`)
)

// highest is the HIGHESTMODSEQ a response carries (0 if none).
func highest(r resp) uint64 {
	for _, u := range r.untagged {
		if m := highestRE.FindStringSubmatch(u); m != nil {
			n, _ := strconv.ParseUint(m[1], 10, 64)
			return n
		}
	}
	return 0
}

var statusHighestRE = regexp.MustCompile(`HIGHESTMODSEQ (\d+)`)

// statusHighest is the HIGHESTMODSEQ of a STATUS response.
func statusHighest(r resp) uint64 {
	if m := statusHighestRE.FindStringSubmatch(r.String()); m != nil {
		n, _ := strconv.ParseUint(m[1], 10, 64)
		return n
	}
	return 0
}

// modseqs maps UID to MODSEQ in a response's FETCH lines.
func modseqs(r resp) map[uint32]uint64 {
	out := map[uint32]uint64{}
	for _, u := range r.untagged {
		um, mm := uidRE.FindStringSubmatch(u), modseqRE.FindStringSubmatch(u)
		if um != nil && mm != nil {
			uid, _ := strconv.ParseUint(um[1], 10, 32)
			out[uint32(uid)], _ = strconv.ParseUint(mm[1], 10, 64)
		}
	}
	return out
}

func TestCondstore(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.addUser("alice")
	s := e.start()
	for i := range 3 {
		s.mustDeliver(alice, simpleMessage(alice, fmt.Sprintf("m%d", i), "hello"))
	}
	c := dialIMAPS(t, s.imaps, "a")
	c.login(alice)
	if caps := c.caps(); !caps["CONDSTORE"] || !caps["QRESYNC"] {
		t.Fatalf("capabilities %v lack CONDSTORE/QRESYNC", caps)
	}
	r := c.ok("SELECT INBOX")
	h0 := highest(r)
	if h0 == 0 {
		t.Fatalf("SELECT without HIGHESTMODSEQ:\n%s", r)
	}
	if r := c.ok("FETCH 1 (FLAGS)"); strings.Contains(r.String(), "MODSEQ") {
		t.Fatalf("MODSEQ before CONDSTORE was enabled:\n%s", r)
	}
	// FETCH MODSEQ enables CONDSTORE: the mailbox's HIGHESTMODSEQ first.
	r = c.ok("FETCH 1:3 (MODSEQ)")
	if highest(r) != h0 {
		t.Fatalf("first CONDSTORE command in a selected mailbox: want OK [HIGHESTMODSEQ %d]:\n%s", h0, r)
	}
	if n := len(r.find("")) - 1; n != 3 || !strings.Contains(r.String(), "MODSEQ (") {
		t.Fatalf("FETCH MODSEQ:\n%s", r)
	}
	uids := c.uids()
	// STORE answers with UID and MODSEQ once CONDSTORE is on.
	r = c.ok(`STORE 1 +FLAGS (\Seen)`)
	ms := modseqs(r)
	if ms[uids[0]] <= h0 || !strings.Contains(r.String(), `FLAGS (\Seen`) {
		t.Fatalf("STORE after CONDSTORE:\n%s", r)
	}
	m1 := ms[uids[0]]
	all := modseqs(c.ok("FETCH 1:3 (UID MODSEQ)"))
	// UNCHANGEDSINCE the second message's modseq: the first (changed
	// since) and the third (delivered after) fail, the second changes.
	r = c.ok(`STORE 1:3 (UNCHANGEDSINCE %d) +FLAGS (\Flagged)`, all[uids[1]])
	if r.text != "[MODIFIED 1,3] Conditional STORE failed" || len(modseqs(r)) != 1 || modseqs(r)[uids[1]] <= m1 {
		t.Fatalf("conditional STORE:\n%s", r)
	}
	r = c.ok(`UID STORE %d (UNCHANGEDSINCE %d) +FLAGS.SILENT (\Answered)`, uids[0], m1-1)
	if r.text != fmt.Sprintf("[MODIFIED %d] Conditional STORE failed", uids[0]) || len(r.untagged) != 0 {
		t.Fatalf("conditional UID STORE that fails:\n%s", r)
	}
	r = c.ok(`UID STORE %d (UNCHANGEDSINCE %d) +FLAGS.SILENT (\Answered)`, uids[0], m1)
	if strings.Contains(r.text, "MODIFIED") || len(modseqs(r)) != 1 || strings.Contains(r.String(), "FLAGS") {
		t.Fatalf(".SILENT conditional STORE must tell only the MODSEQ:\n%s", r)
	}
	after := modseqs(r)[uids[0]]
	// CHANGEDSINCE: only what changed, with MODSEQ though not asked.
	r = c.ok("FETCH 1:* (UID FLAGS) (CHANGEDSINCE %d)", after-1)
	if got := modseqs(r); len(got) != 1 || got[uids[0]] != after {
		t.Fatalf("FETCH CHANGEDSINCE %d:\n%s", after-1, r)
	}
	// SEARCH MODSEQ and its (MODSEQ n); ESEARCH's MODSEQ.
	r = c.ok("SEARCH MODSEQ %d", m1)
	if want := fmt.Sprintf("* SEARCH 1 2 (MODSEQ %d)", after); len(r.untagged) != 1 || r.untagged[0] != want {
		t.Fatalf("SEARCH MODSEQ: got %q, want %q", r.untagged, want)
	}
	r = c.ok("UID SEARCH RETURN (ALL COUNT) MODSEQ %d", m1)
	if !strings.HasSuffix(r.untagged[0], fmt.Sprintf("COUNT 2 MODSEQ %d", after)) {
		t.Fatalf("ESEARCH MODSEQ:\n%s", r)
	}
	if r := c.ok("SEARCH MODSEQ %d", after+1); r.untagged[0] != "* SEARCH" {
		t.Fatalf("SEARCH MODSEQ past everything: %q", r.untagged)
	}
	r = c.ok("STATUS INBOX (HIGHESTMODSEQ MESSAGES)")
	if !strings.Contains(r.untagged[0], fmt.Sprintf("HIGHESTMODSEQ %d", after)) {
		t.Fatalf("STATUS HIGHESTMODSEQ:\n%s", r)
	}
	// A change made elsewhere comes with UID and MODSEQ.
	b := inInbox(t, s.imaps, "b", alice)
	b.ok(`STORE 3 +FLAGS (\Draft)`)
	r = c.ok("NOOP")
	if got := modseqs(r); len(got) != 1 || got[uids[2]] <= after || !strings.Contains(r.String(), `\Draft`) {
		t.Fatalf("unsolicited FETCH with CONDSTORE:\n%s", r)
	}

	// SELECT (CONDSTORE) and ENABLE CONDSTORE on fresh sessions.
	d := dialIMAPS(t, s.imaps, "d")
	d.login(alice)
	if r := d.ok("EXAMINE INBOX (CONDSTORE)"); highest(r) == 0 {
		t.Fatalf("EXAMINE (CONDSTORE):\n%s", r)
	}
	f := dialIMAPS(t, s.imaps, "f")
	f.login(alice)
	if r := f.ok("ENABLE CONDSTORE"); r.untagged[0] != "* ENABLED CONDSTORE" {
		t.Fatalf("ENABLE CONDSTORE: %q", r.untagged)
	}
	if r := f.do("SELECT INBOX (QRESYNC (1 1))"); r.status != "BAD" {
		t.Fatalf("QRESYNC without ENABLE QRESYNC: %s", r)
	}
}

// qresyncSelect SELECTs mailbox with QRESYNC data and returns the
// response and the VANISHED (EARLIER) set.
func qresyncSelect(c *imapConn, mailbox string, uidValidity uint32, modseq uint64) (resp, string) {
	c.t.Helper()
	r := c.ok("SELECT %s (QRESYNC (%d %d))", mailbox, uidValidity, modseq)
	return r, vanishedEarlier(r)
}

func vanishedEarlier(r resp) string {
	for _, u := range r.untagged {
		if rest, ok := strings.CutPrefix(u, "* VANISHED (EARLIER) "); ok {
			return rest
		}
	}
	return ""
}

func TestQresync(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.addUser("alice")
	s := e.start()
	for i := range 6 {
		s.mustDeliver(alice, simpleMessage(alice, fmt.Sprintf("m%d", i), "hello"))
	}
	// UID 5 goes before the client below learns the mailbox: an exact
	// answer never names it.
	z := inInbox(t, s.imaps, "z", alice)
	z.ok(`STORE 5 +FLAGS (\Deleted)`)
	z.ok("EXPUNGE")
	a := dialIMAPS(t, s.imaps, "a")
	a.login(alice)
	if r := a.ok("ENABLE QRESYNC"); r.untagged[0] != "* ENABLED QRESYNC" {
		t.Fatalf("ENABLE QRESYNC: %q", r.untagged)
	}
	si := a.selectBox("SELECT", "INBOX")
	h := statusHighest(a.ok("STATUS INBOX (HIGHESTMODSEQ)"))
	uids := a.uids()

	// Another session (no QRESYNC) flags the second and expunges the
	// third: it is told EXPUNGE, the QRESYNC session VANISHED.
	b := inInbox(t, s.imaps, "b", alice)
	b.ok(`STORE 2 +FLAGS (\Flagged)`)
	b.ok(`STORE 3 +FLAGS (\Deleted)`)
	if r := b.ok("EXPUNGE"); !r.has("3 EXPUNGE") {
		t.Fatalf("EXPUNGE without QRESYNC:\n%s", r)
	}
	r := a.ok("NOOP")
	if !r.has(fmt.Sprintf("VANISHED %d", uids[2])) || r.has("3 EXPUNGE") || modseqs(r)[uids[1]] == 0 {
		t.Fatalf("QRESYNC session's updates:\n%s", r)
	}
	// Its own expunge is told by UID too.
	a.ok(`STORE 1 +FLAGS.SILENT (\Deleted)`)
	if r := a.ok("EXPUNGE"); !r.has(fmt.Sprintf("VANISHED %d", uids[0])) || r.has("EXPUNGE") || !strings.HasPrefix(r.text, "[HIGHESTMODSEQ ") {
		t.Fatalf("EXPUNGE with QRESYNC:\n%s", r)
	}
	// An IDLE session is told by UID too.
	tag := a.idle()
	b.ok(`UID STORE %d +FLAGS.SILENT (\Deleted)`, uids[3])
	b.ok("UID EXPUNGE %d", uids[3])
	a.waitFor(regexp.MustCompile(fmt.Sprintf(`^\* VANISHED %d$`, uids[3])))
	a.done(tag)
	// SELECT of another mailbox closes this one: [CLOSED] first.
	if r := a.ok("SELECT Archive"); !strings.HasPrefix(r.untagged[0], "* OK [CLOSED]") {
		t.Fatalf("SELECT with a mailbox selected, QRESYNC on:\n%s", r)
	}

	// A client that knew the mailbox at h learns the two expunges and
	// the flag change, nothing else.
	c := dialIMAPS(t, s.imaps, "c")
	c.login(alice)
	c.ok("ENABLE QRESYNC")
	r, gone := qresyncSelect(c, "INBOX", si.uidValidity, h)
	if want := fmt.Sprintf("%d,%d:%d", uids[0], uids[2], uids[3]); gone != want {
		t.Fatalf("VANISHED (EARLIER) %q, want %q:\n%s", gone, want, r)
	}
	if got := modseqs(r); len(got) != 1 || got[uids[1]] == 0 {
		t.Fatalf("SELECT QRESYNC's FETCHes:\n%s", r)
	}
	// Known UIDs (and sequence match data, read and not needed) limit it.
	r = c.ok("SELECT INBOX (QRESYNC (%d %d 2:4 (1:2 2,4)))", si.uidValidity, h)
	if gone := vanishedEarlier(r); gone != "3:4" {
		t.Fatalf("SELECT QRESYNC with known UIDs 2:4: VANISHED (EARLIER) %q, want 3:4:\n%s", gone, r)
	}
	// UID FETCH (CHANGEDSINCE h VANISHED) gives the same as without.
	r = c.ok("UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d VANISHED)", h)
	if gone := vanishedEarlier(r); gone != fmt.Sprintf("%d,%d:%d", uids[0], uids[2], uids[3]) || len(modseqs(r)) != 1 {
		t.Fatalf("UID FETCH VANISHED:\n%s", r)
	}
	if r := c.do("FETCH 1:* (FLAGS) (CHANGEDSINCE %d VANISHED)", h); r.status != "BAD" {
		t.Fatalf("VANISHED without UID: %s", r)
	}
	// Another UIDVALIDITY: the client's state is worthless, nothing told.
	if r, gone := qresyncSelect(c, "INBOX", si.uidValidity+1, h); gone != "" || len(modseqs(r)) != 0 {
		t.Fatalf("SELECT QRESYNC with another UIDVALIDITY:\n%s", r)
	}
	// A CLOSE expunges silently.
	c.ok(`STORE 1 +FLAGS.SILENT (\Deleted)`)
	if r := c.ok("CLOSE"); len(r.untagged) != 0 {
		t.Fatalf("CLOSE with QRESYNC:\n%s", r)
	}

	// 100 days on, the sweep has forgotten the expunges: the answer is
	// then every UID missing below the last (RFC 7162 §3.2.5.1), UID 5
	// (expunged before the client's modseq) included.
	e.OK("policy", "run", "--at", time.Now().Add(100*24*time.Hour).UTC().Format(time.RFC3339))
	_, gone = qresyncSelect(c, "INBOX", si.uidValidity, h)
	if want := "1:5"; gone != want {
		t.Fatalf("VANISHED (EARLIER) after pruning %q, want %q", gone, want)
	}
}

// TestQresyncReselectSendsOnlyChanges: a client reselecting a mailbox of
// 2,000 messages after 25 changes is sent those changes and the
// mailbox's fixed lines, counted in bytes on the wire.
func TestQresyncReselectSendsOnlyChanges(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.addUser("alice")
	const total = 2000
	var mbox strings.Builder
	for i := range total {
		fmt.Fprintf(&mbox, "From sender@example.org Mon Jan  5 10:00:00 2026\n%s\n", strings.ReplaceAll(simpleMessage(alice, fmt.Sprintf("m%d", i), "hello"), "\r\n", "\n"))
	}
	path := filepath.Join(t.TempDir(), "in.mbox")
	if err := os.WriteFile(path, []byte(mbox.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	e.OK("import", alice, path)
	s := e.start()
	a := dialIMAPS(t, s.imaps, "a")
	a.login(alice)
	a.ok("ENABLE QRESYNC")
	r := a.ok("SELECT INBOX")
	h := highest(r)
	si := a.selectBox("EXAMINE", "INBOX")
	if si.exists != total {
		t.Fatalf("imported %d messages, want %d", si.exists, total)
	}
	b := inInbox(t, s.imaps, "b", alice)
	for i := 1; i <= 20; i++ {
		b.ok(`STORE %d +FLAGS.SILENT (\Seen)`, i*97)
	}
	b.ok(`STORE 1:5 +FLAGS.SILENT (\Deleted)`)
	b.ok("EXPUNGE")
	a.ok("UNSELECT")
	r, gone := qresyncSelect(a, "INBOX", si.uidValidity, h)
	bytes := 0
	for _, u := range r.untagged {
		bytes += len(u) + 2
	}
	if gone != "1:5" || len(modseqs(r)) != 20 {
		t.Fatalf("reselect: VANISHED %q and %d FETCHes, want 1:5 and 20", gone, len(modseqs(r)))
	}
	full := 0
	for _, u := range a.ok("FETCH 1:* (UID FLAGS)").untagged {
		full += len(u) + 2
	}
	t.Logf("QRESYNC reselect of %d messages after 25 changes: %d bytes of untagged responses (FETCH 1:* (UID FLAGS) alone: %d)", total, bytes, full)
	if bytes > 4096 {
		t.Fatalf("reselect sent %d bytes:\n%s", bytes, r)
	}
}

// TestCondstoreGoClient: go-imap's imapclient with SELECT (CONDSTORE),
// FETCH (CHANGEDSINCE) and STORE (UNCHANGEDSINCE).
func TestCondstoreGoClient(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.addUser("alice")
	s := e.start()
	for i := range 3 {
		s.mustDeliver(alice, simpleMessage(alice, fmt.Sprintf("m%d", i), "hello"))
	}
	c, _ := goClient(t, s.imaps, alice, false)
	sel, err := c.Select("INBOX", &imap.SelectOptions{CondStore: true}).Wait()
	if err != nil || sel.HighestModSeq == 0 {
		t.Fatalf("SELECT (CONDSTORE): %+v %v", sel, err)
	}
	h := sel.HighestModSeq
	if _, err := c.Store(imap.SeqSetNum(2), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagFlagged}, Silent: true}, nil).Collect(); err != nil {
		t.Fatal(err)
	}
	msgs, err := c.Fetch(imap.SeqSetNum(1, 2, 3), &imap.FetchOptions{UID: true, Flags: true, ChangedSince: h}).Collect()
	if err != nil || len(msgs) != 1 || msgs[0].SeqNum != 2 || msgs[0].ModSeq <= h {
		t.Fatalf("FETCH (CHANGEDSINCE %d): %+v %v", h, msgs, err)
	}
	// UNCHANGEDSINCE h: message 2 changed since and is left alone.
	cmd := c.Store(imap.SeqSetNum(1, 2), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagSeen}}, &imap.StoreOptions{UnchangedSince: h})
	got, err := cmd.Collect()
	if err != nil || len(got) != 1 || got[0].SeqNum != 1 || got[0].ModSeq == 0 {
		t.Fatalf("STORE (UNCHANGEDSINCE %d): %+v %v", h, got, err)
	}
	msgs, err = c.Fetch(imap.SeqSetNum(2), &imap.FetchOptions{Flags: true}).Collect()
	if err != nil || len(msgs) != 1 || slicesContains(msgs[0].Flags, imap.FlagSeen) {
		t.Fatalf("message 2 was changed by a failed conditional STORE: %+v %v", msgs, err)
	}
}

func slicesContains(flags []imap.Flag, f imap.Flag) bool {
	for _, x := range flags {
		if x == f {
			return true
		}
	}
	return false
}
