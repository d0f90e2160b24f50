package imapd

import (
	"slices"
	"strings"

	"github.com/emersion/go-imap/v2"

	"abox/imapd/wire"
)

// cmdSort answers SORT and UID SORT (RFC 5256 §3, RFC 5957), with the
// ESORT result options (RFC 5267 §3), RFC 5182's SAVE, and PARTIAL and
// UPDATE over the sort order (RFC 5267 §4, CONTEXT=SORT).
func cmdSort(c *conn, tag string, a *wire.Args, uid bool) status {
	if !a.SP() {
		return badArgs(a)
	}
	ret, st, ok := parseReturn(a)
	if !ok {
		return st
	}
	keys, ok := sortCriteria(a)
	if !ok || !a.SP() {
		return status{"BAD", "", "SORT needs sort criteria, a charset and search keys"}
	}
	criteria, st, ok := charsetAndKeys(c, a)
	if !ok {
		return st
	}
	if st, ok := c.updateTagFree(tag, ret); !ok {
		return st
	}
	items, err := c.sess.Sort(keys, criteria, ret.save)
	if err != nil {
		return answer("SORT", err)
	}
	if ret.update {
		c.startContext(&updateContext{tag: tag, uid: uid, criteria: criteria, keys: keys, items: slices.Clone(items)})
	}
	nums := make([]uint32, len(items))
	for i, it := range items {
		nums[i] = it.seq
		if uid {
			nums[i] = it.uid
		}
	}
	w := c.w
	if !ret.given {
		w.Raw("* SORT")
		for _, n := range nums {
			w.SP().Number(uint64(n))
		}
		w.CRLF()
		return okWith("", "SORT completed")
	}
	if !ret.esearchBody() {
		return okWith("", "SORT completed") // RFC 5182 §2.1: SAVE alone answers no ESEARCH
	}
	w.Raw(`* ESEARCH (TAG `).String(tag).Raw(")")
	if uid {
		w.Raw(" UID")
	}
	if len(nums) > 0 {
		// RFC 5267 §3: MIN and MAX are the first and last in sort order,
		// ALL lists every match in sort order.
		if ret.min {
			w.Raw(" MIN ").Number(uint64(nums[0]))
		}
		if ret.max {
			w.Raw(" MAX ").Number(uint64(nums[len(nums)-1]))
		}
		if ret.all {
			w.Raw(" ALL ").Raw(orderedSet(nums))
		}
	}
	if ret.partial != nil {
		writePartial(w, ret.partial, nums) // in sort order (§4.4)
	}
	if ret.count {
		w.Raw(" COUNT ").Number(uint64(len(nums)))
	}
	w.CRLF()
	return okWith("", "SORT completed")
}

// orderedSet writes nums as a sequence-set that keeps their order:
// only runs that ascend by one become ranges ("3:5" is 3,4,5 in any
// reading).
func orderedSet(nums []uint32) string {
	var sb strings.Builder
	for i := 0; i < len(nums); {
		j := i
		for j+1 < len(nums) && nums[j+1] == nums[j]+1 {
			j++
		}
		if sb.Len() > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(itoa(nums[i]))
		if j > i {
			sb.WriteByte(':')
			sb.WriteString(itoa(nums[j]))
		}
		i = j + 1
	}
	return sb.String()
}

func itoa(n uint32) string {
	var b [10]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			return string(b[i:])
		}
	}
}

// charsetAndKeys reads the charset SORT and THREAD require (RFC 5256:
// UTF-8 and US-ASCII, others NO [BADCHARSET]) and the search keys.
func charsetAndKeys(c *conn, a *wire.Args) (*imap.SearchCriteria, status, bool) {
	cs, ok := a.AString()
	if !ok || !a.SP() {
		return nil, badArgs(a), false
	}
	if !strings.EqualFold(cs, "UTF-8") && !strings.EqualFold(cs, "US-ASCII") {
		return nil, status{"NO", "BADCHARSET (UTF-8 US-ASCII)", "Unsupported charset"}, false
	}
	keys, ok := a.SearchKeys()
	if !ok || a.End() != nil {
		return nil, badArgs(a), false
	}
	criteria, err := searchCriteria(c, keys)
	if err != nil {
		return nil, status{"BAD", "", err.Error()}, false
	}
	return criteria, status{}, true
}

// cmdThread answers THREAD and UID THREAD (RFC 5256 §3, §4).
func cmdThread(c *conn, _ string, a *wire.Args, uid bool) status {
	if !a.SP() {
		return badArgs(a)
	}
	alg, ok := a.Atom()
	alg = strings.ToUpper(alg)
	if !ok || !a.SP() {
		return badArgs(a)
	}
	if alg != "REFERENCES" && alg != "ORDEREDSUBJECT" {
		return status{"BAD", "", "THREAD algorithms: REFERENCES, ORDEREDSUBJECT"}
	}
	criteria, st, ok := charsetAndKeys(c, a)
	if !ok {
		return st
	}
	threads, err := c.sess.Thread(alg, criteria)
	if err != nil {
		return answer("THREAD", err)
	}
	w := c.w
	w.Raw("* THREAD")
	if len(threads) > 0 {
		w.SP()
		var sb strings.Builder
		for _, t := range threads {
			writeThread(&sb, t, uid, true)
		}
		w.Raw(sb.String())
	}
	w.CRLF()
	return okWith("", "THREAD completed")
}
