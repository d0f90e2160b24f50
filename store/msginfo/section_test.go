package msginfo

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/emersion/go-imap/v2"
)

// sectionCorpus is every message the structure tests use and the
// corpus under testdata.
func sectionCorpus(t testing.TB) map[string][]byte {
	out := structureCorpus(t)
	for _, glob := range []string{"../../testdata/spam/*.eml", "../../testdata/fetch/*.eml"} {
		files, _ := filepath.Glob(glob)
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			out[filepath.Base(f)] = b
		}
	}
	return out
}

// TestPartSizesMatchStructure: every part Part finds has the size and
// line count BODYSTRUCTURE gave for it, so the part numbers a client
// read from BODYSTRUCTURE fetch the bytes it describes.
func TestPartSizesMatchStructure(t *testing.T) {
	for name, msg := range sectionCorpus(t) {
		checkPartSizes(t, name, msg)
	}
}

func FuzzPartSizesMatchStructure(f *testing.F) {
	for _, msg := range sectionCorpus(f) {
		f.Add(msg)
	}
	f.Fuzz(func(t *testing.T, msg []byte) { checkPartSizes(t, "fuzz", msg) })
}

func checkPartSizes(t *testing.T, name string, msg []byte) {
	info := Parse(msg)
	top := MessageEntity(msg, info.Structure)
	var walk func(bs imap.BodyStructure, path []int)
	walk = func(bs imap.BodyStructure, path []int) {
		switch p := bs.(type) {
		case *imap.BodyStructureMultiPart:
			for i, c := range p.Children {
				walk(c, append(append([]int(nil), path...), i+1))
			}
		case *imap.BodyStructureSinglePart:
			if len(path) == 0 {
				path = []int{1}
			}
			e, ok := top.Part(path)
			if !ok {
				t.Errorf("%s: part %s not found", name, itoaPath(path))
				return
			}
			if len(e.Body) != int(p.Size) {
				t.Errorf("%s: part %s is %d bytes, BODYSTRUCTURE says %d", name, itoaPath(path), len(e.Body), p.Size)
			}
			if m := p.MessageRFC822; m != nil {
				inner := m.BodyStructure
				if _, multi := inner.(*imap.BodyStructureMultiPart); multi {
					walk(inner, path)
				} else {
					walk(inner, append(append([]int(nil), path...), 1))
				}
			}
		}
	}
	walk(info.Structure, nil)
}

func TestSplitMultipart(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		want       []string
	}{
		{"plain", "pre\r\n--b\r\nA\r\n--b\r\nB\r\n--b--\r\nepi", []string{"A", "B"}},
		{"first at start", "--b\r\nA\r\n--b--", []string{"A"}},
		{"padding", "--b  \r\nA\r\n--b-- \r\n", []string{"A"}},
		{"prefix is not a delimiter", "--b\r\n--bx\r\n--b--\r\n", []string{"--bx"}},
		{"no close", "--b\r\nA\r\nB", []string{"A\r\nB"}},
		{"bare LF", "--b\nA\n--b--\n", []string{"A"}},
		{"empty part", "--b\r\n--b--\r\n", []string{""}},
	} {
		got := SplitMultipart([]byte(tc.body), "b")
		if len(got) != len(tc.want) {
			t.Errorf("%s: %d parts %q, want %q", tc.name, len(got), got, tc.want)
			continue
		}
		for i := range got {
			if string(got[i]) != tc.want[i] {
				t.Errorf("%s: part %d %q, want %q", tc.name, i+1, got[i], tc.want[i])
			}
		}
	}
}

func itoaPath(p []int) string {
	s := ""
	for i, n := range p {
		if i > 0 {
			s += "."
		}
		s += strconv.Itoa(n)
	}
	return s
}
