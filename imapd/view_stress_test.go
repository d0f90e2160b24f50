package imapd_test

// Many sessions change one mailbox at once while others read it; every
// reader keeps the sequence-number-to-UID map it was told (EXISTS,
// EXPUNGE, FETCH with UID) and checks every FETCH against it (issue 13,
// item 5: after a change-feed overflow a session was told seq 6 was UID
// 46, then UID 6, without an EXPUNGE).

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// seqModel is a client's belief: seq n is uids[n-1] (0 until a FETCH
// told it). expunged holds every UID the client saw expunged: none may
// come back.
type seqModel struct {
	mu       sync.Mutex
	name     string
	uids     []uint32
	expunged map[uint32]bool
	fetches  int // FETCH responses checked
	errs     []string
}

func newSeqModel(name string, n int) *seqModel {
	return &seqModel{name: name, uids: make([]uint32, n), expunged: map[uint32]bool{}}
}

func (m *seqModel) fail(format string, args ...any) {
	if len(m.errs) < 10 {
		m.errs = append(m.errs, m.name+": "+fmt.Sprintf(format, args...))
	}
}

func (m *seqModel) exists(n uint32) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if int(n) < len(m.uids) {
		m.fail("EXISTS %d below the %d messages it was told of", n, len(m.uids))
		return
	}
	for len(m.uids) < int(n) {
		m.uids = append(m.uids, 0)
	}
}

func (m *seqModel) expunge(seq uint32) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if seq == 0 || int(seq) > len(m.uids) {
		m.fail("EXPUNGE %d with %d messages", seq, len(m.uids))
		return
	}
	if uid := m.uids[seq-1]; uid != 0 {
		m.expunged[uid] = true
	}
	m.uids = slices.Delete(m.uids, int(seq)-1, int(seq))
}

// fetch checks a FETCH response's sequence number and UID.
func (m *seqModel) fetch(seq, uid uint32) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.fetches++
	if seq == 0 || int(seq) > len(m.uids) {
		m.fail("FETCH %d (UID %d) with %d messages", seq, uid, len(m.uids))
		return
	}
	if m.expunged[uid] {
		m.fail("FETCH %d names UID %d, which was expunged", seq, uid)
	}
	if known := m.uids[seq-1]; known != 0 {
		if known != uid {
			m.fail("FETCH %d is UID %d, but it was told seq %d is UID %d", seq, uid, seq, known)
		}
		return
	}
	// A first UID for this number must sit between its neighbours'.
	for i := int(seq) - 2; i >= 0; i-- {
		if m.uids[i] != 0 {
			if m.uids[i] >= uid {
				m.fail("FETCH %d is UID %d, not above seq %d's UID %d", seq, uid, i+1, m.uids[i])
			}
			break
		}
	}
	for i := int(seq); i < len(m.uids); i++ {
		if m.uids[i] != 0 {
			if m.uids[i] <= uid {
				m.fail("FETCH %d is UID %d, not below seq %d's UID %d", seq, uid, i+1, m.uids[i])
			}
			break
		}
	}
	m.uids[seq-1] = uid
}

// uidNear returns a UID the client knows at or after seq, or 1.
func (m *seqModel) uidNear(seq int) uint32 {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := seq - 1; i >= 0 && i < len(m.uids); i++ {
		if m.uids[i] != 0 {
			return m.uids[i]
		}
	}
	return 1
}

func (m *seqModel) count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.uids)
}

var (
	untaggedExistsRE  = regexp.MustCompile(`^\* (\d+) EXISTS$`)
	untaggedExpungeRE = regexp.MustCompile(`^\* (\d+) EXPUNGE$`)
	untaggedFetchRE   = regexp.MustCompile(`^\* (\d+) FETCH \((.*)\)$`)
	fetchUIDRE        = regexp.MustCompile(`(?:^| )UID (\d+)(?: |$)`)
)

