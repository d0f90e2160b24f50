package imapd

import (
	"strings"
	"testing"
)

type tmsg struct {
	id, subject string
	refs        []string
	date        int64
}

func threadItems(msgs []tmsg) []sortItem {
	items := make([]sortItem, len(msgs))
	for i, m := range msgs {
		base, reply := baseSubject(m.subject)
		items[i] = sortItem{seq: uint32(i + 1), uid: uint32(100 + i), date: m.date, messageID: m.id,
			parents: m.refs, subject: collationKey(base), reply: reply}
	}
	return items
}

func render(threads []*threadNode, uid bool) string {
	var sb strings.Builder
	for _, t := range threads {
		writeThread(&sb, t, uid, true)
	}
	return sb.String()
}

// A mailbox with a thread whose root is present, one whose root is
// missing (a dummy with two children at the root), and a reply without
// references joined to its thread by subject (RFC 5256 §4 steps 1-6).
var threadCorpus = []tmsg{
	{"a", "hello", nil, 10},
	{"b", "Re: hello", []string{"a"}, 20},
	{"c", "Re: hello", []string{"a"}, 30},
	{"d", "Re: hello", []string{"a", "b"}, 40},
	{"e", "other", nil, 50},
	{"f", "Re: zed", []string{"missing"}, 60},
	{"g", "Re: zed", []string{"missing"}, 70},
	{"h", "Re: other", nil, 80},
}

func TestThreadReferences(t *testing.T) {
	for _, tc := range []struct {
		name string
		msgs []tmsg
		want string
	}{
		{"corpus", threadCorpus, "(1 (2 4)(3))(5 8)((6)(7))"},
		{"single", []tmsg{{"a", "x", nil, 1}}, "(1)"},
		{"chain out of order", []tmsg{{"c", "Re: x", []string{"a", "b"}, 3}, {"a", "x", nil, 1}, {"b", "Re: x", []string{"a"}, 2}}, "(2 3 1)"},
		{"siblings by date", []tmsg{{"a", "x", nil, 1}, {"c", "Re: x", []string{"a"}, 5}, {"b", "Re: x", []string{"a"}, 2}}, "(1 (3)(2))"},
		{"date tie in mailbox order", []tmsg{{"a", "p", nil, 1}, {"b", "q", nil, 1}}, "(1)(2)"},
		{"dummy parent promoted", []tmsg{{"b", "Re: x", []string{"a"}, 2}}, "(1)"},
		{"missing middle reference", []tmsg{{"a", "x", nil, 1}, {"c", "Re: x", []string{"a", "b"}, 3}}, "(1 2)"},
		{"loop in references", []tmsg{{"x", "s", []string{"y"}, 1}, {"y", "t", []string{"x"}, 2}}, "(2 1)"},
		{"self reference", []tmsg{{"x", "s", []string{"x"}, 1}}, "(1)"},
		{"duplicate message-id", []tmsg{{"a", "s", nil, 1}, {"a", "t", nil, 2}}, "(1)(2)"},
		{"no message-id", []tmsg{{"", "s", nil, 1}, {"", "t", nil, 2}}, "(1)(2)"},
		{"same subject no reply", []tmsg{{"a", "s", nil, 1}, {"b", "s", nil, 2}}, "((1)(2))"},
		{"empty subject not merged", []tmsg{{"a", "", nil, 1}, {"b", "", nil, 2}}, "(1)(2)"},
		{"in-reply-to fallback", []tmsg{{"a", "s", nil, 1}, {"b", "t", []string{"a"}, 2}}, "(1 2)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := render(threadReferences(threadItems(tc.msgs)), false); got != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
}

func TestThreadOrderedSubject(t *testing.T) {
	got := render(orderedSubject(threadItems(threadCorpus)), false)
	if want := "(1 (2)(3)(4))(5 8)(6 7)"; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	got = render(orderedSubject(threadItems(threadCorpus)), true)
	if want := "(100 (101)(102)(103))(104 107)(105 106)"; got != want {
		t.Errorf("UID: got %s, want %s", got, want)
	}
}

func TestReferencesField(t *testing.T) {
	h := []byte("Subject: x\r\nreferences: <a@x>\r\n <b@x>\r\n\t<c\r\n @x>\r\nIn-Reply-To: <z@x>\r\n\r\n")
	if got := strings.Join(references(h, []string{"z@x"}), " "); got != "a@x b@x c@x" {
		t.Errorf("References: got %q", got)
	}
	if got := strings.Join(references([]byte("Subject: x\r\n\r\n"), []string{"z@x"}), " "); got != "z@x" {
		t.Errorf("In-Reply-To fallback: got %q", got)
	}
}
