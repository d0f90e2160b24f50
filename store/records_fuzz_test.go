package store

// Fuzz targets for the binary records of records.go (message, mailbox,
// usage, body): any bytes decode to a value or to ErrCorrupt, never a
// panic; a decoded value does not share the input's memory (bbolt's
// values die with their transaction); encode∘decode is stable, and exact
// on canonical records; decode∘encode gives the value back. Seeds: the
// records of a real store (see recordSeeds), plus the f.Add calls.

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

// recordSeeds are records as the store writes them for a real delivery.
func recordSeeds() (msgs, mboxes, usages, bodies [][]byte) {
	date := time.Date(2026, 11, 2, 10, 0, 0, 0, time.FixedZone("", 5*3600))
	for _, m := range []*Message{
		{UID: 1, Flags: []string{FlagSeen, FlagAnswered, "$Forwarded"}, InternalDate: date, AddedAt: date.UTC(), Size: 1234, Blob: 7, ModSeq: 3},
		{UID: 2, Flags: []string{KeywordOfficial, FlagDraft, FlagDeleted, FlagFlagged, "$Junk", "Важно"}, InternalDate: date.In(time.FixedZone("", -9*3600-30*60)), Size: 1},
		{UID: 3},
	} {
		msgs = append(msgs, encodeMessage(m))
	}
	for _, mb := range []*Mailbox{
		{Name: "INBOX", UIDValidity: 1, UIDNext: 5, Messages: 4, Size: 4096, Unseen: 2, HighestModSeq: 9, Subscribed: true, CreatedAt: date},
		{Name: "Archive/2026/Счета", SpecialUse: `\Archive`, Deleting: true},
	} {
		mboxes = append(mboxes, encodeMailbox(mb))
	}
	usages = append(usages, encodeUsage(&Usage{Bytes: 1 << 30, Messages: 1000, Day: 20759, Received: 12, Sent: 3}), encodeUsage(&Usage{}))
	bodies = append(bodies, encodeBody(&bodyRecord{Refs: 2, Size: 1234, Hash: [32]byte{1, 2, 3}, Structure: []byte(`{"type":"text/plain"}`)}),
		encodeBody(&bodyRecord{}))
	return
}

// addTruncations adds rec, each of its prefixes of interest and a
// version-byte change to f's corpus through add.
func addTruncations(rec []byte, add func([]byte)) {
	add(rec)
	add(rec[:len(rec)-1])
	add(rec[:1])
	add(append([]byte{2}, rec[1:]...))
	add(append(bytes.Clone(rec), 0xff))
}

func wantCorrupt(t *testing.T, what string, v []byte, err error) {
	t.Helper()
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("%s(%x): error %v is not ErrCorrupt", what, v, err)
	}
}

// scramble overwrites v in place, as bbolt may once its transaction ends.
func scramble(v []byte) {
	for i := range v {
		v[i] ^= 0x5a
	}
}

func FuzzDecodeMessage(f *testing.F) {
	msgs, _, _, _ := recordSeeds()
	for _, rec := range msgs {
		addTruncations(rec, func(b []byte) { f.Add(uint32(9), b) })
	}
	f.Add(uint32(0), []byte{})
	f.Fuzz(func(t *testing.T, uid uint32, v []byte) {
		orig := bytes.Clone(v)
		m, err := decodeMessage(uid, v)
		if err != nil {
			wantCorrupt(t, "decodeMessage", v, err)
			if m != nil {
				t.Fatalf("decodeMessage(%x) = %+v with error %v", v, m, err)
			}
			return
		}
		if m.UID != uid {
			t.Fatalf("decodeMessage(%d, %x): UID %d", uid, v, m.UID)
		}
		if len(v) < 46 {
			t.Fatalf("decodeMessage(%x): a %d-byte record decoded", v, len(v))
		}
		// Decoding into a used Message leaves nothing of it.
		reused := Message{UID: 77, Flags: []string{"$Stale", FlagSeen}, Size: -1, ModSeq: 5, InternalDate: time.Now()}
		if err := decodeMessageInto(&reused, uid, v); err != nil || !sameMessage(&reused, m) {
			t.Fatalf("decodeMessageInto(%x) over a used Message = %+v, %v; fresh %+v", v, reused, err, m)
		}
		// Re-encoding is stable: a decoded record writes one record.
		e1 := encodeMessage(m)
		m2, err := decodeMessage(uid, e1)
		if err != nil {
			t.Fatalf("decodeMessage(%x) = %+v, whose encoding %x does not decode: %v", v, m, e1, err)
		}
		if e2 := encodeMessage(m2); !bytes.Equal(e1, e2) {
			t.Fatalf("decodeMessage(%x): encodings %x and %x differ", v, e1, e2)
		}
		// A canonical record (no unknown flag bits, no keyword that
		// spells a flag kept as a bit) is written back as it was read.
		if canonicalMessageRecord(m, v) {
			if !bytes.HasPrefix(v, e1) {
				t.Fatalf("decodeMessage(%x) = %+v, encoded back as %x", v, m, e1)
			}
			if !sameMessage(m, m2) {
				t.Fatalf("decodeMessage(%x) = %+v, but after encoding %+v", v, m, m2)
			}
		}
		// The value holds no memory of the record.
		scramble(v)
		again, _ := decodeMessage(uid, orig)
		if !sameMessage(m, again) {
			t.Fatalf("decodeMessage(%x): the value changed with the record bytes: %+v, want %+v", orig, m, again)
		}
	})
}

