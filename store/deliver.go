package store

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"time"

	"abox/accounts"
)

// Delivery is one message for one or more mailboxes. The body is stored
// once whatever the number of recipients.
type Delivery struct {
	// Body is the message exactly as it will be served (trace headers the
	// caller adds included).
	Body []byte
	// Structure is the precomputed envelope and body structure, stored
	// beside the body; opaque to the store.
	Structure    []byte
	InternalDate time.Time
	Recipients   []Recipient
	// Shareable marks a body that may arrive again byte for byte (IMAP
	// APPEND, import, broadcast): it is entered in the hash index so the
	// next copy shares it. Bodies received over SMTP carry a Received
	// header unique to their transaction and can never match another, so
	// indexing them would cost a scattered page write per delivery for
	// nothing (measured in docs/BENCHMARKS.md), and hashing them a tenth
	// of a 64 KiB delivery's CPU: only a shareable body is hashed (its
	// record keeps the SHA-256; other records keep zeros).
	Shareable bool
	// Official, when set, makes this an official letter: every stored
	// copy gets $Official and the evidence log records the delivery.
	Official *OfficialLetter
	// Sender, when set, is the submitting account whose daily sent
	// counter grows by one per stored copy; over its limit the whole
	// delivery fails with ErrDailyLimit.
	Sender *SenderCount
	// Queue are outbound queue entries (recipients on other domains)
	// written with the delivery; the store fills in their ids, body and
	// times. Each holds a body reference, and their recipients count
	// against Sender's daily limit like stored copies.
	Queue []*QueueEntry
	// AllOrNothing makes any recipient's failure fail the whole delivery
	// (nothing is stored). Otherwise failed recipients are skipped and
	// reported in their Delivered.Err.
	AllOrNothing bool
}

// Recipient says where a delivery goes and which limits to enforce. The
// limits come from policy; the store checks them in the same transaction
// as the write, so concurrent deliveries cannot overshoot them.
type Recipient struct {
	Account uint64
	// SpecialUse, when set, names the target by its attribute (`\Junk`);
	// otherwise Mailbox names it, "" meaning INBOX.
	SpecialUse string
	Mailbox    string
	Flags      []string
	// MaxBytes and MaxMessages are the account's storage and message
	// quotas (0 = unlimited); MaxReceivedPerDay the daily receive limit.
	MaxBytes          int64
	MaxMessages       int64
	MaxReceivedPerDay int64
	// NotReceived leaves the daily received counter alone (IMAP APPEND,
	// import: the subscriber's own copies).
	NotReceived bool
	// AccountVersion, when not 0, is the account's Version the limits
	// above were computed from: if the record has changed since, the
	// recipient fails with ErrAccountChanged (a store that reports no
	// versions never gets one).
	AccountVersion uint64
}

// OfficialLetter describes an official letter for the evidence log.
// Addresses is parallel to Delivery.Recipients.
type OfficialLetter struct {
	MessageID  string
	Sender     string // the trusted sender's NAME
	Addresses  []string
	AcceptedAt time.Time
	Refused    []string // refused at RCPT for lack of consent
	Reason     string   // why they were refused ("no-consent")
	// RefusedReasons, parallel to Refused, is each refusal's code in the
	// evidence log (consent-expired, consent-revoked, ...); "" or absent
	// means Reason.
	RefusedReasons []string
	// ClientIP and TLS describe the submitting connection for the
	// evidence log (TLS: version and cipher, or "none").
	ClientIP string
	TLS      string
	// MessageSHA is the hex SHA-256 of the message as stored; Deliver
	// fills it in.
	MessageSHA string
}

// SenderCount names the account a submission counts against.
type SenderCount struct {
	Account       uint64
	MaxSentPerDay int64 // 0 = unlimited
}

// Delivered reports one recipient's outcome.
type Delivered struct {
	Account     uint64
	Mailbox     uint32
	UIDValidity uint32
	UID         uint32
	Err         error
}

