package imapd_test

import (
	"bytes"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
)

// TestFetchBodiesAcrossBatches: FETCH copies bodies out of the store a
// few hundred KiB at a time (fetch.go, bodyBatchBytes). Messages of mixed
// sizes, one larger than a batch and one expunged in between, come back
// whole, each with its own header and structure, in UID order.
func TestFetchBodiesAcrossBatches(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.addUser("alice")
	s := e.start()
	sizes := []int{800, 20_000, 90_000, 300_000, 3_000, 150_000, 60_000, 1_000, 120_000, 40_000, 700, 200_000}
	var sent []string
	for i, size := range sizes {
		var body strings.Builder
		for n := 0; body.Len() < size; n++ {
			fmt.Fprintf(&body, "message %02d line %05d of its text\n", i, n)
		}
		msg := crlf(fmt.Sprintf("From: <reports@stat.gov.kz>\nTo: <%s>\nSubject: batch %02d\nDate: Wed, 04 Mar 2026 12:00:00 +0000\nMessage-ID: <batch-%d@stat.gov.kz>\n\n%s", alice, i, i, body.String()))
		s.mustDeliver(alice, msg)
		sent = append(sent, msg)
	}
	c, _ := goClient(t, s.imaps, alice, false)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	const gone = 5 // UID 5, the second message after the large one
	if err := c.Store(imap.UIDSetNum(gone), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Expunge().Close(); err != nil {
		t.Fatal(err)
	}
	whole := &imap.FetchItemBodySection{Peek: true}
	header := &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, Peek: true}
	for _, withInfo := range []bool{false, true} {
		opts := &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{whole}}
		if withInfo {
			opts.BodySection = append(opts.BodySection, header)
			opts.BodyStructure = &imap.FetchItemBodyStructure{}
		}
		all := imap.UIDSet{}
		all.AddRange(1, 0)
		msgs, err := c.Fetch(all, opts).Collect()
		if err != nil {
			t.Fatalf("UID FETCH 1:* (info %v): %v", withInfo, err)
		}
		if len(msgs) != len(sizes)-1 {
			t.Fatalf("UID FETCH 1:* (info %v): %d messages, want %d", withInfo, len(msgs), len(sizes)-1)
		}
		want := 0
		for _, m := range msgs {
			if want++; want == gone {
				want++
			}
			if int(m.UID) != want {
				t.Fatalf("UID FETCH 1:* (info %v): UID %d where %d was due", withInfo, m.UID, want)
			}
			body := m.FindBodySection(whole)
			if !bytes.HasSuffix(body, []byte(sent[want-1])) || len(body) > len(sent[want-1])+2000 {
				t.Fatalf("UID %d: BODY[] of %d bytes does not end with the %d bytes sent", want, len(body), len(sent[want-1]))
			}
			if !withInfo {
				continue
			}
			h := m.FindBodySection(header)
			if !bytes.HasPrefix(body, h) || !bytes.HasSuffix(h, []byte("\r\n\r\n")) || !bytes.Contains(h, fmt.Appendf(nil, "Subject: batch %02d\r\n", want-1)) {
				t.Fatalf("UID %d: BODY[HEADER] is not the message's own header:\n%s", want, h)
			}
			bs, ok := m.BodyStructure.(*imap.BodyStructureSinglePart)
			if !ok || bs.MediaType() != "text/plain" || int(bs.Size) != len(body)-len(h) {
				t.Fatalf("UID %d: BODYSTRUCTURE %#v, want text/plain of %d bytes", want, m.BodyStructure, len(body)-len(h))
			}
		}
	}
}

