package imapd

import (
	"bytes"
	"math/rand"
	"strings"
	"testing"
)

func TestContainsFoldASCII(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	alphabet := "abcdeNEEDLneedlz .\r\n@`\x80\xce\x0e"
	for i := 0; i < 20000; i++ {
		hay := make([]byte, r.Intn(120))
		for j := range hay {
			hay[j] = alphabet[r.Intn(len(alphabet))]
		}
		for _, n := range []string{"needle", "n", "ee", "dle", "zz", "a.", "le\r", "@n", "`", "dl", "\x0e", "needleneedle"} {
			want := bytes.Contains(bytes.ToLower(hay), []byte(strings.ToLower(n)))
			if got := containsFoldASCII(hay, []byte(strings.ToLower(n))); got != want {
				t.Fatalf("hay %q needle %q: got %v want %v", hay, n, got, want)
			}
		}
	}
}

// BenchmarkContainsFold scans English-like text that does not contain the
// needle: the cost of SEARCH BODY/TEXT per byte of mail.
func BenchmarkContainsFold(b *testing.B) {
	words := strings.Fields("postal letter notice payment invoice tariff subscriber account mailbox delivery Government Registry")
	r := rand.New(rand.NewSource(1))
	var sb strings.Builder
	for sb.Len() < 64<<10 {
		sb.WriteString(words[r.Intn(len(words))])
		sb.WriteString(" ")
	}
	hay := []byte(sb.String())
	b.SetBytes(int64(len(hay)))
	for b.Loop() {
		if containsFoldASCII(hay, []byte("needle")) {
			b.Fatal("found")
		}
	}
}
