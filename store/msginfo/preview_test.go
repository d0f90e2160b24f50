package msginfo

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestPreview(t *testing.T) {
	long := strings.Repeat("word ", 100)
	cases := []struct {
		name, msg, want string
	}{
		{"plain", "Subject: a\r\n\r\nHello,\r\n  world\r\n", "Hello, world"},
		{"quoted lines left out", "Subject: a\r\n\r\nYes.\r\n> you wrote\r\n>> before\r\nBye\r\n", "Yes. Bye"},
		{"quoted-printable latin1", "Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nCaf=E9 cr=\r\n=E8me\r\n", "Café crème"},
		{"base64 utf-8", "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n0J/RgNC40LLQtdGC\r\n", "Привет"},
		{"multipart alternative prefers plain", "Content-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\nContent-Type: text/html\r\n\r\n<p>html</p>\r\n--b\r\nContent-Type: text/plain\r\n\r\nplain text\r\n--b--\r\n", "plain text"},
		{"html only", "Content-Type: text/html\r\n\r\n<html><head><style>p{color:red}</style></head><body><p>Dear&nbsp;user,</p><!-- x --><p>pay &amp; go</p></body></html>\r\n", "Dear user, pay & go"},
		{"attachment only", "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\nContent-Disposition: attachment; filename=a.txt\r\n\r\nsecret\r\n--b--\r\n", ""},
		{"no text", "Content-Type: image/png\r\n\r\nxxxx\r\n", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			info := Parse([]byte(c.msg))
			if !info.HasPreview || info.Preview != c.want {
				t.Errorf("preview %q (has %v), want %q", info.Preview, info.HasPreview, c.want)
			}
			back, err := Decode(Encode(info))
			if err != nil || !back.HasPreview || back.Preview != c.want {
				t.Errorf("after Encode/Decode: %+v, %v", back, err)
			}
		})
	}
	t.Run("cut at 256 characters", func(t *testing.T) {
		info := Parse([]byte("Subject: a\r\n\r\n" + strings.Repeat("é", 300) + long + "\r\n"))
		if n := utf8.RuneCountInString(info.Preview); n != PreviewChars {
			t.Errorf("preview of %d characters, want %d", n, PreviewChars)
		}
	})
}

// TestPreviewOldRecords: a record written without a preview still
// decodes, and says it has none.
func TestPreviewOldRecords(t *testing.T) {
	info := Parse([]byte("Subject: a\r\n\r\nHello\r\n"))
	info.HasPreview = false
	old, err := Decode(Encode(info))
	if err != nil || old.HasPreview || old.Preview != "" || old.Envelope.Subject != "a" {
		t.Fatalf("old record: %+v, %v", old, err)
	}
	if _, err := DecodeEnvelope(Encode(Parse([]byte("Subject: b\r\n\r\nx\r\n")))); err != nil {
		t.Fatal(err)
	}
}