func canonicalMessageRecord(m *Message, v []byte) bool {
	bits := uint16(v[1])<<8 | uint16(v[2])
	if bits&^(bitSeen|bitAnswered|bitFlagged|bitDeleted|bitDraft|bitOfficial) != 0 {
		return false
	}
	secs := int64(0)
	for _, b := range v[3:11] {
		secs = secs<<8 | int64(b)
	}
	if secs != m.InternalDate.Unix() {
		return false // outside the years time.Time can carry
	}
	added := int64(0)
	for _, b := range v[13:21] {
		added = added<<8 | int64(b)
	}
	if added != m.AddedAt.Unix() {
		return false
	}
	n := 0
	for _, f := range m.Flags {
		if _, _, sys := canonicalFlag(f); !sys && !strings.EqualFold(f, KeywordOfficial) {
			n++
		}
	}
	for _, f := range m.Flags[len(m.Flags)-int(v[45]):] {
		if _, _, sys := canonicalFlag(f); sys || strings.EqualFold(f, KeywordOfficial) {
			return false
		}
	}
	return n == int(v[45])
}

func sameMessage(a, b *Message) bool {
	_, ao := a.InternalDate.Zone()
	_, bo := b.InternalDate.Zone()
	return a.UID == b.UID && slices.Equal(a.Flags, b.Flags) && a.InternalDate.Equal(b.InternalDate) && ao == bo &&
		a.AddedAt.Equal(b.AddedAt) && a.Size == b.Size && a.Blob == b.Blob && a.ModSeq == b.ModSeq
}

// FuzzMessageRecordRoundTrip: what encodeMessage writes, decodeMessage
// reads back: system flags as bits (canonical spelling, in systemFlags
// order), $Official as its bit, keywords of up to 255 bytes as written.
func FuzzMessageRecordRoundTrip(f *testing.F) {
	f.Add(`\Seen $Forwarded`, int64(1793613600), int16(300), int64(1793613600), int64(1234), uint64(7), uint64(3))
	f.Add(`\SEEN \seen $official \Recent `+strings.Repeat("k", 256), int64(-1), int16(-570), int64(0), int64(-1), uint64(0), uint64(1<<63))
	f.Add("", int64(253402300799), int16(-32768), int64(-62135596800), int64(0), uint64(0), uint64(0))
	f.Fuzz(func(t *testing.T, flagList string, secs int64, offMin int16, added, size int64, blob, modseq uint64) {
		// Dates the store writes: whole seconds, years 1 to 9999.
		const first, last = -62135596800, 253402300799
		secs = first + (secs%(last-first+1)+(last-first+1))%(last-first+1)
		added = first + (added%(last-first+1)+(last-first+1))%(last-first+1)
		m := &Message{UID: 5, Flags: strings.Fields(flagList), InternalDate: time.Unix(secs, 0).In(time.FixedZone("", int(offMin)*60)),
			AddedAt: time.Unix(added, 0).UTC(), Size: size, Blob: blob, ModSeq: modseq}
		got, err := decodeMessage(5, encodeMessage(m))
		if err != nil {
			t.Fatalf("%+v: %v", m, err)
		}
		var want []string
		for _, s := range systemFlags {
			if hasFlag(m.Flags, s) {
				want = append(want, s)
			}
		}
		if hasFlag(m.Flags, KeywordOfficial) {
			want = append(want, KeywordOfficial)
		}
		var kws []string
		for _, fl := range m.Flags {
			if _, _, sys := canonicalFlag(fl); !sys && !strings.EqualFold(fl, KeywordOfficial) && len(fl) <= 255 {
				kws = append(kws, fl)
			}
		}
		want = append(want, kws[:min(len(kws), 255)]...)
		exp := *m
		exp.Flags = want
		if !sameMessage(got, &exp) {
			t.Fatalf("message %+v came back as %+v, want %+v", m, got, &exp)
		}
	})
}

