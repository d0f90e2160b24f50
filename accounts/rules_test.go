package accounts

import (
	"errors"
	"strings"
	"testing"
)

func TestNormalizeLogin(t *testing.T) {
	r := DefaultRules()
	tests := []struct {
		name    string
		in      string
		want    string
		wantErr error
	}{
		{"minimum length", "abc", "abc", nil},
		{"maximum length 64", "a" + strings.Repeat("b", 63), "a" + strings.Repeat("b", 63), nil},
		{"uppercase folded", "Alice.Smith", "alice.smith", nil},
		{"digits dot underscore hyphen inside", "a1_b-c.d", "a1_b-c.d", nil},
		{"trailing hyphen and underscore allowed", "alice_-", "alice_-", nil},
		{"too short", "ab", "", ErrInvalidLogin},
		{"65 characters", "a" + strings.Repeat("b", 64), "", ErrInvalidLogin},
		{"empty", "", "", ErrInvalidLogin},
		{"leading digit", "1alice", "", ErrInvalidLogin},
		{"leading dot", ".alice", "", ErrInvalidLogin},
		{"leading underscore", "_alice", "", ErrInvalidLogin},
		{"leading hyphen", "-alice", "", ErrInvalidLogin},
		{"double dot", "al..ice", "", ErrInvalidLogin},
		{"trailing dot allowed by the SPEC pattern", "alice.", "alice.", nil},
		{"Cyrillic a look-alike", "\u0430lice", "", ErrInvalidLogin},
		{"Cyrillic inside", "ali\u0441e", "", ErrInvalidLogin},
		{"Kelvin sign", "\u212aelvin", "", ErrInvalidLogin},
		{"fullwidth letters", "\uff41\uff4c\uff49\uff43\uff45", "", ErrInvalidLogin},
		{"invalid UTF-8", "ali\xffce", "", ErrInvalidLogin},
		{"space inside", "ali ce", "", ErrInvalidLogin},
		{"leading space", " alice", "", ErrInvalidLogin},
		{"trailing space", "alice ", "", ErrInvalidLogin},
		{"trailing newline", "alice\n", "", ErrInvalidLogin},
		{"plus sign", "alice+tag", "", ErrInvalidLogin},
		{"at sign", "alice@example.kz", "", ErrInvalidLogin},
		{"reserved upper case", "Admin", "", ErrReservedLogin},
		{"reserved no-reply", "no-reply", "", ErrReservedLogin},
		{"reserved prefix is fine", "adminka", "adminka", nil},
	}
	for _, res := range r.ReservedLogins {
		tests = append(tests, struct {
			name    string
			in      string
			want    string
			wantErr error
		}{"reserved " + res, res, "", ErrReservedLogin})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := r.NormalizeLogin(tt.in)
			if !errors.Is(err, tt.wantErr) || (err != nil) != (tt.wantErr != nil) {
				t.Fatalf("NormalizeLogin(%q) error = %v, want %v", tt.in, err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("NormalizeLogin(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if err != nil && strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
		})
	}
}

func TestLoginMessages(t *testing.T) {
	r := DefaultRules()
	tests := []struct {
		name, in, want string
	}{
		{"length", "ab", `login "ab": must be 3 to 64 characters`},
		{"reserved", "Admin", `login "admin" is reserved`},
		{"look-alike shown escaped", "\u0430lice", `login "\u0430lice": character 1 is U+0430, not ASCII`},
		{"Kelvin shown escaped", "\u212aelvin", `U+212A`},
		{"space", "ali ce", "whitespace"},
		{"leading digit", "1alice", "must start with a letter"},
		{"bad character", "alice+x", `'+' is not allowed`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := r.NormalizeLogin(tt.in)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("NormalizeLogin(%q) error = %v, want it to contain %q", tt.in, err, tt.want)
			}
		})
	}
}

func TestReservedListComparedInLowerCase(t *testing.T) {
	r := Rules{ReservedLogins: []string{"Boss"}}
	if _, err := r.NormalizeLogin("BOSS"); !errors.Is(err, ErrReservedLogin) {
		t.Errorf("error = %v, want ErrReservedLogin", err)
	}
}

