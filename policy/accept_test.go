package policy

import (
	"errors"
	"strings"
	"testing"
	"time"

	"abox/accounts"
)

// addMissingHeaders is the message with the fields missingHeaders adds.
func addMissingHeaders(msg []byte, hostname, id string, now time.Time) []byte {
	hdr, _ := parseHeader(msg)
	return append(missingHeaders(hdr, hostname, id, now), msg...)
}

func TestAddMissingHeaders(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name           string
		msg            string
		addDate, addID bool
	}{
		{"both missing", "From: a@b.kz\r\nSubject: x\r\n\r\nbody\r\n", true, true},
		{"both present", "Date: x\r\nMessage-ID: <y@z>\r\nFrom: a@b.kz\r\n\r\nbody\r\n", false, false},
		{"any case", "date: x\r\nmessage-id: <y@z>\r\n\r\nbody\r\n", false, false},
		{"only in the body", "From: a@b.kz\r\n\r\nDate: x\r\nMessage-ID: <y@z>\r\n", true, true},
		// A folded continuation line is not a field of its own.
		{"folded look-alike", "From: a@b.kz\r\nSubject: a long\r\n Date: x\r\n\tMessage-ID: <y@z>\r\n\r\nbody\r\n", true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := string(addMissingHeaders([]byte(tt.msg), "mx.test", "sess", now))
			added := strings.TrimSuffix(out, tt.msg)
			if !strings.HasSuffix(out, tt.msg) {
				t.Fatalf("message changed: %q", out)
			}
			if got := strings.Contains(added, "Date: "); got != tt.addDate {
				t.Errorf("Date added %v, want %v: %q", got, tt.addDate, added)
			}
			if got := strings.Contains(added, "Message-ID: <"); got != tt.addID {
				t.Errorf("Message-ID added %v, want %v: %q", got, tt.addID, added)
			}
		})
	}
}

func TestCheckHeaderFrom(t *testing.T) {
	alice := &Identity{Account: &accounts.Account{Login: "alice", Domain: "example.kz"}}
	billing := &Identity{Sender: &accounts.Sender{Name: "billing", From: []string{"bills@example.kz", "info@example.kz"}}}
	tests := []struct {
		name string
		id   *Identity
		msg  string
		ok   bool
	}{
		{"own address", alice, "From: Alice <alice@example.kz>\r\n\r\nx", true},
		{"own address, other case", alice, "From: ALICE@Example.KZ\r\n\r\nx", true},
		{"encoded display name", alice, "From: =?utf-8?b?0JDQu9C40YHQsA==?= <alice@example.kz>\r\n\r\nx", true},
		{"someone else", alice, "From: bob@example.kz\r\n\r\nx", false},
		{"one of several not owned", alice, "From: alice@example.kz, bob@example.kz\r\n\r\nx", false},
		{"no From", alice, "Subject: x\r\n\r\nx", false},
		{"unparsable From", alice, "From: <<<\r\n\r\nx", false},
		{"sender's list", billing, "From: info@example.kz\r\n\r\nx", true},
		{"not in sender's list", billing, "From: alice@example.kz\r\n\r\nx", false},
		// RFC 5322 §3.6 allows one From field; a second one that is not
		// owned must not slip past the check of the first.
		{"second From not owned", alice, "From: alice@example.kz\r\nFrom: ceo@example.kz\r\n\r\nx", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr, herr := parseHeader([]byte(tt.msg))
			err := checkHeaderFrom(hdr, herr, tt.id)
			if (err == nil) != tt.ok {
				t.Fatalf("checkHeaderFrom(%q) = %v, want ok %v", tt.msg, err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrSenderDenied) {
				t.Errorf("refusal %v is not ErrSenderDenied (553 5.7.1)", err)
			}
		})
	}
}

// TestReplyFor pins SPEC's SMTP table: each decision of policy to its
// code and enhanced code, with the reason as text.
