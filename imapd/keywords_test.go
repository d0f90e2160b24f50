package imapd_test

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
)

// Keyword announcement (RFC 3501 §7.2.6, RFC 9051 §7.3.5): a keyword new
// to a mailbox is told in FLAGS and PERMANENTFLAGS to every session that
// has it selected before any FETCH shows it.

var (
	flagsRespRE = regexp.MustCompile(`^\* FLAGS \(([^)]*)\)$`)
	permFlagsRE = regexp.MustCompile(`^\* OK \[PERMANENTFLAGS \(([^)]*)\)\]`)
	fetchFlagRE = regexp.MustCompile(`FLAGS \(([^)]*)\)`)
)

// announced follows what one session was told in FLAGS, like imaptest's
// "Keyword used without being in FLAGS" check.
type announced struct {
	t     *testing.T
	name  string
	known map[string]bool
	perm  []string // the last PERMANENTFLAGS
}

func newAnnounced(t *testing.T, name string) *announced {
	return &announced{t: t, name: name, known: map[string]bool{}}
}

// see applies responses in wire order and fails on a FETCH that shows a
// keyword not announced before it.
func (a *announced) see(lines []string) {
	a.t.Helper()
	for _, l := range lines {
		if m := flagsRespRE.FindStringSubmatch(l); m != nil {
			a.known = map[string]bool{}
			for _, f := range strings.Fields(m[1]) {
				a.known[strings.ToLower(f)] = true
			}
			continue
		}
		if m := permFlagsRE.FindStringSubmatch(l); m != nil {
			a.perm = strings.Fields(m[1])
			continue
		}
		if !strings.Contains(l, " FETCH (") {
			continue
		}
		if m := fetchFlagRE.FindStringSubmatch(l); m != nil {
			for _, f := range strings.Fields(m[1]) {
				if !strings.HasPrefix(f, `\`) && !a.known[strings.ToLower(f)] {
					a.t.Errorf("%s: %q shows keyword %s never announced in FLAGS", a.name, l, f)
				}
			}
		}
	}
}

func (a *announced) has(kw string) bool { return a.known[strings.ToLower(kw)] }

func TestKeywordAnnouncement(t *testing.T) {
	e := newEnv(t)
	user := e.addUser("kwords")
	srv := e.start()
	for i := range 2 {
		srv.mustDeliver(user, simpleMessage(user, fmt.Sprintf("kw %d", i), "body"))
	}
	sessions := map[string]*imapConn{}
	seen := map[string]*announced{}
	for _, name := range []string{"A", "B", "idler"} {
		c := dialIMAPS(t, srv.imaps, name)
		c.login(user)
		seen[name] = newAnnounced(t, name)
		seen[name].see(c.ok("SELECT INBOX").untagged)
		sessions[name] = c
	}
	a, b, idler := sessions["A"], sessions["B"], sessions["idler"]
	arch := dialIMAPS(t, srv.imaps, "archive")
	arch.login(user)
	seen["archive"] = newAnnounced(t, "archive")
	seen["archive"].see(arch.ok("SELECT Archive").untagged)
	tag := idler.idle()

	// STORE: the session's own answer announces first.
	r := a.ok("STORE 1 +FLAGS (Work)")
	seen["A"].see(r.untagged)
	if !seen["A"].has("Work") || !strings.Contains(strings.Join(seen["A"].perm, " "), `\*`) {
		t.Fatalf("STORE of a new keyword did not announce it with PERMANENTFLAGS (... \\*):\n%s", r)
	}
	// Another session: with its updates, before their FETCH FLAGS.
	r = b.ok("NOOP")
	seen["B"].see(r.untagged)
	if !seen["B"].has("Work") {
		t.Fatalf("B was not told of Work:\n%s", r)
	}
	// IDLE: pushed before the FETCH.
	line := idler.waitFor(regexp.MustCompile(`^\* (FLAGS|\d+ FETCH)`))
	seen["idler"].see([]string{line})
	if !seen["idler"].has("Work") {
		t.Fatalf("IDLE showed %q before announcing Work", line)
	}
	idler.waitFor(regexp.MustCompile(`FETCH`))
	seen["idler"].see(idler.done(tag).untagged)

	// A change B has not polled for yet, shown by B's own FETCH: the
	// FETCH announces it first.
	a.ok("STORE 2 +FLAGS.SILENT (Urgent)")
	r = b.ok("FETCH 1:* (FLAGS)")
	seen["B"].see(r.untagged)
	if !seen["B"].has("Urgent") {
		t.Fatalf("B's FETCH did not announce Urgent:\n%s", r)
	}

	// APPEND and COPY into a selected mailbox.
	a.ok("APPEND Archive (Receipt) %s", literal(crlf(simpleMessage(user, "appended", "x"))))
	a.ok("COPY 1 Archive")
	seen["archive"].see(arch.ok("NOOP").untagged)
	r = arch.ok("FETCH 1:* (FLAGS)")
	seen["archive"].see(r.untagged)
	if !seen["archive"].has("Receipt") || !seen["archive"].has("Work") {
		t.Fatalf("Archive session not told of Receipt and Work:\n%s", r)
	}

	// A fresh SELECT lists what the mailbox holds.
	c := dialIMAPS(t, srv.imaps, "fresh")
	c.login(user)
	fresh := newAnnounced(t, "fresh")
	fresh.see(c.ok("EXAMINE INBOX").untagged)
	if !fresh.has("Work") || !fresh.has("Urgent") {
		t.Fatalf("SELECT after the STOREs does not list Work and Urgent")
	}
	// A keyword removed from every message stays in the list.
	a.ok("STORE 1:* -FLAGS (Work Urgent)")
	fresh = newAnnounced(t, "fresh")
	fresh.see(c.ok("EXAMINE INBOX").untagged)
	if !fresh.has("Work") {
		t.Fatal("a keyword no message holds any more left FLAGS")
	}
}

// TestKeywordLimit: past store.MaxMailboxKeywords (128) new keywords are
// refused NO [LIMIT] and PERMANENTFLAGS loses \*; known ones still go.
func TestKeywordLimit(t *testing.T) {
	e := newEnv(t)
	user := e.addUser("kwlimit")
	srv := e.start()
	srv.mustDeliver(user, simpleMessage(user, "limit", "body"))
	c := inInbox(t, srv.imaps, "c", user)
	var kws []string
	for i := range 128 {
		kws = append(kws, fmt.Sprintf("k%d", i))
	}
	c.ok("STORE 1 +FLAGS (%s)", strings.Join(kws[:100], " "))
	c.ok("STORE 1 FLAGS (%s)", strings.Join(kws[100:], " "))
	c.no("LIMIT", "STORE 1 +FLAGS (one-more)")
	c.no("LIMIT", "APPEND INBOX (another) %s", literal(crlf(simpleMessage(user, "x", "y"))))
	c.ok("STORE 1 +FLAGS (K1 k127)")
	r := c.ok("SELECT INBOX")
	for _, l := range r.untagged {
		if m := permFlagsRE.FindStringSubmatch(l); m != nil && strings.Contains(m[1], `\*`) {
			t.Fatalf("a mailbox at its keyword limit offers \\* in %q", l)
		}
	}
	if !strings.Contains(strings.Join(r.find("FLAGS"), " "), "k127") {
		t.Fatalf("SELECT does not list the keywords:\n%s", r)
	}
}