// ErrDailyLimit is returned when a recipient's daily receive counter is
// at its limit.
var ErrDailyLimit = errors.New("daily message limit reached")

// DayNumber is the UTC day (days since the Unix epoch) that daily
// counters belong to.
func DayNumber(t time.Time) int32 { return int32(t.UTC().Unix() / 86400) }

// Deliver stores d and returns when it is durable. With AllOrNothing, an
// error for any recipient fails the call; otherwise the call fails only
// when nothing could be written at all, and per-recipient errors are in
// the result.
func (s *Store) Deliver(ctx context.Context, d *Delivery) ([]Delivered, error) {
	var hash [32]byte
	if d.Shareable {
		hash = sha256.Sum256(d.Body)
	}
	if d.InternalDate.IsZero() {
		d.InternalDate = s.clock()
	}
	var out []Delivered
	if d.Official != nil {
		sum := hash
		if !d.Shareable {
			sum = sha256.Sum256(d.Body)
		}
		d.Official.MessageSHA = hexSum(sum)
		for i := range d.Recipients {
			d.Recipients[i].Flags = append(slices.Clone(d.Recipients[i].Flags), KeywordOfficial)
		}
	}
	// A delivery writes through txn.put and txn.nextSequence only, so it
	// is acknowledged from the write-ahead log: an official letter's
	// evidence entries and tree nodes are in the same synced record as
	// its message.
	err := s.updateLogged(ctx, func(t *txn) error {
		out = make([]Delivered, len(d.Recipients))
		blob, known, err := t.blobFor(hash, d.Shareable)
		if err != nil {
			return err
		}
		stored := 0
		for i, r := range d.Recipients {
			res, err := t.deliverOne(&r, blob, int64(len(d.Body)), d.InternalDate)
			res.Account = r.Account
			res.Err = err
			out[i] = res
			if err != nil {
				if d.AllOrNothing {
					return fmt.Errorf("recipient %d: %w", r.Account, err)
				}
				continue
			}
			stored++
		}
		remote := 0
		for _, e := range d.Queue {
			remote += len(e.Recipients)
		}
		if stored == 0 && remote == 0 {
			return nil
		}
		if d.Sender != nil {
			if err := t.countSent(d.Sender, int64(stored+remote)); err != nil {
				return err
			}
		}
		if len(d.Queue) > 0 {
			if err := t.enqueue(d.Queue, blob, int64(len(d.Body))); err != nil {
				return err
			}
		}
		if d.Official != nil {
			if err := t.recordOfficial(d.Official, out, blob); err != nil {
				return err
			}
		}
		return t.addBodyRefs(blob, known, d.Shareable, hash, d.Body, d.Structure, uint64(stored+len(d.Queue)))
	})
	if err == nil && len(out) > 0 {
		err = out[0].Err
		for _, r := range out {
			if r.Err == nil {
				return out, nil
			}
		}
	}
	return out, err
}