func FuzzDecodeMailbox(f *testing.F) {
	_, mboxes, _, _ := recordSeeds()
	for _, rec := range mboxes {
		addTruncations(rec, func(b []byte) { f.Add(uint32(3), b) })
	}
	f.Fuzz(func(t *testing.T, id uint32, v []byte) {
		orig := bytes.Clone(v)
		mb, err := decodeMailbox(id, v)
		if err != nil {
			wantCorrupt(t, "decodeMailbox", v, err)
			if mb != nil {
				t.Fatalf("decodeMailbox(%x) = %+v with error %v", v, mb, err)
			}
			return
		}
		if mb.ID != id {
			t.Fatalf("decodeMailbox(%d, %x): ID %d", id, v, mb.ID)
		}
		e1 := encodeMailbox(mb)
		mb2, err := decodeMailbox(id, e1)
		if err != nil || *mb2 != *mb {
			t.Fatalf("decodeMailbox(%x) = %+v, encoded %x, decoded again %+v (%v)", v, mb, e1, mb2, err)
		}
		// Exact unless it had flag bits abox does not write or a date
		// time.Time cannot hold.
		if fl := v[33]; fl&^3 == 0 && mb.CreatedAt.Unix() == int64(beU64(v[34:42])) && !bytes.HasPrefix(v, e1) {
			t.Fatalf("decodeMailbox(%x) = %+v, encoded back as %x", v, mb, e1)
		}
		scramble(v)
		if again, _ := decodeMailbox(id, orig); *again != *mb {
			t.Fatalf("decodeMailbox(%x): the value changed with the record bytes", orig)
		}
	})
}

func beU64(b []byte) uint64 {
	var n uint64
	for _, c := range b {
		n = n<<8 | uint64(c)
	}
	return n
}

// FuzzMailboxRecordRoundTrip: a mailbox as the store creates one comes
// back from its record.
func FuzzMailboxRecordRoundTrip(f *testing.F) {
	f.Add("INBOX", "", uint32(1), uint32(5), uint32(4), int64(4096), uint32(2), uint64(9), true, false, int64(1793613600))
	f.Add("Archive/2026/Счета", `\Archive`, uint32(0), uint32(0), uint32(0), int64(-1), uint32(0), uint64(0), false, true, int64(-62135596800))
	f.Fuzz(func(t *testing.T, name, specialUse string, uidValidity, uidNext, messages uint32, size int64, unseen uint32, hms uint64, subscribed, deleting bool, created int64) {
		if len(name) > 1024 || len(specialUse) > 255 {
			return // canonicalMailboxName's limit; special-use names are short
		}
		const first, last = -62135596800, 253402300799
		created = first + (created%(last-first+1)+(last-first+1))%(last-first+1)
		mb := &Mailbox{ID: 4, Name: name, SpecialUse: specialUse, UIDValidity: uidValidity, UIDNext: uidNext, Messages: messages,
			Size: size, Unseen: unseen, HighestModSeq: hms, Subscribed: subscribed, Deleting: deleting, CreatedAt: time.Unix(created, 0).UTC()}
		got, err := decodeMailbox(4, encodeMailbox(mb))
		if err != nil || *got != *mb {
			t.Fatalf("mailbox %+v came back as %+v (%v)", mb, got, err)
		}
	})
}

func FuzzDecodeUsage(f *testing.F) {
	_, _, usages, _ := recordSeeds()
	for _, rec := range usages {
		addTruncations(rec, func(b []byte) { f.Add(b) })
	}
	f.Fuzz(func(t *testing.T, v []byte) {
		u, err := decodeUsage(v)
		if err != nil {
			wantCorrupt(t, "decodeUsage", v, err)
			return
		}
		if e := encodeUsage(u); !bytes.HasPrefix(v, e) || len(e) != 37 {
			t.Fatalf("decodeUsage(%x) = %+v, encoded back as %x", v, u, e)
		}
		if u2, err := decodeUsage(encodeUsage(u)); err != nil || *u2 != *u {
			t.Fatalf("decodeUsage(%x) = %+v, then %+v (%v)", v, u, u2, err)
		}
	})
}

func FuzzDecodeBody(f *testing.F) {
	_, _, _, bodies := recordSeeds()
	for _, rec := range bodies {
		addTruncations(rec, func(b []byte) { f.Add(b) })
	}
	f.Fuzz(func(t *testing.T, v []byte) {
		orig := bytes.Clone(v)
		b, err := decodeBody(v)
		if err != nil {
			wantCorrupt(t, "decodeBody", v, err)
			return
		}
		if e := encodeBody(b); !bytes.Equal(e, v) {
			t.Fatalf("decodeBody(%x) = %+v, encoded back as %x", v, b, e)
		}
		if len(b.Structure) != len(v)-49 {
			t.Fatalf("decodeBody(%x): %d bytes of structure", v, len(b.Structure))
		}
		scramble(v)
		if !bytes.Equal(encodeBody(b), orig) {
			t.Fatalf("decodeBody(%x): the value changed with the record bytes", orig)
		}
	})
}
