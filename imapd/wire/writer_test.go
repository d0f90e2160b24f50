package wire

import (
	"bufio"
	"bytes"
	"testing"
)

func written(utf bool, f func(w *Writer)) string {
	var b bytes.Buffer
	bw := bufio.NewWriter(&b)
	w := NewWriter(bw)
	w.UTF8 = utf
	f(w)
	w.Flush()
	return b.String()
}

func TestWriterStrings(t *testing.T) {
	tests := []struct {
		name string
		utf8 bool
		in   string
		want string
	}{
		{"plain", false, "hello world", `"hello world"`},
		{"escapes", false, `a"b\c`, `"a\"b\\c"`},
		{"CRLF goes as a literal", false, "a\r\nb", "{4}\r\na\r\nb"},
		{"UTF-8 without UTF8=ACCEPT", false, "Привет", "{12}\r\nПривет"},
		{"UTF-8 with it", true, "Привет", `"Привет"`},
		{"invalid UTF-8", true, "a\xffb", "{3}\r\na\xffb"},
		{"NUL never in text", false, "a\x00b", "{3}\r\na b"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := written(tc.utf8, func(w *Writer) { w.String(tc.in) }); got != tc.want {
				t.Fatalf("%q, want %q", got, tc.want)
			}
		})
	}
	if got := written(false, func(w *Writer) { w.Literal8([]byte("a\x00b")) }); got != "~{3}\r\na\x00b" {
		t.Fatalf("literal8 %q", got)
	}
	if got := written(false, func(w *Writer) { w.AString("INBOX").SP().AString("a b").SP().AString("") }); got != `INBOX "a b" ""` {
		t.Fatalf("astrings %q", got)
	}
}

// FuzzStringRoundTrip: whatever Writer.String writes reads back as the
// same string through Reader and Args (NUL aside, which text may not
// carry).
func FuzzStringRoundTrip(f *testing.F) {
	for _, s := range []string{"", "x", "a\"b", "a\r\nb", "Привет", "\xff", "{5}", "~{3}"} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, s string, utf bool) {
		if indexNUL([]byte(s)) >= 0 {
			return
		}
		out := written(utf, func(w *Writer) { w.Raw("t1 X ").String(s).CRLF() })
		r, _ := reader(out, func(*Command, int64, bool) error { return nil })
		c, err := r.ReadCommand()
		if err != nil {
			t.Fatalf("%q: %v", out, err)
		}
		a := c.Args()
		a.SP()
		got, ok := a.String()
		if !ok || got != s || a.End() != nil {
			t.Fatalf("%q wrote %q, read back %q (%v)", s, out, got, a.Err())
		}
	})
}
