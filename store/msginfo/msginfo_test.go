package msginfo

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-message/textproto"
)

// TestRoundTrip encodes and decodes the structure of every message in
// the test corpora and checks the parts survive.
func TestRoundTrip(t *testing.T) {
	files, _ := filepath.Glob("../../testdata/spam/*.eml")
	if len(files) == 0 {
		t.Skip("no corpus")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			msg, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			info := Parse(msg)
			got, err := Decode(Encode(info))
			if err != nil {
				t.Fatal(err)
			}
			if got.HeaderSize != info.HeaderSize || got.PlainText != info.PlainText ||
				got.Envelope.Subject != info.Envelope.Subject || got.Structure.MediaType() != info.Structure.MediaType() {
				t.Fatalf("round trip changed the info: %+v vs %+v", got, info)
			}
			hs, plain, err := Peek(Encode(info))
			if err != nil || hs != info.HeaderSize || plain != info.PlainText {
				t.Fatalf("peek %d %v %v", hs, plain, err)
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(Compute([]byte("Subject: hi\r\n\r\nbody\r\n")))
	f.Add([]byte{2, 0, 0})
	f.Add(Compute([]byte("To: g: a@b.c;\r\nContent-Type: message/rfc822\r\n\r\nFrom: <@r:x@y>\r\n\r\nx\r\n")))
	f.Fuzz(func(t *testing.T, b []byte) {
		Decode(b) // must not panic
		Peek(b)
		DecodeEnvelope(b)
		DecodeEnvelopes(b)
		DecodeOwnEnvelope(b)
		Subject(b)
	})
}

func TestSubject(t *testing.T) {
	b := Compute([]byte("Subject: =?utf-8?b?0J/RgNC40LLQtdGC?= needle\r\nFrom: a@b.c\r\n\r\nx\r\n"))
	s, err := Subject(b)
	if err != nil || string(s) != "Привет needle" {
		t.Fatalf("%q %v", s, err)
	}
}

// TestFastDateMatchesGoIMAP: the envelope's Date is what go-imap's own
// extraction gives, whether the fast form applies or not.
func TestFastDateMatchesGoIMAP(t *testing.T) {
	for _, date := range []string{
		"Wed, 25 Nov 2026 10:00:00 +0000",
		"Thu, 1 Jan 2026 23:59:59 +0500",
		"Mon, 02 Feb 2026 01:02:03 -0800",
		" Mon, 02 Feb 2026 01:02:03 -0800 ",
		"25 Nov 2026 10:00:00 +0000",
		"Wed, 25 Nov 2026 10:00:00 GMT",
		"Wed, 25 Nov 2026 10:00:00 +0000 (UTC)",
		"Wed, 25 Nov 26 10:00 +0000",
		"garbage",
		"",
	} {
		msg := "From: a@example.org\r\nSubject: s\r\n"
		if date != "" {
			msg += "Date: " + date + "\r\n"
		}
		msg += "\r\nbody\r\n"
		hdr, err := textproto.ReadHeader(bufio.NewReader(strings.NewReader(msg)))
		if err != nil {
			t.Fatal(err)
		}
		want := imapserver.ExtractEnvelope(hdr).Date
		got := Parse([]byte(msg)).Envelope.Date
		_, wantOff := want.Zone()
		_, gotOff := got.Zone()
		if !got.Equal(want) || gotOff != wantOff {
			t.Errorf("Date %q: envelope date %v, go-imap gives %v", date, got, want)
		}
	}
}
