package accounts

import (
	"fmt"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/trustelem/zxcvbn"
	"golang.org/x/net/idna"
)

// Rules are the operator's rules for logins, phone numbers and passwords
// (user agreement: "the operator may forbid certain logins and set rules
// for login, phone and password"). The zero value forbids no login, allows
// every country prefix and accepts any password: start from DefaultRules.
type Rules struct {
	ReservedLogins    []string // compared in lower case
	PhonePrefixes     []string // allowed country prefixes, e.g. "+7"; empty = any
	MinPasswordLength int      // in characters (runes)
	MinPasswordScore  int      // zxcvbn estimate, 0-4
}

// DefaultRules are the rules of SPEC "Defaults and exact rules".
func DefaultRules() Rules {
	return Rules{
		ReservedLogins: []string{
			"postmaster", "abuse", "root", "admin", "administrator",
			"hostmaster", "webmaster", "noreply", "no-reply", "support",
			"security", "mailer-daemon", "info", "kazpost", "post",
		},
		PhonePrefixes:     []string{"+7"},
		MinPasswordLength: 10,
		MinPasswordScore:  3,
	}
}

// MaxPasswordLength bounds a password in characters. zxcvbn's matching
// grows faster than quadratically with length (about 0.1 s at 128
// characters, over 1 s at 256 on a development machine), and no person
// types a longer password into a mail client.
const MaxPasswordLength = 128

var (
	loginPattern = regexp.MustCompile(`^[a-z][a-z0-9._-]{2,63}$`)
	phonePattern = regexp.MustCompile(`^\+[1-9][0-9]{7,14}$`)
)

const loginCharset = "use only a-z, 0-9, '.', '_' and '-'"

// NormalizeLogin checks a login as typed and returns it in lower case.
// Nothing is trimmed: a stray space is an error, so an operator's typo
// cannot register a different login than the one they meant.
//
// Non-ASCII input is refused before any case folding: strings.ToLower
// maps the Kelvin sign U+212A to 'k', and Cyrillic look-alikes ("а" U+0430)
// would otherwise make a second, visually identical login.
func (r Rules) NormalizeLogin(login string) (string, error) {
	if login == "" {
		return "", newError(ErrInvalidLogin, "login is empty")
	}
	if i, what := firstNonASCII(login); i >= 0 {
		return "", newError(ErrInvalidLogin,
			"login %+q: character %d is %s: %s (look-alike letters from other alphabets are refused)",
			login, i+1, what, loginCharset)
	}
	l := strings.ToLower(login) // ASCII only from here, so no surprises
	if !loginPattern.MatchString(l) {
		return "", explainLogin(login, l)
	}
	if strings.Contains(l, "..") {
		return "", newError(ErrInvalidLogin, "login %+q: must not contain \"..\"", login)
	}
	for _, res := range r.ReservedLogins {
		if strings.ToLower(res) == l {
			return "", newError(ErrReservedLogin, "login %q is reserved", l)
		}
	}
	return l, nil
}

// explainLogin says why l (the lower-cased ASCII login) does not match
// loginPattern.
func explainLogin(login, l string) error {
	if n := len(l); n < 3 || n > 64 {
		return newError(ErrInvalidLogin, "login %+q: must be 3 to 64 characters (got %d)", login, n)
	}
	if i := strings.IndexFunc(l, unicode.IsSpace); i >= 0 {
		return newError(ErrInvalidLogin,
			"login %+q: character %d is whitespace; logins contain no spaces and nothing is trimmed", login, i+1)
	}
	if c := l[0]; c < 'a' || c > 'z' {
		return newError(ErrInvalidLogin, "login %+q: must start with a letter a-z", login)
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return newError(ErrInvalidLogin, "login %+q: character %d %q is not allowed: %s",
				login, i+1, rune(c), loginCharset)
		}
	}
	return newError(ErrInvalidLogin, "login %+q: must match %s", login, loginPattern)
}

