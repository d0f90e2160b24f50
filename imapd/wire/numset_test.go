package wire

import (
	"errors"
	"testing"

	"github.com/emersion/go-imap/v2"
)

func argsOf(t *testing.T, s string) *Args {
	t.Helper()
	r, _ := reader("t X "+s+"\r\n", nil)
	c, err := r.ReadCommand()
	if err != nil {
		t.Fatal(err)
	}
	a := c.Args()
	a.SP()
	return a
}

func TestNumSet(t *testing.T) {
	for _, tc := range []struct {
		in   string
		uid  bool
		want string // String() of the set; "" for a syntax error
	}{
		{"1", false, "1"},
		{"1:5,7,9:*", false, "1:5,7,9:*"},
		{"*", true, "*"},
		{"5:2", true, "2:5"},
		{"$", false, "$"},
		{"0", false, ""},
		{"1:0", false, ""},
		{"a", false, ""},
		{"4294967296", false, ""},
		{"1,", false, ""},
	} {
		a := argsOf(t, tc.in)
		set, ok := a.NumSet(tc.uid)
		if tc.want == "" {
			if ok && a.End() == nil || !errors.Is(a.Err(), ErrSyntax) && a.End() == nil {
				t.Errorf("%q: %v accepted", tc.in, set)
			}
			continue
		}
		if !ok || a.End() != nil {
			t.Errorf("%q: %v", tc.in, a.Err())
			continue
		}
		got := set.String()
		if imap.IsSearchRes(set) {
			got = "$"
		}
		if got != tc.want {
			t.Errorf("%q: %s, want %s", tc.in, got, tc.want)
		}
	}
}
