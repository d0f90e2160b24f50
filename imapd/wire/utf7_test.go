package wire

import "testing"

func TestMUTF7(t *testing.T) {
	for _, tc := range []struct{ utf8, mutf7 string }{
		{"INBOX", "INBOX"}, {"a&b", "a&-b"}, {"Входящие", "&BBIERQQ+BDQETwRJBDgENQ-"},
		{"~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"},
	} {
		if got := EncodeMUTF7(tc.utf8); got != tc.mutf7 {
			t.Errorf("encode %q: %q, want %q", tc.utf8, got, tc.mutf7)
		}
		if got, err := DecodeMUTF7(tc.mutf7); err != nil || got != tc.utf8 {
			t.Errorf("decode %q: %q %v", tc.mutf7, got, err)
		}
	}
	for _, bad := range []string{"&", "&Jjo", "&AGE-", "a\x00", "&Jjo!-", "Привет"} {
		if got, err := DecodeMUTF7(bad); err == nil {
			t.Errorf("decode %q accepted: %q", bad, got)
		}
	}
}

func FuzzMUTF7(f *testing.F) {
	for _, s := range []string{"INBOX", "a&b", "Входящие", "\U0001F600", "&-&-"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		enc := EncodeMUTF7(s)
		if !utf8Valid(s) {
			return
		}
		if got, err := DecodeMUTF7(enc); err != nil || got != s {
			t.Fatalf("%q -> %q -> %q, %v", s, enc, got, err)
		}
	})
}
