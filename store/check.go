package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"abox/accounts"
)

// CheckReport is what Check found. A clean store has no Problems.
type CheckReport struct {
	Accounts  int      `json:"accounts"`
	Mailboxes int      `json:"mailboxes"`
	Messages  int      `json:"messages"`
	Bodies    int      `json:"bodies"`
	Problems  []string `json:"problems"`
	// Incidents are the recorded events that may have lost acknowledged
	// data (walrecover.go) and no operator has acknowledged yet; each is
	// also a problem.
	Incidents []Incident `json:"incidents"`
}

// maxProblems bounds the report on a badly damaged file.
const maxProblems = 1000

type checker struct {
	tx       *bolt.Tx
	rep      *CheckReport
	segs     *segments
	segSizes map[uint32]int64 // segment file sizes (-1: missing; -2: header damaged)
	// unreadable maps the bodies whose bytes cannot be read to why, so
	// that the messages using them are named.
	unreadable map[uint64]string
}

// segSize is a segment file's size, -1 when it cannot be read, -2 when
// its header does not say it is this database's.
func (c *checker) segSize(seg uint32) int64 {
	if n, ok := c.segSizes[seg]; ok {
		return n
	}
	n := int64(-1)
	if f, err := os.Open(filepath.Join(c.segs.dir, segmentName(seg))); err == nil {
		if fi, err := f.Stat(); err == nil {
			n = fi.Size()
		}
		if hs, _ := checkSegHeader(f, c.segs.id, seg); seg >= c.segs.headerFrom && hs != segHeaderOK {
			c.problem("segment %d: its header is damaged or names another database", seg)
			n = -2
		}
		f.Close()
	}
	c.segSizes[seg] = n
	return n
}

func (c *checker) problem(format string, args ...any) {
	if len(c.rep.Problems) < maxProblems {
		c.rep.Problems = append(c.rep.Problems, fmt.Sprintf(format, args...))
	}
}

// pageProblems runs bbolt's page check in tx.
func pageProblems(tx *bolt.Tx) []string {
	var found []string
	for err := range tx.Check() {
		found = append(found, err.Error())
	}
	return found
}

// pageCheck runs bbolt's page check where no commit can run beside it.
// The check reads the live free-page list, which a commit changes: run
// in a read transaction next to the writer it was a data race (found by
// the race detector in the test suite), which can crash the process
// (concurrent map access) or report pages a commit just took. So it runs
// as a request on the writer (deliveries wait while it runs; in a write
// transaction before its commit, the pages and the free list are those
// of the last commit). A read-only store has no writer.
func (s *Store) pageCheck() ([]string, error) {
	var found []string
	if s.opts.ReadOnly {
		err := s.viewNow(func(tx *bolt.Tx) error {
			found = pageProblems(tx)
			return nil
		})
		return found, err
	}
	err := s.update(context.Background(), func(t *txn) error {
		found = pageProblems(t.tx)
		return nil
	})
	return found, err
}

// Check verifies the file page by page (bbolt's own check), then every
// derived value against what it derives from: account indexes, mailbox
// counters, usage counters, body reference counts, the time index, and
// that every body has its bytes. The derived values are checked in one
// read transaction, so they are one consistent state while deliveries
// continue; the page check pauses the writer (pageCheck).
func (s *Store) Check() (CheckReport, error) {
	rep := CheckReport{Problems: []string{}}
	pages, err := s.pageCheck()
	if err != nil {
		return rep, err
	}
	e := s.blobs.segs.readers.enter()
	defer s.blobs.segs.readers.leave(e)
	err = s.view(func(tx *bolt.Tx) error {
		c := &checker{tx: tx, rep: &rep, segs: s.blobs.segs, segSizes: map[uint32]int64{}, unreadable: map[uint64]string{}}
		for _, name := range allBuckets {
			if tx.Bucket(name) == nil {
				c.problem("bucket %s is missing", name)
				return nil
			}
		}
		c.accounts()
		c.consentIndex()
		c.mailboxesAndMessages()
		c.checkVanished()
		c.evidenceIndexes()
		c.nameUnreadable()
		c.incidents()
		return nil
	})
	if len(pages) > 0 {
		all := make([]string, 0, len(pages)+len(rep.Problems))
		for _, p := range pages {
			all = append(all, "page check: "+p)
		}
		rep.Problems = append(all, rep.Problems...)
		if len(rep.Problems) > maxProblems {
			rep.Problems = rep.Problems[:maxProblems]
		}
	}
	return rep, err
}

