package imapd

import (
	"testing"

	"github.com/emersion/go-imap/v2"
)

func TestIntersectUIDs(t *testing.T) {
	r := func(a, b imap.UID) imap.UIDRange { return imap.UIDRange{Start: a, Stop: b} }
	for _, tc := range []struct {
		name string
		a, b imap.UIDSet
		last uint32
		want string
	}{
		{"disjoint", imap.UIDSet{r(1, 3)}, imap.UIDSet{r(5, 9)}, 20, ""},
		{"inside", imap.UIDSet{r(1, 10)}, imap.UIDSet{r(4, 6)}, 20, "4:6"},
		{"star is the last", imap.UIDSet{r(1, 3), r(8, 12)}, imap.UIDSet{r(2, 0)}, 10, "2:3,8:10"},
		{"reversed range", imap.UIDSet{r(1, 10)}, imap.UIDSet{r(7, 5)}, 20, "5:7"},
		{"several", imap.UIDSet{r(2, 2), r(5, 9)}, imap.UIDSet{r(1, 2), r(6, 6), r(9, 30)}, 30, "2,6,9"},
	} {
		if got := intersectUIDs(tc.a, tc.b, tc.last).String(); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
}