func TestNormalizePhone(t *testing.T) {
	def := DefaultRules()
	de := DefaultRules()
	de.PhonePrefixes = []string{"+7", "+49"}
	anyPrefix := DefaultRules()
	anyPrefix.PhonePrefixes = nil
	tests := []struct {
		name    string
		rules   Rules
		in      string
		want    string
		wantErr error
	}{
		{"spaces and dashes", def, "+7 701 123-45-67", "+77011234567", nil},
		{"dashes only", def, "+7-701-123-45-67", "+77011234567", nil},
		{"already normal", def, "+77011234567", "+77011234567", nil},
		{"domestic 8 format", def, "87011234567", "", ErrInvalidPhone},
		{"domestic with spaces", def, "8 701 123 45 67", "", ErrInvalidPhone},
		{"+8 refused by prefix", def, "+87011234567", "", ErrPhonePrefix},
		{"+49 refused by default prefixes", def, "+49 151 2345 6789", "", ErrPhonePrefix},
		{"+49 accepted when allowed", de, "+49 151 2345 6789", "+4915123456789", nil},
		{"any prefix when list empty", anyPrefix, "+4915123456789", "+4915123456789", nil},
		{"too short", def, "+7701123", "", ErrInvalidPhone},
		{"shortest", def, "+77011234", "+77011234", nil},
		{"longest", def, "+770112345678901", "+770112345678901", nil},
		{"too long", def, "+7701123456789012", "", ErrInvalidPhone},
		{"letters", def, "+7701ABC4567", "", ErrInvalidPhone},
		{"country code 0", def, "+07011234567", "", ErrInvalidPhone},
		{"empty", def, "", "", ErrInvalidPhone},
		{"only plus", def, "+", "", ErrInvalidPhone},
		{"parentheses", def, "+7 (701) 123-45-67", "", ErrInvalidPhone},
		{"NBSP is not a space", def, "+7\u00a0701\u00a01234567", "", ErrInvalidPhone},
		{"tab", def, "+7\t7011234567", "", ErrInvalidPhone},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.rules.NormalizePhone(tt.in)
			if !errors.Is(err, tt.wantErr) || (err != nil) != (tt.wantErr != nil) {
				t.Fatalf("NormalizePhone(%q) error = %v, want %v", tt.in, err, tt.wantErr)
			}
			if tt.wantErr == nil && got != tt.want {
				t.Errorf("NormalizePhone(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if tt.wantErr != nil && got != "" {
				t.Errorf("NormalizePhone(%q) = %q with an error", tt.in, got)
			}
		})
	}
}

func TestDomesticPhoneMessageSuggestsPlus7(t *testing.T) {
	_, err := DefaultRules().NormalizePhone("8 701 123 45 67")
	if err == nil || !strings.Contains(err.Error(), "+77011234567") || !strings.Contains(err.Error(), "+7") {
		t.Errorf("error = %v, want a suggestion of +77011234567", err)
	}
}

func TestCheckPassword(t *testing.T) {
	r := DefaultRules()
	tests := []struct {
		name     string
		password string
		login    string
		others   []string
		wantErr  error
	}{
		{"9 characters", "xK8#mP2$v", "alice", nil, ErrWeakPassword},
		{"10 random characters", "xK8#mP2$vL", "alice", nil, nil},
		{"password123 is weak", "password123", "alice", nil, ErrWeakPassword},
		{"contains login in other case", "zebra-ALICE-quilt-mango", "alice", nil, ErrWeakPassword},
		{"strong passphrase", "correct horse battery staple", "alice", nil, nil},
		{"strong passphrase with domain and phone", "zebra quilt mango violin", "alice", []string{"example.kz", "+77011234567"}, nil},
		{"built from the phone", "77011234567xx", "alice", []string{"example.kz", "+77011234567"}, ErrWeakPassword},
		{"invalid UTF-8", "correct horse \xff battery", "alice", nil, ErrWeakPassword},
		{"Unicode counted in runes: 9 runes in 18 bytes", "жзклмнпрс", "alice", nil, ErrWeakPassword},
		{"Unicode strong passphrase", "сорока-ворона кашу варила", "alice", nil, nil},
		{"newline", "correct horse\nbattery staple", "alice", nil, ErrWeakPassword},
		{"NUL", "correct horse\x00battery staple", "alice", nil, ErrWeakPassword},
		{"128 characters", strings.Repeat("zebra quilt mango violin ", 6)[:128], "alice", nil, nil},
		{"129 characters", strings.Repeat("zebra quilt mango violin ", 6)[:129], "alice", nil, ErrWeakPassword},
		{"keyboard row", "qwertyuiop123", "alice", nil, ErrWeakPassword},
		{"empty login skips the contains check", "correct horse battery staple", "", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := r.CheckPassword(tt.password, tt.login, tt.others...)
			if !errors.Is(err, tt.wantErr) || (err != nil) != (tt.wantErr != nil) {
				t.Fatalf("CheckPassword error = %v, want %v", err, tt.wantErr)
			}
			if err != nil && tt.password != "" && strings.Contains(err.Error(), tt.password) {
				t.Errorf("error contains the password: %q", err)
			}
		})
	}
}

