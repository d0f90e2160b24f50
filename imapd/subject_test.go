package imapd

import "testing"

func TestBaseSubject(t *testing.T) {
	for _, tc := range []struct {
		name, in, base string
		reply          bool
	}{
		{"plain", "hello", "hello", false},
		{"reply", "Re: hello", "hello", true},
		{"reply twice", "Re: RE: hello", "hello", true},
		{"forward", "Fwd: hello", "hello", true},
		{"fw", "FW: hello", "hello", true},
		{"refwd with blob", "Re[2]: hello", "hello", true},
		{"blob then reply", "[list] Re: hello", "hello", true},
		{"blob alone kept", "[PATCH]", "[PATCH]", false},
		{"blob removed", "[PATCH] fix it", "fix it", false},
		{"two blobs", "[a][b] Re: x", "x", true},
		{"trailer", "hello (fwd)", "hello", true},
		{"trailer and space", "hello (FWD)  (fwd) ", "hello", true},
		{"fwd wrapper", "[fwd: hello world]", "hello world", true},
		{"nested wrapper", "Re: [Fwd: Re: x]", "x", true},
		{"white space", "  lots \t of   space  ", "lots of space", false},
		{"word starting re", "Refactor: x", "Refactor: x", false},
		{"reply only", "Re:", "", true},
		{"empty", "", "", false},
		{"encoded word", "=?UTF-8?B?0J/RgNC40LLQtdGC?=", "Привет", false},
		{"encoded reply", "Re: =?UTF-8?Q?caf=C3=A9?=", "café", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base, reply := baseSubject(tc.in)
			if base != tc.base || reply != tc.reply {
				t.Errorf("baseSubject(%q) = %q, %v; want %q, %v", tc.in, base, reply, tc.base, tc.reply)
			}
		})
	}
}

func TestCollationKey(t *testing.T) {
	for _, tc := range []struct{ a, b string }{
		{"hello", "HELLO"},
		{"привет", "ПРИВЕТ"},
		{"café", "CAFÉ"},
		{"ﬁle", "file"}, // NFKD folds the ligature
	} {
		if collationKey(tc.a) != collationKey(tc.b) {
			t.Errorf("collationKey(%q) = %q, collationKey(%q) = %q; want equal", tc.a, collationKey(tc.a), tc.b, collationKey(tc.b))
		}
	}
	if !(collationKey("apple") < collationKey("Banana")) {
		t.Error("apple should sort before Banana, ignoring case")
	}
}