// deliverOne writes one recipient's message record and counters. It
// writes nothing when it returns an error.
func (t *txn) deliverOne(r *Recipient, blob uint64, size int64, internal time.Time) (Delivered, error) {
	acct, err := t.getAccount(r.Account)
	if err != nil {
		return Delivered{}, err
	}
	if acct.State != accounts.Active {
		return Delivered{}, fmt.Errorf("%s is %s: %w", acct.Address(), acct.State, ErrUnavailable)
	}
	u, err := t.getUsage(r.Account)
	if err != nil {
		return Delivered{}, err
	}
	if r.MaxBytes > 0 && u.Bytes+size > r.MaxBytes || r.MaxMessages > 0 && u.Messages+1 > r.MaxMessages {
		return Delivered{}, fmt.Errorf("%s: %w", acct.Address(), ErrOverQuota)
	}
	today := DayNumber(t.now)
	if u.Day != today {
		u.Day, u.Received, u.Sent = today, 0, 0
	}
	if !r.NotReceived {
		if r.MaxReceivedPerDay > 0 && u.Received+1 > r.MaxReceivedPerDay {
			return Delivered{}, fmt.Errorf("%s: %w", acct.Address(), ErrDailyLimit)
		}
		u.Received++
	}
	var mb *Mailbox
	if r.SpecialUse != "" {
		mb, err = mailboxBySpecialUse(t.tx, r.Account, r.SpecialUse)
	} else {
		name := r.Mailbox
		if name == "" {
			name = "INBOX"
		}
		var id uint32
		if id, err = mailboxIDByName(t.tx, r.Account, name); err == nil {
			mb, err = t.getMailbox(r.Account, id)
		}
	}
	if err != nil {
		return Delivered{}, err
	}
	m := &Message{
		Flags: normalizeFlags(r.Flags), InternalDate: internal, AddedAt: t.now,
		Size: size, Blob: blob,
	}
	if err := t.insertMessage(r.Account, mb, m, u); err != nil {
		return Delivered{}, err
	}
	return Delivered{Mailbox: mb.ID, UIDValidity: mb.UIDValidity, UID: m.UID}, nil
}

// recordOfficial writes the evidence entries of an official letter's
// delivery (accepted and stored for each recipient stored, refused for
// each refused) and starts tracking each stored copy, in the delivery's
// own transaction.
func (t *txn) recordOfficial(o *OfficialLetter, res []Delivered, blob uint64) error {
	if o.MessageSHA == "" {
		if v := t.tx.Bucket(bBodies).Get(u64(blob)); v != nil {
			if rec, err := decodeBody(v); err == nil {
				o.MessageSHA = hexSum(rec.Hash)
			}
		}
	}
	w := t.evidenceWriter()
	for i, r := range res {
		if r.Err != nil || i >= len(o.Addresses) {
			continue
		}
		if err := t.addOfficialCopy(r.Account, blob, &officialCopy{MessageID: NormalizeMessageID(o.MessageID), Sender: o.Sender, Recipient: o.Addresses[i], SHA256: o.MessageSHA}); err != nil {
			return err
		}
		if t.s != nil && t.s.benchNoEvidence {
			continue
		}
		ev := EvidenceEvent{At: o.AcceptedAt, Kind: EvidenceAccepted, MessageID: o.MessageID, Sender: o.Sender,
			Recipient: o.Addresses[i], Account: r.Account, MessageSHA: o.MessageSHA, ClientIP: o.ClientIP, TLS: o.TLS,
			ConsentSHA: t.consentSHA(r.Account)}
		if err := w.addLooked(ev); err != nil {
			return err
		}
		ev.At, ev.Kind, ev.ClientIP, ev.TLS = time.Time{}, EvidenceStored, "", ""
		if err := w.addLooked(ev); err != nil {
			return err
		}
	}
	if err := t.addRefused(w, o); err != nil {
		return err
	}
	return w.close()
}

// countSent adds n to an account's daily sent counter, failing when that
// passes its limit.
func (t *txn) countSent(sc *SenderCount, n int64) error {
	u, err := t.getUsage(sc.Account)
	if err != nil {
		return err
	}
	if today := DayNumber(t.now); u.Day != today {
		u.Day, u.Received, u.Sent = today, 0, 0
	}
	if sc.MaxSentPerDay > 0 && u.Sent+n > sc.MaxSentPerDay {
		return fmt.Errorf("the sender has sent its %d messages for today: %w", sc.MaxSentPerDay, ErrDailyLimit)
	}
	u.Sent += n
	return t.putUsage(sc.Account, u)
}

