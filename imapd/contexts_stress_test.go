package imapd_test

import (
	"fmt"
	"math/rand/v2"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// contextClient is what a client keeps of a search kept updated: the
// result as it was told, in order, by sequence number or UID.
type contextClient struct {
	uid  bool
	list []uint32
}

var (
	ctxUpdateRE = regexp.MustCompile(`^\* ESEARCH \(TAG "([^"]+)"\)( UID)? (ADDTO|REMOVEFROM) \((.*)\)$`)
	expungeRE   = regexp.MustCompile(`^\* (\d+) EXPUNGE$`)
	allRE       = regexp.MustCompile(`^\* ESEARCH \(TAG "[^"]+"\)(?: UID)?(?: ALL (\S+))?$`)
)

// expandSet reads a sequence-set in its order ("3,1:2" is 3 1 2; a
// range ascends whichever way it is written, RFC 5267 §3.2).
func expandSet(t *testing.T, s string) []uint32 {
	t.Helper()
	var out []uint32
	for _, part := range strings.Split(s, ",") {
		a, b, isRange := strings.Cut(part, ":")
		lo, err1 := strconv.ParseUint(a, 10, 32)
		hi := lo
		var err2 error
		if isRange {
			hi, err2 = strconv.ParseUint(b, 10, 32)
		}
		if err1 != nil || err2 != nil {
			t.Fatalf("bad set %q", s)
		}
		for n := min(lo, hi); n <= max(lo, hi); n++ {
			out = append(out, uint32(n))
		}
	}
	return out
}

// follow applies one untagged response to the contexts, as a client
// must: ADDTO and REMOVEFROM pairs in order (RFC 5267 §4.3.2-4.3.4),
// and EXPUNGE's renumbering of the contexts by sequence number, which
// must no longer hold the expunged message (its REMOVEFROM came first).
func follow(t *testing.T, ctxs map[string]*contextClient, line string) {
	t.Helper()
	if m := expungeRE.FindStringSubmatch(line); m != nil {
		n64, _ := strconv.ParseUint(m[1], 10, 32)
		n := uint32(n64)
		for tag, cc := range ctxs {
			if cc.uid {
				continue
			}
			if slices.Contains(cc.list, n) {
				t.Fatalf("%s: %q before the REMOVEFROM of %d (context %v)", tag, line, n, cc.list)
			}
			for i, s := range cc.list {
				if s > n {
					cc.list[i] = s - 1
				}
			}
		}
		return
	}
	m := ctxUpdateRE.FindStringSubmatch(line)
	if m == nil {
		return
	}
	cc := ctxs[m[1]]
	if cc == nil || cc.uid != (m[2] != "") {
		t.Fatalf("an update for no context of this kind: %q", line)
	}
	f := strings.Fields(m[4])
	if len(f)%2 != 0 {
		t.Fatalf("odd pairs: %q", line)
	}
	for i := 0; i < len(f); i += 2 {
		pos64, err := strconv.ParseUint(f[i], 10, 32)
		if err != nil {
			t.Fatalf("bad position in %q", line)
		}
		pos, set := int(pos64), expandSet(t, f[i+1])
		switch {
		case m[3] == "ADDTO" && pos == 0:
			cc.list = append(cc.list, set...)
			slices.Sort(cc.list)
		case m[3] == "ADDTO":
			if pos > len(cc.list)+1 {
				t.Fatalf("%q: ADDTO past the end of %v", line, cc.list)
			}
			cc.list = slices.Insert(cc.list, pos-1, set...)
		case pos == 0:
			for _, n := range set {
				if !slices.Contains(cc.list, n) {
					t.Fatalf("%q: %d not in %v", line, n, cc.list)
				}
			}
			cc.list = slices.DeleteFunc(cc.list, func(n uint32) bool { return slices.Contains(set, n) })
		default:
			if pos-1+len(set) > len(cc.list) || !slices.Equal(cc.list[pos-1:pos-1+len(set)], set) {
				t.Fatalf("%q does not match %v", line, cc.list)
			}
			cc.list = slices.Delete(cc.list, pos-1, pos-1+len(set))
		}
	}
}

// TestContextUpdatesUnderConcurrentChanges: while three sessions change
// flags, expunge and append at random, a fourth keeps SEARCH and SORT
// contexts by number and by UID and follows every update it is sent (at
// its NOOPs and its own STOREs); at the end each context holds what the
// same SEARCH or SORT answers afresh.
func TestContextUpdatesUnderConcurrentChanges(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.addUser("alice")
	s := e.start()
	message := func(i int) string {
		return crlf(fmt.Sprintf("From: <m%d@x.kz>\nTo: <%s>\nSubject: %c subject\nDate: %s\n\nbody %d\n",
			i, alice, 'a'+rune(i*7%26), fmt.Sprintf("Mon, %02d Jan 2026 10:00:00 +0000", 1+i*11%28), i))
	}
	for i := range 20 {
		s.mustDeliver(alice, message(i))
	}
	c := inInbox(t, s.imaps, "watcher", alice)
	queries := map[string]string{
		"S": "SEARCH RETURN (UPDATE ALL) SEEN",
		"U": "UID SEARCH RETURN (UPDATE ALL) OR FLAGGED NOT SEEN",
		"D": "SORT RETURN (UPDATE ALL) (DATE) UTF-8 SEEN",
		"R": "UID SORT RETURN (UPDATE ALL) (REVERSE SUBJECT) UTF-8 FLAGGED",
	}
	ctxs := map[string]*contextClient{}
	for tag, q := range queries {
		r := c.tagged(tag, q)
		m := allRE.FindStringSubmatch(esearch(r, tag)[0])
		if m == nil {
			t.Fatalf("%s: %s", q, r)
		}
		cc := &contextClient{uid: strings.HasPrefix(q, "UID")}
		if m[1] != "" {
			cc.list = expandSet(t, m[1])
		}
		ctxs[tag] = cc
	}

	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for w := range 3 {
		o := inInbox(t, s.imaps, fmt.Sprintf("writer%d", w), alice)
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 5267))
			for i := range 60 {
				var cmd string
				switch r := rng.IntN(10); {
				case r < 6:
					cmd = fmt.Sprintf("STORE %d:%d %sFLAGS (%s)", 1+rng.IntN(8), 1+rng.IntN(16), []string{"+", "-"}[rng.IntN(2)],
						[]string{`\Seen`, `\Flagged`, `\Seen \Flagged`}[rng.IntN(3)])
				case r < 8:
					cmd = fmt.Sprintf("STORE %d +FLAGS.SILENT (\\Deleted)", 1+rng.IntN(4))
				case r < 9:
					cmd = "EXPUNGE"
				default:
					m := message(100*(w+1) + i)
					cmd = fmt.Sprintf("APPEND INBOX (%s) %s", []string{"", `\Seen`, `\Flagged`}[rng.IntN(3)], literal(m))
				}
				r, err := o.tryQuiet(cmd)
				if err != nil {
					errs <- err
					return
				}
				if r.status == "NO" || r.status == "BAD" {
					// A STORE past the end of a mailbox that shrank.
					if !strings.HasPrefix(cmd, "STORE") {
						errs <- fmt.Errorf("%s: %s", cmd, r)
						return
					}
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	rng := rand.New(rand.NewPCG(7, 5267))
	updates, expunges := 0, 0
	for finished := false; !finished; {
		select {
		case <-done:
			finished = true
		default:
		}
		cmd := "NOOP"
		if rng.IntN(3) == 0 {
			cmd = fmt.Sprintf("STORE 1:%d %sFLAGS.SILENT (\\Seen)", 1+rng.IntN(3), []string{"+", "-"}[rng.IntN(2)])
		}
		r := c.do("%s", cmd)
		for _, l := range r.untagged {
			follow(t, ctxs, l)
			if strings.HasPrefix(l, "* ESEARCH") {
				updates++
			} else if strings.HasSuffix(l, " EXPUNGE") {
				expunges++
			}
		}
	}
	t.Logf("the watcher followed %d updates and %d expunges", updates, expunges)
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	r := c.ok("NOOP")
	for _, l := range r.untagged {
		follow(t, ctxs, l)
	}
	for tag, q := range queries {
		q = strings.Replace(q, "UPDATE ALL", "ALL", 1)
		r := c.tagged(tag+"now", q)
		m := allRE.FindStringSubmatch(esearch(r, tag+"now")[0])
		var want []uint32
		if m != nil && m[1] != "" {
			want = expandSet(t, m[1])
		}
		if got := ctxs[tag].list; !slices.Equal(got, want) {
			t.Errorf("%s: the context as followed is %v, the search now %v", q, got, want)
		}
	}
}
