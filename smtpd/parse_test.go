package smtpd

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"strings"
	"testing"

	"abox/policy"
)

func TestParsePath(t *testing.T) {
	tests := []struct {
		name    string
		arg     string
		keyword string
		addr    string
		params  map[string]string
		err     bool
	}{
		{"plain", "FROM:<alice@example.kz>", "FROM:", "alice@example.kz", nil, false},
		{"lower-case keyword", "from:<alice@example.kz>", "FROM:", "alice@example.kz", nil, false},
		{"space after colon", "FROM: <alice@example.kz>", "FROM:", "alice@example.kz", nil, false},
		{"null path", "FROM:<>", "FROM:", "", nil, false},
		{"parameters", "FROM:<a@b.kz> size=100 BODY=8BITMIME SMTPUTF8", "FROM:", "a@b.kz",
			map[string]string{"SIZE": "100", "BODY": "8BITMIME", "SMTPUTF8": ""}, false},
		{"bare address", "FROM:a@b.kz SIZE=5", "FROM:", "a@b.kz", map[string]string{"SIZE": "5"}, false},
		{"source route", "TO:<@r1.test,@r2.test:bob@example.kz>", "TO:", "bob@example.kz", nil, false},
		{"quoted bracket", `FROM:<"a>b"@example.kz>`, "FROM:", `"a>b"@example.kz`, nil, false},
		{"quoted escape", `FROM:<"a\">"@example.kz>`, "FROM:", `"a\">"@example.kz`, nil, false},
		{"UTF-8", "FROM:<отправитель@пример.kz> SMTPUTF8", "FROM:", "отправитель@пример.kz", map[string]string{"SMTPUTF8": ""}, false},
		{"wrong keyword", "TO:<a@b.kz>", "FROM:", "", nil, true},
		{"no closing bracket", "FROM:<a@b.kz", "FROM:", "", nil, true},
		{"no space before parameter", "FROM:<a@b.kz>SIZE=1", "FROM:", "", nil, true},
		{"empty parameter key", "FROM:<a@b.kz> =x", "FROM:", "", nil, true},
		{"nothing", "FROM:", "FROM:", "", nil, true},
		{"address too long", "FROM:<" + strings.Repeat("a", 260) + "@b.kz>", "FROM:", "", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := parsePath(tt.arg, tt.keyword)
			if (err != nil) != tt.err {
				t.Fatalf("parsePath(%q) error %v, want error %v", tt.arg, err, tt.err)
			}
			if err != nil {
				return
			}
			if tt.params == nil {
				tt.params = map[string]string{}
			}
			if p.addr != tt.addr || !maps.Equal(p.params, tt.params) {
				t.Errorf("parsePath(%q) = %q %v, want %q %v", tt.arg, p.addr, p.params, tt.addr, tt.params)
			}
		})
	}
}

func TestParsePathSeeds(t *testing.T) {
	// Every seed parses without panicking; the ones marked good here
	// must parse.
	good := map[string]bool{
		"FROM:<alice@example.kz>": true, "FROM:<>": true, "TO:<bob@example.kz>": true,
		"FROM:<@relay1.test,@relay2.test:alice@example.kz>": true,
	}
	for _, l := range seedLines(t, "paths.txt") {
		kw := "FROM:"
		if strings.HasPrefix(strings.ToUpper(l), "TO:") {
			kw = "TO:"
		}
		if _, err := parsePath(l, kw); err != nil && good[l] {
			t.Errorf("parsePath(%q): %v", l, err)
		}
	}
}

func TestParseBDAT(t *testing.T) {
	tests := []struct {
		arg  string
		size int64
		last bool
		err  bool
	}{
		{"0", 0, false, false},
		{"10", 10, false, false},
		{"10 LAST", 10, true, false},
		{"10 last", 10, true, false},
		{"  7   LAST ", 7, true, false},
		{"26214400", 26214400, false, false},
		{"", 0, false, true},
		{"ten", 0, false, true},
		{"+10", 0, false, true},
		{"-1", 0, false, true},
		{"0x10", 0, false, true},
		{"10 NOW", 0, false, true},
		{"10 LAST MORE", 0, false, true},
		{"99999999999999999999", 0, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.arg, func(t *testing.T) {
			size, last, err := parseBDAT(tt.arg)
			if (err != nil) != tt.err || err == nil && (size != tt.size || last != tt.last) {
				t.Errorf("parseBDAT(%q) = %d %v %v; want %d %v error %v", tt.arg, size, last, err, tt.size, tt.last, tt.err)
			}
		})
	}
}