// insertMessage gives m the mailbox's next UID and writes it with its
// index entry, the mailbox counters and the account usage u. The caller
// adds the body reference.
func (t *txn) insertMessage(acct uint64, mb *Mailbox, m *Message, u *Usage) error {
	if mb.UIDNext >= mboxRecordUID {
		return fmt.Errorf("mailbox %s has used every UID: %w", mb.Name, ErrMailboxFull)
	}
	if err := t.addKeywords(acct, mb.ID, m.Flags); err != nil {
		return err
	}
	m.UID = mb.UIDNext
	mb.UIDNext++
	mb.HighestModSeq++
	m.ModSeq = mb.HighestModSeq
	mb.Messages++
	mb.Size += m.Size
	if !m.Seen() {
		mb.Unseen++
	}
	u.Bytes += m.Size
	u.Messages++
	if err := t.put(bMail, msgKey(acct, mb.ID, m.UID), encodeMessage(m), 0); err != nil {
		return err
	}
	if err := t.putMailbox(acct, mb); err != nil {
		return err
	}
	if err := t.putUsage(acct, u); err != nil {
		return err
	}
	t.notify(Change{Kind: MessageAdded, Account: acct, Mailbox: mb.ID, UID: m.UID, Flags: m.Flags, ModSeq: m.ModSeq})
	return nil
}

func (t *txn) getUsage(acct uint64) (*Usage, error) {
	v := t.tx.Bucket(bMail).Get(usageKey(acct))
	if v == nil {
		return nil, fmt.Errorf("usage of account %d: %w", acct, ErrNoAccount)
	}
	return decodeUsage(v)
}

func (t *txn) putUsage(acct uint64, u *Usage) error {
	return t.put(bMail, usageKey(acct), encodeUsage(u), 0)
}

// appendFill packs pages of buckets whose keys only grow (bbolt's default
// of 50% suits random inserts).
const appendFill = 0.95

// blobFor returns the blob id of a body with this hash: the stored one
// when the body is known (shareable bodies only), or a fresh id.
func (t *txn) blobFor(hash [32]byte, shareable bool) (id uint64, known bool, err error) {
	if shareable {
		if v := t.tx.Bucket(bBodyHash).Get(hash[:]); v != nil {
			return decodeU64(v), true, nil
		}
	}
	id, err = t.nextSequence(bBodies)
	return id, false, err
}

// addBodyRefs counts n more references to a body, storing its bytes and
// record (and, when index is set, its hash index entry) the first time.
func (t *txn) addBodyRefs(id uint64, known, index bool, hash [32]byte, body, structure []byte, n uint64) error {
	rec := &bodyRecord{Size: int64(len(body)), Hash: hash, Structure: structure}
	if known {
		v := t.tx.Bucket(bBodies).Get(u64(id))
		if v == nil {
			return fmt.Errorf("body %d is indexed but has no record: %w", id, ErrCorrupt)
		}
		old, err := decodeBody(v)
		if err != nil {
			return err
		}
		rec = old
	} else {
		if err := t.s.blobs.put(t, id, body); err != nil {
			return err
		}
		if index {
			if err := t.put(bBodyHash, hash[:], u64(id), 0); err != nil {
				return err
			}
		}
	}
	rec.Refs += n
	return t.put(bBodies, u64(id), encodeBody(rec), appendFill)
}

// dropBodyRef releases one reference, deleting the body with its last.
func (t *txn) dropBodyRef(id uint64) error {
	b := t.tx.Bucket(bBodies)
	v := b.Get(u64(id))
	if v == nil {
		return fmt.Errorf("body %d has no record: %w", id, ErrCorrupt)
	}
	rec, err := decodeBody(v)
	if err != nil {
		return err
	}
	if rec.Refs <= 1 {
		if err := t.s.blobs.del(t, id); err != nil {
			return err
		}
		hashes := t.tx.Bucket(bBodyHash)
		if v := hashes.Get(rec.Hash[:]); v != nil && decodeU64(v) == id {
			if err := hashes.Delete(rec.Hash[:]); err != nil {
				return err
			}
		}
		return b.Delete(u64(id))
	}
	rec.Refs--
	return b.Put(u64(id), encodeBody(rec))
}
