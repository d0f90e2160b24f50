package wire

import "testing"

// TestMarkSince: the text between a mark and the position is the
// client's own, across segments, and refused across a literal; Rewind
// goes back to the mark.
func TestMarkSince(t *testing.T) {
	a := argsOf(t, "(UID BODY.PEEK[HEADER.FIELDS (Subject)]) rest")
	m := a.Mark()
	if _, ok := a.FetchItems(); !ok {
		t.Fatal(a.Err())
	}
	if got, ok := a.Since(m); !ok || got != "(UID BODY.PEEK[HEADER.FIELDS (Subject)])" {
		t.Errorf("Since = %q, %v", got, ok)
	}
	a.Rewind(m)
	if a.Peek() != '(' {
		t.Errorf("after Rewind: %q", a.rest(10))
	}

	r, _ := reader("t X {3+}\r\nabc def\r\n", nil)
	c, err := r.ReadCommand()
	if err != nil {
		t.Fatal(err)
	}
	b := c.Args()
	m = b.Mark()
	b.SP()
	if _, ok := b.AString(); !ok {
		t.Fatal(b.Err())
	}
	if got, ok := b.Since(m); ok {
		t.Errorf("Since across a literal = %q, want refusal", got)
	}
	m = b.Mark()
	b.SP()
	b.Atom()
	if got, ok := b.Since(m); !ok || got != " def" {
		t.Errorf("Since after the literal = %q, %v", got, ok)
	}
}