// TestFetchWhileExpungedElsewhere: another session expunges messages
// while FETCHes of their bodies run (issue 13, item 6: one FETCH of 17
// messages failed whole with NO [SERVERBUG], "body N: not found", when a
// body went between reading the records and reading the bodies). Every
// message still there is served whole; one that vanished is skipped;
// the FETCH is never refused and the server logs no internal error.
func TestFetchWhileExpungedElsewhere(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.OK("class", "set", "busy", "--imap-commands-per-minute", "0")
	alice := e.addUser("alice", "--class", "busy")
	s := e.start()
	const n = 150
	filler := strings.Repeat("a line of the body to make it some kilobytes long\r\n", 200)
	for i := range n {
		s.mustDeliver(alice, simpleMessage(alice, fmt.Sprintf("expunge race %03d", i), filler))
	}
	reader := inInbox(t, s.imaps, "reader", alice)
	expunger := inInbox(t, s.imaps, "expunger", alice)

	done := make(chan error, 1)
	go func() {
		// From the last message down: those are the bodies a running
		// FETCH reads last.
		for uid := n; uid > n/3; uid-- {
			for _, cmd := range []string{fmt.Sprintf(`UID STORE %d +FLAGS.SILENT (\Deleted)`, uid), fmt.Sprintf("UID EXPUNGE %d", uid)} {
				if r, err := expunger.tryQuiet(cmd); err != nil || r.status != "OK" {
					done <- fmt.Errorf("%s: %v %v", cmd, r, err)
					return
				}
			}
		}
		done <- nil
	}()
	bodyRE := regexp.MustCompile(`^\* (\d+) FETCH \(UID (\d+) BODY\[\] \{(\d+)\}\r\n`)
	// The reader's numbering, from what it is told.
	model := newSeqModel("reader", 0)
	see := func(r resp) {
		for _, l := range r.untagged {
			m := bodyRE.FindStringSubmatch(l)
			if m == nil {
				model.see(l)
				continue
			}
			seq, _ := strconv.Atoi(m[1])
			uid, _ := strconv.Atoi(m[2])
			model.fetch(uint32(seq), uint32(uid))
			body := l[len(m[0]):]
			if size, _ := strconv.Atoi(m[3]); !strings.Contains(body, "Subject: expunge race ") || size < len(filler) {
				t.Errorf("FETCH %s: a %s-byte body that is not the message: %q", m[1], m[3], trim(body))
			}
		}
	}
	model.exists(n) // what SELECT said
	fetches, expungeIssues, served := 0, 0, 0
	for running := true; running; {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			running = false
		default:
		}
		see(reader.ok("NOOP"))
		count := model.count()
		r := reader.do("FETCH 1:%d (UID BODY.PEEK[])", count)
		see(r)
		fetches++
		served += len(r.find(""))
		switch {
		case r.status == "OK" && r.code() == "EXPUNGEISSUE":
			expungeIssues++
		case r.status != "OK":
			t.Fatalf("FETCH of %d messages while another session expunges: %s %s", count, r.status, r.text)
		}
	}
	see(reader.ok("NOOP"))
	for _, err := range model.errs {
		t.Error(err)
	}
	t.Logf("%d FETCHes, %d of them OK [EXPUNGEISSUE], %d responses", fetches, expungeIssues, served)
	if got := model.count(); got != n/3 {
		t.Errorf("the reader counts %d messages, want %d", got, n/3)
	}

	// A message expunged elsewhere that the reader still numbers: a
	// FETCH by number serves the others and says so; a UID FETCH is
	// plain OK and its EXPUNGE follows the data.
	expunger.ok(`UID STORE 1 +FLAGS.SILENT (\Deleted)`)
	expunger.ok("UID EXPUNGE 1")
	r := reader.do("FETCH 1:%d (UID BODY.PEEK[])", n/3)
	bodies := 0
	for _, l := range r.untagged {
		if strings.Contains(l, "BODY[]") {
			bodies++
		}
	}
	// (A FETCH FLAGS update of the message expunged elsewhere may come
	// too: it keeps its number until its EXPUNGE.)
	if r.status != "OK" || r.code() != "EXPUNGEISSUE" || bodies != n/3-1 || r.has("1 EXPUNGE") {
		t.Errorf("FETCH 1:%d with UID 1 expunged elsewhere: %d responses, %s %s; want %d FETCHes and OK [EXPUNGEISSUE]",
			n/3, len(r.find("")), r.status, r.text, n/3-1)

	}
	r = reader.ok("UID FETCH 1:* (UID)")
	uidOnly := 0
	for _, l := range r.untagged {
		if regexp.MustCompile(`^\* \d+ FETCH \(UID \d+\)$`).MatchString(l) {
			uidOnly++
		}
	}
	if r.code() != "" || uidOnly != n/3-1 || r.untagged[len(r.untagged)-1] != "* 1 EXPUNGE" {
		t.Errorf("UID FETCH 1:* after it: %d answers of %d lines, the last %q, code %q; want %d, then * 1 EXPUNGE, then OK",
			uidOnly, len(r.untagged), r.untagged[len(r.untagged)-1], r.code(), n/3-1)
	}
}

// TestNoNULInLiterals: a stored message with NUL bytes (an APPEND that
// broke RFC 3501's rule, go-imap accepts it) goes out with each NUL
// replaced by 0x80 in BODY[] and its parts, where RFC 3501 and
// RFC 9051 forbid NUL (issue 13, item 16); sizes match RFC822.SIZE; only
// BINARY's literal8 keeps it.
func TestNoNULInLiterals(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.addUser("alice")
	s := e.start()
	c := inInbox(t, s.imaps, "alice", alice)
	msg := "Subject: nul\x00here\r\nFrom: <a@example.kz>\r\n\r\nhello\x00world\r\n"
	c.ok("APPEND INBOX %s", literal(msg))
	r := c.ok("FETCH 1 (RFC822.SIZE ENVELOPE BODY.PEEK[] BODY.PEEK[TEXT] BODY.PEEK[1] BODY.PEEK[HEADER])")
	line := strings.Join(r.find("1 FETCH"), "")
	if strings.IndexByte(line, 0) >= 0 {
		t.Errorf("FETCH answered NUL bytes outside literal8: %q", line)
	}
	if !strings.Contains(line, "hello\x80world") || !strings.Contains(line, "Subject: nul\x80here") {
		t.Errorf("FETCH: NUL not replaced by 0x80 in place: %q", line)
	}
	if !strings.Contains(line, fmt.Sprintf("RFC822.SIZE %d", len(msg))) || !strings.Contains(line, fmt.Sprintf("BODY[] {%d}", len(msg))) {
		t.Errorf("FETCH: sizes differ from the %d stored bytes: %q", len(msg), line)
	}
	r = c.ok("FETCH 1 (BINARY.PEEK[1])")
	if line := strings.Join(r.find("1 FETCH"), ""); !strings.Contains(line, "~{13}\r\nhello\x00world") {
		t.Errorf("BINARY[1] (literal8) should keep the NUL: %q", line)
	}
}
