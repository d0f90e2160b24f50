package wire

import (
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
)

// SearchOp is what a search key tests (RFC 9051 §6.4.4, RFC 3501
// §6.4.4 for RECENT, NEW and OLD, and the extensions named).
type SearchOp int

// The search keys.
const (
	SearchAll        SearchOp = iota
	SearchAnd                 // every child (a parenthesised list, or keys in a row)
	SearchOr                  // one of two children
	SearchNot                 // not the child
	SearchSeq                 // Set: sequence numbers (or $)
	SearchUID                 // Set: UIDs (or $)
	SearchFlag                // Flag set (system flag or keyword)
	SearchNoFlag              // Flag not set
	SearchNew                 // \Recent and not \Seen (IMAP4rev1)
	SearchHeader              // Field contains Value (FROM, TO, CC, BCC, SUBJECT, HEADER)
	SearchBody                // the body contains Value
	SearchText                // header or body contains Value
	SearchSince               // internal date on or after Date (days)
	SearchBefore              // internal date before Date
	SearchOn                  // internal date on Date
	SearchSentSince           // Date: header on or after
	SearchSentBefore          // Date: header before
	SearchSentOn              // Date: header on
	SearchLarger              // size larger than N
	SearchSmaller             // size smaller than N
	SearchOlder               // internal date at least N seconds ago (RFC 5032 WITHIN)
	SearchYounger             // internal date at most N seconds ago
	SearchModSeq              // mod-sequence at least N (RFC 7162)
	SearchSaveSince           // save date on or after Date (RFC 8514)
	SearchSaveBefore          // save date before Date
	SearchSaveOn              // save date on Date
	SearchSaveSupported
	SearchEmailID  // Value (RFC 8474)
	SearchThreadID // Value
)

// SearchKey is a node of a search program.
type SearchKey struct {
	Op       SearchOp
	Children []SearchKey
	Set      imap.NumSet
	Flag     string
	Field    string
	Value    string
	Date     time.Time
	N        int64
}

// maxSearchDepth bounds the nesting of NOT, OR and parentheses: a
// program nested 1,000 deep is a client's error (BAD), never a server's.
const maxSearchDepth = 64

// SearchKeys reads search keys to the end of the command: "keys in a
// row" are ANDed (RFC 9051 §6.4.4).
func (a *Args) SearchKeys() (SearchKey, bool) {
	root := SearchKey{Op: SearchAnd}
	for {
		k, ok := a.searchKey(0)
		if !ok {
			return SearchKey{}, false
		}
		root.Children = append(root.Children, k)
		if a.AtEnd() {
			break
		}
		if !a.SP() {
			return SearchKey{}, false
		}
	}
	if len(root.Children) == 1 {
		return root.Children[0], true
	}
	return root, true
}