// nameUnreadable names the messages whose bodies cannot be read: the
// damage costs exactly these, and the operator needs to know whose.
func (c *checker) nameUnreadable() {
	if len(c.unreadable) == 0 {
		return
	}
	tx := c.tx
	mboxNames := map[mboxID]string{}
	_ = tx.Bucket(bMboxNames).ForEach(func(k, v []byte) error {
		if len(k) >= 8 && len(v) == 4 {
			mboxNames[mboxID{decodeU64(k), binary.BigEndian.Uint32(v)}] = string(k[8:])
		}
		return nil
	})
	_ = tx.Bucket(bMail).ForEach(func(k, v []byte) error {
		if len(k) != 16 {
			return nil
		}
		acct, mbox, uid := parseMsgKey(k)
		if mbox == 0 || uid == 0 || uid == mboxRecordUID {
			return nil
		}
		m, err := decodeMessage(uid, v)
		if err != nil {
			return nil
		}
		why, bad := c.unreadable[m.Blob]
		if !bad {
			return nil
		}
		who := fmt.Sprintf("account %d", acct)
		var a accounts.Account
		if ok, _ := getJSON(tx.Bucket(bAccounts), acctKey(acct), &a); ok {
			who = a.Address()
		}
		c.problem("message %s %q UID %d cannot be read: %s", who, mboxNames[mboxID{acct, mbox}], uid, why)
		return nil
	})
}

// incidents reports the incidents not yet acknowledged.
func (c *checker) incidents() {
	c.rep.Incidents = []Incident{}
	_ = c.tx.Bucket(bIncidents).ForEach(func(k, v []byte) error {
		var inc Incident
		if err := json.Unmarshal(v, &inc); err != nil {
			c.problem("incident %d: undecodable record", decodeU64(k))
			return nil
		}
		if inc.Acknowledged != nil {
			return nil
		}
		c.rep.Incidents = append(c.rep.Incidents, inc)
		p := fmt.Sprintf("incident %d (%s, %s): %s", inc.Seq, inc.Kind, inc.At.Format(time.RFC3339), inc.Detail)
		if len(inc.Accounts) > 0 {
			p += "; accounts: " + strings.Join(inc.Accounts, ", ")
		}
		if inc.MovedTo != "" {
			p += "; the log was moved to " + inc.MovedTo
		}
		c.problem("%s", p)
		return nil
	})
}

func (c *checker) accounts() {
	tx := c.tx
	addr, purged, state, lastUse := tx.Bucket(bAcctAddr), tx.Bucket(bAcctPurged), tx.Bucket(bAcctState), tx.Bucket(bAcctLastUse)
	_ = tx.Bucket(bAccounts).ForEach(func(k, v []byte) error {
		c.rep.Accounts++
		id := decodeU64(k)
		var a accounts.Account
		if err := json.Unmarshal(v, &a); err != nil {
			c.problem("account %d: undecodable record", id)
			return nil
		}
		key := addrKey(a.Login, a.Domain)
		idx := addr
		if a.State == accounts.Purged {
			idx = purged
		} else if lastUse.Get(lastUseKey(a.LastUseAt.Unix(), id)) == nil {
			c.problem("account %s: missing from the last-use index", a.Address())
		}
		if v := idx.Get(key); (v == nil || decodeU64(v) != id) && !(a.State == accounts.Purged && !a.SealedUntil.IsZero()) {
			// (a sealed tombstone's login may have been registered again)
			c.problem("account %s: address index does not point at id %d", a.Address(), id)
		}
		if state.Get(stateKey(string(a.State), id)) == nil {
			c.problem("account %s: missing from the %s state index", a.Address(), a.State)
		}
		if a.State != accounts.Purged && tx.Bucket(bMail).Get(usageKey(id)) == nil {
			c.problem("account %s: no usage record", a.Address())
		}
		return nil
	})
	accountsB := tx.Bucket(bAccounts)
	for _, idx := range [][]byte{bAcctAddr, bAcctPurged} {
		_ = tx.Bucket(idx).ForEach(func(k, v []byte) error {
			if accountsB.Get(v) == nil {
				c.problem("index %s: %q names missing account %d", idx, k, decodeU64(v))
			}
			return nil
		})
	}
	_ = state.ForEach(func(k, _ []byte) error {
		i := bytes.IndexByte(k, 0)
		if i < 0 || len(k) != i+9 {
			c.problem("state index: malformed key %x", k)
			return nil
		}
		var a accounts.Account
		if ok, err := getJSON(accountsB, k[i+1:], &a); !ok || err != nil || string(a.State) != string(k[:i]) {
			c.problem("state index: stale entry %s for account %d", k[:i], decodeU64(k[i+1:]))
		}
		return nil
	})
	_ = lastUse.ForEach(func(k, _ []byte) error {
		var a accounts.Account
		if ok, err := getJSON(accountsB, k[8:], &a); !ok || err != nil || a.LastUseAt.Unix() != int64(decodeU64(k)) {
			c.problem("last-use index: stale entry for account %d", decodeU64(k[8:]))
		}
		return nil
	})
}

