package imapd_test

import (
	"bufio"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// goroutines reads the server's go_goroutines gauge from /metrics.
func (s *server) goroutines(t *testing.T) int {
	t.Helper()
	n := int(s.metric(t, "go_goroutines"))
	if n == 0 {
		t.Fatal("no go_goroutines in /metrics")
	}
	return n
}

// metric reads a metric from /metrics: the sum of its series (0 for a
// counter not counted yet, which is not listed).
func (s *server) metric(t *testing.T, name string) float64 {
	t.Helper()
	// In the harness's cluster mode, the sum over the nodes.
	sum := 0.0
	for _, n := range s.Nodes() {
		sum += nodeMetric(t, n.Addr("http"), name)
	}
	return sum
}

func nodeMetric(t *testing.T, addr, name string) float64 {
	t.Helper()
	res, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(nil, 1<<20)
	sum := 0.0
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, name)
		if !ok || rest == "" || rest[0] != ' ' && rest[0] != '{' {
			continue
		}
		v := rest[strings.LastIndexByte(rest, ' ')+1:]
		n, err := strconv.ParseFloat(v, 64)
		if err != nil {
			t.Fatalf("%s: %q", name, line)
		}
		sum += n
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("reading /metrics: %v", err)
	}
	return sum
}

// TestIdleHoldsNoGoroutine: over implicit TLS an idling session keeps
// only go-imap's reading goroutine (half an idle connection's stacks):
// abox waits for changes with none, and still every idler hears of a
// delivery at once. With a goroutine per IDLE (go-imap's way, and abox's
// before) the count grows by one per idler.
func TestIdleHoldsNoGoroutine(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.addUser("alice")
	s := e.start()
	const n = 20
	idlers := make([]*imapConn, n)
	for i := range idlers {
		c := inInbox(t, s.imaps, fmt.Sprintf("idler%d", i), alice)
		idlers[i] = c
	}
	before := s.goroutines(t)
	tags := make([]string, n)
	for i, c := range idlers {
		tags[i] = c.idle()
	}
	// go-imap starts Idle on a goroutine of its own, which returns as
	// soon as the connection's reader waits: look until it has.
	var grew int
	for range 100 {
		if grew = s.goroutines(t) - before; grew < n/2 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if grew >= n/2 {
		t.Errorf("%d IDLE sessions hold %d more goroutines than before IDLE, want fewer than %d", n, grew, n/2)
	}
	s.mustDeliver(alice, simpleMessage(alice, "to all idlers", "one delivery, twenty EXISTS"))
	for _, c := range idlers {
		c.waitFor(regexp.MustCompile(`^\* 1 EXISTS$`))
	}
	for i, c := range idlers {
		c.done(tags[i])
	}
	if got := idlers[0].uids(); fmt.Sprint(got) != "[1]" {
		t.Errorf("UIDs after IDLE: %v", got)
	}
}

// TestIdleAfterSTARTTLS: on the STARTTLS listener go-imap reads through
// crypto/tls, so abox waits for the end of IDLE the library's way; the
// updates arrive all the same.
func TestIdleAfterSTARTTLS(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.addUser("alice")
	s := e.start()
	s.deliverCorpus(alice)
	idler := dialIMAP(t, s.imap, "idler")
	idler.startTLS()
	idler.login(alice)
	idler.selectBox("SELECT", "INBOX")
	other := inInbox(t, s.imaps, "other", alice)

	tag := idler.idle()
	s.mustDeliver(alice, simpleMessage(alice, "live", "during IDLE after STARTTLS"))
	idler.waitFor(regexp.MustCompile(`^\* 4 EXISTS$`))
	other.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
	other.ok("EXPUNGE")
	idler.waitFor(regexp.MustCompile(`^\* 1 EXPUNGE$`))
	idler.done(tag)
	if got := idler.uids(); len(got) != 3 {
		t.Errorf("UIDs after IDLE: %v, want 3", got)
	}
}

// TestNothingAfterIdleEnds: while another session delivers and expunges
// without pause, a client ends IDLE again and again. The server must not
// write anything between its answer to IDLE and the client's next
// command (an EXPUNGE there breaks the client's message numbering, RFC
// 9051 §7.5.1), so it has to stop sending updates before it reads DONE;
// and the client's view must end equal to the mailbox. A pipelined
// "IDLE, DONE" (which a careful client does not send) is in the mix.
func TestNothingAfterIdleEnds(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.addUser("alice")
	s := e.start()
	s.deliverCorpus(alice)
	idler := inInbox(t, s.imaps, "idler", alice)
	churner := inInbox(t, s.imaps, "churner", alice)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var churnErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := deliver(s.smtp, "sender@gov.kz", []string{alice}, simpleMessage(alice, "churn", "churn")); err != nil {
				churnErr = err
				return
			}
			for _, cmd := range []string{"STORE 1 +FLAGS.SILENT (\\Deleted)", "EXPUNGE"} {
				if r, err := churner.tryQuiet(cmd); err != nil || r.status != "OK" {
					churnErr = fmt.Errorf("%s: %v %v", cmd, r, err)
					return
				}
			}
		}
	}()

	existsRE := regexp.MustCompile(`^\* (\d+) EXISTS$`)
	expungeRE := regexp.MustCompile(`^\* (\d+) EXPUNGE$`)
	count := 3 // messages the idler knows of
	track := func(line string) {
		if m := existsRE.FindStringSubmatch(line); m != nil {
			count, _ = strconv.Atoi(m[1])
		} else if expungeRE.MatchString(line) {
			count--
		}
	}
	for round := range 40 {
		tag := idler.nextTag()
		if round%10 == 9 {
			idler.send(tag + " IDLE\r\nDONE\r\n")
		} else {
			idler.send(tag + " IDLE\r\n")
			// Let some updates flow, then end it.
			deadline := time.Now().Add(time.Duration(round%4) * 5 * time.Millisecond)
			for {
				line, err := idler.readResponse(time.Until(deadline) + time.Millisecond)
				if err != nil {
					break // nothing more within the wait
				}
				track(line)
			}
			idler.send("DONE\r\n")
		}
		r, err := idler.readTagged(tag, "IDLE")
		if err != nil || r.status != "OK" {
			t.Fatalf("round %d: IDLE ended with %v %v", round, r, err)
		}
		for _, line := range r.untagged {
			track(line)
		}
		// Between the answer and the next command: nothing at all.
		if line, err := idler.readResponse(30 * time.Millisecond); err == nil {
			t.Fatalf("round %d: %q arrived after IDLE's answer %q, before the next command", round, line, tag)
		}
	}
	close(stop)
	wg.Wait()
	if churnErr != nil {
		t.Fatal(churnErr)
	}
	r := idler.ok("NOOP")
	for _, line := range r.untagged {
		track(line)
	}
	uids := idler.uids()
	if len(uids) != count {
		t.Errorf("the idler counts %d messages, its view holds %d", count, len(uids))
	}
	st := churner.ok("STATUS INBOX (MESSAGES)")
	if want := fmt.Sprintf("(MESSAGES %d)", len(uids)); !strings.Contains(strings.Join(st.untagged, " "), want) {
		t.Errorf("the idler sees %d messages; the mailbox: %v", len(uids), st.untagged)
	}
}
