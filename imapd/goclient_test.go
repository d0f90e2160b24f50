package imapd_test

// go-imap v2's own client against the server: over implicit TLS and over
// STARTTLS, with decoding of everything it reads done by the library.

import (
	"bytes"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// goClient dials addr with imapclient (implicit TLS, or STARTTLS when
// starttls) and logs in as user; numMessages receives the EXISTS counts
// the server sends unilaterally.
func goClient(t *testing.T, addr, user string, starttls bool) (*imapclient.Client, <-chan uint32) {
	t.Helper()
	numMessages := make(chan uint32, 64)
	opts := &imapclient.Options{
		TLSConfig: clientTLS(),
		Dialer:    &net.Dialer{Timeout: ioTimeout},
		UnilateralDataHandler: &imapclient.UnilateralDataHandler{
			Mailbox: func(d *imapclient.UnilateralDataMailbox) {
				if d.NumMessages != nil {
					select {
					case numMessages <- *d.NumMessages:
					default:
					}
				}
			},
		},
	}
	dial := imapclient.DialTLS
	if starttls {
		dial = imapclient.DialStartTLS
	}
	c, err := dial(addr, opts)
	if err != nil {
		t.Fatalf("imapclient dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Login(user, password).Wait(); err != nil {
		t.Fatalf("imapclient LOGIN %s: %v", user, err)
	}
	return c, numMessages
}

func TestGoIMAPClient(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.addUser("alice")
	s := e.start()
	s.deliverCorpus(alice)

	c, numMessages := goClient(t, s.imaps, alice, false)
	for _, cp := range []imap.Cap{imap.CapIdle, imap.CapMove, imap.CapUIDPlus, imap.CapNamespace, imap.CapSpecialUse,
		imap.CapESearch, imap.CapListStatus, imap.CapStatusSize, imap.CapLiteralPlus, imap.CapUnselect, imap.CapEnable} {
		if !c.Caps().Has(cp) {
			t.Errorf("imapclient sees no %s in %v", cp, c.Caps())
		}
	}

	ns, err := c.Namespace().Wait()
	if err != nil || len(ns.Personal) != 1 || ns.Personal[0].Delim != '/' || len(ns.Other) != 0 || len(ns.Shared) != 0 {
		t.Errorf("NAMESPACE: %+v, %v", ns, err)
	}

	list, err := c.List("", "*", &imap.ListOptions{ReturnStatus: &imap.StatusOptions{NumMessages: true, Size: true}}).Collect()
	if err != nil {
		t.Fatalf("LIST: %v", err)
	}
	special := map[string]imap.MailboxAttr{"Sent": imap.MailboxAttrSent, "Drafts": imap.MailboxAttrDrafts,
		"Trash": imap.MailboxAttrTrash, "Junk": imap.MailboxAttrJunk, "Archive": imap.MailboxAttrArchive}
	seen := map[string]bool{}
	for _, l := range list {
		seen[l.Mailbox] = true
		if attr, ok := special[l.Mailbox]; ok && !slices.Contains(l.Attrs, attr) {
			t.Errorf("LIST %s: attributes %v lack %s", l.Mailbox, l.Attrs, attr)
		}
		if l.Status == nil || l.Status.NumMessages == nil {
			t.Errorf("LIST-STATUS gave no MESSAGES for %s", l.Mailbox)
			continue
		}
		if want := map[bool]uint32{true: 3, false: 0}[l.Mailbox == "INBOX"]; *l.Status.NumMessages != want {
			t.Errorf("LIST-STATUS %s: MESSAGES %d, want %d", l.Mailbox, *l.Status.NumMessages, want)
		}
	}
	if len(seen) != 6 || !seen["INBOX"] {
		t.Errorf("LIST: %v, want INBOX and the five special mailboxes", seen)
	}

	st, err := c.Status("INBOX", &imap.StatusOptions{NumMessages: true, UIDNext: true, UIDValidity: true, NumUnseen: true, Size: true}).Wait()
	if err != nil || *st.NumMessages != 3 || *st.NumUnseen != 3 || st.UIDNext != 4 || st.UIDValidity == 0 || st.Size == nil || *st.Size == 0 {
		t.Errorf("STATUS INBOX: %+v, %v", st, err)
	}

	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatalf("SELECT: %v", err)
	}
	if sel.NumMessages != 3 || sel.UIDValidity != st.UIDValidity || sel.UIDNext != 4 {
		t.Errorf("SELECT INBOX: %+v, want 3 messages, UIDVALIDITY %d, UIDNEXT 4", sel, st.UIDValidity)
	}

	whole := &imap.FetchItemBodySection{Peek: true}
	msgs, err := c.Fetch(imap.SeqSetNum(1, 2, 3), &imap.FetchOptions{
		UID: true, Flags: true, Envelope: true, InternalDate: true, RFC822Size: true,
		BodyStructure: &imap.FetchItemBodyStructure{Extended: true},
		BodySection:   []*imap.FetchItemBodySection{whole},
	}).Collect()
	if err != nil || len(msgs) != 3 {
		t.Fatalf("FETCH 1:3: %d messages, %v", len(msgs), err)
	}
	// The first read-write SELECT after delivery: the messages are
	// \Recent in this (IMAP4rev1) session and have no other flag.
	for i, m := range msgs {
		body := m.FindBodySection(whole)
		if m.UID != imap.UID(i+1) || m.Envelope == nil || m.BodyStructure == nil || m.InternalDate.IsZero() ||
			m.RFC822Size != int64(len(body)) || !slices.Equal(m.Flags, []imap.Flag{`\Recent`}) {
			t.Errorf("FETCH %d: UID %d, size %d for a %d-byte body, flags %v, envelope %v, internal date %v",
				i+1, m.UID, m.RFC822Size, len(body), m.Flags, m.Envelope != nil, m.InternalDate)
		}
	}
	if env := msgs[0].Envelope; env.Subject != plainSubject || len(env.From) != 1 || env.From[0].Addr() != "office@gov.kz" || env.From[0].Name != "Tax Office" {
		t.Errorf("ENVELOPE of 1: %+v", env)
	}
	if !bytes.HasSuffix(msgs[0].FindBodySection(whole), []byte("\r\n\r\n"+plainBody)) {
		t.Errorf("BODY[] of 1 does not end with the body: %q", msgs[0].FindBodySection(whole))
	}
	if env := msgs[1].Envelope; env.Subject != utf8Subject || env.MessageID == "" || !env.Date.Equal(time.Date(2026, 2, 3, 5, 0, 0, 0, time.UTC)) {
		t.Errorf("ENVELOPE of 2: subject %q (want %q), date %v, message-id %q", env.Subject, utf8Subject, env.Date, env.MessageID)
	}
	mp, ok := msgs[1].BodyStructure.(*imap.BodyStructureMultiPart)
	if !ok || mp.Subtype != "mixed" || len(mp.Children) != 2 {
		t.Fatalf("BODYSTRUCTURE of 2: %#v, want multipart/mixed with 2 parts", msgs[1].BodyStructure)
	}
	text, ok1 := mp.Children[0].(*imap.BodyStructureSinglePart)
	att, ok2 := mp.Children[1].(*imap.BodyStructureSinglePart)
	if !ok1 || !ok2 || text.MediaType() != "text/plain" || text.Encoding != "base64" ||
		att.MediaType() != "application/octet-stream" || att.Encoding != "base64" || att.Filename() != "data.bin" {
		t.Errorf("parts of 2: %#v and %#v", mp.Children[0], mp.Children[1])
	}

	binPart := &imap.FetchItemBinarySection{Part: []int{2}, Peek: true}
	textPart := &imap.FetchItemBodySection{Part: []int{1}, Peek: true}
	msgs, err = c.Fetch(imap.UIDSetNum(2), &imap.FetchOptions{
		BinarySection:     []*imap.FetchItemBinarySection{binPart},
		BinarySectionSize: []*imap.FetchItemBinarySectionSize{{Part: []int{2}}},
		BodySection:       []*imap.FetchItemBodySection{textPart},
	}).Collect()
	if err != nil || len(msgs) != 1 {
		t.Fatalf("UID FETCH 2 BINARY.PEEK[2]: %d messages, %v", len(msgs), err)
	}
	if got := msgs[0].FindBinarySection(binPart); !bytes.Equal(got, attachment()) {
		t.Errorf("BINARY.PEEK[2]: %d bytes, want the %d-byte attachment", len(got), len(attachment()))
	}
	if n, ok := msgs[0].FindBinarySectionSize([]int{2}); !ok || n != 1024 {
		t.Errorf("BINARY.SIZE[2]: %d %v, want 1024", n, ok)
	}
	if got := msgs[0].FindBodySection(textPart); strings.TrimSpace(string(got)) != strings.TrimSpace(crlf(base64Lines([]byte(partText)))) {
		t.Errorf("BODY.PEEK[1]: %q", got)
	}

	for _, tc := range []struct {
		name     string
		criteria imap.SearchCriteria
		want     []imap.UID
	}{
		{"body in base64", imap.SearchCriteria{Body: []string{base64Word}}, []imap.UID{2}},
		{"utf-8 subject", imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: utf8Word}}}, []imap.UID{2}},
		{"larger", imap.SearchCriteria{Larger: 4000}, []imap.UID{3}},
		{"not seen", imap.SearchCriteria{NotFlag: []imap.Flag{imap.FlagSeen}}, []imap.UID{1, 2, 3}},
	} {
		data, err := c.UIDSearch(&tc.criteria, nil).Wait()
		if err != nil || !slices.Equal(data.AllUIDs(), tc.want) {
			t.Errorf("UID SEARCH %s: %v, %v, want %v", tc.name, data.AllUIDs(), err, tc.want)
		}
	}

	if err := c.Store(imap.UIDSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagFlagged}, Silent: true}, nil).Close(); err != nil {
		t.Errorf("STORE: %v", err)
	}
	draft := []byte("From: <" + alice + ">\r\nSubject: draft\r\n\r\nunfinished\r\n")
	app := c.Append("Drafts", int64(len(draft)), &imap.AppendOptions{Flags: []imap.Flag{imap.FlagDraft}})
	app.Write(draft)
	app.Close()
	if ad, err := app.Wait(); err != nil || ad.UID != 1 || ad.UIDValidity == 0 {
		t.Errorf("APPEND Drafts: %+v, %v, want APPENDUID with UID 1", ad, err)
	}
	md, err := c.Move(imap.UIDSetNum(3), "Archive").Wait()
	if err != nil || md == nil || !slices.Equal(uidList(md.SourceUIDs), []imap.UID{3}) || !slices.Equal(uidList(md.DestUIDs), []imap.UID{1}) {
		t.Errorf("UID MOVE 3 Archive: %+v, %v, want COPYUID 3 -> 1", md, err)
	}

	// IDLE: a delivery shows as EXISTS. After the MOVE, INBOX holds 2.
	drain(numMessages)
	idle, err := c.Idle()
	if err != nil {
		t.Fatalf("IDLE: %v", err)
	}
	s.mustDeliver(alice, simpleMessage(alice, "to the go client", "while idle"))
	waitCount(t, numMessages, 3)
	if err := idle.Close(); err != nil {
		t.Errorf("IDLE DONE: %v", err)
	}
	if err := idle.Wait(); err != nil {
		t.Errorf("IDLE: %v", err)
	}
	msgs, err = c.Fetch(imap.SeqSetNum(3), &imap.FetchOptions{UID: true, Envelope: true}).Collect()
	if err != nil || len(msgs) != 1 || msgs[0].UID != 4 || msgs[0].Envelope.Subject != "to the go client" {
		t.Errorf("FETCH of the message delivered during IDLE: %v, %v", msgs, err)
	}
	if err := c.Logout().Wait(); err != nil {
		t.Errorf("LOGOUT: %v", err)
	}

	// STARTTLS on the plain port, with the same client.
	c2, _ := goClient(t, s.imap, alice, true)
	if st, err := c2.Status("Archive", &imap.StatusOptions{NumMessages: true}).Wait(); err != nil || *st.NumMessages != 1 {
		t.Errorf("STATUS Archive over STARTTLS: %+v, %v", st, err)
	}
	if err := c2.Logout().Wait(); err != nil {
		t.Errorf("LOGOUT: %v", err)
	}
}

func uidList(set imap.NumSet) []imap.UID {
	us, ok := set.(imap.UIDSet)
	if !ok {
		return nil
	}
	uids, _ := us.Nums()
	return uids
}

func drain(ch <-chan uint32) {
	for {
		select {
		case <-ch:
		default:
			return
		}
	}
}

// waitCount waits for an EXISTS of n; others are skipped.
func waitCount(t *testing.T, ch <-chan uint32, n uint32) {
	t.Helper()
	timeout := time.After(waitTimeout)
	var got []uint32
	for {
		select {
		case v := <-ch:
			if v == n {
				return
			}
			got = append(got, v)
		case <-timeout:
			t.Fatalf("no * %d EXISTS within %v (got %v)", n, waitTimeout, got)
		}
	}
}
