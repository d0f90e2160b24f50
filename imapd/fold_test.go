package imapd

import (
	"bytes"
	"math/rand"
	"strings"
	"testing"
)

func TestContainsFoldASCII(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	alphabet := "abcdeNEEDLneedlz .\r\n"
	for i := 0; i < 20000; i++ {
		hay := make([]byte, r.Intn(40))
		for j := range hay {
			hay[j] = alphabet[r.Intn(len(alphabet))]
		}
		for _, n := range []string{"needle", "n", "ee", "dle", "zz", "a.", "le\r"} {
			want := bytes.Contains(bytes.ToLower(hay), []byte(strings.ToLower(n)))
			if got := containsFoldASCII(hay, []byte(strings.ToLower(n))); got != want {
				t.Fatalf("hay %q needle %q: got %v want %v", hay, n, got, want)
			}
		}
	}
}
