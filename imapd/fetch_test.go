package imapd_test

import (
	"bytes"
	"fmt"
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
