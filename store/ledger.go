package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The notice ledger was the first record of official letters: for each,
// when each recipient's copy was accepted, stored, first read and
// deleted, and who was refused for lack of consent, in a hash chain
// (every entry carries the SHA-256 of the one before; VerifyLedger
// recomputes it). The evidence log (evidence.go) replaced it: new events
// are written there only, and the ledger of an older database is kept,
// read by Notice beside the evidence log and verified as before, never
// written again. Entries are never deleted, not even with the account.
//
// What stays in use from here: the first-read marks (bLedgerRead), which
// decide whether a read is the first, and the official-copy records.

// Ledger entry kinds.
const (
	LedgerAccepted = "accepted" // recipient accepted at RCPT TO
	LedgerStored   = "stored"   // durably stored in the recipient's mailbox
	LedgerRefused  = "refused"  // refused: no digital-signature consent
	LedgerRead     = "read"     // first read by the owner
	LedgerDeleted  = "deleted"  // the recipient's last copy was expunged
)

// LedgerEntry is one ledger record. One entry may cover several
// recipients (all those of one delivery or broadcast batch).
type LedgerEntry struct {
	Seq        uint64    `json:"seq"`
	At         time.Time `json:"at"`
	Kind       string    `json:"kind"`
	MessageID  string    `json:"message_id"`
	Sender     string    `json:"sender"`
	Recipients []string  `json:"recipients"`
	Detail     string    `json:"detail,omitempty"` // client IP of a read, reason of a refusal
	Prev       string    `json:"prev"`             // hash of the previous entry (hex)
	Hash       string    `json:"hash"`             // SHA-256 of prev and this entry without hash
}

// entryHash is SHA-256(prev || JSON of the entry with an empty Hash).
func entryHash(e LedgerEntry) (string, error) {
	e.Hash = ""
	raw, err := json.Marshal(e)
	if err != nil {
		return "", err
	}
	prev, err := hex.DecodeString(e.Prev)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	h.Write(prev)
	h.Write(raw)
	return hex.EncodeToString(h.Sum(nil)), nil
}

// NormalizeMessageID drops surrounding angle brackets and space.
func NormalizeMessageID(id string) string {
	id = strings.TrimSpace(id)
	return strings.TrimSuffix(strings.TrimPrefix(id, "<"), ">")
}

func ledgerReadKey(sender, msgID, recipient string) []byte {
	return []byte(sender + "\x00" + msgID + "\x00" + recipient)
}

// Ledger returns every entry about a message, in order.
func (s *Store) Ledger(messageID string) ([]LedgerEntry, error) {
	msgID := NormalizeMessageID(messageID)
	var out []LedgerEntry
	err := s.view(func(tx *bolt.Tx) error {
		prefix := append([]byte(msgID), 0)
		entries := tx.Bucket(bLedger)
		c := tx.Bucket(bLedgerMsg).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) && len(k) == len(prefix)+8; k, _ = c.Next() {
			var e LedgerEntry
			if err := json.Unmarshal(entries.Get(k[len(prefix):]), &e); err != nil {
				return fmt.Errorf("ledger entry %d: %w", decodeU64(k[len(prefix):]), ErrCorrupt)
			}
			out = append(out, e)
		}
		return nil
	})
	return out, err
}

// LedgerReport is the result of VerifyLedger.
type LedgerReport struct {
	Entries  uint64 `json:"entries"`
	OK       bool   `json:"ok"`
	BrokenAt uint64 `json:"broken_at,omitempty"` // first entry that does not verify
	Problem  string `json:"problem,omitempty"`
}

// VerifyLedger recomputes the hash chain from the first entry and names
// the first entry that does not verify. It reads in bounded batches.
func (s *Store) VerifyLedger() (LedgerReport, error) {
	rep := LedgerReport{OK: true}
	prev := strings.Repeat("0", 64)
	var after uint64
	var head string
	for {
		done := false
		err := s.view(func(tx *bolt.Tx) error {
			head = string(tx.Bucket(bMeta).Get([]byte("ledger_head")))
			c := tx.Bucket(bLedger).Cursor()
			n := 0
			k, v := c.Seek(u64(after + 1))
			for ; k != nil && n < 10_000; k, v = c.Next() {
				n++
				seq := decodeU64(k)
				after = seq
				rep.Entries++
				var e LedgerEntry
				if err := json.Unmarshal(v, &e); err != nil {
					return breakAt(&rep, seq, "entry cannot be decoded")
				}
				switch {
				case e.Seq != seq:
					return breakAt(&rep, seq, fmt.Sprintf("entry says it is %d", e.Seq))
				case e.Prev != prev:
					return breakAt(&rep, seq, "its previous-hash does not match the entry before")
				}
				h, err := entryHash(e)
				if err != nil || h != e.Hash {
					return breakAt(&rep, seq, "its content does not match its hash")
				}
				prev = e.Hash
			}
			done = k == nil
			return nil
		})
		if err != nil {
			if errors.Is(err, errLedgerBroken) {
				return rep, nil
			}
			return rep, err
		}
		if done {
			break
		}
	}
	if rep.Entries > 0 && head != prev {
		rep.OK, rep.BrokenAt, rep.Problem = false, after, "the chain's recorded head does not match its last entry (entries removed at the end?)"
	}
	return rep, nil
}