// see feeds one untagged response, in the order it came, to the model.
func (m *seqModel) see(line string) {
	num := func(s string) uint32 { n, _ := strconv.ParseUint(s, 10, 32); return uint32(n) }
	switch {
	case untaggedExistsRE.MatchString(line):
		m.exists(num(untaggedExistsRE.FindStringSubmatch(line)[1]))
	case untaggedExpungeRE.MatchString(line):
		m.expunge(num(untaggedExpungeRE.FindStringSubmatch(line)[1]))
	case untaggedFetchRE.MatchString(line):
		f := untaggedFetchRE.FindStringSubmatch(line)
		if u := fetchUIDRE.FindStringSubmatch(f[2]); u != nil {
			m.fetch(num(f[1]), num(u[1]))
		} else if seq := num(f[1]); seq == 0 || int(seq) > m.count() {
			m.mu.Lock()
			m.fail("FETCH %d with %d messages: %q", seq, len(m.uids), line)
			m.mu.Unlock()
		}
	}
}

// rawReader is a checking session on the raw line client: it sees every
// response in wire order, unilateral FETCH included.
type rawReader struct {
	c     *imapConn
	model *seqModel
	lag   func() // before each command: a laggard falls behind the feed
	idle  bool   // IDLE between commands
}

func (r *rawReader) do(cmd string) error {
	resp, err := r.c.tryQuiet(cmd)
	for _, l := range resp.untagged {
		r.model.see(l)
	}
	if err != nil {
		return err
	}
	if resp.status != "OK" {
		return fmt.Errorf("%s: %s %s", cmd, resp.status, resp.text)
	}
	return nil
}

func (r *rawReader) idleFor(d time.Duration) error {
	tag := r.c.nextTag()
	r.c.nc.SetWriteDeadline(time.Now().Add(ioTimeout))
	if _, err := r.c.nc.Write([]byte(tag + " IDLE\r\n")); err != nil {
		return err
	}
	for {
		line, err := r.c.readResponse(ioTimeout)
		if err != nil {
			return err
		}
		if strings.HasPrefix(line, "+") {
			break
		}
		r.model.see(line)
	}
	// DONE goes from a timer, so the read below never times out in the
	// middle of a line (which would lose a response).
	done := make(chan error, 1)
	time.AfterFunc(d, func() {
		_, err := r.c.nc.Write([]byte("DONE\r\n"))
		done <- err
	})
	resp, err := r.c.readTagged(tag, "IDLE")
	if werr := <-done; werr != nil {
		return werr
	}
	for _, l := range resp.untagged {
		r.model.see(l)
	}
	return err
}

// round is one command of a reader's loop.
func (r *rawReader) round(rng *rand.Rand) error {
	if r.lag != nil {
		r.lag()
	}
	if r.idle {
		return r.idleFor(time.Duration(5+rng.IntN(20)) * time.Millisecond)
	}
	n := r.model.count()
	switch k := rng.IntN(6); {
	case k == 0 || n == 0:
		return r.do("NOOP")
	case k == 1:
		lo := 1 + rng.IntN(n)
		return r.do(fmt.Sprintf("UID FETCH %d:* (UID FLAGS)", r.model.uidNear(lo)))
	case k == 2:
		return r.do(fmt.Sprintf("SEARCH %d:%d", 1+rng.IntN(n), n))
	case k == 3:
		return r.do(fmt.Sprintf(`STORE %d +FLAGS (\Seen)`, 1+rng.IntN(n)))
	default:
		lo := 1 + rng.IntN(n)
		return r.do(fmt.Sprintf("FETCH %d:%d (UID FLAGS)", lo, min(n, lo+rng.IntN(50))))
	}
}

// clientReader is a checking session on go-imap's imapclient: EXISTS and
// EXPUNGE reach the model from its handlers, in wire order; sequence
// FETCH answers are checked after the command (no EXPUNGE may come during
// a FETCH, so the numbers are still the model's). Unilateral FETCHes
// reach imapclient's handler on goroutines of their own, out of order, so
// only the raw readers check those.
type clientReader struct {
	c     *imapclient.Client
	model *seqModel
}

func (r *clientReader) round(rng *rand.Rand) error {
	n := r.model.count()
	if n == 0 || rng.IntN(3) == 0 {
		return r.c.Noop().Wait()
	}
	lo := uint32(1 + rng.IntN(n))
	msgs, err := r.c.Fetch(seqRange(lo, min(uint32(n), lo+50)), &imap.FetchOptions{UID: true, Flags: true}).Collect()
	for _, msg := range msgs {
		r.model.fetch(msg.SeqNum, uint32(msg.UID))
	}
	var ie *imap.Error
	if errors.As(err, &ie) && ie.Code == "EXPUNGEISSUE" {
		return nil // some were expunged elsewhere: the others were served
	}
	return err
}

