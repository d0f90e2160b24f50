package imapd

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math/bits"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	gomessage "github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"

	"abox/store"
	"abox/store/msginfo"
)

// Search answers SEARCH and UID SEARCH (RFC 9051 §6.4.4) with ESEARCH
// results and SEARCHRES's SAVE. Header, body and text matching is
// case-insensitive on decoded text: MIME encoded words in headers,
// transfer encodings and charsets in text parts (converted to UTF-8).
func (s *session) Search(kind numKind, criteria *imap.SearchCriteria, options *imap.SearchOptions) (*imap.SearchData, error) {
	done, err := s.enter("SEARCH")
	defer done()
	if err != nil {
		return nil, err
	}
	matched, matchedSeqs, err := s.searchMatches(criteria)
	if err != nil {
		return nil, err
	}
	if options.ReturnSave {
		s.sel.saved = matched
	}
	data := &imap.SearchData{Count: uint32(len(matched))}
	nums := matchedSeqs
	if kind == numKindUID {
		nums = matched
		var set imap.UIDSet
		for _, u := range matched {
			set.AddNum(imap.UID(u))
		}
		data.All = set
	} else {
		var set imap.SeqSet
		set.AddNum(matchedSeqs...)
		data.All = set
	}
	if len(nums) > 0 {
		data.Min, data.Max = nums[0], nums[len(nums)-1]
	}
	return data, nil
}

// searchMatches returns the UIDs and sequence numbers of the selected
// mailbox's messages that match criteria, in sequence order (SEARCH,
// SORT, THREAD).
func (s *session) searchMatches(criteria *imap.SearchCriteria) (matched, matchedSeqs []uint32, err error) {
	matched, matchedSeqs, _, err = s.matchUIDs(criteria, s.sel.uids, false)
	return matched, matchedSeqs, err
}

// matchUIDs returns those of uids (messages of the view, ascending) that
// match criteria, with their sequence numbers; with withFound it also
// returns the UIDs it could read (a message expunged meanwhile is
// neither matched nor found: update contexts leave it alone).
func (s *session) matchUIDs(criteria *imap.SearchCriteria, uids []uint32, withFound bool) (matched, matchedSeqs, found []uint32, err error) {
	// Chunks are matched by as many workers as there are CPUs, each
	// with its own read transactions and set cache; results are merged
	// in sequence order.
	nChunks := (len(uids) + fetchChunk - 1) / fetchChunk
	type result struct {
		uids, seqs, found []uint32
		err               error
	}
	results := make([]result, nChunks)
	content := needsContent(criteria)
	bodies := needsBody(criteria)
	work := make(chan int)
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), max(nChunks, 1)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cache := &setCache{seq: map[*imap.SeqSet]map[uint32]bool{}, uid: map[*imap.UIDSet]map[uint32]bool{}}
			for ci := range work {
				r := &results[ci]
				var f *[]uint32
				if withFound {
					f = &r.found
				}
				chunk := uids[ci*fetchChunk : min((ci+1)*fetchChunk, len(uids))]
				r.uids, r.seqs, r.err = s.searchChunk(chunk, criteria, content, bodies, cache, f)
			}
		}()
	}
	for ci := range nChunks {
		work <- ci
	}
	close(work)
	wg.Wait()
	for _, r := range results {
		if r.err != nil {
			return nil, nil, nil, noFor(r.err, s.log)
		}
		matched = append(matched, r.uids...)
		matchedSeqs = append(matchedSeqs, r.seqs...)
		found = append(found, r.found...)
	}
	return matched, matchedSeqs, found, nil
}

// searchChunk matches one chunk of messages of the view; found, when
// not nil, gets the UIDs read.
func (s *session) searchChunk(chunk []uint32, criteria *imap.SearchCriteria, content, bodies bool, cache *setCache, found *[]uint32) (uids, seqs []uint32, err error) {
	v := s.sel
	msgs, err := s.srv.cfg.Store.MessagesByUID(s.acct.ID, v.mbox.ID, chunk)
	if err != nil {
		return nil, nil, err
	}
	if found != nil {
		for i := range msgs {
			*found = append(*found, msgs[i].UID)
		}
	}
	try := func(i int, body, structure []byte) error {
		m := &msgs[i]
		c := &candidate{s: s, m: m, seq: v.seqOf(m.UID), sets: cache, body: body, rawInfo: structure}
		if c.seq == 0 {
			return nil
		}
		ok, err := c.match(criteria)
		if errors.Is(err, store.ErrNotFound) {
			return nil // expunged since its record was read: no match
		}
		if err != nil {
			return err
		}
		if ok {
			uids = append(uids, m.UID)
			seqs = append(seqs, c.seq)
		}
		return nil
	}
	if !content {
		for i := range msgs {
			if err := try(i, nil, nil); err != nil {
				return nil, nil, err
			}
		}
		return uids, seqs, nil
	}
	// Match inside one read transaction per chunk, on the stored bytes,
	// without copying them.
	ids := make([]uint64, len(msgs))
	for i := range msgs {
		ids[i] = msgs[i].Blob
	}
	if !bodies {
		return uids, seqs, s.srv.cfg.Store.ReadStructures(ids, try)
	}
	return uids, seqs, s.srv.cfg.Store.ReadBodies(ids, try)
}

