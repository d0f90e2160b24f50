package imapd

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/emersion/go-imap/v2"

	"abox/store"
	"abox/store/msginfo"
)

// fetchChunk bounds how many message records one FETCH holds at a time.
const fetchChunk = 256

// bodyBatchBytes bounds the bodies one read transaction copies out for
// FETCH (one message larger than that is read alone): reading them
// together saves a transaction and the bucket lookups per message, and
// bounds what a session holds while its client reads.
const bodyBatchBytes = 256 << 10

// bodyBuffers recycles the buffers bodies are copied into for FETCH;
// buffers above maxPooledBody are left to the garbage collector.
var bodyBuffers = sync.Pool{New: func() any { b := make([]byte, 0, bodyBatchBytes); return &b }}

const maxPooledBody = 2 * bodyBatchBytes

// errVanished says a message was expunged (by another session) after the
// FETCH had resolved it: its record or body is gone.
var errVanished = errors.New("message expunged meanwhile")

// Fetch answers FETCH and UID FETCH (RFC 9051 §6.4.5). ENVELOPE and
// BODYSTRUCTURE come from the structure stored at delivery; the body is
// read only for body sections. A non-PEEK body section sets \Seen first
// (unless the mailbox was EXAMINEd), and the response then carries FLAGS.
//
// Messages expunged elsewhere, before the FETCH or while it runs (their
// record or body is gone), get no response and the others are served
// (RFC 2180 §4.1.2); their EXPUNGE follows when the numbering may change.
// A FETCH by sequence number then ends OK [EXPUNGEISSUE] (RFC 5530, as
// Dovecot does): the client asked for messages it believes exist. A UID
// FETCH ends plain OK, since a UID that no longer exists is no error (RFC
// 9051 §6.4.9), and the EXPUNGEs come right after its data.
func (s *session) Fetch(w *FetchWriter, numSet imap.NumSet, options *imap.FetchOptions) error {
	done, err := s.enter("FETCH")
	defer done()
	if err != nil {
		return err
	}
	v := s.sel
	uids, seqs, err := s.resolveChecked(numSet)
	if err != nil {
		return err
	}
	setsSeen, readsBody := false, false
	for _, sec := range options.BodySection {
		setsSeen = setsSeen || !sec.Peek
		// SPEC: only a FETCH of the body counts as reading an official
		// letter (BODY[], BODY[TEXT], RFC822, RFC822.TEXT, BINARY[] and
		// their parts), not one of header fields.
		readsBody = readsBody || !sec.Peek && (sec.Specifier == imap.PartSpecifierNone || sec.Specifier == imap.PartSpecifierText)
	}
	for _, sec := range options.BinarySection {
		setsSeen = setsSeen || !sec.Peek
		readsBody = readsBody || !sec.Peek
	}
	// Issue 15: every first retrieval of an official letter's body is
	// evidence (EXAMINE and PEEK included); only a non-PEEK fetch in a
	// read-write session is reading under 2.4.
	how := retrievalHow(options, readsBody, v.readOnly)
	setsSeen = setsSeen && !v.readOnly
	readsBody = readsBody && !v.readOnly
	vanished := 0
	for start := 0; start < len(uids); start += fetchChunk {
		end := min(start+fetchChunk, len(uids))
		msgs, err := s.srv.cfg.Store.MessagesByUID(s.acct.ID, v.mbox.ID, uids[start:end])
		if err != nil {
			return noFor(err, s.log)
		}
		// CHANGEDSINCE (RFC 7162 §3.1.4): unchanged messages are left
		// out, and left unread.
		unchanged := map[uint32]bool{}
		msgs = slices.DeleteFunc(msgs, func(m store.Message) bool {
			if m.ModSeq <= options.ChangedSince {
				unchanged[m.UID] = true
			}
			return unchanged[m.UID]
		})
		if how != "" {
			// The record and the body leave together: no record, no body.
			for i := range msgs {
				if msgs[i].Official() {
					if err := s.firstRead(msgs[i].Blob, how); err != nil {
						return noFor(err, s.log)
					}
				}
			}
		}
		seen := map[uint32]store.FlagUpdate{}
		if setsSeen {
			if seen, err = s.markSeen(msgs); err != nil {
				return noFor(err, s.log)
			}
		}
		byUID := make(map[uint32]*store.Message, len(msgs))
		structs := map[uint32][]byte{}
		for i := range msgs {
			byUID[msgs[i].UID] = &msgs[i]
		}
		if needsInfoOnly(options) || w.extra.preview && !fetchNeedsBody(options) {
			// One read for the chunk's structures, not one per message.
			ids := make([]uint64, len(msgs))
			for i := range msgs {
				ids[i] = msgs[i].Blob
			}
			raws, err := s.srv.cfg.Store.Structures(ids)
			if err != nil {
				return noFor(err, s.log)
			}
			for i := range msgs {
				structs[msgs[i].UID] = raws[i]
			}
		}
		// The messages still there, in the order asked for.
		todo := make([]fetchItem, 0, end-start)
		for i := start; i < end; i++ {
			m := byUID[uids[i]]
			if m == nil {
				if !unchanged[uids[i]] {
					vanished++ // expunged by another session
				}
				continue
			}
			up, flagsChanged := seen[m.UID]
			if flagsChanged {
				m.Flags, m.ModSeq = up.Flags, up.ModSeq
			}
			todo = append(todo, fetchItem{seq: seqs[i], m: m, flagsChanged: flagsChanged, structure: structs[m.UID]})
		}
		n, err := s.fetchItems(w, todo, options)
		vanished += n
		if err != nil {
			return err
		}
	}
	if _, bySeq := numSet.(imap.SeqSet); vanished > 0 && bySeq {
		return &imap.Error{Type: imap.StatusResponseTypeOK, Code: responseCodeExpungeIssue,
			Text: fmt.Sprintf("%d of the messages were expunged meanwhile; the others were fetched", vanished)}
	}
	return nil
}

