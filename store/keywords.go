package store

import (
	"encoding/binary"
	"fmt"
	"strings"

	bolt "go.etcd.io/bbolt"
)

// The keywords a mailbox has ever held, so a SELECT can announce them in
// FLAGS and PERMANENTFLAGS and a client can learn new ones before a
// FETCH shows them (RFC 3501 §7.2.6, RFC 9051 §7.3.5). Like Dovecot's
// keyword list, the set only grows while the mailbox lives: a client
// told a keyword exists is never told it vanished, and a message copied
// or restored later finds its keywords still there.
//
// Bucket mbox_keywords: acct(8) mbox(4) -> count(1), then each keyword
// (str8) in the order first seen. A mailbox without a record has none
// (every mailbox before this record existed: its keywords are learnt as
// sessions meet them, see imapd/keywords.go).

// MaxMailboxKeywords bounds the distinct keywords of one mailbox: each
// is sent in every FLAGS and PERMANENTFLAGS response of the mailbox and
// kept in every session that selects it, so a client that invents one
// per message would otherwise grow both without limit. Dovecot has no
// fixed bound; Cyrus has 128 (user flags per mailbox). Past it a STORE,
// APPEND, COPY or MOVE bringing a new keyword fails NO [LIMIT].
const MaxMailboxKeywords = 128

// ErrKeywordLimit: a new keyword would pass MaxMailboxKeywords.
var ErrKeywordLimit = fmt.Errorf("the mailbox has %d keywords, the most it may hold", MaxMailboxKeywords)

var bKeywords = []byte("mbox_keywords")

func keywordsKey(acct uint64, mbox uint32) []byte {
	return binary.BigEndian.AppendUint32(u64(acct), mbox)
}

// ownKeyword says whether abox itself sets kw at delivery; those are
// always admitted, so a full keyword list never refuses mail.
func ownKeyword(kw string) bool {
	return strings.EqualFold(kw, KeywordOfficial) || strings.EqualFold(kw, "$Junk")
}

func decodeKeywords(v []byte) ([]string, error) {
	if len(v) == 0 {
		return nil, nil
	}
	d := dec{b: v}
	n := int(d.u8())
	out := make([]string, 0, n)
	for range n {
		out = append(out, d.str8())
	}
	if d.err != nil {
		return nil, fmt.Errorf("mailbox keywords: %w", ErrCorrupt)
	}
	return out, nil
}

// addKeywords records the keywords among flags that the mailbox did not
// have yet. Keywords a message record cannot hold (over 255 bytes) are
// not recorded either.
func (t *txn) addKeywords(acct uint64, mbox uint32, flags []string) error {
	var b *bolt.Bucket
	var have []string
	loaded, added := false, false
	for _, f := range flags {
		if strings.HasPrefix(f, `\`) || f == "" || len(f) > 255 {
			continue
		}
		if !loaded {
			b = t.tx.Bucket(bKeywords)
			var err error
			if have, err = decodeKeywords(b.Get(keywordsKey(acct, mbox))); err != nil {
				return err
			}
			loaded = true
		}
		if hasFlag(have, f) {
			continue
		}
		if len(have) >= MaxMailboxKeywords && !ownKeyword(f) || len(have) >= 255 {
			return ErrKeywordLimit
		}
		have = append(have, f)
		added = true
	}
	if !added {
		return nil
	}
	e := enc{b: make([]byte, 0, 1+len(have)*12)}
	e.u8(uint8(len(have)))
	for _, k := range have {
		e.str8(k)
	}
	return t.put(bKeywords, keywordsKey(acct, mbox), e.b, 0)
}

// dropKeywords forgets a deleted mailbox's keywords.
func (t *txn) dropKeywords(acct uint64, mbox uint32) error {
	return t.tx.Bucket(bKeywords).Delete(keywordsKey(acct, mbox))
}

// Keywords returns the keywords a mailbox has held, in the order first
// seen.
func (s *Store) Keywords(acct uint64, mbox uint32) ([]string, error) {
	var out []string
	err := s.viewFor(acct, func(tx *bolt.Tx) error {
		var err error
		out, err = decodeKeywords(tx.Bucket(bKeywords).Get(keywordsKey(acct, mbox)))
		return err
	})
	return out, err
}
