package imapd

import (
	"errors"
	"testing"

	"github.com/emersion/go-imap/v2"

	"abox/store/msginfo"
)

func TestParseIMAPURL(t *testing.T) {
	type want struct {
		mailbox  string
		uv, uid  uint32
		part     []int
		spec     imap.PartSpecifier
		off, len int64
	}
	ok := []struct {
		name string
		url  string
		want want
	}{
		{"whole message", "/INBOX/;UID=20", want{mailbox: "INBOX", uid: 20}},
		{"inbox in any case", "/inbox;UIDVALIDITY=7/;UID=1", want{mailbox: "INBOX", uv: 7, uid: 1}},
		{"hierarchy and percent-encoded UTF-8", "/Work/%D0%9E%D1%82%D1%87%D1%91%D1%82%20Q1/;UID=3", want{mailbox: "Work/Отчёт Q1", uid: 3}},
		{"RFC 4469 example, lower-case names", "/Drafts;uidvalidity=385759045/;uid=20/;section=HEADER", want{mailbox: "Drafts", uv: 385759045, uid: 20, spec: imap.PartSpecifierHeader}},
		{"part numbers", "/INBOX/;UID=2/;SECTION=1.5.9", want{mailbox: "INBOX", uid: 2, part: []int{1, 5, 9}}},
		{"part MIME", "/INBOX/;UID=2/;SECTION=1.MIME", want{mailbox: "INBOX", uid: 2, part: []int{1}, spec: imap.PartSpecifierMIME}},
		{"attached message's text", "/INBOX/;UID=2/;SECTION=2.text", want{mailbox: "INBOX", uid: 2, part: []int{2}, spec: imap.PartSpecifierText}},
		{"partial with length", "/INBOX/;UID=2/;PARTIAL=10.5", want{mailbox: "INBOX", uid: 2, off: 10, len: 5}},
		{"section and partial", "/INBOX/;UID=2/;SECTION=TEXT/;PARTIAL=0.1", want{mailbox: "INBOX", uid: 2, spec: imap.PartSpecifierText, len: 1}},
	}
	for _, tc := range ok {
		u, err := parseIMAPURL(tc.url)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		w := tc.want
		got := want{mailbox: u.mailbox, uv: u.uidValidity, uid: u.uid, part: u.section.Part, spec: u.section.Specifier}
		if p := u.section.Partial; p != nil {
			got.off, got.len = p.Offset, p.Size
		}
		if got.mailbox != w.mailbox || got.uv != w.uv || got.uid != w.uid || got.spec != w.spec || got.off != w.off || got.len != w.len || len(got.part) != len(w.part) {
			t.Errorf("%s: %+v, want %+v", tc.name, got, w)
			continue
		}
		for i := range w.part {
			if got.part[i] != w.part[i] {
				t.Errorf("%s: part %v, want %v", tc.name, got.part, w.part)
			}
		}
	}
	bad := []struct{ name, url string }{
		{"absolute", "imap://alice@example.kz/INBOX/;UID=1"},
		{"relative to a mailbox", ";UID=1"},
		{"no UID", "/INBOX;UIDVALIDITY=5"},
		{"no slash before UID", "/INBOX;UID=1"},
		{"UID zero", "/INBOX/;UID=0"},
		{"UID with a leading zero", "/INBOX/;UID=01"},
		{"UID too large", "/INBOX/;UID=4294967296"},
		{"UIDVALIDITY after UID", "/INBOX/;UID=1/;UIDVALIDITY=5"},
		{"section before UID", "/INBOX/;SECTION=1/;UID=1"},
		{"twice the UID", "/INBOX/;UID=1/;UID=2"},
		{"empty mailbox", "//;UID=1"},
		{"bad escape", "/IN%ZZ/;UID=1"},
		{"not UTF-8", "/%FF/;UID=1"},
		{"empty section", "/INBOX/;UID=1/;SECTION="},
		{"part zero", "/INBOX/;UID=1/;SECTION=0"},
		{"MIME of the message", "/INBOX/;UID=1/;SECTION=MIME"},
		{"HEADER.FIELDS", "/INBOX/;UID=1/;SECTION=HEADER.FIELDS%20(To)"},
		{"unknown section", "/INBOX/;UID=1/;SECTION=1.BODY"},
		{"partial of length zero", "/INBOX/;UID=1/;PARTIAL=1.0"},
		{"URLAUTH", "/INBOX/;UID=1;EXPIRE=2030-01-01T00:00:00Z;URLAUTH=anonymous"},
		{"trailing slash", "/INBOX/;UID=1/"},
	}
	for _, tc := range bad {
		if u, err := parseIMAPURL(tc.url); !errors.Is(err, errBadURL) {
			t.Errorf("%s: %q gave %+v, %v; want errBadURL", tc.name, tc.url, u, err)
		}
	}
}