var errLedgerBroken = errors.New("ledger broken")

func breakAt(rep *LedgerReport, seq uint64, why string) error {
	rep.OK, rep.BrokenAt, rep.Problem = false, seq, why
	return errLedgerBroken
}

// officialCopy tracks one account's copies of one official letter (they
// share a blob), so the ledger can say when the last one was deleted.
type officialCopy struct {
	Count     int    `json:"count"`
	MessageID string `json:"message_id"`
	Sender    string `json:"sender"`
	Recipient string `json:"recipient"`
	SHA256    string `json:"sha256,omitempty"`    // the message as stored (evidence log)
	Retrieved bool   `json:"retrieved,omitempty"` // its first retrieval is in the evidence log
}

func officialKey(acct, blob uint64) []byte {
	return binary.BigEndian.AppendUint64(u64(acct), blob)
}

func (t *txn) officialCopies(acct, blob uint64) (*officialCopy, error) {
	var oc officialCopy
	ok, err := getJSON(t.tx.Bucket(bOfficial), officialKey(acct, blob), &oc)
	if err != nil || !ok {
		return nil, err
	}
	return &oc, nil
}

// addOfficialCopy counts one more copy (delivery, COPY, MOVE target).
func (t *txn) addOfficialCopy(acct, blob uint64, tmpl *officialCopy) error {
	oc, err := t.officialCopies(acct, blob)
	if err != nil {
		return err
	}
	if oc == nil {
		if tmpl == nil {
			return nil // not a tracked letter (should not happen)
		}
		c := *tmpl
		oc = &c
	}
	oc.Count++
	raw, err := json.Marshal(oc)
	if err != nil {
		return err
	}
	return t.put(bOfficial, officialKey(acct, blob), raw, 0)
}

// dropOfficialCopy counts one copy less and records the deletion when it
// was the last.
func (t *txn) dropOfficialCopy(acct, blob uint64) error {
	oc, err := t.officialCopies(acct, blob)
	if err != nil || oc == nil {
		return err
	}
	oc.Count--
	if oc.Count > 0 {
		return putJSON(t.tx.Bucket(bOfficial), officialKey(acct, blob), oc)
	}
	if err := t.tx.Bucket(bOfficial).Delete(officialKey(acct, blob)); err != nil {
		return err
	}
	ev := EvidenceEvent{Kind: EvidenceDeleted, MessageID: oc.MessageID, Sender: oc.Sender, Recipient: oc.Recipient,
		Account: acct, MessageSHA: oc.SHA256, How: "expunged"}
	return t.appendEvidence(ev)
}

// RecordRetrieval records, in one transaction, the first retrieval of
// an official letter by its owner (any body FETCH, or a STORE adding
// \Seen: how says which) and, when how counts as reading (SPEC
// "Official letters": RetrievedBody or RetrievedSeenFlag, in a
// read-write session), its first read. Later calls change nothing. It
// reports whether the first read was recorded by this call. The caller
// must not serve the body when it fails.
func (s *Store) RecordRetrieval(ctx context.Context, acct, blob uint64, ip, how string) (bool, error) {
	first := false
	err := s.update(ctx, func(t *txn) error {
		first = false
		oc, err := t.officialCopies(acct, blob)
		if err != nil || oc == nil {
			return err
		}
		ev := EvidenceEvent{MessageID: oc.MessageID, Sender: oc.Sender, Recipient: oc.Recipient,
			Account: acct, MessageSHA: oc.SHA256, ClientIP: ip, How: how}
		if how != RetrievedSeenFlag && !oc.Retrieved {
			oc.Retrieved = true
			if err := putJSON(t.tx.Bucket(bOfficial), officialKey(acct, blob), oc); err != nil {
				return err
			}
			ev.Kind = EvidenceRetrieved
			if err := t.appendEvidence(ev); err != nil {
				return err
			}
		}
		if how != RetrievedBody && how != RetrievedSeenFlag {
			return nil
		}
		key := ledgerReadKey(oc.Sender, oc.MessageID, oc.Recipient)
		reads := t.tx.Bucket(bLedgerRead)
		if reads.Get(key) != nil {
			return nil
		}
		if err := reads.Put(key, u64(uint64(t.now.Unix()))); err != nil {
			return err
		}
		first = true
		ev.Kind = EvidenceRead
		return t.appendEvidence(ev)
	})
	return first, err
}

// RecordRead records the first read of an official letter by a body
// FETCH in a read-write session (RecordRetrieval with RetrievedBody).
func (s *Store) RecordRead(ctx context.Context, acct, blob uint64, ip string) (bool, error) {
	return s.RecordRetrieval(ctx, acct, blob, ip, RetrievedBody)
}

