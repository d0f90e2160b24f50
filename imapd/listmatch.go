package imapd

import "strings"

// listDelim is the hierarchy delimiter of mailbox names (store.MailboxDelim).
const listDelim = '/'

// listPattern is a LIST or LSUB mailbox pattern (RFC 9051 §6.3.9) joined
// with its reference name and compiled for matching names: '*' matches
// any run of bytes, '%' any run without the hierarchy delimiter, every
// other byte itself.
//
// Matching runs the pattern as a nondeterministic automaton whose states
// are bits of a word array, all of them advanced together per byte of the
// name: O(len(name) * len(pattern)/64) word steps, never a backtrack.
// go-imap's MatchList backtracks, and "%%%%%%%%%%%%%%%%%%%%y" against a
// 100-byte name never finished (issue 13, item 9). Runs of wildcards are
// collapsed first ("%%" is "%", "*%" and "%*" are "*"), and a pattern
// with more literal bytes than a name can never match it, so the work per
// name is bounded by the name's length, not by the pattern's.
//
// The reference is joined as go-imap did, so LIST answers stay the same:
// a pattern starting with the delimiter ignores the reference (and loses
// that delimiter); otherwise a non-empty reference, with a delimiter
// added when it lacks one, is a literal prefix (wildcards in it are
// plain bytes).
type listPattern struct {
	states  int        // positions in the pattern; state i: items[:i] matched
	words   int        // uint64 words per state set
	literal int        // literal bytes: a shorter name cannot match
	inbox   bool       // the whole pattern is INBOX in any case (RFC 9051 §5.1)
	wild    []uint64   // states whose item is '*' or '%'
	star    []uint64   // states whose item is '*'
	on      [256]int32 // byte -> index+1 into masks (0: the byte is not in the pattern)
	masks   [][]uint64 // states whose item is that literal byte
	// scratch state sets, reused across names (a pattern is used by one
	// goroutine)
	cur, next []uint64
}

// listItem is one pattern element: a literal byte or a wildcard.
type listItem struct {
	b    byte
	wild byte // 0, '*' or '%'
}

// compileListPattern joins reference and pattern and compiles them.
func compileListPattern(reference, pattern string) *listPattern {
	var items []listItem
	if strings.HasPrefix(pattern, string(listDelim)) {
		reference, pattern = "", pattern[1:]
	}
	if reference != "" && !strings.HasSuffix(reference, string(listDelim)) {
		reference += string(listDelim)
	}
	for i := 0; i < len(reference); i++ {
		items = append(items, listItem{b: reference[i]})
	}
	for i := 0; i < len(pattern); i++ {
		c := pattern[i]
		if c != '*' && c != '%' {
			items = append(items, listItem{b: c})
			continue
		}
		if n := len(items); n > 0 && items[n-1].wild != 0 {
			if c == '*' {
				items[n-1].wild = '*'
			}
			continue
		}
		items = append(items, listItem{wild: c})
	}
	p := &listPattern{states: len(items) + 1}
	p.words = (p.states + 63) / 64
	p.wild = make([]uint64, p.words)
	p.star = make([]uint64, p.words)
	p.cur = make([]uint64, p.words)
	p.next = make([]uint64, p.words)
	var lit strings.Builder
	for i, it := range items {
		w, bit := i/64, uint64(1)<<(i%64)
		switch it.wild {
		case '*':
			p.star[w] |= bit
			p.wild[w] |= bit
		case '%':
			p.wild[w] |= bit
		default:
			p.literal++
			lit.WriteByte(it.b)
			if p.on[it.b] == 0 {
				p.masks = append(p.masks, make([]uint64, p.words))
				p.on[it.b] = int32(len(p.masks))
			}
			p.masks[p.on[it.b]-1][w] |= bit
		}
	}
	p.inbox = p.literal == len(items) && strings.EqualFold(lit.String(), "INBOX")
	return p
}

// match reports whether name matches, adding the word steps it took to
// *steps (for tests; nil to skip counting).
func (p *listPattern) match(name string, steps *int) bool {
	if name == "INBOX" && p.inbox {
		return true
	}
	if len(name) < p.literal {
		return false
	}
	cur, next := p.cur, p.next
	clear(cur)
	cur[0] = 1
	p.closure(cur)
	for i := 0; i < len(name); i++ {
		c := name[i]
		var lit []uint64
		if k := p.on[c]; k != 0 {
			lit = p.masks[k-1]
		}
		// next = (cur & lit) << 1 | cur & star | (cur & wild unless c is
		// the delimiter, which '%' does not match).
		var carry, any uint64
		for w := range next {
			var moved uint64
			if lit != nil {
				m := cur[w] & lit[w]
				moved = m<<1 | carry
				carry = m >> 63
			} else {
				moved, carry = carry, 0
			}
			stay := cur[w] & p.star[w]
			if c != listDelim {
				stay = cur[w] & p.wild[w]
			}
			next[w] = moved | stay
			any |= next[w]
		}
		if steps != nil {
			*steps += p.words
		}
		if any == 0 {
			return false
		}
		p.closure(next)
		cur, next = next, cur
	}
	last := p.states - 1
	return cur[last/64]&(1<<(last%64)) != 0
}

// closure adds, for every active wildcard state, the state after it (a
// wildcard matches the empty run). Runs of wildcards were collapsed, so
// one step is enough.
func (p *listPattern) closure(set []uint64) {
	var carry uint64
	for w := range set {
		m := set[w] & p.wild[w]
		set[w] |= m<<1 | carry
		carry = m >> 63
	}
}

// listMatcher matches names against several patterns (LIST may give a
// list of them, RFC 5258).
type listMatcher []*listPattern

func newListMatcher(reference string, patterns []string) listMatcher {
	m := make(listMatcher, len(patterns))
	for i, pat := range patterns {
		m[i] = compileListPattern(reference, pat)
	}
	return m
}

// match reports whether name matches any of the patterns.
func (m listMatcher) match(name string, steps *int) bool {
	for _, p := range m {
		if p.match(name, steps) {
			return true
		}
	}
	return false
}