// firstNonASCII returns the byte index of the first non-ASCII byte of s
// (or -1) and a description of what is there.
func firstNonASCII(s string) (int, string) {
	for i := 0; i < len(s); i++ {
		if s[i] < utf8.RuneSelf {
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size <= 1 {
			return i, "not valid UTF-8"
		}
		return i, fmt.Sprintf("U+%04X, not ASCII", r)
	}
	return -1, ""
}

// NormalizePhone removes spaces and dashes from phone, checks the result
// is E.164 with an allowed country prefix, and returns it.
func (r Rules) NormalizePhone(phone string) (string, error) {
	if phone == "" {
		return "", newError(ErrInvalidPhone, "phone number is empty")
	}
	p := strings.Map(func(c rune) rune {
		if c == ' ' || c == '-' {
			return -1
		}
		return c
	}, phone)
	if !phonePattern.MatchString(p) {
		return "", r.explainPhone(phone, p)
	}
	if !r.phonePrefixAllowed(p) {
		return "", newError(ErrPhonePrefix, "phone %q: country prefix not allowed (allowed: %s)",
			phone, r.allowedPrefixes())
	}
	return p, nil
}

// explainPhone says why p (phone without spaces and dashes) does not
// match phonePattern.
func (r Rules) explainPhone(phone, p string) error {
	if p == "" {
		return newError(ErrInvalidPhone, "phone %q: no digits", phone)
	}
	if p[0] != '+' {
		// Kazakh and Russian domestic format: 8, then 10 digits.
		if len(p) == 11 && p[0] == '8' && allDigits(p) && r.phonePrefixAllowed("+7"+p[1:]) {
			return newError(ErrInvalidPhone,
				"phone %q: use the international format with +7 instead of the leading 8 (+7%s)", phone, p[1:])
		}
		return newError(ErrInvalidPhone,
			"phone %q: must start with + and the country code (allowed: %s)", phone, r.allowedPrefixes())
	}
	digits := p[1:]
	if i := strings.IndexFunc(digits, func(c rune) bool { return c < '0' || c > '9' }); i >= 0 {
		c, _ := utf8.DecodeRuneInString(digits[i:])
		return newError(ErrInvalidPhone,
			"phone %q: %q is not allowed: write + and digits, optionally separated by spaces or dashes", phone, c)
	}
	if digits != "" && digits[0] == '0' {
		return newError(ErrInvalidPhone, "phone %q: a country code never starts with 0", phone)
	}
	if len(digits) < 8 || len(digits) > 15 {
		return newError(ErrInvalidPhone, "phone %q: must have 8 to 15 digits after the + (got %d)", phone, len(digits))
	}
	return newError(ErrInvalidPhone, "phone %q: must match %s after removing spaces and dashes", phone, phonePattern)
}

func (r Rules) phonePrefixAllowed(p string) bool {
	if len(r.PhonePrefixes) == 0 {
		return true
	}
	for _, pre := range r.PhonePrefixes {
		pre = strings.NewReplacer(" ", "", "-", "").Replace(pre)
		if pre != "" && strings.HasPrefix(p, pre) {
			return true
		}
	}
	return false
}

func (r Rules) allowedPrefixes() string {
	if len(r.PhonePrefixes) == 0 {
		return "any"
	}
	return strings.Join(r.PhonePrefixes, ", ")
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// CheckPassword checks a new password against the rules. login and
// otherInputs (the domain, the phone, the person's name...) are what an
// attacker would try first; zxcvbn scores passwords built from them as
// weak. The error never contains the password.
func (r Rules) CheckPassword(password, login string, otherInputs ...string) error {
	if !utf8.ValidString(password) {
		return newError(ErrWeakPassword, "password is not valid UTF-8")
	}
	// SASL PLAIN separates fields with NUL and IMAP LOGIN cannot carry
	// CR or LF in a quoted string: such a password could never be used.
	if strings.IndexFunc(password, unicode.IsControl) >= 0 {
		return newError(ErrWeakPassword, "password must not contain control characters (tabs, line breaks)")
	}
	n := utf8.RuneCountInString(password)
	if n < r.MinPasswordLength {
		return newError(ErrWeakPassword, "password is too short: at least %d characters required", r.MinPasswordLength)
	}
	if n > MaxPasswordLength {
		return newError(ErrWeakPassword, "password is too long: at most %d characters allowed", MaxPasswordLength)
	}
	if login != "" && strings.Contains(strings.ToLower(password), strings.ToLower(login)) {
		return newError(ErrWeakPassword, "password must not contain the login")
	}
	if r.MinPasswordScore <= 0 {
		return nil
	}
	score := zxcvbn.PasswordStrength(password, userInputs(login, otherInputs)).Score
	if score < r.MinPasswordScore {
		return newError(ErrWeakPassword,
			"password is too weak (strength %d of 4, at least %d required): use a longer passphrase of unrelated words, not names, dates, the login or the phone",
			score, r.MinPasswordScore)
	}
	return nil
}

// userInputs gives zxcvbn each input and its alphanumeric parts of three
// or more characters: "+77011234567" as "77011234567", "mail.example.kz"
// also as "mail" and "example".
func userInputs(login string, others []string) []string {
	var out []string
	add := func(s string) {
		s = strings.ToLower(strings.TrimSpace(s))
		if s == "" {
			return
		}
		out = append(out, s)
		parts := strings.FieldsFunc(s, func(c rune) bool { return !unicode.IsLetter(c) && !unicode.IsDigit(c) })
		if len(parts) == 1 && parts[0] == s {
			return
		}
		for _, p := range parts {
			if utf8.RuneCountInString(p) >= 3 {
				out = append(out, p)
			}
		}
	}
	add(login)
	for _, o := range others {
		add(o)
	}
	return out
}

// NormalizeDomain checks a domain name and returns it in lower case
// without a trailing dot. Internationalised names must be given in
// punycode ("xn--..."): this package does no IDNA conversion.
func NormalizeDomain(domain string) (string, error) {
	d := strings.TrimSuffix(domain, ".")
	if d == "" {
		return "", newError(ErrInvalidDomain, "domain is empty")
	}
	if i, _ := firstNonASCII(d); i >= 0 {
		// An internationalised name is kept in its A-label form (RFC
		// 5890), the form DNS and SMTP without SMTPUTF8 know it by.
		a, err := idna.Registration.ToASCII(strings.ToLower(d))
		if err != nil {
			return "", newError(ErrInvalidDomain, "domain %q is not a valid internationalised name (IDNA 2008): %v", domain, err)
		}
		d = a
	}
	d = strings.ToLower(d)
	if len(d) > 253 {
		return "", newError(ErrInvalidDomain, "domain %q: longer than 253 characters (got %d)", domain, len(d))
	}
	labels := strings.Split(d, ".")
	if len(labels) < 2 {
		return "", newError(ErrInvalidDomain, "domain %q: needs at least two labels, e.g. example.kz", domain)
	}
	for _, l := range labels {
		if err := checkLabel(domain, l); err != nil {
			return "", err
		}
	}
	// RFC 3696 section 2: a top-level domain is never all-numeric, so this
	// also keeps an IP address from passing as a mail domain.
	if allDigits(labels[len(labels)-1]) {
		return "", newError(ErrInvalidDomain,
			"domain %q: the last label is all digits (an IP address is not a mail domain)", domain)
	}
	return d, nil
}

func checkLabel(domain, l string) error {
	switch {
	case l == "":
		return newError(ErrInvalidDomain, "domain %q: empty label (a leading dot or two dots in a row)", domain)
	case len(l) > 63:
		return newError(ErrInvalidDomain, "domain %q: label %q is longer than 63 characters", domain, l)
	case l[0] == '-' || l[len(l)-1] == '-':
		return newError(ErrInvalidDomain, "domain %q: label %q starts or ends with '-'", domain, l)
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return newError(ErrInvalidDomain,
				"domain %q: %q is not allowed: use letters, digits and '-' (internationalised names in punycode, xn--...)",
				domain, rune(c))
		}
	}
	return nil
}