// candidate is one message being matched; it reads the body and parses
// the structure only when a criterion needs them.
type candidate struct {
	s       *session
	m       *store.Message
	seq     uint32
	body    []byte // valid only during the match (see Store.ReadBodies)
	rawInfo []byte
	info    *msginfo.Info
	hdr     *textproto.Header
	text    *string // decoded text of the text parts, lower case
	sets    *setCache
}

// setCache resolves each sequence or UID set of the criteria once per
// SEARCH, not once per message.
type setCache struct {
	seq map[*imap.SeqSet]map[uint32]bool
	uid map[*imap.UIDSet]map[uint32]bool
}

func toSet(l []uint32) map[uint32]bool {
	m := make(map[uint32]bool, len(l))
	for _, n := range l {
		m[n] = true
	}
	return m
}

func (c *candidate) loadBody() error {
	if c.body != nil {
		if c.info == nil {
			if err := c.loadInfo(); err != nil {
				return err
			}
		}
		return nil
	}
	body, raw, err := c.s.srv.cfg.Store.Body(c.m.Blob)
	if err != nil {
		return err
	}
	c.body = body
	if c.info, err = msginfo.Decode(raw); err != nil {
		c.info = msginfo.Parse(body)
	}
	return nil
}

func (c *candidate) loadInfo() error {
	if c.info != nil {
		return nil
	}
	if c.rawInfo != nil {
		info, err := msginfo.DecodeEnvelopes(c.rawInfo)
		if err != nil && c.body != nil {
			info = msginfo.Parse(c.body)
		} else if err != nil {
			return err
		}
		c.info = info
		return nil
	}
	raw, err := c.s.srv.cfg.Store.Structure(c.m.Blob)
	if err == nil {
		if c.info, err = msginfo.Decode(raw); err == nil {
			return nil
		}
	}
	return c.loadBody()
}

func (c *candidate) header() (*textproto.Header, error) {
	if c.hdr != nil {
		return c.hdr, nil
	}
	if err := c.loadBody(); err != nil {
		return nil, err
	}
	h, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(c.body[:c.info.HeaderSize])))
	if err != nil {
		h = textproto.Header{}
	}
	c.hdr = &h
	return c.hdr, nil
}

// bodyText is the decoded, lower-cased text of every text part,
// including those of attached messages (message/rfc822), whose headers
// count as text too.
func (c *candidate) bodyText() (string, error) {
	if c.text != nil {
		return *c.text, nil
	}
	if err := c.loadBody(); err != nil {
		return "", err
	}
	var sb strings.Builder
	if !collectText(c.body, &sb, false, 0) {
		sb.Write(c.body[min(c.info.HeaderSize, int64(len(c.body))):])
	}
	t := strings.ToLower(sb.String())
	c.text = &t
	return t, nil
}

// collectText appends the decoded text of a message's text parts to sb
// (and, for an attached message, its header fields first). It reports
// false when the message cannot be parsed at all.
func collectText(msg []byte, sb *strings.Builder, withHeader bool, depth int) bool {
	e, err := gomessage.Read(bytes.NewReader(msg))
	if e == nil || err != nil && !gomessage.IsUnknownCharset(err) && !gomessage.IsUnknownEncoding(err) {
		return false
	}
	if withHeader {
		mh := mail.Header{Header: e.Header}
		for f := e.Header.Fields(); f.Next(); {
			if text, err := mh.Text(f.Key()); err == nil {
				sb.WriteString(text)
			} else {
				sb.WriteString(f.Value())
			}
			sb.WriteByte('\n')
		}
	}
	_ = msginfo.Walk(e, func(_ int, part *gomessage.Entity, tooDeep bool, err error) error {
		if tooDeep || err != nil && !gomessage.IsUnknownCharset(err) && !gomessage.IsUnknownEncoding(err) {
			return nil
		}
		t, _, _ := part.Header.ContentType()
		switch {
		case (t == "message/rfc822" || t == "message/global") && depth < 8:
			inner, _ := io.ReadAll(io.LimitReader(part.Body, 64<<20))
			collectText(inner, sb, true, depth+1)
		case t == "" || strings.HasPrefix(t, "text/"):
			b, _ := io.ReadAll(io.LimitReader(part.Body, 64<<20))
			sb.Write(b)
			sb.WriteByte('\n')
		}
		return nil
	})
	return true
}