func TestCheckPasswordRuneCount(t *testing.T) {
	// 10 runes, 20 bytes: long enough, even though 9 runes is not.
	r := Rules{MinPasswordLength: 10}
	if err := r.CheckPassword("жзклмнпрст", "alice"); err != nil {
		t.Errorf("10 Cyrillic runes: %v", err)
	}
	if err := r.CheckPassword("жзклмнпрс", "alice"); !errors.Is(err, ErrWeakPassword) {
		t.Errorf("9 Cyrillic runes: error = %v, want ErrWeakPassword", err)
	}
}

func TestNormalizeDomain(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    string
		wantErr bool
	}{
		{"simple", "example.kz", "example.kz", false},
		{"upper case", "Mail.Example.KZ", "mail.example.kz", false},
		{"trailing dot removed", "example.kz.", "example.kz", false},
		{"hyphen inside", "my-post.kz", "my-post.kz", false},
		{"punycode", "xn--80ao21a.xn--80ao21a", "xn--80ao21a.xn--80ao21a", false},
		{"digit labels", "123.example.kz", "123.example.kz", false},
		{"63 character label", strings.Repeat("a", 63) + ".kz", strings.Repeat("a", 63) + ".kz", false},
		{"64 character label", strings.Repeat("a", 64) + ".kz", "", true},
		{"253 characters", strings.Repeat(strings.Repeat("a", 49)+".", 5) + "abc", strings.Repeat(strings.Repeat("a", 49)+".", 5) + "abc", false},
		{"254 characters", strings.Repeat(strings.Repeat("a", 49)+".", 5) + "abcd", "", true},
		{"empty", "", "", true},
		{"only dot", ".", "", true},
		{"one label", "localhost", "", true},
		{"two trailing dots", "example.kz..", "", true},
		{"leading dot", ".example.kz", "", true},
		{"double dot", "example..kz", "", true},
		{"leading hyphen", "-example.kz", "", true},
		{"trailing hyphen", "example-.kz", "", true},
		{"underscore", "my_post.kz", "", true},
		{"space", "example .kz", "", true},
		{"unicode IDN", "почта.қаз", "xn--80a1acny.xn--80ao21a", false},
		{"unicode IDN upper case", "ПРИМЕР.РФ", "xn--e1afmkfd.xn--p1ai", false},
		{"unicode IDN with underscore", "a_b.рф", "", true},
		{"IP address", "10.0.0.1", "", true},
		{"at sign", "alice@example.kz", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := NormalizeDomain(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("NormalizeDomain(%q) error = %v, want error %v", tt.in, err, tt.wantErr)
			}
			if err != nil && !errors.Is(err, ErrInvalidDomain) {
				t.Errorf("error %v does not wrap ErrInvalidDomain", err)
			}
			if got != tt.want {
				t.Errorf("NormalizeDomain(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// TestIDNIsOneDomain: a domain in Unicode and in its xn-- form is the
// same domain in addresses too (RFC 5890), and reads back in Unicode.
func TestIDNIsOneDomain(t *testing.T) {
	for _, addr := range []string{"Alice@пример.рф", "alice@ПРИМЕР.РФ", "alice@xn--e1afmkfd.xn--p1ai", "ALICE@XN--E1AFMKFD.XN--P1AI"} {
		login, domain, ok := SplitAddress(addr)
		if !ok || login != "alice" || domain != "xn--e1afmkfd.xn--p1ai" {
			t.Errorf("SplitAddress(%q) = %q %q %v, want alice xn--e1afmkfd.xn--p1ai", addr, login, domain, ok)
		}
	}
	if u := UnicodeDomain("xn--e1afmkfd.xn--p1ai"); u != "пример.рф" {
		t.Errorf("UnicodeDomain = %q", u)
	}
	if u := UnicodeDomain("example.kz"); u != "example.kz" {
		t.Errorf("UnicodeDomain(example.kz) = %q", u)
	}
}
