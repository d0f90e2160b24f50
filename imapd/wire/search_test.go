package wire

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// show renders a search program compactly for comparison.
func show(k SearchKey) string {
	switch k.Op {
	case SearchAnd, SearchOr, SearchNot:
		var parts []string
		for _, c := range k.Children {
			parts = append(parts, show(c))
		}
		return map[SearchOp]string{SearchAnd: "and", SearchOr: "or", SearchNot: "not"}[k.Op] + "(" + strings.Join(parts, " ") + ")"
	case SearchSeq, SearchUID:
		return fmt.Sprintf("%d:%v", k.Op, k.Set)
	case SearchFlag, SearchNoFlag:
		return fmt.Sprintf("%d:%s", k.Op, k.Flag)
	case SearchHeader:
		return "h:" + k.Field + "=" + k.Value
	case SearchSince, SearchBefore, SearchOn, SearchSentSince, SearchSentBefore, SearchSentOn:
		return fmt.Sprintf("%d:%s", k.Op, k.Date.Format("2006-01-02"))
	case SearchLarger, SearchSmaller, SearchOlder, SearchYounger, SearchModSeq:
		return fmt.Sprintf("%d:%d", k.Op, k.N)
	}
	return fmt.Sprintf("%d:%s", k.Op, k.Value)
}

func TestSearchKeys(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"ALL", "0:"},
		{"UNSEEN", "7:\\Seen"},
		{"1:5 UID 10:*", "and(4:1:5 5:10:*)"},
		{"OR FROM alice (SUBJECT \"a b\" SMALLER 100)", "or(h:From=alice and(h:Subject=a b 19:100))"},
		{"NOT NEW OLD RECENT", "and(not(8:) 7:\\Recent 6:\\Recent)"},
		{"KEYWORD $Official UNKEYWORD $Junk", "and(6:$Official 7:$Junk)"},
		{"SINCE 5-Mar-2024 BEFORE \"1-Jan-2025\"", "and(12:2024-03-05 13:2025-01-01)"},
		{"HEADER Message-ID {5}\r\n<a@b>", "h:Message-ID=<a@b>"},
		{"OLDER 3600 YOUNGER 60", "and(20:3600 21:60)"},
		{"MODSEQ \"/flags/\\\\draft\" all 620162338", "22:620162338"},
		{"$", "4:$"},
		{"SINCE 31-Feb-2024", ""},
		{"SINCE 5-Foo-2024", ""},
		{"OLDER 0", ""},
		{"FOO", ""},
		{"()", ""},
		{"NOT", ""},
		{strings.Repeat("NOT ", 1000) + "ALL", ""},
		{strings.Repeat("(", 1000) + "ALL" + strings.Repeat(")", 1000), ""},
	} {
		a := argsOf(t, tc.in)
		k, ok := a.SearchKeys()
		got := ""
		if ok && a.End() == nil {
			got = show(k)
		} else if !errors.Is(a.Err(), ErrSyntax) {
			t.Errorf("%q: the error %v is not a syntax error", tc.in, a.Err())
		}
		if got != tc.want {
			t.Errorf("%q: %q (%v), want %q", tc.in, got, a.Err(), tc.want)
		}
	}
}
