package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"
)

// Records hot on the delivery and FETCH paths (messages, mailboxes,
// usage, bodies) use a compact binary layout with a leading version byte;
// the rest is JSON.

var errShortRecord = errors.New("truncated record")

type enc struct{ b []byte }

func (e *enc) u8(v uint8)   { e.b = append(e.b, v) }
func (e *enc) u16(v uint16) { e.b = binary.BigEndian.AppendUint16(e.b, v) }
func (e *enc) u32(v uint32) { e.b = binary.BigEndian.AppendUint32(e.b, v) }
func (e *enc) u64(v uint64) { e.b = binary.BigEndian.AppendUint64(e.b, v) }
func (e *enc) i64(v int64)  { e.u64(uint64(v)) }
func (e *enc) str8(s string) {
	e.u8(uint8(len(s)))
	e.b = append(e.b, s[:uint8(len(s))]...)
}
func (e *enc) str16(s string) {
	e.u16(uint16(len(s)))
	e.b = append(e.b, s[:uint16(len(s))]...)
}

type dec struct {
	b   []byte
	err error
}

func (d *dec) take(n int) []byte {
	if d.err != nil || len(d.b) < n {
		d.err = errShortRecord
		return make([]byte, n)
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}
func (d *dec) u8() uint8     { return d.take(1)[0] }
func (d *dec) u16() uint16   { return binary.BigEndian.Uint16(d.take(2)) }
func (d *dec) u32() uint32   { return binary.BigEndian.Uint32(d.take(4)) }
func (d *dec) u64() uint64   { return binary.BigEndian.Uint64(d.take(8)) }
func (d *dec) i64() int64    { return int64(d.u64()) }
func (d *dec) str8() string  { return string(d.take(int(d.u8()))) }
func (d *dec) str16() string { return string(d.take(int(d.u16()))) }

// System flags (RFC 9051 §2.3.2) are kept as bits; keywords as strings.
const (
	FlagSeen     = `\Seen`
	FlagAnswered = `\Answered`
	FlagFlagged  = `\Flagged`
	FlagDeleted  = `\Deleted`
	FlagDraft    = `\Draft`
)

var systemFlags = []string{FlagSeen, FlagAnswered, FlagFlagged, FlagDeleted, FlagDraft}

const (
	bitSeen uint16 = 1 << iota
	bitAnswered
	bitFlagged
	bitDeleted
	bitDraft
	// bitOfficial marks an official letter; it shows as the keyword
	// $Official and no client can set or clear it.
	bitOfficial
)

// KeywordOfficial is the keyword of official letters (SPEC "IMAP").
const KeywordOfficial = "$Official"

// Message is one message in one mailbox.
type Message struct {
	UID          uint32
	Flags        []string // system flags first, then keywords
	InternalDate time.Time
	AddedAt      time.Time // when it entered this mailbox (retention clock)
	Size         int64
	Blob         uint64 // the stored body (see Store.Body)
	ModSeq       uint64
}

// Seen reports whether \Seen is set.
func (m *Message) Seen() bool { return hasFlag(m.Flags, FlagSeen) }

// Official reports whether the message is an official letter.
func (m *Message) Official() bool { return hasFlag(m.Flags, KeywordOfficial) }

func hasFlag(flags []string, f string) bool {
	for _, x := range flags {
		if strings.EqualFold(x, f) {
			return true
		}
	}
	return false
}

// canonicalFlag returns the canonical spelling of a system flag and
// whether f is one; keywords are returned unchanged.
func canonicalFlag(f string) (string, uint16, bool) {
	for i, s := range systemFlags {
		if strings.EqualFold(f, s) {
			return s, 1 << i, true
		}
	}
	return f, 0, false
}

// normalizeFlags dedupes flags case-insensitively, canonicalises system
// flags and drops \Recent (a session-only flag in IMAP4rev1).
func normalizeFlags(in []string) []string {
	out := make([]string, 0, len(in))
	for _, f := range in {
		if f == "" || strings.EqualFold(f, `\Recent`) || hasFlag(out, f) {
			continue
		}
		c, _, _ := canonicalFlag(f)
		out = append(out, c)
	}
	return out
}

const msgRecordV1 = 1

func encodeMessage(m *Message) []byte {
	e := enc{b: make([]byte, 0, 48)}
	e.u8(msgRecordV1)
	var bits uint16
	var kws []string
	for _, f := range m.Flags {
		if _, bit, ok := canonicalFlag(f); ok {
			bits |= bit
		} else if strings.EqualFold(f, KeywordOfficial) {
			bits |= bitOfficial
		} else if len(f) <= 255 {
			kws = append(kws, f)
		}
	}
	e.u16(bits)
	_, off := m.InternalDate.Zone()
	e.i64(m.InternalDate.Unix())
	e.u16(uint16(int16(off / 60)))
	e.i64(m.AddedAt.Unix())
	e.u64(uint64(m.Size))
	e.u64(m.Blob)
	e.u64(m.ModSeq)
	e.u8(uint8(min(len(kws), 255)))
	for _, k := range kws[:min(len(kws), 255)] {
		e.str8(k)
	}
	return e.b
}

func decodeMessage(uid uint32, v []byte) (*Message, error) {
	m := &Message{}
	if err := decodeMessageInto(m, uid, v); err != nil {
		return nil, err
	}
	return m, nil
}

// decodeMessageInto decodes into m, for callers that decode many into a
// slice.
func decodeMessageInto(m *Message, uid uint32, v []byte) error {
	d := dec{b: v}
	if ver := d.u8(); d.err == nil && ver != msgRecordV1 {
		return fmt.Errorf("message record version %d: %w", ver, ErrCorrupt)
	}
	*m = Message{UID: uid}
	bits := d.u16()
	for i, s := range systemFlags {
		if bits&(1<<i) != 0 {
			m.Flags = append(m.Flags, s)
		}
	}
	secs := d.i64()
	m.InternalDate = time.Unix(secs, 0).In(fixedZone(int(int16(d.u16()))))
	m.AddedAt = time.Unix(d.i64(), 0).UTC()
	m.Size = int64(d.u64())
	m.Blob = d.u64()
	m.ModSeq = d.u64()
	if bits&bitOfficial != 0 {
		m.Flags = append(m.Flags, KeywordOfficial)
	}
	n := int(d.u8())
	for range n {
		m.Flags = append(m.Flags, d.str8())
	}
	if d.err != nil {
		return fmt.Errorf("message record: %w", ErrCorrupt)
	}
	return nil
}

// zones memoises the fixed zones of stored dates, by offset in minutes
// (within ±14 hours): time.FixedZone allocates, and every message record
// decoded (FETCH, SEARCH: thousands a command) carries one.
var zones [2*14*60 + 1]atomic.Pointer[time.Location]

func fixedZone(offMin int) *time.Location {
	i := offMin + 14*60
	if i < 0 || i >= len(zones) {
		return time.FixedZone("", offMin*60)
	}
	if z := zones[i].Load(); z != nil {
		return z
	}
	z := time.FixedZone("", offMin*60)
	zones[i].Store(z)
	return z
}

// Mailbox is one folder of an account.
type Mailbox struct {
	ID            uint32
	Name          string
	SpecialUse    string // `\Sent`, `\Trash`, ... or ""
	UIDValidity   uint32
	UIDNext       uint32
	Messages      uint32
	Size          int64
	Unseen        uint32
	HighestModSeq uint64
	Subscribed    bool
	Deleting      bool // being deleted: hidden, its messages going in batches
	CreatedAt     time.Time
	// RecentUID is the highest UID a read-write session has claimed as
	// \Recent (recent.go); every message above it is still to claim.
	RecentUID uint32
}

const mboxRecordV1 = 1

func encodeMailbox(mb *Mailbox) []byte {
	e := enc{b: make([]byte, 0, 64+len(mb.Name))}
	e.u8(mboxRecordV1)
	e.u32(mb.UIDValidity)
	e.u32(mb.UIDNext)
	e.u32(mb.Messages)
	e.i64(mb.Size)
	e.u32(mb.Unseen)
	e.u64(mb.HighestModSeq)
	var fl uint8
	if mb.Subscribed {
		fl |= 1
	}
	if mb.Deleting {
		fl |= 2
	}
	e.u8(fl)
	e.i64(mb.CreatedAt.Unix())
	e.str8(mb.SpecialUse)
	e.str16(mb.Name)
	e.u32(mb.RecentUID) // after the name: older records end before it
	return e.b
}

func decodeMailbox(id uint32, v []byte) (*Mailbox, error) {
	d := dec{b: v}
	if ver := d.u8(); d.err == nil && ver != mboxRecordV1 {
		return nil, fmt.Errorf("mailbox record version %d: %w", ver, ErrCorrupt)
	}
	mb := &Mailbox{ID: id}
	mb.UIDValidity = d.u32()
	mb.UIDNext = d.u32()
	mb.Messages = d.u32()
	mb.Size = d.i64()
	mb.Unseen = d.u32()
	mb.HighestModSeq = d.u64()
	fl := d.u8()
	mb.Subscribed, mb.Deleting = fl&1 != 0, fl&2 != 0
	mb.CreatedAt = time.Unix(d.i64(), 0).UTC()
	mb.SpecialUse = d.str8()
	mb.Name = d.str16()
	if d.err != nil {
		return nil, fmt.Errorf("mailbox record: %w", ErrCorrupt)
	}
	mb.RecentUID = decodeRecentUID(&d, mb)
	return mb, nil
}

// Usage is an account's exact usage. Storage and message counts change in
// the same transaction as the messages they count.
type Usage struct {
	Bytes    int64
	Messages int64
	// Day is the day (days since the Unix epoch, UTC) that Received and
	// Sent count.
	Day      int32
	Received int64
	Sent     int64
}

const usageRecordV1 = 1

func encodeUsage(u *Usage) []byte {
	e := enc{b: make([]byte, 0, 37)}
	e.u8(usageRecordV1)
	e.i64(u.Bytes)
	e.i64(u.Messages)
	e.u32(uint32(u.Day))
	e.i64(u.Received)
	e.i64(u.Sent)
	return e.b
}

func decodeUsage(v []byte) (*Usage, error) {
	d := dec{b: v}
	if ver := d.u8(); d.err == nil && ver != usageRecordV1 {
		return nil, fmt.Errorf("usage record version %d: %w", ver, ErrCorrupt)
	}
	u := &Usage{Bytes: d.i64(), Messages: d.i64(), Day: int32(d.u32()), Received: d.i64(), Sent: d.i64()}
	if d.err != nil {
		return nil, fmt.Errorf("usage record: %w", ErrCorrupt)
	}
	return u, nil
}

// bodyRecord is the shared part of a content-addressed body: how many
// message records point at it, its size and SHA-256, and its precomputed
// structure.
type bodyRecord struct {
	Refs      uint64
	Size      int64
	Hash      [32]byte
	Structure []byte
}

const bodyRecordV1 = 1

func encodeBody(b *bodyRecord) []byte {
	e := enc{b: make([]byte, 0, 49+len(b.Structure))}
	e.u8(bodyRecordV1)
	e.u64(b.Refs)
	e.i64(b.Size)
	e.b = append(e.b, b.Hash[:]...)
	e.b = append(e.b, b.Structure...)
	return e.b
}

func decodeBody(v []byte) (*bodyRecord, error) {
	d := dec{b: v}
	if ver := d.u8(); d.err == nil && ver != bodyRecordV1 {
		return nil, fmt.Errorf("body record version %d: %w", ver, ErrCorrupt)
	}
	b := &bodyRecord{Refs: d.u64(), Size: d.i64()}
	copy(b.Hash[:], d.take(32))
	if d.err != nil {
		return nil, fmt.Errorf("body record: %w", ErrCorrupt)
	}
	b.Structure = append([]byte(nil), d.b...)
	return b, nil
}
