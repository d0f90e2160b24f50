package imapd

import (
	"bytes"
	"cmp"
	"slices"
	"strconv"
	"strings"

	"github.com/emersion/go-imap/v2"
)

// THREAD=ORDEREDSUBJECT and THREAD=REFERENCES (RFC 5256 §4). Message-ID
// and In-Reply-To come from the envelope stored at delivery; References,
// which it lacks, is read from the header bytes in place (the store's
// ReadBodies maps them; only the header's pages are touched), so only
// REFERENCES pays for it.

// threadNode is a container of RFC 5256 §4's REFERENCES algorithm: a
// message, or a dummy (item nil) standing for a referenced message not
// in the set.
type threadNode struct {
	item     *sortItem
	parent   *threadNode
	children []*threadNode
	removed  bool
}

// Thread returns the threads of the matching messages, in order.
func (s *session) Thread(alg string, criteria *imap.SearchCriteria) ([]*threadNode, error) {
	done, err := s.enter("THREAD")
	defer done()
	if err != nil {
		return nil, err
	}
	uids, _, err := s.searchMatches(criteria)
	if err != nil {
		return nil, err
	}
	items, err := s.sortItems(uids, threadKeys, alg == "REFERENCES")
	if err != nil {
		return nil, noFor(err, s.log)
	}
	if alg == "ORDEREDSUBJECT" {
		return orderedSubject(items), nil
	}
	return threadReferences(items), nil
}

// orderedSubject groups by base subject, each group ordered by sent
// date with its first message as parent of the others, and orders the
// groups by their first message's sent date (RFC 5256 §4).
func orderedSubject(items []sortItem) []*threadNode {
	slices.SortFunc(items, compareBy([]sortKey{{name: "SUBJECT"}, {name: "DATE"}}))
	var threads []*threadNode
	for i := 0; i < len(items); {
		root := &threadNode{item: &items[i]}
		j := i + 1
		for ; j < len(items) && items[j].subject == items[i].subject; j++ {
			root.children = append(root.children, &threadNode{item: &items[j], parent: root})
		}
		threads = append(threads, root)
		i = j
	}
	slices.SortFunc(threads, compareNodes)
	return threads
}

// threadReferences is RFC 5256 §4's REFERENCES algorithm. items are in
// sequence order.
func threadReferences(items []sortItem) []*threadNode {
	byID := map[string]*threadNode{}
	var all []*threadNode // creation order, for a stable root list
	container := func(id string) *threadNode {
		n := byID[id]
		if n == nil {
			n = &threadNode{}
			byID[id] = n
			all = append(all, n)
		}
		return n
	}
	for i := range items {
		it := &items[i]
		// (1) A message without a Message-ID, or repeating one already
		// seen, gets an ID of its own.
		id := it.messageID
		if id == "" || byID[id] != nil && byID[id].item != nil {
			id = "\x00" + strconv.FormatUint(uint64(it.uid), 10)
		}
		n := container(id)
		n.item = it
		// (1A) link the references in order, not changing a parent
		// already set, not making loops.
		var prev *threadNode
		for _, ref := range it.parents {
			r := container(ref)
			if prev != nil && r.parent == nil && r != prev && !descends(prev, r) {
				link(prev, r)
			}
			prev = r
		}
		// (1B) the last reference is the message's parent.
		if n.parent != nil {
			unlink(n)
		}
		if prev != nil && prev != n && !descends(prev, n) {
			link(prev, n)
		}
	}
	// (2) the roots; (3) pruned of dummies.
	var roots []*threadNode
	for _, n := range all {
		if n.parent == nil {
			roots = append(roots, n)
		}
	}
	roots = prune(roots, true)
	// (4) sorted, then (5) gathered by base subject, then (6) sorted.
	sortThreads(roots)
	roots = gatherBySubject(roots)
	sortThreads(roots)
	return roots
}

func link(parent, child *threadNode) {
	child.parent = parent
	parent.children = append(parent.children, child)
}

func unlink(n *threadNode) {
	p := n.parent
	p.children = slices.DeleteFunc(p.children, func(c *threadNode) bool { return c == n })
	n.parent = nil
}

// descends reports whether n is anc or below it.
func descends(n, anc *threadNode) bool {
	for ; n != nil; n = n.parent {
		if n == anc {
			return true
		}
	}
	return false
}

// prune removes dummies without children and puts the children of the
// others in their place, except at the root where a dummy with several
// children stays (RFC 5256 §4 step 3).
func prune(list []*threadNode, root bool) []*threadNode {
	var out []*threadNode
	for _, n := range list {
		n.children = prune(n.children, false)
		switch {
		case n.item != nil:
			out = append(out, n)
		case len(n.children) == 0:
		case root && len(n.children) > 1:
			out = append(out, n)
		default:
			for _, c := range n.children {
				c.parent = n.parent
			}
			out = append(out, n.children...)
		}
	}
	return out
}