// TestSequenceNumbersUnderConcurrentChanges: writers (imapclient sessions
// appending, flagging, expunging and moving, and SMTP deliveries) make
// over a thousand changes to INBOX while readers, one of them too slow to
// keep within the change feed's buffer and one IDLE, check every
// sequence number they are told; at the end every reader's numbering is
// the mailbox.
func TestSequenceNumbersUnderConcurrentChanges(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.OK("class", "set", "busy", "--imap-commands-per-minute", "0")
	alice := e.addUser("alice", "--class", "busy")
	s := e.start()
	for i := range 20 {
		s.mustDeliver(alice, simpleMessage(alice, fmt.Sprintf("seed %d", i), "seed"))
	}

	// Per writer: 1,500 changes in all, 15 times the 96 the laggard
	// waits for to fall behind. 600 each made this the suite's longest
	// test, a minute in each of make test's two runs.
	const writerOps = 300
	// made counts the writers' changes; the laggard waits between its
	// commands until three feed buffers' worth were made (counted, not
	// timed: on a slow backend 300 ms of waiting saw fewer than 32).
	var made atomic.Int64
	stop := make(chan struct{})
	var readers []interface{ round(*rand.Rand) error }
	var models []*seqModel
	for _, kind := range []string{"poller", "laggard", "idler", "poller-2"} {
		c := inInbox(t, s.imaps, kind, alice)
		m := newSeqModel(kind, 20)
		r := &rawReader{c: c, model: m, idle: kind == "idler"}
		if kind == "laggard" {
			r.lag = func() {
				from := made.Load()
				for made.Load() < from+3*32 {
					select {
					case <-stop:
						return
					case <-time.After(5 * time.Millisecond):
					}
				}
			}
		}
		readers, models = append(readers, r), append(models, m)
	}
	for _, name := range []string{"imapclient-1", "imapclient-2"} {
		m := newSeqModel(name, 0)
		c, err := imapclient.DialTLS(s.imaps, &imapclient.Options{
			TLSConfig: clientTLS(),
			UnilateralDataHandler: &imapclient.UnilateralDataHandler{
				Expunge: m.expunge,
				Mailbox: func(d *imapclient.UnilateralDataMailbox) {
					if d.NumMessages != nil {
						m.exists(*d.NumMessages)
					}
				},
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if err := c.Login(alice, password).Wait(); err != nil {
			t.Fatal(err)
		}
		sel, err := c.Select("INBOX", nil).Wait()
		if err != nil {
			t.Fatal(err)
		}
		m.exists(sel.NumMessages)
		readers, models = append(readers, &clientReader{c: c, model: m}), append(models, m)
	}

	var readersWG, writersWG sync.WaitGroup
	errs := make(chan error, 32)
	for i, r := range readers {
		readersWG.Add(1)
		go func() {
			defer readersWG.Done()
			rng := rand.New(rand.NewPCG(uint64(i), 99))
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := r.round(rng); err != nil {
					errs <- fmt.Errorf("reader %s: %w", models[i].name, err)
					return
				}
			}
		}()
	}
	changes := make([]atomic.Int64, 5)
	for w := range 4 {
		c, _ := goClient(t, s.imaps, alice, false)
		box := "INBOX"
		if w == 3 {
			box = "Archive" // moves messages back into INBOX
		}
		if _, err := c.Select(box, nil).Wait(); err != nil {
			t.Fatal(err)
		}
		writersWG.Add(1)
		go func() {
			defer writersWG.Done()
			if err := writer(c, w, box, writerOps, &changes[w], &made); err != nil {
				errs <- fmt.Errorf("writer %d: %w", w, err)
			}
		}()
	}
	writersWG.Add(1)
	go func() {
		defer writersWG.Done()
		for i := range writerOps {
			if err := deliver(s.smtp, "sender@gov.kz", []string{alice}, simpleMessage(alice, fmt.Sprintf("delivery %d", i), "body")); err != nil {
				errs <- fmt.Errorf("delivery %d: %w", i, err)
				return
			}
			changes[4].Add(1)
			made.Add(1)
		}
	}()
	writersWG.Wait()
	close(stop)
	readersWG.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	total := 0
	for i := range changes {
		total += int(changes[i].Load())
	}
	t.Logf("%d changes made", total)
	// The laggard fell behind the change feed's buffer, and its view
	// was re-read from the store (counted, not timed).
	if n := s.metric(t, "abox_imap_view_resyncs_total"); n == 0 {
		t.Errorf("no session fell behind the change feed: the overflow went untested")
	} else {
		t.Logf("%.0f resyncs after feed overflows", n)
	}

	// Quiet now: every reader's numbering must be the mailbox's.
	truth := inInbox(t, s.imaps, "truth", alice).uids()
	for i, r := range readers {
		m := models[i]
		switch r := r.(type) {
		case *rawReader:
			if err := r.do("NOOP"); err != nil {
				t.Error(err)
			}
			if err := r.do("FETCH 1:* (UID)"); err != nil && m.count() > 0 {
				t.Error(err)
			}
		case *clientReader:
			if err := r.c.Noop().Wait(); err != nil {
				t.Error(err)
			}
			if n := m.count(); n > 0 {
				msgs, err := r.c.Fetch(seqRange(1, uint32(n)), &imap.FetchOptions{UID: true}).Collect()
				if err != nil {
					t.Error(err)
				}
				for _, msg := range msgs {
					m.fetch(msg.SeqNum, uint32(msg.UID))
				}
			}
		}
		m.mu.Lock()
		for _, e := range m.errs {
			t.Error(e)
		}
		if !slices.Equal(m.uids, truth) {
			t.Errorf("%s ends with %d messages %v\nthe mailbox has %d: %v", m.name, len(m.uids), trimUIDs(m.uids), len(truth), trimUIDs(truth))
		}
		t.Logf("%s checked %d FETCH responses", m.name, m.fetches)
		m.mu.Unlock()
	}
}

func seqRange(lo, hi uint32) imap.SeqSet {
	var s imap.SeqSet
	s.AddRange(lo, hi)
	return s
}

func trimUIDs(u []uint32) string {
	if len(u) > 30 {
		return fmt.Sprint(u[:15]) + "..." + fmt.Sprint(u[len(u)-15:])
	}
	return fmt.Sprint(u)
}

// writer changes box with an imapclient session: APPENDs, flag changes,
// expunges and MOVEs (to Archive; from Archive back to INBOX).
func writer(c *imapclient.Client, w int, box string, ops int, changes, made *atomic.Int64) error {
	rng := rand.New(rand.NewPCG(uint64(w), 7))
	var uids []imap.UID
	refresh := func() error {
		data, err := c.UIDSearch(&imap.SearchCriteria{}, nil).Wait()
		if err != nil {
			return err
		}
		uids = data.AllUIDs()
		return nil
	}
	for i := range ops {
		if i%10 == 0 {
			if err := refresh(); err != nil {
				return err
			}
		}
		if len(uids) == 0 || box == "INBOX" && rng.IntN(4) == 0 {
			msg := fmt.Sprintf("Subject: appended %d-%d\r\n\r\nbody\r\n", w, i)
			cmd := c.Append("INBOX", int64(len(msg)), nil)
			if _, err := cmd.Write([]byte(msg)); err != nil {
				return err
			}
			if err := cmd.Close(); err != nil {
				return err
			}
			if _, err := cmd.Wait(); err != nil {
				return err
			}
			changes.Add(1)
			made.Add(1)
			continue
		}
		uid := uids[rng.IntN(len(uids))]
		set := imap.UIDSetNum(uid)
		var err error
		switch k := rng.IntN(4); {
		case box == "Archive":
			_, err = c.Move(set, "INBOX").Wait()
		case k == 0:
			if err = c.Store(set, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err == nil {
				err = c.UIDExpunge(set).Close()
			}
		case k == 1:
			_, err = c.Move(set, "Archive").Wait()
		default:
			op := []imap.StoreFlagsOp{imap.StoreFlagsAdd, imap.StoreFlagsDel}[rng.IntN(2)]
			flag := []imap.Flag{imap.FlagFlagged, imap.FlagSeen, "$Label1"}[rng.IntN(3)]
			err = c.Store(set, &imap.StoreFlags{Op: op, Silent: rng.IntN(2) == 0, Flags: []imap.Flag{flag}}, nil).Close()
		}
		if err != nil {
			return err
		}
		changes.Add(1)
		made.Add(1)
	}
	return nil
}