// HasRetrievalRecord reports whether nothing is left to record for how:
// the first retrieval (for a body fetch) and, when how counts as
// reading, the first read (cheap; lets callers skip RecordRetrieval).
func (s *Store) HasRetrievalRecord(acct, blob uint64, how string) bool {
	found := true
	_ = s.viewFor(acct, func(tx *bolt.Tx) error {
		var oc officialCopy
		ok, err := getJSON(tx.Bucket(bOfficial), officialKey(acct, blob), &oc)
		if err != nil || !ok {
			return err
		}
		if how != RetrievedSeenFlag && !oc.Retrieved {
			found = false
			return nil
		}
		if how == RetrievedBody || how == RetrievedSeenFlag {
			found = tx.Bucket(bLedgerRead).Get(ledgerReadKey(oc.Sender, oc.MessageID, oc.Recipient)) != nil
		}
		return nil
	})
	return found
}

// HasReadRecord reports whether an official letter's first read is on
// record for a recipient.
func (s *Store) HasReadRecord(acct, blob uint64) bool {
	return s.HasRetrievalRecord(acct, blob, RetrievedSeenFlag)
}

// Notice is what the ledger proves about one official letter (SPEC:
// `notice show --json` and GET /v1/notices/{message-id}).
type Notice struct {
	MessageID  string            `json:"message_id"`
	Sender     string            `json:"sender"`
	Recipients []NoticeRecipient `json:"recipients"`
}

// NoticeRecipient is one recipient's record; times are UTC or null.
type NoticeRecipient struct {
	Address     string     `json:"address"`
	AcceptedAt  *time.Time `json:"accepted_at"`
	StoredAt    *time.Time `json:"stored_at"`
	FirstReadAt *time.Time `json:"first_read_at"`
	DeletedAt   *time.Time `json:"deleted_at"`
	Refused     string     `json:"refused,omitempty"`
}

// ErrAmbiguous is returned when several senders used one Message-ID.
var ErrAmbiguous = errors.New("several senders used this Message-ID")

// Notice gathers what the evidence log (and, for letters from before
// it, the notice ledger) records about a letter, by recipient: the
// letter of sender, or, with sender "", of the only sender that used the
// Message-ID. It returns ErrNotFound when neither knows anything of it.
func (s *Store) Notice(messageID, sender string) (Notice, error) {
	type record struct {
		at                    time.Time
		kind, sender, refusal string
		recipients            []string
	}
	var all []record
	legacy, err := s.Ledger(messageID)
	if err != nil {
		return Notice{}, err
	}
	for _, e := range legacy {
		all = append(all, record{e.At, e.Kind, e.Sender, e.Detail, e.Recipients})
	}
	events, err := s.EvidenceFor(messageID, "")
	if err != nil {
		return Notice{}, err
	}
	for _, e := range events {
		ev := e.Event
		kind := ev.Kind
		switch kind {
		case EvidenceAccepted, EvidenceStored, EvidenceRead, EvidenceDeleted:
		case EvidenceRefused:
			// SPEC lists every consent refusal as "no-consent"; the
			// evidence entry keeps the precise reason.
		default:
			continue // retrieved without reading: not in the notice
		}
		all = append(all, record{ev.At, kind, ev.Sender, "no-consent", []string{ev.Recipient}})
	}
	senders := map[string]bool{}
	var mine []record
	for _, r := range all {
		senders[r.sender] = true
		if sender == "" || r.sender == sender {
			mine = append(mine, r)
		}
	}
	if len(mine) == 0 {
		return Notice{}, fmt.Errorf("message %s: %w", NormalizeMessageID(messageID), ErrNotFound)
	}
	if sender == "" && len(senders) > 1 {
		names := slices.Sorted(maps.Keys(senders))
		return Notice{}, fmt.Errorf("message %s: %w (%s): name one with --sender", NormalizeMessageID(messageID), ErrAmbiguous, strings.Join(names, ", "))
	}
	n := Notice{MessageID: NormalizeMessageID(messageID), Sender: mine[0].sender, Recipients: []NoticeRecipient{}}
	index := map[string]int{}
	for _, e := range mine {
		at := e.at.UTC()
		for _, addr := range e.recipients {
			i, ok := index[addr]
			if !ok {
				i = len(n.Recipients)
				index[addr] = i
				n.Recipients = append(n.Recipients, NoticeRecipient{Address: addr})
			}
			r := &n.Recipients[i]
			set := func(p **time.Time) {
				if *p == nil {
					t := at
					*p = &t
				}
			}
			switch e.kind {
			case LedgerAccepted:
				set(&r.AcceptedAt)
			case LedgerStored:
				set(&r.StoredAt)
			case LedgerRead:
				set(&r.FirstReadAt)
			case LedgerDeleted:
				set(&r.DeletedAt)
			case LedgerRefused:
				r.Refused = e.refusal
			}
		}
	}
	return n, nil
}
