package accounts

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
)

// App passwords (issue 16; user agreement 2.7-2.8): a subscriber gives
// each device's mail app a password of its own, named, limited to IMAP
// or to submission or not, and revocable alone, so the main password
// never sits in a phone's settings and a lost phone costs one password.
// An app password is 16 random letters (about 75 bits): it is stored as
// its SHA-256, which a slow hash would not make any harder to guess, and
// checked without the argon2 cost of the main password. Changing the
// main password revokes every app password (as the big mail providers
// do: the change is how a subscriber who fears a thief locks everything).

// App password scopes.
const (
	ScopeIMAP       = "imap"
	ScopeSubmission = "submission"
	ScopeAll        = "all"
)

// MaxAppPasswords is how many app passwords one account may have.
const MaxAppPasswords = 20

// AppPassword is one app password as stored (never its secret).
type AppPassword struct {
	Name      string    `json:"name"`
	Scope     string    `json:"scope"`
	SHA256    string    `json:"sha256"` // of the secret, hex
	CreatedAt time.Time `json:"created_at"`
}

// Allows reports whether the app password may be used for service
// ("imap" or "submission").
func (p *AppPassword) Allows(service string) bool {
	return p.Scope == ScopeAll || p.Scope == service
}

// NewAppPassword makes an app password called name for scope and
// returns it with its secret (shown once): four groups of four lower-case
// letters, easy to type on a phone.
func NewAppPassword(name, scope string, now time.Time) (AppPassword, string, error) {
	name = strings.TrimSpace(name)
	if name == "" || len(name) > 64 || strings.ContainsAny(name, "\r\n\x00") {
		return AppPassword{}, "", fmt.Errorf("app password name %q: 1 to 64 characters on one line", name)
	}
	switch scope {
	case ScopeIMAP, ScopeSubmission, ScopeAll:
	case "":
		scope = ScopeAll
	default:
		return AppPassword{}, "", fmt.Errorf("app password scope %q: imap, submission or all", scope)
	}
	var b strings.Builder
	var buf [32]byte
	for n := 0; n < 16; {
		if _, err := rand.Read(buf[:]); err != nil {
			return AppPassword{}, "", err
		}
		for _, r := range buf {
			// Only bytes below 234 (9 x 26): every letter equally likely.
			if r >= 234 || n == 16 {
				continue
			}
			if n > 0 && n%4 == 0 {
				b.WriteByte('-')
			}
			b.WriteByte('a' + r%26)
			n++
		}
	}
	secret := b.String()
	sum := sha256.Sum256([]byte(canonicalAppPassword(secret)))
	return AppPassword{Name: name, Scope: scope, SHA256: hex.EncodeToString(sum[:]), CreatedAt: now.UTC()}, secret, nil
}

// AddAppPassword adds p, refusing a name in use or more than
// MaxAppPasswords.
func (a *Account) AddAppPassword(p AppPassword) error {
	for _, q := range a.AppPasswords {
		if strings.EqualFold(q.Name, p.Name) {
			return fmt.Errorf("%s already has an app password called %q", a.Address(), p.Name)
		}
	}
	if len(a.AppPasswords) >= MaxAppPasswords {
		return fmt.Errorf("%s has %d app passwords, the most allowed: revoke one first", a.Address(), MaxAppPasswords)
	}
	a.AppPasswords = append(a.AppPasswords, p)
	return nil
}

// RevokeAppPassword removes the app password called name.
func (a *Account) RevokeAppPassword(name string) error {
	for i, q := range a.AppPasswords {
		if strings.EqualFold(q.Name, name) {
			a.AppPasswords = append(a.AppPasswords[:i:i], a.AppPasswords[i+1:]...)
			return nil
		}
	}
	return newError(ErrNoAppPassword, "%s has no app password called %q", a.Address(), name)
}

// MatchAppPassword finds the app password whose secret is password (of
// any scope: the caller checks the scope). Every one is compared, in
// constant time each.
func (a *Account) MatchAppPassword(password string) *AppPassword {
	if len(a.AppPasswords) == 0 {
		return nil
	}
	sum := sha256.Sum256([]byte(canonicalAppPassword(password)))
	want := hex.EncodeToString(sum[:])
	var found *AppPassword
	for i := range a.AppPasswords {
		if subtle.ConstantTimeCompare([]byte(a.AppPasswords[i].SHA256), []byte(want)) == 1 {
			found = &a.AppPasswords[i]
		}
	}
	return found
}

// canonicalAppPassword is the secret as hashed: its letters, lower case,
// without the dashes (or spaces) it is shown and typed with.
func canonicalAppPassword(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '-' || r == ' ':
			return -1
		case r >= 'A' && r <= 'Z':
			return r + 'a' - 'A'
		}
		return r
	}, s)
}

// HasAppPassword reports whether p (by name and secret hash) is still
// one of the account's app passwords.
func (a *Account) HasAppPassword(p *AppPassword) bool {
	for _, q := range a.AppPasswords {
		if q.Name == p.Name && q.SHA256 == p.SHA256 {
			return true
		}
	}
	return false
}