type mboxCount struct {
	messages, unseen, maxUID uint32
	size                     int64
	maxModSeq                uint64
}

type mboxID struct {
	acct uint64
	mbox uint32
}

// mailboxesAndMessages walks the mail bucket once, recounting every
// mailbox and body reference, then compares the stored counters.
func (c *checker) mailboxesAndMessages() {
	tx := c.tx
	refs := map[uint64]uint64{}
	official := map[string]int{}
	counts := map[mboxID]*mboxCount{}
	mailboxes := map[mboxID]*Mailbox{}
	usage := map[uint64]*Usage{}
	found := map[uint64]*Usage{}
	accountsB, names := tx.Bucket(bAccounts), tx.Bucket(bMboxNames)
	_ = tx.Bucket(bMail).ForEach(func(k, v []byte) error {
		if len(k) != 16 {
			c.problem("mail record with malformed key %x", k)
			return nil
		}
		acct := binary.BigEndian.Uint64(k)
		if found[acct] == nil {
			found[acct] = &Usage{}
			if accountsB.Get(acctKey(acct)) == nil {
				c.problem("account %d: mail records but no account", acct)
			}
		}
		_, mbox, uid := parseMsgKey(k)
		switch {
		case mbox == 0 && uid == 0:
			u, err := decodeUsage(v)
			if err != nil {
				c.problem("usage of account %d: undecodable record", acct)
				return nil
			}
			usage[acct] = u
		case mbox == 0:
			c.problem("mail record with malformed key %x", k)
		case uid == mboxRecordUID:
			c.rep.Mailboxes++
			id := mbox
			mb, err := decodeMailbox(id, v)
			if err != nil {
				c.problem("mailbox %d/%d: undecodable record", acct, id)
				return nil
			}
			mailboxes[mboxID{acct, id}] = mb
			if mb.Deleting {
				if c.tx.Bucket(bMboxDeleting).Get(k) == nil {
					c.problem("mailbox %d/%s: marked deleting but not queued for deletion", acct, mb.Name)
				}
			} else if v := names.Get(mboxNameKey(acct, mb.Name)); v == nil || binary.BigEndian.Uint32(v) != id {
				c.problem("mailbox %d/%s: name index does not point at it", acct, mb.Name)
			}
		case uid == 0:
			c.problem("mail record with malformed key %x", k)
		default:
			c.rep.Messages++
			m, err := decodeMessage(uid, v)
			if err != nil {
				c.problem("message %d/%d/%d: undecodable record", acct, mbox, uid)
				return nil
			}
			// A mailbox's record follows its messages: it is checked
			// once the walk reaches it.
			key := mboxID{acct, mbox}
			n := counts[key]
			if n == nil {
				n = &mboxCount{}
				counts[key] = n
			}
			n.messages++
			n.size += m.Size
			if !m.Seen() {
				n.unseen++
			}
			found[acct].Messages++
			found[acct].Bytes += m.Size
			if m.Official() {
				official[string(officialKey(acct, m.Blob))]++
			}
			n.maxUID = max(n.maxUID, uid)
			n.maxModSeq = max(n.maxModSeq, m.ModSeq)
			refs[m.Blob]++
		}
		return nil
	})
	for key, mb := range mailboxes {
		n := counts[key]
		if n == nil {
			n = &mboxCount{}
		}
		if n.maxUID >= mb.UIDNext {
			c.problem("mailbox %d/%s: UID %d not below UIDNEXT %d", key.acct, mb.Name, n.maxUID, mb.UIDNext)
		}
		if n.maxModSeq > mb.HighestModSeq {
			c.problem("mailbox %d/%s: a message's modseq %d is above the mailbox's %d", key.acct, mb.Name, n.maxModSeq, mb.HighestModSeq)
		}
		delete(counts, key)
		if n.messages != mb.Messages || n.size != mb.Size || n.unseen != mb.Unseen {
			c.problem("mailbox %d/%s: counters say %d messages, %d bytes, %d unseen; found %d, %d, %d",
				key.acct, mb.Name, mb.Messages, mb.Size, mb.Unseen, n.messages, n.size, n.unseen)
		}
	}
	for key, n := range counts {
		c.problem("mailbox %d/%d: %d messages but no mailbox record", key.acct, key.mbox, n.messages)
	}
	for acct, f := range found {
		u := usage[acct]
		if u == nil {
			c.problem("account %d: no usage record", acct)
			continue
		}
		if u.Bytes != f.Bytes || u.Messages != f.Messages {
			c.problem("usage of account %d: counters say %d bytes, %d messages; found %d, %d", acct, u.Bytes, u.Messages, f.Bytes, f.Messages)
		}
	}
	_ = names.ForEach(func(k, v []byte) error {
		if mailboxes[mboxID{binary.BigEndian.Uint64(k), binary.BigEndian.Uint32(v)}] == nil {
			c.problem("mailbox name index: %q names a missing mailbox", k[8:])
		}
		return nil
	})
	_ = tx.Bucket(bOfficial).ForEach(func(k, v []byte) error {
		var oc officialCopy
		if err := json.Unmarshal(v, &oc); err != nil || oc.Count != official[string(k)] {
			c.problem("official letter copies of account %d: recorded %d, found %d", decodeU64(k), oc.Count, official[string(k)])
		}
		delete(official, string(k))
		return nil
	})
	for k, n := range official {
		c.problem("account %d has %d official copies that are not tracked", decodeU64([]byte(k)), n)
	}
	_ = tx.Bucket(bBroadcasts).ForEach(func(k, v []byte) error {
		var b Broadcast
		if err := json.Unmarshal(v, &b); err != nil {
			c.problem("broadcast %d: undecodable record", decodeU64(k))
		} else if !b.Done {
			refs[b.Blob]++ // a running broadcast holds its body
		}
		return nil
	})
	c.queue(tx, refs)
	c.bodies(refs)
}