// fetchItem is one message of a FETCH response: its record and, once
// read, its body and stored structure.
type fetchItem struct {
	seq          uint32
	m            *store.Message
	flagsChanged bool
	body         []byte
	structure    []byte
}

// fetchItems writes the items' responses and returns how many it
// skipped because their message vanished meanwhile. Bodies, when the
// items need them, are copied out of the store bodyBatchBytes at a time,
// in one read transaction each; nothing is written to the client while a
// transaction is open.
func (s *session) fetchItems(w *FetchWriter, items []fetchItem, o *imap.FetchOptions) (vanished int, err error) {
	one := func(it *fetchItem) error {
		err := s.fetchOne(w, it, o)
		if errors.Is(err, errVanished) {
			vanished++
			return nil
		}
		return err
	}
	if !fetchNeedsBody(o) {
		for i := range items {
			if err := one(&items[i]); err != nil {
				return vanished, err
			}
		}
		return vanished, nil
	}
	bp := bodyBuffers.Get().(*[]byte)
	buf := (*bp)[:0]
	defer func() {
		if cap(buf) <= maxPooledBody {
			*bp = buf[:0]
			bodyBuffers.Put(bp)
		}
	}()
	var ids []uint64
	var ends []int  // where each body, then its structure, ends in buf
	var found []int // the indexes in ids whose body was there
	for len(items) > 0 {
		n, total := 0, int64(0)
		for n < len(items) && (n == 0 || total+items[n].m.Size <= bodyBatchBytes) {
			total += items[n].m.Size
			n++
		}
		run := items[:n]
		items = items[n:]
		ids, ends, found, buf = ids[:0], ends[:0], found[:0], buf[:0]
		for _, it := range run {
			ids = append(ids, it.m.Blob)
		}
		// A body missing here went with its message (expunged since the
		// records were read): ReadBodies skips it.
		err := s.srv.cfg.Store.ReadBodies(ids, func(i int, body, structure []byte) error {
			found = append(found, i)
			buf = append(buf, body...)
			ends = append(ends, len(buf))
			buf = append(buf, structure...)
			ends = append(ends, len(buf))
			return nil
		})
		if err != nil {
			return vanished, noFor(err, s.log)
		}
		vanished += len(run) - len(found)
		at := 0
		for k, i := range found {
			run[i].body = buf[at:ends[2*k]:ends[2*k]]
			run[i].structure = buf[ends[2*k]:ends[2*k+1]:ends[2*k+1]]
			at = ends[2*k+1]
			if err := one(&run[i]); err != nil {
				return vanished, err
			}
		}
	}
	return vanished, nil
}

