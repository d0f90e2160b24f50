package wire

import (
	"fmt"
	"strings"
	"testing"
)

func TestFetchItems(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string // items as kind:spec:peek:partial, "" for a syntax error
	}{
		{"ALL", "2 3 4 5"},
		{"FAST", "2 3 4"},
		{"FULL", "2 3 4 5 6"},
		{"UID", "1"},
		{"(UID FLAGS RFC822.SIZE)", "1 2 4"},
		{"(body[] BODY.PEEK[HEADER.FIELDS (Subject From)]<0.100>)", "8: 8:HEADER.FIELDS (Subject From):peek:0.100"},
		{"BODY[1.2.MIME]", "8:1.2.MIME"},
		{"BODY[1.2]", "8:1.2"},
		{"BODY[2.TEXT]<10.20>", "8:2.TEXT::10.20"},
		{"BINARY.PEEK[1]<0.1024>", "9:1:peek:0.1024"},
		{"BINARY.SIZE[2.1]", "10:2.1"},
		{"BINARY[HEADER]", ""},
		{"BODY[MIME]", ""},
		{"BODY[1.]", ""},
		{"BODY[HEADER.FIELDS ()]", ""},
		{"BODY[0]", ""},
		{"RFC822 RFC822.HEADER", "11"}, // the rest is not FETCH's (End fails)
		{"(MODSEQ SAVEDATE EMAILID THREADID PREVIEW)", "14 15 16 17 18"},
		{"(PREVIEW (LAZY))", "18:lazy"},
		{"()", ""},
		{"(FOO)", ""},
	} {
		a := argsOf(t, tc.in)
		items, ok := a.FetchItems()
		if ok && a.End() != nil && tc.in != "RFC822 RFC822.HEADER" {
			ok = false
		}
		var got []string
		for _, it := range items {
			s := fmt.Sprint(int(it.Kind))
			if it.Section != nil {
				s += ":" + it.Section.Spec
				if it.Section.Peek || it.Section.Partial != nil {
					s += ":"
					if it.Section.Peek {
						s += "peek"
					}
				}
				if p := it.Section.Partial; p != nil {
					s += fmt.Sprintf(":%d.%d", p.Offset, p.Size)
				}
			}
			if it.Lazy {
				s += ":lazy"
			}
			got = append(got, s)
		}
		g := strings.Join(got, " ")
		if !ok {
			g = ""
		}
		if g != tc.want {
			t.Errorf("%q: %q (%v), want %q", tc.in, g, a.Err(), tc.want)
		}
	}
}