// queue counts the outbound queue's body references and checks its
// indexes: every entry not held is in the due index once, every lease
// names a leased entry, and the entry count is right.
func (c *checker) queue(tx *bolt.Tx, refs map[uint64]uint64) {
	due := map[uint64]int{}
	_ = tx.Bucket(bQueueDue).ForEach(func(k, _ []byte) error {
		if len(k) < 16 {
			c.problem("queue due index: malformed key %x", k)
			return nil
		}
		due[binary.BigEndian.Uint64(k[8:16])]++
		return nil
	})
	n := int64(0)
	_ = tx.Bucket(bQueue).ForEach(func(k, v []byte) error {
		n++
		var e QueueEntry
		if err := json.Unmarshal(v, &e); err != nil {
			c.problem("queue entry %d: undecodable record", decodeU64(k))
			return nil
		}
		refs[e.Blob]++
		want := 1
		if e.Held {
			want = 0
		}
		if due[e.ID] != want {
			c.problem("queue entry %d: %d due index entries, want %d", e.ID, due[e.ID], want)
		}
		delete(due, e.ID)
		if leased := tx.Bucket(bQueueLease).Get(k) != nil; leased != e.Leased {
			c.problem("queue entry %d: leased %v but lease index %v", e.ID, e.Leased, leased)
		}
		return nil
	})
	for id := range due {
		c.problem("queue due index names missing entry %d", id)
	}
	size := int64(0)
	if v := tx.Bucket(bMeta).Get(metaQueueSize); len(v) == 8 {
		size = int64(decodeU64(v))
	}
	if size != n {
		c.problem("queue: size says %d entries, found %d", size, n)
	}
	_ = tx.Bucket(bQueueFree).ForEach(func(k, _ []byte) error {
		if len(k) == 16 {
			refs[decodeU64(k)]++
		}
		return nil
	})
}