// markSeen adds \Seen to those messages lacking it and returns their new
// flags by UID.
func (s *session) markSeen(msgs []store.Message) (map[uint32]store.FlagUpdate, error) {
	var unseen []uint32
	for _, m := range msgs {
		if !m.Seen() {
			unseen = append(unseen, m.UID)
		}
	}
	out := map[uint32]store.FlagUpdate{}
	if len(unseen) == 0 {
		return out, nil
	}
	ctx, cancel := s.ctx()
	defer cancel()
	ups, err := s.srv.cfg.Store.SetFlags(ctx, s.acct.ID, s.sel.mbox.ID, unseen, store.FlagsAdd, []string{store.FlagSeen})
	if err != nil {
		return nil, err
	}
	// The responses carry the new flags: queued changes up to them are
	// old news once the feed is applied up to them.
	s.drain()
	for _, u := range ups {
		out[u.UID] = u
		s.sel.answered(u.UID, u.ModSeq)
	}
	return out, nil
}

// needsInfoOnly says the items need the stored structure but no body.
func needsInfoOnly(o *imap.FetchOptions) bool {
	return (o.Envelope || o.BodyStructure != nil) && !fetchNeedsBody(o)
}

// fetchNeedsBody says the items need the message's bytes.
func fetchNeedsBody(o *imap.FetchOptions) bool {
	return len(o.BodySection) > 0 || len(o.BinarySection) > 0 || len(o.BinarySectionSize) > 0
}

// fetchOne writes one message's response; it.body is set when the items
// need it (fetchNeedsBody).
func (s *session) fetchOne(w *FetchWriter, it *fetchItem, o *imap.FetchOptions) error {
	m, body := it.m, it.body
	var info *msginfo.Info
	needInfo := o.Envelope || o.BodyStructure != nil || len(o.BinarySection) > 0 || len(o.BinarySectionSize) > 0
	for _, sec := range o.BodySection {
		// Part numbers follow the stored structure; the message's own
		// sections (BODY[], HEADER, TEXT, HEADER.FIELDS) need none.
		needInfo = needInfo || len(sec.Part) > 0
	}
	if needInfo {
		raw := it.structure
		var err error
		if raw == nil {
			if raw, err = s.srv.cfg.Store.Structure(m.Blob); err != nil {
				return vanishedOr(err, s)
			}
		}
		decode := msginfo.Decode
		if !needsStructure(o) {
			decode = msginfo.DecodeOwnEnvelope // the structure is not needed
		}
		if info, err = decode(raw); err != nil {
			// Stored without (or with an unreadable) structure: compute
			// it now.
			if body == nil {
				if body, _, err = s.srv.cfg.Store.Body(m.Blob); err != nil {
					return vanishedOr(err, s)
				}
			}
			info = msginfo.Parse(body)
		}
	}
	if o.Flags || it.flagsChanged {
		s.announceKeywords(w.w, m.Flags)
	}
	r := w.CreateMessage(it.seq)
	// RFC 7162 §3.1: once CONDSTORE is on, a FETCH that set \Seen tells
	// UID and MODSEQ with the new flags.
	told := it.flagsChanged && s.condstore
	if o.UID || told {
		r.WriteUID(imap.UID(m.UID))
	}
	if o.Flags || it.flagsChanged {
		r.WriteFlags(imapFlags(s.withRecent(m.UID, m.Flags)))
	}
	if o.ModSeq || told {
		r.WriteModSeq(m.ModSeq)
	}
	if o.InternalDate {
		r.WriteInternalDate(m.InternalDate)
	}
	if o.RFC822Size {
		r.WriteRFC822Size(m.Size)
	}
	if o.Envelope {
		r.writeEnvelope(info)
	}
	if o.BodyStructure != nil {
		r.writeStructure(info)
	}
	for _, sec := range o.BodySection {
		data := literalSafe(bodySection(body, info, sec))
		if err := writeLiteral(r.WriteBodySection(sec, int64(len(data))), data); err != nil {
			return err
		}
	}
	for _, sec := range o.BinarySection {
		data, ok := binarySection(body, info, sec.Part)
		if !ok {
			r.Close()
			return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeUnknownCTE, Text: "Unknown content transfer encoding"}
		}
		data = partial(data, sec.Partial)
		if err := writeLiteral(r.WriteBinarySection(sec, int64(len(data))), data); err != nil {
			return err
		}
	}
	for _, sec := range o.BinarySectionSize {
		data, _ := binarySection(body, info, sec.Part)
		r.WriteBinarySectionSize(sec, uint32(len(data)))
	}
	if err := s.writeFetchExtras(r, it, &w.extra); err != nil {
		r.Close()
		return err
	}
	return r.Close()
}