func (a *Args) searchKey(depth int) (SearchKey, bool) {
	if depth > maxSearchDepth {
		a.fail("search keys nested deeper than %d", maxSearchDepth)
		return SearchKey{}, false
	}
	if a.peek() == '(' {
		k := SearchKey{Op: SearchAnd}
		ok := a.List(false, func() bool {
			c, ok := a.searchKey(depth + 1)
			k.Children = append(k.Children, c)
			return ok
		})
		return k, ok
	}
	if c := a.peek(); c >= '0' && c <= '9' || c == '*' || c == '$' {
		set, ok := a.NumSet(false)
		return SearchKey{Op: SearchSeq, Set: set}, ok
	}
	name := a.word()
	if name == "" {
		a.fail("expected a search key, found %q", a.rest(20))
		return SearchKey{}, false
	}
	key := strings.ToUpper(name)
	flags := map[string]string{"ANSWERED": `\Answered`, "DELETED": `\Deleted`, "DRAFT": `\Draft`, "FLAGGED": `\Flagged`, "SEEN": `\Seen`, "RECENT": `\Recent`}
	if f, ok := flags[key]; ok {
		return SearchKey{Op: SearchFlag, Flag: f}, true
	}
	if f, ok := flags[strings.TrimPrefix(key, "UN")]; ok && strings.HasPrefix(key, "UN") && key != "UNRECENT" {
		return SearchKey{Op: SearchNoFlag, Flag: f}, true
	}
	switch key {
	case "ALL":
		return SearchKey{Op: SearchAll}, true
	case "NEW":
		return SearchKey{Op: SearchNew}, true
	case "OLD":
		return SearchKey{Op: SearchNoFlag, Flag: `\Recent`}, true
	case "SAVEDATESUPPORTED":
		return SearchKey{Op: SearchSaveSupported}, true
	}
	if !a.SP() {
		return SearchKey{}, false
	}
	switch key {
	case "NOT":
		c, ok := a.searchKey(depth + 1)
		return SearchKey{Op: SearchNot, Children: []SearchKey{c}}, ok
	case "OR":
		l, ok := a.searchKey(depth + 1)
		if !ok || !a.SP() {
			return SearchKey{}, false
		}
		r, ok := a.searchKey(depth + 1)
		return SearchKey{Op: SearchOr, Children: []SearchKey{l, r}}, ok
	case "UID":
		set, ok := a.NumSet(true)
		return SearchKey{Op: SearchUID, Set: set}, ok
	case "KEYWORD", "UNKEYWORD":
		f, ok := a.atomWith("")
		if !ok {
			a.fail("expected a keyword")
			return SearchKey{}, false
		}
		op := SearchFlag
		if key == "UNKEYWORD" {
			op = SearchNoFlag
		}
		return SearchKey{Op: op, Flag: f}, true
	case "FROM", "TO", "CC", "BCC", "SUBJECT":
		v, ok := a.AString()
		return SearchKey{Op: SearchHeader, Field: strings.ToUpper(key[:1]) + strings.ToLower(key[1:]), Value: v}, ok
	case "HEADER":
		f, ok := a.AString()
		if !ok || !a.SP() {
			return SearchKey{}, false
		}
		v, ok := a.AString()
		return SearchKey{Op: SearchHeader, Field: f, Value: v}, ok
	case "BODY", "TEXT", "EMAILID", "THREADID":
		v, ok := a.AString()
		op := map[string]SearchOp{"BODY": SearchBody, "TEXT": SearchText, "EMAILID": SearchEmailID, "THREADID": SearchThreadID}[key]
		return SearchKey{Op: op, Value: v}, ok
	case "SINCE", "BEFORE", "ON", "SENTSINCE", "SENTBEFORE", "SENTON", "SAVEDSINCE", "SAVEDBEFORE", "SAVEDON":
		d, ok := a.Date()
		op := map[string]SearchOp{"SINCE": SearchSince, "BEFORE": SearchBefore, "ON": SearchOn,
			"SENTSINCE": SearchSentSince, "SENTBEFORE": SearchSentBefore, "SENTON": SearchSentOn,
			"SAVEDSINCE": SearchSaveSince, "SAVEDBEFORE": SearchSaveBefore, "SAVEDON": SearchSaveOn}[key]
		return SearchKey{Op: op, Date: d}, ok
	case "LARGER", "SMALLER", "OLDER", "YOUNGER":
		n, ok := a.Number64()
		if ok && (key == "OLDER" || key == "YOUNGER") && n == 0 {
			a.fail("%s needs a positive number of seconds", key)
			return SearchKey{}, false
		}
		op := map[string]SearchOp{"LARGER": SearchLarger, "SMALLER": SearchSmaller, "OLDER": SearchOlder, "YOUNGER": SearchYounger}[key]
		return SearchKey{Op: op, N: n}, ok
	case "MODSEQ":
		// MODSEQ [entry-name entry-type-req] mod-sequence-valzer
		if a.peek() == '"' {
			if _, ok := a.Quoted(); !ok || !a.SP() {
				return SearchKey{}, false
			}
			if t, ok := a.Atom(); !ok || !(strings.EqualFold(t, "priv") || strings.EqualFold(t, "shared") || strings.EqualFold(t, "all")) || !a.SP() {
				a.fail("bad MODSEQ entry type")
				return SearchKey{}, false
			}
		}
		n, ok := a.Number64()
		return SearchKey{Op: SearchModSeq, N: n}, ok
	}
	a.fail("unknown search key %s", name)
	return SearchKey{}, false
}

var months = map[string]time.Month{"JAN": 1, "FEB": 2, "MAR": 3, "APR": 4, "MAY": 5, "JUN": 6, "JUL": 7, "AUG": 8, "SEP": 9, "OCT": 10, "NOV": 11, "DEC": 12}

// Date reads a date (RFC 9051 date: d-Mon-yyyy, optionally quoted).
func (a *Args) Date() (time.Time, bool) {
	q := a.Accept('"')
	day, ok := a.Number(false)
	if !ok || day < 1 || day > 31 || !a.Expect('-', `"-"`) {
		if ok {
			a.fail("bad day in a date")
		}
		return time.Time{}, false
	}
	var mon []byte
	for len(mon) < 3 {
		c := a.peek()
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z') {
			break
		}
		mon = append(mon, c)
		a.pos++
	}
	m, ok := months[strings.ToUpper(string(mon))]
	if !ok || !a.Accept('-') {
		a.fail("bad month %q in a date", mon)
		return time.Time{}, false
	}
	year, ok := a.Number(false)
	if !ok || year < 1000 || year > 9999 {
		if ok {
			a.fail("bad year in a date")
		}
		return time.Time{}, false
	}
	if q && !a.Expect('"', `'"'`) {
		return time.Time{}, false
	}
	d := time.Date(int(year), m, int(day), 0, 0, 0, 0, time.UTC)
	if d.Day() != int(day) {
		a.fail("no such date")
		return time.Time{}, false
	}
	return d, true
}
