package msginfo

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	gomessage "github.com/emersion/go-message"
)

// nested returns a message whose body is levels multiparts, each inside
// the one before, around a short text part.
func nested(levels int) []byte {
	var head, tail bytes.Buffer
	head.WriteString("From: <a@example.org>\r\nSubject: deep\r\nMIME-Version: 1.0\r\n")
	for i := range levels {
		fmt.Fprintf(&head, "Content-Type: multipart/mixed; boundary=\"b%d\"\r\n\r\n--b%d\r\n", i, i)
	}
	head.WriteString("Content-Type: text/plain\r\n\r\nthe bottom\r\n")
	for i := levels - 1; i >= 0; i-- {
		fmt.Fprintf(&tail, "--b%d--\r\n", i)
	}
	return append(head.Bytes(), tail.Bytes()...)
}

// flat returns a message of about size bytes with two parts.
func flat(size int) []byte {
	var b bytes.Buffer
	b.WriteString("From: <a@example.org>\r\nSubject: flat\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n")
	for b.Len() < size {
		b.WriteString("a line of text in a flat message, as long as the deep one\r\n")
	}
	b.WriteString("--b\r\nContent-Type: text/plain\r\n\r\nend\r\n--b--\r\n")
	return b.Bytes()
}

func depthOf(bs imap.BodyStructure) int {
	switch p := bs.(type) {
	case *imap.BodyStructureMultiPart:
		d := 0
		for _, c := range p.Children {
			d = max(d, depthOf(c))
		}
		return d + 1
	case *imap.BodyStructureSinglePart:
		if p.MessageRFC822 != nil {
			return depthOf(p.MessageRFC822.BodyStructure) + 1
		}
	}
	return 0
}

// TestDeepNestingIsBounded: a message nested 10,000 deep is described to
// MaxNesting levels (the rest opaque), its stored structure decodes (so
// FETCH BODYSTRUCTURE never parses the message again), and describing
// it costs about what a flat message of its size costs. Before, it cost
// time quadratic in the depth at delivery (37 CPU-seconds for 4.3 MB),
// and its stored structure was too deep to decode, so every FETCH
// BODYSTRUCTURE parsed the message again (13.8 s for 1.5 MB).
func TestDeepNestingIsBounded(t *testing.T) {
	deep := nested(10000)
	info := Parse(deep)
	if d := depthOf(info.Structure); d > MaxNesting+1 {
		t.Fatalf("structure %d levels deep, want at most %d", d, MaxNesting+1)
	}
	if _, err := Decode(Encode(info)); err != nil {
		t.Fatalf("the stored structure does not decode: %v", err)
	}
	// Walk visits at most MaxNesting levels and says where it stopped.
	e, err := gomessage.Read(bytes.NewReader(deep))
	if err != nil {
		t.Fatal(err)
	}
	parts, deepest, stopped := 0, 0, false
	if err := Walk(e, func(depth int, _ *gomessage.Entity, tooDeep bool, _ error) error {
		parts++
		deepest = max(deepest, depth)
		stopped = stopped || tooDeep
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if deepest > MaxNesting || !stopped || parts > MaxNesting+1 {
		t.Fatalf("Walk: %d parts, deepest %d, stopped %v", parts, deepest, stopped)
	}
	// Linear in the size: the deep message costs a bounded multiple of a
	// flat one of the same size (a ratio measured in one run; the best
	// of several tries of each). The multiple is large (about 300 here:
	// go-message reads each level through the readers of the levels
	// above it, 32 of them at most), but it no longer grows with the
	// depth; before the bound it grew with it without end (37 s for
	// 4.3 MB).
	cost := func(msg []byte) time.Duration {
		best := time.Duration(1 << 62)
		for range 5 {
			t0 := time.Now()
			Parse(msg)
			best = min(best, time.Since(t0))
		}
		return best
	}
	f := flat(len(deep))
	if r := float64(cost(deep)) / float64(cost(f)); r > 1500 {
		t.Errorf("describing the deep message costs %.0f times a flat one of the same size", r)
	} else {
		t.Logf("deep/flat cost ratio %.1f (%d bytes)", r, len(deep))
	}
}
