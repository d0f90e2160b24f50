package imapd

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// applyPairs is a client of RFC 5267 §4.3.3 and §4.3.4: it applies
// ADDTO or REMOVEFROM pairs to its result list in the order given. A
// non-zero position inserts the set there (its first element takes the
// position) or removes the set starting there (checking that the
// elements there are those named); position 0 inserts in mailbox order
// or removes wherever they are.
func applyPairs(t *testing.T, list []uint32, add bool, pairs []contextPair) []uint32 {
	t.Helper()
	for _, p := range pairs {
		switch {
		case p.pos == 0 && add:
			list = append(list, p.uids...)
			slices.Sort(list)
		case p.pos == 0:
			list = slices.DeleteFunc(list, func(u uint32) bool { return slices.Contains(p.uids, u) })
		case add:
			if int(p.pos) > len(list)+1 {
				t.Fatalf("ADDTO at %d past the end of %v", p.pos, list)
			}
			list = slices.Insert(list, int(p.pos-1), p.uids...)
		default:
			i := int(p.pos - 1)
			if i+len(p.uids) > len(list) || !slices.Equal(list[i:i+len(p.uids)], p.uids) {
				t.Fatalf("REMOVEFROM (%d %v) does not match %v", p.pos, p.uids, list)
			}
			list = slices.Delete(list, i, i+len(p.uids))
		}
	}
	return list
}

// TestContextPositions: whatever messages join and leave a SORT or
// SEARCH context, a client applying the pairs it is told holds the
// context's result, in the context's order.
func TestContextPositions(t *testing.T) {
	for _, sorted := range []bool{false, true} {
		rng := rand.New(rand.NewPCG(1, uint64(len("positions"))))
		for round := range 200 {
			uc := &updateContext{}
			if sorted {
				uc.keys = []sortKey{{name: "SIZE", reverse: round%2 == 1}}
				uc.in = map[uint32]struct{}{}
			}
			size := func(uid uint32) int64 { return int64(uid*7919) % 13 } // ties broken by UID
			var client []uint32
			for range 30 {
				// Some messages leave, some (not in it) join.
				gone := map[uint32]struct{}{}
				var join []uint32
				for uid := uint32(1); uid <= 40; uid++ {
					switch in := uc.has(uid); {
					case in && rng.IntN(4) == 0:
						gone[uid] = struct{}{}
					case !in && rng.IntN(5) == 0:
						join = append(join, uid)
					}
				}
				client = applyPairs(t, client, false, uc.remove(gone))
				if sorted {
					items := make([]sortItem, len(join))
					for i, uid := range join {
						items[i] = sortItem{uid: uid, size: size(uid)}
					}
					rng.Shuffle(len(items), func(i, j int) { items[i], items[j] = items[j], items[i] })
					client = applyPairs(t, client, true, uc.addItems(items))
				} else {
					client = applyPairs(t, client, true, uc.addUIDs(join))
				}
				want := uc.uids
				if sorted {
					want = nil
					for _, it := range uc.items {
						want = append(want, it.uid)
					}
					if !slices.IsSortedFunc(uc.items, compareBy(uc.keys)) {
						t.Fatalf("round %d: the context is out of order: %v", round, want)
					}
				}
				if !slices.Equal(client, want) {
					t.Fatalf("round %d (sorted %v): the client holds %v, the context %v", round, sorted, client, want)
				}
			}
		}
	}
}

// TestContextLimits: a session keeps at most maxUpdateContexts contexts
// and at most maxContextMessages messages in them all; past either,
// nothing is kept and the reason is given (the search still answers,
// with NOUPDATE).
func TestContextLimits(t *testing.T) {
	old := maxContextMessages
	maxContextMessages = 100
	defer func() { maxContextMessages = old }()
	s := &session{sel: &selected{view: &view{}}}
	uids := func(n int) []uint32 {
		out := make([]uint32, n)
		for i := range out {
			out[i] = uint32(i + 1)
		}
		return out
	}
	if why := s.addContext(&updateContext{tag: "a", uids: uids(60)}); why != "" {
		t.Fatalf("60 messages: %s", why)
	}
	if why := s.addContext(&updateContext{tag: "b", uids: uids(41)}); why == "" || len(s.sel.contexts) != 1 {
		t.Fatalf("101 messages in all were kept (%d contexts)", len(s.sel.contexts))
	}
	sorted := &updateContext{tag: "c", keys: []sortKey{{}}, items: make([]sortItem, 40)}
	for i := range sorted.items {
		sorted.items[i].uid = uint32(i + 1)
	}
	if why := s.addContext(sorted); why != "" || len(sorted.in) != 40 {
		t.Fatalf("a SORT context of 40 beside 60: %q, %d", why, len(sorted.in))
	}
	for i := len(s.sel.contexts); i < maxUpdateContexts; i++ {
		if why := s.addContext(&updateContext{tag: fmt.Sprint(i)}); why != "" {
			t.Fatalf("context %d: %s", i, why)
		}
	}
	if why := s.addContext(&updateContext{tag: "one too many"}); why == "" || len(s.sel.contexts) != maxUpdateContexts {
		t.Fatalf("past %d contexts: %q, %d kept", maxUpdateContexts, why, len(s.sel.contexts))
	}
}