func contains(hay, needle string) bool {
	return strings.Contains(strings.ToLower(hay), strings.ToLower(needle))
}

// date drops the time and zone, as SEARCH dates do (RFC 9051 §6.4.4).
func date(t time.Time) time.Time {
	y, m, d := t.Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

func (c *candidate) match(cr *imap.SearchCriteria) (bool, error) {
	v := c.s.sel
	for i := range cr.SeqNum {
		key := &cr.SeqNum[i]
		m := c.sets.seq[key]
		if m == nil {
			_, seqs := v.resolve(*key)
			m = toSet(seqs)
			c.sets.seq[key] = m
		}
		if !m[c.seq] {
			return false, nil
		}
	}
	for i := range cr.UID {
		key := &cr.UID[i]
		m := c.sets.uid[key]
		if m == nil {
			uids, _ := c.s.resolveSet(*key)
			m = toSet(uids)
			c.sets.uid[key] = m
		}
		if !m[c.m.UID] {
			return false, nil
		}
	}
	if !cr.Since.IsZero() && date(c.m.InternalDate).Before(date(cr.Since)) {
		return false, nil
	}
	if !cr.Before.IsZero() && !date(c.m.InternalDate).Before(date(cr.Before)) {
		return false, nil
	}
	if !cr.SentSince.IsZero() || !cr.SentBefore.IsZero() {
		if err := c.loadInfo(); err != nil {
			return false, err
		}
		sent := c.info.Envelope.Date
		if sent.IsZero() {
			sent = c.m.InternalDate
		}
		if !cr.SentSince.IsZero() && date(sent).Before(date(cr.SentSince)) ||
			!cr.SentBefore.IsZero() && !date(sent).Before(date(cr.SentBefore)) {
			return false, nil
		}
	}
	for _, f := range cr.Flag {
		if !c.hasFlag(f) {
			return false, nil
		}
	}
	for _, f := range cr.NotFlag {
		if c.hasFlag(f) {
			return false, nil
		}
	}
	if cr.Larger > 0 && c.m.Size <= cr.Larger || cr.Smaller > 0 && c.m.Size >= cr.Smaller {
		return false, nil
	}
	if cr.ModSeq != nil && c.m.ModSeq < cr.ModSeq.ModSeq { // RFC 7162 §3.1.5
		return false, nil
	}
	for _, h := range cr.Header {
		ok, err := c.matchHeader(h.Key, h.Value)
		if err != nil || !ok {
			return false, err
		}
	}
	for _, want := range cr.Body {
		ok, err := c.bodyContains(want)
		if err != nil || !ok {
			return false, err
		}
	}
	for _, want := range cr.Text {
		ok, err := c.bodyContains(want)
		if err != nil {
			return false, err
		}
		if ok {
			continue
		}
		if ok, err := c.matchAnyHeader(want); err != nil || !ok {
			return false, err
		}
	}
	for i := range cr.Not {
		ok, err := c.match(&cr.Not[i])
		if err != nil || ok {
			return false, err
		}
	}
	for i := range cr.Or {
		a, err := c.match(&cr.Or[i][0])
		if err != nil {
			return false, err
		}
		if !a {
			b, err := c.match(&cr.Or[i][1])
			if err != nil || !b {
				return false, err
			}
		}
	}
	return true, nil
}

func (c *candidate) hasFlag(f imap.Flag) bool {
	if strings.EqualFold(string(f), `\Recent`) {
		return c.s.isRecent(c.m.UID) // recent.go
	}
	return hasFlag(c.m.Flags, string(f))
}

// matchHeader is SEARCH HEADER field string (and FROM, TO, CC, BCC,
// SUBJECT, which go-imap passes as header criteria). Address and subject
// fields are matched on their decoded form from the stored envelope
// first, so most searches never read the body.
func (c *candidate) matchHeader(key, value string) (bool, error) {
	if value != "" && c.info == nil && c.rawInfo != nil && isASCII(value) && strings.EqualFold(key, "subject") {
		// The most common search: the subject alone, without decoding
		// the rest of the envelope.
		if subj, err := msginfo.Subject(c.rawInfo); err == nil {
			return containsFoldASCII(subj, []byte(strings.ToLower(value))), nil
		}
	}
	if value != "" {
		if err := c.loadInfo(); err != nil {
			return false, err
		}
		e := c.info.Envelope
		var fields []string
		switch strings.ToLower(key) {
		case "subject":
			fields = []string{e.Subject}
		case "from", "to", "cc", "bcc":
			fields = addressTexts(c.info, strings.ToLower(key))
		}
		for _, f := range fields {
			if contains(f, value) {
				return true, nil
			}
		}
		if fields != nil {
			// The envelope holds these fields decoded: no need to
			// read the header again.
			return false, nil
		}
	}
	h, err := c.header()
	if err != nil {
		return false, err
	}
	mh := mail.Header{Header: gomessage.Header{Header: *h}}
	for fs := h.FieldsByKey(key); fs.Next(); {
		if value == "" {
			return true, nil
		}
		text, err := mh.Text(key)
		if err != nil {
			text = fs.Value()
		}
		if contains(text, value) || contains(fs.Value(), value) {
			return true, nil
		}
	}
	return false, nil
}

// matchAnyHeader looks for s in any header field (SEARCH TEXT). A header
// without MIME encoded words is searched in place.
func (c *candidate) matchAnyHeader(s string) (bool, error) {
	if c.body != nil && isASCII(s) {
		if hs, _, err := msginfo.Peek(c.rawInfo); err == nil {
			raw := c.body[:min(hs, int64(len(c.body)))]
			if !bytes.Contains(raw, []byte("=?")) {
				return containsFoldASCII(raw, []byte(strings.ToLower(s))), nil
			}
		}
	}
	h, err := c.header()
	if err != nil {
		return false, err
	}
	dec := mail.Header{Header: gomessage.Header{Header: *h}}
	for f := h.Fields(); f.Next(); {
		if contains(f.Value(), s) {
			return true, nil
		}
		if text, err := dec.Text(f.Key()); err == nil && contains(text, s) {
			return true, nil
		}
	}
	return false, nil
}

func addrStrings(l []imap.Address) []string {
	out := make([]string, 0, len(l))
	for _, a := range l {
		out = append(out, a.Name+" <"+a.Addr()+">")
	}
	return out
}

// needsContent says whether any criterion reads headers or bodies.
func needsContent(cr *imap.SearchCriteria) bool {
	if len(cr.Header) > 0 || len(cr.Body) > 0 || len(cr.Text) > 0 || !cr.SentSince.IsZero() || !cr.SentBefore.IsZero() {
		return true
	}
	for i := range cr.Not {
		if needsContent(&cr.Not[i]) {
			return true
		}
	}
	for i := range cr.Or {
		if needsContent(&cr.Or[i][0]) || needsContent(&cr.Or[i][1]) {
			return true
		}
	}
	return false
}

// envelopeHeaders are the header criteria the stored envelope answers.
var envelopeHeaders = map[string]bool{"subject": true, "from": true, "to": true, "cc": true, "bcc": true}

// needsBody says whether any criterion needs the message bytes, not just
// its stored envelope.
func needsBody(cr *imap.SearchCriteria) bool {
	if len(cr.Body) > 0 || len(cr.Text) > 0 {
		return true
	}
	for _, h := range cr.Header {
		if h.Value == "" || !envelopeHeaders[strings.ToLower(h.Key)] {
			return true
		}
	}
	for i := range cr.Not {
		if needsBody(&cr.Not[i]) {
			return true
		}
	}
	for i := range cr.Or {
		if needsBody(&cr.Or[i][0]) || needsBody(&cr.Or[i][1]) {
			return true
		}
	}
	return false
}

// bodyContains matches want in the decoded body text. A single-part
// text message in 7bit or 8bit with a UTF-8 compatible charset is
// searched in place, folding ASCII case, without decoding or copying;
// anything else is decoded first.
func (c *candidate) bodyContains(want string) (bool, error) {
	if c.body != nil && isASCII(want) {
		if hs, plain, err := msginfo.Peek(c.rawInfo); err == nil && plain {
			hs = min(hs, int64(len(c.body)))
			return containsFoldASCII(c.body[hs:], []byte(strings.ToLower(want))), nil
		}
	}
	if err := c.loadBody(); err != nil {
		return false, err
	}
	t, err := c.bodyText()
	return err == nil && strings.Contains(t, strings.ToLower(want)), err
}

func plainText(p *imap.BodyStructureSinglePart) bool {
	if !strings.EqualFold(p.Type, "text") {
		return false
	}
	switch strings.ToLower(p.Encoding) {
	case "", "7bit", "8bit", "binary":
	default:
		return false
	}
	switch strings.ToLower(p.Params["charset"]) {
	case "", "us-ascii", "utf-8", "utf8":
		return true
	}
	return false
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// letterRank orders lower-case letters from rare to common in text (a
// rough English and transliterated-Kazakh frequency order); digits and
// punctuation count as rare.
const letterRank = "zqxjkvbpygfwmucldrhsnioate"

func rarity(c byte) int {
	if i := strings.IndexByte(letterRank, c); i >= 0 {
		return i
	}
	return -1
}

// containsFoldASCII reports whether hay contains needle (lower-case
// ASCII) ignoring ASCII case. Needles of two bytes or more go through
// containsFoldPair; a single byte is found with bytes.IndexByte.
func containsFoldASCII(hay, needle []byte) bool {
	switch {
	case len(needle) == 0:
		return true
	case len(needle) > len(hay):
		return false
	case len(needle) == 1:
		c := needle[0]
		if bytes.IndexByte(hay, c) >= 0 {
			return true
		}
		return c >= 'a' && c <= 'z' && bytes.IndexByte(hay, c-'a'+'A') >= 0
	}
	return containsFoldPair(hay, needle)
}

const (
	lowBits  = 0x0101010101010101
	highBits = 0x8080808080808080
	foldBits = 0x2020202020202020
)

// zeroBytes has the high bit set in exactly the bytes of x that are zero
// (no borrow between bytes, so no false positives).
func zeroBytes(x uint64) uint64 {
	return ^(((x &^ highBits) + (highBits - lowBits)) | x) & highBits
}

// containsFoldPair scans hay 32 bytes at a time for the needle's rarest
// adjacent byte pair, both bytes folded by setting bit 0x20 (which maps
// upper- to lower-case ASCII letters and otherwise only adds candidates),
// and checks each candidate with equalFoldASCII. Plain text has a matching
// pair every few hundred bytes at most, so the scan costs a few simple
// operations per eight bytes; anchoring on one letter with bytes.IndexByte
// stopped every twenty bytes or so of English text.
func containsFoldPair(hay, needle []byte) bool {
	k := 0
	for i := 1; i+1 < len(needle); i++ {
		if rarity(needle[i])+rarity(needle[i+1]) < rarity(needle[k])+rarity(needle[k+1]) {
			k = i
		}
	}
	c1 := uint64(needle[k]|0x20) * lowBits
	c2 := uint64(needle[k+1]|0x20) * lowBits
	last := len(hay) - len(needle) + k // the last position the pair may start at
	match := func(start int) bool {
		return start >= k && start <= last && equalFoldASCII(hay[start-k:start-k+len(needle)], needle)
	}
	// In a word, byte j of m1 marks c1 at that byte and of m2 marks c2;
	// (m1<<8 | top byte of the previous word's m1) & m2 marks pairs by
	// their second byte.
	var carry uint64
	i := k
	for ; i+32 <= len(hay) && i <= last+1; i += 32 {
		w := hay[i : i+32 : i+32]
		a0 := binary.LittleEndian.Uint64(w[0:8]) | foldBits
		a1 := binary.LittleEndian.Uint64(w[8:16]) | foldBits
		a2 := binary.LittleEndian.Uint64(w[16:24]) | foldBits
		a3 := binary.LittleEndian.Uint64(w[24:32]) | foldBits
		m0, m1, m2, m3 := zeroBytes(a0^c1), zeroBytes(a1^c1), zeroBytes(a2^c1), zeroBytes(a3^c1)
		p0 := (m0<<8 | carry) & zeroBytes(a0^c2)
		p1 := (m1<<8 | m0>>56) & zeroBytes(a1^c2)
		p2 := (m2<<8 | m1>>56) & zeroBytes(a2^c2)
		p3 := (m3<<8 | m2>>56) & zeroBytes(a3^c2)
		carry = m3 >> 56
		if p0|p1|p2|p3 == 0 {
			continue
		}
		for wi, p := range [4]uint64{p0, p1, p2, p3} {
			for ; p != 0; p &= p - 1 {
				if match(i + 8*wi + bits.TrailingZeros64(p)/8 - 1) {
					return true
				}
			}
		}
	}
	// The tail, and a pair straddling the last block's end.
	for start := max(i-1, k); start <= last; start++ {
		if match(start) {
			return true
		}
	}
	return false
}

func equalFoldASCII(b, lower []byte) bool {
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}