// TestSectionExists walks RFC 9051 §6.4.5's part numbering over the
// stored structure of a nested message.
func TestSectionExists(t *testing.T) {
	msg := []byte("Content-Type: multipart/mixed; boundary=o\r\n\r\n--o\r\nContent-Type: text/plain\r\n\r\nhi\r\n" +
		"--o\r\nContent-Type: message/rfc822\r\n\r\nSubject: in\r\nContent-Type: multipart/alternative; boundary=i\r\n\r\n" +
		"--i\r\nContent-Type: text/plain\r\n\r\na\r\n--i\r\nContent-Type: text/html\r\n\r\nb\r\n--i--\r\n" +
		"--o\r\nContent-Type: message/rfc822\r\n\r\nSubject: single\r\n\r\nflat\r\n--o--\r\n")
	single := []byte("Subject: s\r\n\r\nbody\r\n")
	bs, flat := msginfo.Parse(msg).Structure, msginfo.Parse(single).Structure
	cases := []struct {
		name string
		bs   imap.BodyStructure
		sec  string
		want bool
	}{
		{"whole", bs, "", true},
		{"HEADER", bs, "HEADER", true},
		{"first part", bs, "1", true},
		{"its MIME", bs, "1.MIME", true},
		{"no part 4", bs, "4", false},
		{"text part has no subpart", bs, "1.1", false},
		{"HEADER of a text part", bs, "1.HEADER", false},
		{"attached message's header", bs, "2.HEADER", true},
		{"attached message's parts", bs, "2.2", true},
		{"attached message has two", bs, "2.3", false},
		{"inside the attached part", bs, "2.1.MIME", true},
		{"attached single-part message's body", bs, "3.1", true},
		{"and no more", bs, "3.2", false},
		{"single-part body is part 1", flat, "1", true},
		{"and has no part 2", flat, "2", false},
		{"nor 1.1", flat, "1.1", false},
	}
	for _, tc := range cases {
		var sec imap.FetchItemBodySection
		if tc.sec != "" && !parseURLSection(tc.sec, &sec) {
			t.Fatalf("%s: %q does not parse", tc.name, tc.sec)
		}
		if got := sectionExists(tc.bs, &sec); got != tc.want {
			t.Errorf("%s (%s): %v, want %v", tc.name, tc.sec, got, tc.want)
		}
	}
}

// FuzzParseIMAPURL: any string parses or is errBadURL, and what parses
// names a message.
func FuzzParseIMAPURL(f *testing.F) {
	for _, s := range []string{"/INBOX/;UID=1", "/Drafts;UIDVALIDITY=385759045/;UID=20/;SECTION=1.5.MIME/;PARTIAL=0.1024", "/a%20b/;UID=1/;SECTION=HEADER", "imap://x@y/INBOX/;UID=1", ";;;//;"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := parseIMAPURL(s)
		if err != nil {
			if !errors.Is(err, errBadURL) {
				t.Fatalf("%q: %v is not errBadURL", s, err)
			}
			return
		}
		if u.uid == 0 || u.mailbox == "" {
			t.Fatalf("%q parsed to %+v", s, u)
		}
	})
}
