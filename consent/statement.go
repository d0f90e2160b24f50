package consent

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// StatementFormat is the one statement format abox accepts.
const StatementFormat = "abox-consent-v1"

// Clause is the user agreement clause a statement must cite.
const Clause = "3.2"

// Statement is the consent text the subscriber signs, as UTF-8 JSON:
// the portal fills it in, shows Text to the subscriber and has it signed.
// Address and AccountID together name the account, so a consent signed
// for a login never applies to a later holder of the same login.
type Statement struct {
	Format    string    `json:"format"`     // StatementFormat
	Address   string    `json:"address"`    // login@domain
	AccountID uint64    `json:"account_id"` // abox's stable id (`user show --json`)
	Date      time.Time `json:"date"`       // when the subscriber signed, RFC 3339
	Clause    string    `json:"clause"`     // "3.2"
	Text      string    `json:"text"`       // the wording shown to the subscriber
}

// Account is the account a statement must name.
type Account struct {
	Address string
	ID      uint64
}

// parseStatement reads and checks a signed statement against the
// account it is recorded for and the time of recording.
func parseStatement(content []byte, want Account, at time.Time, maxAge time.Duration) (*Statement, error) {
	if !utf8.Valid(content) {
		return nil, fmt.Errorf("%w: the signed content is not UTF-8 text", ErrStatement)
	}
	dec := json.NewDecoder(bytes.NewReader(content))
	dec.DisallowUnknownFields()
	var s Statement
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("%w: the signed content is not an %s statement (%v)", ErrStatement, StatementFormat, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: data after the statement", ErrStatement)
	}
	switch {
	case s.Format != StatementFormat:
		return nil, fmt.Errorf("%w: format %q, want %q", ErrStatement, s.Format, StatementFormat)
	case !strings.EqualFold(strings.TrimSpace(s.Address), want.Address):
		return nil, fmt.Errorf("%w: it was signed for %q, not %s", ErrWrongAccount, s.Address, want.Address)
	case s.AccountID != want.ID:
		return nil, fmt.Errorf("%w: it was signed for account id %d, %s is account %d", ErrWrongAccount, s.AccountID, want.Address, want.ID)
	case s.Clause != Clause:
		return nil, fmt.Errorf("%w: clause %q, want %q", ErrStatement, s.Clause, Clause)
	case strings.TrimSpace(s.Text) == "":
		return nil, fmt.Errorf("%w: no consent wording", ErrStatement)
	case s.Date.IsZero():
		return nil, fmt.Errorf("%w: no date", ErrStatement)
	case s.Date.After(at.Add(clockSkew)):
		return nil, fmt.Errorf("%w: dated %s, in the future", ErrStatement, s.Date.UTC().Format(time.RFC3339))
	case maxAge > 0 && s.Date.Before(at.Add(-maxAge)):
		return nil, fmt.Errorf("%w: dated %s, older than %s", ErrStatement, s.Date.UTC().Format(time.RFC3339), maxAge)
	}
	return &s, nil
}

// clockSkew tolerates a portal clock slightly ahead of abox's.
const clockSkew = 5 * time.Minute

// NewStatement returns the JSON of a statement for an account, as a
// portal would produce it (used by tests and documented as the format).
func NewStatement(a Account, date time.Time, text string) []byte {
	raw, _ := json.Marshal(Statement{Format: StatementFormat, Address: a.Address, AccountID: a.ID,
		Date: date.UTC(), Clause: Clause, Text: text})
	return raw
}

// IINFromSerial extracts the IIN from a certificate subject's
// serialNumber attribute: Kazakhstan's qualified certificates carry
// "IIN" and the 12 digits, whose last is a check digit.
func IINFromSerial(serial string) (string, error) {
	digits, ok := strings.CutPrefix(strings.TrimSpace(serial), "IIN")
	if !ok || len(digits) != 12 || strings.Trim(digits, "0123456789") != "" {
		return "", fmt.Errorf("%w: subject serialNumber %q is not IIN and 12 digits", ErrNoIIN, serial)
	}
	if IINCheckDigit(digits[:11]) != int(digits[11]-'0') {
		return "", fmt.Errorf("%w: %s fails the IIN check digit", ErrNoIIN, digits)
	}
	return digits, nil
}

// IINCheckDigit computes the 12th digit of an IIN from the first 11
// (weights 1..11 modulo 11; on 10, weights 3..11,1,2; a second 10 makes
// the number invalid, returned as -1).
func IINCheckDigit(first11 string) int {
	sum := func(w0 int) int {
		s := 0
		for i := 0; i < 11; i++ {
			s += int(first11[i]-'0') * ((w0+i-1)%11 + 1)
		}
		return s % 11
	}
	if d := sum(1); d != 10 {
		return d
	}
	if d := sum(3); d != 10 {
		return d
	}
	return -1
}