func TestParseCommand(t *testing.T) {
	tests := []struct{ line, verb, arg string }{
		{"mail FROM:<a@b.kz>", "MAIL", "FROM:<a@b.kz>"},
		{"NOOP", "NOOP", ""},
		{"RSET   ", "RSET", ""},
		{"data x ", "DATA", "x"},
		{"", "", ""},
		{"EHLO  client.test", "EHLO", "client.test"},
	}
	for _, tt := range tests {
		verb, arg := parseCommand(tt.line)
		if verb != tt.verb || arg != tt.arg {
			t.Errorf("parseCommand(%q) = %q %q, want %q %q", tt.line, verb, arg, tt.verb, tt.arg)
		}
	}
}

func TestValidMailbox(t *testing.T) {
	tests := []struct {
		name string
		addr string
		utf8 bool
		want bool
	}{
		{"plain", "alice@example.kz", false, true},
		{"dot-atom", "a.b+tag@example.kz", false, true},
		{"dotless domain", "a@localhost", false, true},
		{"address literal", "a@[127.0.0.1]", false, true},
		{"quoted local part", `"a b"@example.kz`, false, true},
		{"UTF-8 with SMTPUTF8", "пользователь@пример.kz", true, true},
		{"UTF-8 without SMTPUTF8", "пользователь@пример.kz", false, false},
		{"double dot", "a..b@example.kz", false, false},
		{"leading dot", ".a@example.kz", false, false},
		{"space", "a b@example.kz", false, false},
		{"no local part", "@example.kz", false, false},
		{"no domain", "a@", false, false},
		{"hyphen label", "a@-b.kz", false, false},
		{"invalid UTF-8", "a\xff@example.kz", true, false},
		// RFC 5321 qtextSMTP is %d32-33 / %d35-91 / %d93-126: control
		// characters have no place in a quoted local part, and this one
		// would be copied into the stored Return-Path header.
		{"CR in quoted local part", "\"a\rb\"@example.kz", false, false},
		{"NUL in quoted local part", "\"a\x00b\"@example.kz", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := validMailbox(tt.addr, tt.utf8); got != tt.want {
				t.Errorf("validMailbox(%q, utf8 %v) = %v, want %v", tt.addr, tt.utf8, got, tt.want)
			}
		})
	}
}

func TestNormalizeCRLF(t *testing.T) {
	tests := []struct{ in, want string }{
		{"a\r\nb\r\n", "a\r\nb\r\n"},
		{"a\nb\n", "a\r\nb\r\n"},
		{"\n", "\r\n"},
		{"a\r\nb\nc", "a\r\nb\r\nc"},
		{"a\rb", "a\rb"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := string(normalizeCRLF([]byte(tt.in))); got != tt.want {
			t.Errorf("normalizeCRLF(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestReplyFor(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	tests := []struct {
		kind error
		code int
		enh  string
	}{
		{policy.ErrUnknownUser, 550, "5.1.1"},
		{policy.ErrRelayDenied, 554, "5.7.1"},
		{policy.ErrNoRelay, 550, "5.7.1"},
		{policy.ErrDisabled, 550, "5.2.1"},
		{policy.ErrOverQuota, 452, "4.2.2"},
		{policy.ErrTooBig, 552, "5.3.4"},
		{policy.ErrRateLimited, 450, "4.7.1"},
		{policy.ErrSpam, 550, "5.7.1"},
		{policy.ErrForbidden, 550, "5.7.1"},
		{policy.ErrNoConsent, 550, "5.7.1"},
		{policy.ErrSenderDenied, 553, "5.7.1"},
		{policy.ErrAuthFailed, 535, "5.7.8"},
		{policy.ErrAuthLocked, 450, "4.7.1"},
		{policy.ErrAuthBusy, 454, "4.7.0"},
		{policy.ErrTooManyConns, 421, "4.7.0"},
	}
	for _, tt := range tests {
		t.Run(tt.kind.Error(), func(t *testing.T) {
			err := fmt.Errorf("wrapped: %w", &policy.Refusal{Kind: tt.kind, Reason: "the reason"})
			r := replyFor(err, log)
			if r.code != tt.code || r.enh != tt.enh || r.text != "the reason" {
				t.Errorf("replyFor(%v) = %d %s %q, want %d %s \"the reason\"", err, r.code, r.enh, r.text, tt.code, tt.enh)
			}
		})
	}
	if r := replyFor(errors.New("disk on fire"), log); r.code != 451 || r.enh != "4.3.0" || strings.Contains(r.text, "fire") {
		t.Errorf("unknown error: %d %s %q, want 451 4.3.0 with generic text", r.code, r.enh, r.text)
	}
	// The database or object store out of reach: a temporary failure
	// of its own, which never shows the driver's text (a server's
	// address, several lines).
	storage := errors.Join(policy.ErrStorageFailing, errors.New("dial tcp 10.0.0.5:5432: connection refused\nmore"))
	if r := replyFor(fmt.Errorf("policy: deliver: %w", storage), log); r.code != 451 || r.enh != "4.3.0" || r.text != storageUnavailable {
		t.Errorf("storage failing: %d %s %q, want 451 4.3.0 %q", r.code, r.enh, r.text, storageUnavailable)
	}
}