// first is the message that stands for n in sorting: n's own, or for a
// dummy its first child's (children sorted first).
func (n *threadNode) first() *sortItem {
	for n.item == nil {
		if len(n.children) == 0 {
			return &sortItem{}
		}
		n = n.children[0]
	}
	return n.item
}

func compareNodes(a, b *threadNode) int {
	x, y := a.first(), b.first()
	if c := cmp.Compare(x.date, y.date); c != 0 {
		return c
	}
	return cmp.Compare(x.seq, y.seq)
}

// sortThreads orders every set of siblings by sent date, ties in
// mailbox order (steps 4 and 6).
func sortThreads(list []*threadNode) {
	for _, n := range list {
		sortThreads(n.children)
	}
	slices.SortStableFunc(list, compareNodes)
}

// gatherBySubject merges root threads of one base subject (step 5).
func gatherBySubject(roots []*threadNode) []*threadNode {
	table := map[string]*threadNode{}
	for _, n := range roots {
		subj := n.first().subject
		if subj == "" {
			continue
		}
		t := table[subj]
		if t == nil || t.item != nil && n.item == nil || t.item != nil && n.item != nil && t.item.reply && !n.item.reply {
			table[subj] = n
		}
	}
	out := slices.Clone(roots)
	for _, n := range roots {
		subj := n.first().subject
		t := table[subj]
		if subj == "" || t == n || n.removed {
			continue
		}
		switch {
		case t.item == nil && n.item == nil:
			for _, c := range n.children {
				link(t, c)
			}
			n.removed = true
		case t.item == nil:
			link(t, n)
			n.removed = true
		case n.item == nil:
			link(n, t)
			t.removed = true
			table[subj] = n
		case !t.item.reply && n.item.reply:
			link(t, n)
			n.removed = true
		default:
			d := &threadNode{}
			j := slices.Index(out, t)
			link(d, t)
			link(d, n)
			n.removed = true
			out[j] = d
			table[subj] = d
		}
	}
	return slices.DeleteFunc(out, func(n *threadNode) bool { return n.removed })
}

// writeThread writes one thread (RFC 5256 §4's thread-list): a message
// with one child continues the chain, several children are nested
// lists.
func writeThread(sb *strings.Builder, n *threadNode, uid, top bool) {
	if top {
		sb.WriteByte('(')
		defer sb.WriteByte(')')
	}
	if n.item != nil {
		if uid {
			sb.WriteString(itoa(n.item.uid))
		} else {
			sb.WriteString(itoa(n.item.seq))
		}
		if len(n.children) > 0 {
			sb.WriteByte(' ')
		}
	}
	if len(n.children) == 1 {
		writeThread(sb, n.children[0], uid, false)
		return
	}
	for _, c := range n.children {
		sb.WriteByte('(')
		writeThread(sb, c, uid, false)
		sb.WriteByte(')')
	}
}

// references returns a message's parents for threading (RFC 5256 §4
// step 1): the msg-ids of its References field, or else the first of
// In-Reply-To. header is the raw header section.
func references(header []byte, inReplyTo []string) []string {
	var ids []string
	for rest := header; len(rest) > 0; {
		line := rest
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			line, rest = rest[:i+1], rest[i+1:]
		} else {
			rest = nil
		}
		if len(line) < 11 || !bytes.EqualFold(line[:11], []byte("references:")) {
			continue
		}
		field := line[11:]
		for len(rest) > 0 && (rest[0] == ' ' || rest[0] == '\t') {
			i := bytes.IndexByte(rest, '\n')
			if i < 0 {
				i = len(rest) - 1
			}
			field = append(slices.Clip(field), rest[:i+1]...)
			rest = rest[i+1:]
		}
		ids = append(ids, msgIDs(string(field))...)
	}
	if len(ids) == 0 && len(inReplyTo) > 0 {
		ids = msgIDs("<" + strings.Trim(inReplyTo[0], "<>") + ">")
	}
	return ids
}

// msgIDs extracts the <...> identifiers of a field, without brackets
// and white space.
func msgIDs(s string) []string {
	var out []string
	for {
		i := strings.IndexByte(s, '<')
		if i < 0 {
			return out
		}
		j := strings.IndexByte(s[i:], '>')
		if j < 0 {
			return out
		}
		id := strings.Join(strings.Fields(s[i+1:i+j]), "")
		if id != "" {
			out = append(out, id)
		}
		s = s[i+j+1:]
	}
}
