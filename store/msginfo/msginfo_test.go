package msginfo

import (
	"os"
	"path/filepath"
	"testing"
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
	f.Fuzz(func(t *testing.T, b []byte) {
		Decode(b) // must not panic
		Peek(b)
	})
}

func TestSubject(t *testing.T) {
	b := Compute([]byte("Subject: =?utf-8?b?0J/RgNC40LLQtdGC?= needle\r\nFrom: a@b.c\r\n\r\nx\r\n"))
	s, err := Subject(b)
	if err != nil || s != "Привет needle" {
		t.Fatalf("%q %v", s, err)
	}
}
