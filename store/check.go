package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"

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
}

// maxProblems bounds the report on a badly damaged file.
const maxProblems = 1000

type checker struct {
	tx  *bolt.Tx
	rep *CheckReport
}

func (c *checker) problem(format string, args ...any) {
	if len(c.rep.Problems) < maxProblems {
		c.rep.Problems = append(c.rep.Problems, fmt.Sprintf(format, args...))
	}
}

// Check verifies the file page by page (bbolt's own check), then every
// derived value against what it derives from: account indexes, mailbox
// counters, usage counters, body reference counts, the time index, and
// that every body has its bytes. It runs in one read transaction, so it
// sees one consistent state while deliveries continue.
func (s *Store) Check() (CheckReport, error) {
	rep := CheckReport{Problems: []string{}}
	err := s.view(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			(&checker{rep: &rep}).problem("page check: %v", err)
		}
		c := &checker{tx: tx, rep: &rep}
		for _, name := range allBuckets {
			if tx.Bucket(name) == nil {
				c.problem("bucket %s is missing", name)
				return nil
			}
		}
		c.accounts()
		usage := c.mailboxesAndMessages()
		c.usage(usage)
		return nil
	})
	return rep, err
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
		if v := idx.Get(key); v == nil || decodeU64(v) != id {
			c.problem("account %s: address index does not point at id %d", a.Address(), id)
		}
		if state.Get(stateKey(string(a.State), id)) == nil {
			c.problem("account %s: missing from the %s state index", a.Address(), a.State)
		}
		if a.State != accounts.Purged && tx.Bucket(bUsage).Get(k) == nil {
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

// mailboxesAndMessages recounts every mailbox and body reference, and
// returns each account's usage as recounted.
func (c *checker) mailboxesAndMessages() map[uint64]*Usage {
	tx := c.tx
	usage := map[uint64]*Usage{}
	refs := map[[32]byte]uint64{}
	accountsB, names, msgs, times := tx.Bucket(bAccounts), tx.Bucket(bMboxNames), tx.Bucket(bMessages), tx.Bucket(bMsgTime)
	_ = tx.Bucket(bMailboxes).ForEach(func(k, v []byte) error {
		c.rep.Mailboxes++
		acct, id := binary.BigEndian.Uint64(k), binary.BigEndian.Uint32(k[8:])
		mb, err := decodeMailbox(id, v)
		if err != nil {
			c.problem("mailbox %d/%d: undecodable record", acct, id)
			return nil
		}
		if accountsB.Get(acctKey(acct)) == nil {
			c.problem("mailbox %d/%s: account does not exist", acct, mb.Name)
		}
		if v := names.Get(mboxNameKey(acct, mb.Name)); v == nil || binary.BigEndian.Uint32(v) != id {
			c.problem("mailbox %d/%s: name index does not point at it", acct, mb.Name)
		}
		u := usage[acct]
		if u == nil {
			u = &Usage{}
			usage[acct] = u
		}
		var n, unseen uint32
		var size int64
		prefix := mboxKey(acct, id)
		cur := msgs.Cursor()
		for mk, mv := cur.Seek(prefix); mk != nil && bytes.HasPrefix(mk, prefix); mk, mv = cur.Next() {
			c.rep.Messages++
			_, _, uid := parseMsgKey(mk)
			m, err := decodeMessage(uid, mv)
			if err != nil {
				c.problem("message %d/%s/%d: undecodable record", acct, mb.Name, uid)
				continue
			}
			n++
			size += m.Size
			if !m.Seen() {
				unseen++
			}
			if uid >= mb.UIDNext {
				c.problem("message %d/%s/%d: UID not below UIDNEXT %d", acct, mb.Name, uid, mb.UIDNext)
			}
			if m.ModSeq > mb.HighestModSeq {
				c.problem("message %d/%s/%d: modseq above the mailbox's highest", acct, mb.Name, uid)
			}
			if times.Get(msgTimeKey(m.AddedAt.Unix(), acct, id, uid)) == nil {
				c.problem("message %d/%s/%d: missing from the time index", acct, mb.Name, uid)
			}
			refs[m.Body]++
		}
		if n != mb.Messages || size != mb.Size || unseen != mb.Unseen {
			c.problem("mailbox %d/%s: counters say %d messages, %d bytes, %d unseen; found %d, %d, %d",
				acct, mb.Name, mb.Messages, mb.Size, mb.Unseen, n, size, unseen)
		}
		u.Messages += int64(n)
		u.Bytes += size
		return nil
	})
	_ = names.ForEach(func(k, v []byte) error {
		if tx.Bucket(bMailboxes).Get(mboxKey(binary.BigEndian.Uint64(k), binary.BigEndian.Uint32(v))) == nil {
			c.problem("mailbox name index: %q names a missing mailbox", k[8:])
		}
		return nil
	})
	_ = times.ForEach(func(k, _ []byte) error {
		if len(k) != 24 || msgs.Get(k[8:]) == nil {
			c.problem("time index: entry %x names a missing message", k)
		}
		return nil
	})
	blobs := tx.Bucket(bBlobs)
	_ = tx.Bucket(bBodies).ForEach(func(k, v []byte) error {
		c.rep.Bodies++
		var h [32]byte
		copy(h[:], k)
		rec, err := decodeBody(v)
		if err != nil {
			c.problem("body %x: undecodable record", k[:8])
			return nil
		}
		if rec.Refs != refs[h] {
			c.problem("body %x: reference count %d, found %d references", k[:8], rec.Refs, refs[h])
		}
		if raw := blobs.Get(k); raw == nil {
			c.problem("body %x: bytes missing", k[:8])
		} else if int64(len(raw)) != rec.Size {
			c.problem("body %x: size %d, bytes %d", k[:8], rec.Size, len(raw))
		}
		delete(refs, h)
		return nil
	})
	for h, n := range refs {
		c.problem("body %x: %d messages refer to it but it has no record", h[:8], n)
	}
	_ = blobs.ForEach(func(k, _ []byte) error {
		if tx.Bucket(bBodies).Get(k) == nil {
			c.problem("blob %x: no body record (leaked space)", k[:8])
		}
		return nil
	})
	return usage
}

func (c *checker) usage(found map[uint64]*Usage) {
	_ = c.tx.Bucket(bUsage).ForEach(func(k, v []byte) error {
		id := decodeU64(k)
		u, err := decodeUsage(v)
		if err != nil {
			c.problem("usage of account %d: undecodable record", id)
			return nil
		}
		f := found[id]
		if f == nil {
			f = &Usage{}
		}
		if u.Bytes != f.Bytes || u.Messages != f.Messages {
			c.problem("usage of account %d: counters say %d bytes, %d messages; found %d, %d", id, u.Bytes, u.Messages, f.Bytes, f.Messages)
		}
		delete(found, id)
		return nil
	})
	for id := range found {
		c.problem("account %d has mailboxes but no usage record", id)
	}
}