// needsStructure says the items need the stored body structure, not
// only the envelope.
func needsStructure(o *imap.FetchOptions) bool {
	if o.BodyStructure != nil || len(o.BinarySection) > 0 || len(o.BinarySectionSize) > 0 {
		return true
	}
	for _, sec := range o.BodySection {
		if len(sec.Part) > 0 {
			return true
		}
	}
	return false
}

// vanishedOr is errVanished for a body that is gone (its message was
// expunged since its record was read), else the error's answer.
func vanishedOr(err error, s *session) error {
	if errors.Is(err, store.ErrNotFound) {
		return errVanished
	}
	return noFor(err, s.log)
}

func writeLiteral(w io.WriteCloser, data []byte) error {
	if _, err := w.Write(data); err != nil {
		w.Close()
		return err
	}
	return w.Close()
}

// firstRead records the first retrieval and the first reading of an
// official letter (SPEC "Official letters": a non-PEEK body FETCH or a
// STORE adding \Seen, by the owner, in a read-write mailbox; how says
// which, and EXAMINE or PEEK fetches are recorded as retrievals only).
// The store keeps only the first of each.
func (s *session) firstRead(blob uint64, how string) error {
	st := s.srv.cfg.Store
	if st.HasRetrievalRecord(s.acct.ID, blob, how) {
		return nil
	}
	ctx, cancel := s.ctx()
	defer cancel()
	first, err := st.RecordRetrieval(ctx, s.acct.ID, blob, s.ip.String(), how)
	if err != nil {
		s.log.Error("recording the retrieval of an official letter", "err", err, "how", how)
		return err
	}
	if first {
		s.log.Info("official letter read for the first time", "blob", blob, "how", how)
	}
	return nil
}

// retrievalHow says how a FETCH hands out a body, for the evidence log
// ("" when it fetches no body: headers or structure only).
func retrievalHow(options *imap.FetchOptions, readsBody, readOnly bool) string {
	peeks := len(options.BinarySection) > 0
	for _, sec := range options.BodySection {
		peeks = peeks || sec.Specifier == imap.PartSpecifierNone || sec.Specifier == imap.PartSpecifierText
	}
	switch {
	case !peeks:
		return ""
	case readOnly:
		return store.RetrievedExamine
	case readsBody:
		return store.RetrievedBody
	}
	return store.RetrievedPeek
}