// bodies compares reference counts with the references found, and checks
// that every body has its bytes and hash index entry and nothing else is
// left over.
func (c *checker) bodies(refs map[uint64]uint64) {
	tx := c.tx
	blobs, hashes, locs := tx.Bucket(bBlobs), tx.Bucket(bBodyHash), tx.Bucket(bBlobLocs)
	inSegments := map[uint32]segStats{}
	_ = tx.Bucket(bBodies).ForEach(func(k, v []byte) error {
		c.rep.Bodies++
		id := decodeU64(k)
		rec, err := decodeBody(v)
		if err != nil {
			c.problem("body %d: undecodable record", id)
			return nil
		}
		if rec.Refs != refs[id] {
			c.problem("body %d: reference count %d, found %d references", id, rec.Refs, refs[id])
		}
		raw, rawLoc := blobs.Get(k), locs.Get(k)
		switch {
		case raw != nil && rawLoc != nil:
			c.problem("body %d: bytes both in the database and in a segment", id)
		case raw != nil:
			if int64(len(raw)) != rec.Size {
				c.problem("body %d: size %d, bytes %d", id, rec.Size, len(raw))
			}
		case rawLoc != nil:
			loc, ok := decodeLoc(rawLoc)
			if !ok {
				c.problem("body %d: undecodable segment location", id)
				break
			}
			if loc.size != rec.Size {
				c.problem("body %d: size %d, %d bytes in segment %d", id, rec.Size, loc.size, loc.seg)
			}
			if n := c.segSize(loc.seg); n == -1 {
				c.problem("body %d: segment %d is missing", id, loc.seg)
				c.unreadable[id] = fmt.Sprintf("segment %d is missing", loc.seg)
			} else if n == -2 {
				c.unreadable[id] = fmt.Sprintf("segment %d's header is damaged", loc.seg)
			} else if loc.off+loc.size > n {
				c.problem("body %d: bytes %d+%d past the end of segment %d (%d bytes)", id, loc.off, loc.size, loc.seg, n)
				c.unreadable[id] = fmt.Sprintf("segment %d ends at %d, before %d+%d", loc.seg, n, loc.off, loc.size)
			}
			if tx.Bucket(bSegBlobs).Get(segBlobKey(loc.seg, id)) == nil {
				c.problem("body %d: not in segment %d's index", id, loc.seg)
			}
			st := inSegments[loc.seg]
			st.bodies++
			st.bytes += loc.size
			inSegments[loc.seg] = st
		default:
			c.problem("body %d: bytes missing", id)
		}
		delete(refs, id)
		return nil
	})
	for id, n := range refs {
		c.problem("body %d: %d messages refer to it but it has no record", id, n)
	}
	bodies := tx.Bucket(bBodies)
	_ = blobs.ForEach(func(k, _ []byte) error {
		if bodies.Get(k) == nil {
			c.problem("blob %d: no body record (leaked space)", decodeU64(k))
		}
		return nil
	})
	_ = locs.ForEach(func(k, _ []byte) error {
		if bodies.Get(k) == nil {
			c.problem("blob %d: segment bytes without a body record (leaked space)", decodeU64(k))
		}
		return nil
	})
	_ = tx.Bucket(bSegments).ForEach(func(k, v []byte) error {
		if len(k) != 4 {
			c.problem("segments: bad key %x", k)
			return nil
		}
		seg := binary.BigEndian.Uint32(k)
		if got, want := decodeSegStats(v), inSegments[seg]; got != want {
			c.problem("segment %d: counted %d bodies of %d bytes, found %d of %d", seg, got.bodies, got.bytes, want.bodies, want.bytes)
		}
		delete(inSegments, seg)
		return nil
	})
	for seg, st := range inSegments {
		c.problem("segment %d: %d bodies of %d bytes are not counted", seg, st.bodies, st.bytes)
	}
	_ = tx.Bucket(bSegBlobs).ForEach(func(k, _ []byte) error {
		if len(k) != 12 {
			c.problem("segment index: bad key %x", k)
			return nil
		}
		seg, id := binary.BigEndian.Uint32(k), decodeU64(k[4:])
		if loc, ok := decodeLoc(locs.Get(k[4:])); !ok || loc.seg != seg {
			c.problem("segment index: body %d listed in segment %d but not there", id, seg)
		}
		return nil
	})
	_ = hashes.ForEach(func(k, v []byte) error {
		raw := bodies.Get(v)
		if raw == nil {
			c.problem("hash index: %x names missing body %d", k[:8], decodeU64(v))
			return nil
		}
		if rec, err := decodeBody(raw); err == nil && !bytes.Equal(rec.Hash[:], k) {
			c.problem("hash index: %x names body %d whose hash is %x", k[:8], decodeU64(v), rec.Hash[:8])
		}
		return nil
	})
}
