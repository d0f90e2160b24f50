package msginfo

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-message/textproto"
)

// structureCorpus: the project's sample messages and hand-made MIME
// shapes (nested multiparts, embedded messages, bare LFs, parts without
// headers, a broken header, a missing boundary, languages and
// dispositions).
func structureCorpus(tb testing.TB) map[string][]byte {
	out := map[string][]byte{}
	files, _ := filepath.Glob("../../testdata/spam/*.eml")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		out[filepath.Base(f)] = b
	}
	if mbox, err := os.ReadFile("../../testdata/mail/sample.mbox"); err == nil {
		for i, m := range strings.Split("\n"+string(mbox), "\nFrom ") {
			if _, rest, ok := strings.Cut(m, "\n"); ok && i > 0 {
				out["sample.mbox#"+string(rune('0'+i))] = []byte(rest)
			}
		}
	}
	crlf := func(s string) []byte { return []byte(strings.ReplaceAll(s, "\n", "\r\n")) }
	out["plain"] = crlf("Subject: hi\nContent-Language: kk, ru ,en\n\nline one\nline two\n")
	out["no body"] = []byte("Subject: only a header\r\n")
	out["empty"] = []byte{}
	out["bare LF"] = []byte("Subject: lf\nContent-Type: text/plain; charset=utf-8\n\nтекст\nещё\n")
	out["broken header"] = []byte("Subject: x\r\nthis is not a field\r\n\r\nbody\r\n")
	out["bad content type"] = crlf("Content-Type: text/plain; charset\n\nx\n")
	out["multipart"] = crlf(`From: a@example.kz
Content-Type: multipart/mixed; boundary="b1"
Content-Disposition: inline

preamble
--b1
Content-Type: multipart/alternative; boundary=b2

--b2
Content-Type: text/plain; charset=us-ascii

plain
text
--b2
Content-Type: text/html; charset=utf-8
Content-Transfer-Encoding: quoted-printable

<p>html</p>
--b2--
--b1
Content-Type: application/pdf; name="letter.pdf"
Content-Disposition: attachment; filename="=?utf-8?b?0L/QuNGB0YzQvNC+LnBkZg==?="
Content-Transfer-Encoding: base64
Content-Id: <p1@example.kz>
Content-Description: the letter
Content-Location: https://example.kz/letter.pdf

JVBERi0xLjQKJcfsj6IK
JVBERi0xLjQKJcfsj6IK
--b1

a part without a header
--b1
Content-Type: message/rfc822

From: inner@example.kz
Subject: inner
Date: Mon, 2 Jan 2006 15:04:05 +0600
Content-Type: multipart/mixed; boundary=in

--in
Content-Type: text/plain

inner text
--in--
--b1--
epilogue
`)
	out["multipart without boundary"] = crlf("Content-Type: multipart/mixed\n\n--x\n\nhello\n--x--\n")
	out["multipart without parts"] = crlf("Content-Type: multipart/mixed; boundary=z\n\nno parts here\n")
	out["message/global"] = crlf("Content-Type: message/global\n\nSubject: g\n\nbody\n")
	big := bytes.Repeat([]byte("0123456789 abcdefghijklmnopqrstuvwxyz\r\n"), 3000)
	out["large part"] = append(crlf("Content-Type: multipart/mixed; boundary=q\n\n--q\nContent-Type: text/plain\n\n"), append(big, crlf("--q--\n")...)...)
	return out
}

// TestStructureAsGoIMAP: the structure computed here is go-imap's, part
// for part, field for field.
func TestStructureAsGoIMAP(t *testing.T) {
	for name, msg := range structureCorpus(t) {
		want, comparable := goIMAPStructure(msg)
		got := Parse(msg).Structure
		if comparable && !reflect.DeepEqual(got, want) {
			t.Errorf("%s: structure\n%#v\nwant\n%#v", name, got, want)
		}
	}
}

// goIMAPStructure is go-imap's structure of msg, and whether abox's
// should equal it. Two cases differ on purpose: a header with a line
// that is not a field (go-imap counts the header's rest as body; abox
// ends the header at its empty line, where BODY[TEXT] starts) and a
// multipart in which no part is found (go-imap describes it as 0 bytes
// of text; abox gives its real size, the bytes BODY[1] returns).
func goIMAPStructure(msg []byte) (imap.BodyStructure, bool) {
	br := bufio.NewReader(bytes.NewReader(msg[:HeaderEnd(msg)]))
	if _, err := textproto.ReadHeader(br); err != nil {
		return nil, false
	}
	var empty func(bs imap.BodyStructure) bool
	empty = func(bs imap.BodyStructure) bool {
		switch p := bs.(type) {
		case *imap.BodyStructureMultiPart:
			if len(p.Children) == 0 {
				return true
			}
			for _, c := range p.Children {
				if empty(c) {
					return true
				}
			}
		case *imap.BodyStructureSinglePart:
			if p.MessageRFC822 != nil {
				return empty(p.MessageRFC822.BodyStructure)
			}
		}
		return false
	}
	bs := imapserver.ExtractBodyStructure(bytes.NewReader(msg))
	if bs == nil || empty(bs) {
		return nil, false
	}
	return fixDefaults(bs), true
}
