package imapd

import (
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

var listMatchCases = []struct {
	name, ref, pattern string
	want               bool
}{
	{"INBOX", "", "INBOX", true},
	{"INBOX", "", "inbox", true},
	{"INBOX", "", "InBoX", true},
	{"INBOX", "", "Asuka", false},
	{"INBOX", "", "*", true},
	{"INBOX", "", "%", true},
	{"INBOX", "", "", false},
	{"", "", "", true},
	{"Sent", "", "", false},
	{"a/b", "", "*", true},
	{"a/b", "", "%", false},
	{"a/b", "", "%/%", true},
	{"a/b", "", "a/*", true},
	{"a/b", "", "a/%", true},
	{"a/b/c", "", "a/%", false},
	{"a/b/c", "", "a/*", true},
	{"a/b/c", "", "a/%/c", true},
	{"a/b/c", "", "*/c", true},
	{"a/b/c", "", "%/c", false},
	{"Neon Genesis Evangelion/Misato", "", "Neo* Evangelion/Misato", true},
	{"Neon Genesis Evangelion/Misato", "", "Neo% Evangelion/Misato", true},
	{"Neon Genesis Evangelion/Misato", "", "*Eva*/Misato", true},
	{"Neon Genesis Evangelion/Misato", "", "%Eva%/Misato", true},
	{"Neon Genesis Evangelion/Misato", "", "*X*/Misato", false},
	{"Neon Genesis Evangelion/Misato", "", "Neon Genesis Evangelion/Mi%o", true},
	{"Neon Genesis Evangelion/Misato", "", "Neon Genesis Evangelion/Mi%too", false},
	{"Misato/Misato", "", "Mis*to/Misato", true},
	{"Misato/Misato", "", "Mis*to", true},
	{"Misato/Misato/Misato", "", "Mis*to/Mis%to", true},
	{"Misato/Misato", "", "Mis**to/Misato", true},
	{"Misato/Misato", "", "Misat%/Misato", true},
	{"Misato/Misato", "", "Misat%Misato", false},
	{"Misato/Misato", "", "Misat%*Misato", true},
	{"Misato/Misato", "", "Misat*%Misato", true},
	{"Misato/Misato", "Misato", "Misato", true},
	{"Misato/Misato", "Misato/", "Misato", true},
	{"Misato/Misato", "Shinji", "/Misato/*", true},
	{"Misato/Misato", "Shinji", "/Misato*", true},
	{"Misato/Misato", "Misato", "/Misato", false},
	{"Misato/Misato", "Misato", "Shinji", false},
	{"Misato/Misato", "Shinji", "Misato", false},
	{"Misato/Misato", "Misato", "%", true},
	{"Misato", "Misato", "%", false},
	// Wildcards in the reference are plain bytes.
	{"a*/b", "a*", "b", true},
	{"ax/b", "a*", "b", false},
	// Case matters except for INBOX itself.
	{"Sent", "", "sent", false},
	{"INBOX/x", "", "inbox/x", false},
	// '%' stops at the delimiter, also right after a literal.
	{"aaa/y", "", "%y", false},
	{strings.Repeat("a", 100) + "y", "", strings.Repeat("%", 20) + "y", true},
	{strings.Repeat("a", 100), "", strings.Repeat("%", 20) + "y", false},
	{strings.Repeat("a/", 50) + "y", "", strings.Repeat("*a", 40) + "*y", true},
	{strings.Repeat("a/", 50) + "y", "", strings.Repeat("%a", 40) + "%y", false},
	// A pattern longer than the word of one state set.
	{strings.Repeat("ab", 100), "", strings.Repeat("a%", 100), true},
	{strings.Repeat("ab", 100), "", strings.Repeat("a%", 101), false},
	{strings.Repeat("x", 130) + "/z", "", strings.Repeat("x", 130) + "/%", true},
}

func TestListPatternMatch(t *testing.T) {
	for _, c := range listMatchCases {
		if got := compileListPattern(c.ref, c.pattern).match(c.name, nil); got != c.want {
			t.Errorf("name %q, reference %q, pattern %q: %v, want %v", trimName(c.name), c.ref, trimName(c.pattern), got, c.want)
		}
		if got := referenceMatch(c.name, c.ref, c.pattern); got != c.want {
			t.Errorf("reference implementation: name %q, reference %q, pattern %q: %v, want %v", trimName(c.name), c.ref, trimName(c.pattern), got, c.want)
		}
	}
}

func trimName(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// referenceMatch is the matcher written the obvious way, as a regular
// expression (Go's are linear-time automata too, but built from another
// description).
func referenceMatch(name, ref, pattern string) bool {
	if name == "INBOX" && strings.EqualFold(joined(ref, pattern), "INBOX") && !strings.ContainsAny(pattern, "*%") {
		return true
	}
	if strings.HasPrefix(pattern, "/") {
		ref, pattern = "", pattern[1:]
	}
	if ref != "" && !strings.HasSuffix(ref, "/") {
		ref += "/"
	}
	var re strings.Builder
	re.WriteString(`(?s)^` + regexp.QuoteMeta(ref))
	for _, c := range []byte(pattern) {
		switch c {
		case '*':
			re.WriteString(`.*`)
		case '%':
			re.WriteString(`[^/]*`)
		default:
			re.WriteString(regexp.QuoteMeta(string([]byte{c})))
		}
	}
	re.WriteString(`$`)
	return regexp.MustCompile(re.String()).MatchString(name)
}

func joined(ref, pattern string) string {
	if strings.HasPrefix(pattern, "/") {
		return pattern[1:]
	}
	if ref != "" && !strings.HasSuffix(ref, "/") {
		ref += "/"
	}
	return ref + pattern
}

// FuzzListPattern compares the matcher with referenceMatch on small
// inputs over a small alphabet (so wildcards, delimiters and repeats
// meet often).
func FuzzListPattern(f *testing.F) {
	for _, c := range listMatchCases {
		if len(c.name) <= 40 && len(c.pattern) <= 40 {
			f.Add(c.name, c.ref, c.pattern)
		}
	}
	f.Add("a/b/a/b", "", "*%a%/b")
	f.Add("aaaa", "a", "%")
	f.Fuzz(func(t *testing.T, name, ref, pattern string) {
		if len(name) > 64 || len(ref) > 16 || len(pattern) > 64 {
			return
		}
		if !utf8.ValidString(name) || !utf8.ValidString(ref) || !utf8.ValidString(pattern) {
			return // go-imap hands the session decoded (UTF-8) names
		}
		want := referenceMatch(name, ref, pattern)
		if got := compileListPattern(ref, pattern).match(name, nil); got != want {
			t.Errorf("name %q, reference %q, pattern %q: %v, reference implementation %v", name, ref, pattern, got, want)
		}
	})
}

// TestListPatternStepsAreBounded: the hostile patterns of issue 13 take a
// number of word steps bounded by the name's length times the pattern's
// words, and the count grows linearly with the name.
func TestListPatternStepsAreBounded(t *testing.T) {
	for _, tc := range []struct{ name, pattern string }{
		{strings.Repeat("a", 100), strings.Repeat("%", 20) + "y"},
		{strings.Repeat("a", 100), strings.Repeat("*", 20) + "y"},
		{strings.Repeat("a", 100) + "y", strings.Repeat("%a", 30) + "%y"},
		{strings.Repeat("a/", 100) + "y", strings.Repeat("*a", 60) + "%y"},
		{strings.Repeat("a", 1000), strings.Repeat("%a", 400) + "%y"},
	} {
		p := compileListPattern("", tc.pattern)
		steps := 0
		p.match(tc.name, &steps)
		if bound := len(tc.name) * p.words; steps > bound {
			t.Errorf("pattern %q on a %d-byte name: %d steps, more than %d", trimName(tc.pattern), len(tc.name), steps, bound)
		}
		// Double the name: at most double the steps.
		steps2 := 0
		p.match(tc.name+tc.name, &steps2)
		if steps2 > 2*steps+p.words {
			t.Errorf("pattern %q: %d steps on a %d-byte name, %d on twice that", trimName(tc.pattern), steps, len(tc.name), steps2)
		}
	}
	// The pattern against a 100-byte name: a few hundred steps
	// (go-imap's matcher tried about C(120, 20) splits).
	steps := 0
	compileListPattern("", strings.Repeat("%", 20)+"y").match(strings.Repeat("a", 100), &steps)
	if steps > 100 {
		t.Errorf("%%...%%y on 100 bytes: %d steps, want at most 100", steps)
	}
}
