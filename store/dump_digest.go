package store

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"reflect"
	"slices"
	"time"
)

// Digest condenses a dump kind by kind, so that a store's export and
// the export of the store it was migrated to can be compared: equal
// counts and hashes per kind mean the same content.
//
// The hash of a kind is order-independent: each record's canonical form
// is hashed with SHA-256, and the hashes of a kind are added as 256-bit
// big-endian integers modulo 2^256 (a multiset hash: unlike XOR, a
// record present twice does not cancel out); Sum returns SHA-256 of the
// kind, the count and that sum. Each backend may walk its records in
// its own order.
//
// The canonical form of a record is the JSON of its payload, with:
//   - body ids replaced by the body's content SHA-256 (computed from its
//     bytes), since each backend numbers bodies its own way: a body
//     record counts its content hash, size, structure and whether it is
//     shareable (not its id, nor the SHA-256 field the source may leave
//     zero); a message, queue entry or official-copy record names its
//     body by content hash; a broadcast by its Hash field alone (a
//     finished broadcast's body may be gone);
//   - every time in UTC (an instant, to the nanosecond), except a
//     message's INTERNALDATE, whose zone offset is part of it (IMAP
//     shows it);
//   - an empty list or byte string the same as a missing one;
//   - sets in sorted order: a message's flags, an account's gone
//     subscriptions.
//
// Records must be added in the dump's order (a body before the records
// naming it). A record naming a body not added before counts under
// "missing:<id>", so such a stream never digests like a complete one.
type Digest struct {
	bodies map[uint64][32]byte // body id -> content SHA-256
	kinds  map[DumpKind]*kindSum
	err    error
}

type kindSum struct {
	n   int64
	sum big.Int
}

// KindDigest is one kind's record count and hash.
type KindDigest struct {
	Count  int64
	SHA256 [32]byte
}

// DumpDigest starts a digest.
func DumpDigest() *Digest {
	return &Digest{bodies: map[uint64][32]byte{}, kinds: map[DumpKind]*kindSum{}}
}

var mod256 = new(big.Int).Lsh(big.NewInt(1), 256)

// Add counts one record. A record that fails Validate, or cannot be
// encoded, makes Err non-nil.
func (d *Digest) Add(r *DumpRecord) {
	if err := r.Validate(); err != nil {
		d.setErr(err)
		return
	}
	canon, err := d.canonical(r)
	if err != nil {
		d.setErr(fmt.Errorf("dump digest: %s record: %w", r.Kind, err))
		return
	}
	h := sha256.New()
	h.Write([]byte(r.Kind))
	h.Write([]byte{0})
	h.Write(canon)
	k := d.kinds[r.Kind]
	if k == nil {
		k = &kindSum{}
		d.kinds[r.Kind] = k
	}
	k.n++
	k.sum.Add(&k.sum, new(big.Int).SetBytes(h.Sum(nil)))
	k.sum.Mod(&k.sum, mod256)
}

func (d *Digest) setErr(err error) {
	if d.err == nil {
		d.err = err
	}
}

// Err is the first record Add could not count, if any.
func (d *Digest) Err() error { return d.err }

// Sum returns each kind's count and hash (kinds without records are
// absent).
func (d *Digest) Sum() map[DumpKind]KindDigest {
	out := make(map[DumpKind]KindDigest, len(d.kinds))
	for kind, k := range d.kinds {
		var sum [32]byte
		k.sum.FillBytes(sum[:])
		h := sha256.New()
		h.Write([]byte("abox dump digest 1\x00"))
		h.Write([]byte(kind))
		h.Write([]byte{0})
		h.Write(binary.BigEndian.AppendUint64(nil, uint64(k.n)))
		h.Write(sum[:])
		var kd KindDigest
		kd.Count = k.n
		copy(kd.SHA256[:], h.Sum(nil))
		out[kind] = kd
	}
	return out
}

// bodyRef is how the canonical form names a body.
func (d *Digest) bodyRef(id uint64) string {
	sum, ok := d.bodies[id]
	if !ok {
		return fmt.Sprintf("missing:%d", id)
	}
	return hex.EncodeToString(sum[:])
}

func (d *Digest) canonical(r *DumpRecord) ([]byte, error) {
	if r.Kind == DumpBody {
		b := r.Body
		sum := sha256.Sum256(b.Data)
		d.bodies[b.ID] = sum
		return json.Marshal(struct {
			SHA256    string `json:"sha256"`
			Size      int64  `json:"size"`
			Structure []byte `json:"structure"`
			Shareable bool   `json:"shareable"`
		}{hex.EncodeToString(sum[:]), b.Size, nilIfEmpty(b.Structure), b.Shareable})
	}
	p, _ := r.payload()
	// A deep copy through JSON, whose times and slices this may change.
	raw, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	c := reflect.New(reflect.TypeOf(p).Elem())
	if err := json.Unmarshal(raw, c.Interface()); err != nil {
		return nil, err
	}
	var internal time.Time
	if m, ok := c.Interface().(*MessageDump); ok {
		internal = m.Message.InternalDate
	}
	utcTimes(c.Elem())
	var body string
	switch v := c.Interface().(type) {
	case *MessageDump:
		v.Message.InternalDate = internal
		body = d.bodyRef(v.Message.Blob)
		v.Message.Blob = 0
		v.Message.Flags = sortedStrings(v.Message.Flags)
	case *QueueEntry:
		body = d.bodyRef(v.Blob)
		v.Blob = 0
	case *OfficialCopyDump:
		body = d.bodyRef(v.Blob)
		v.Blob = 0
	case *Broadcast:
		v.Blob = 0
	case *AccountDump:
		v.GoneSubscriptions = sortedStrings(v.GoneSubscriptions)
	}
	return json.Marshal(struct {
		Payload any    `json:"payload"`
		Body    string `json:"body,omitempty"`
	}{c.Interface(), body})
}

var timeType = reflect.TypeFor[time.Time]()

// utcTimes sets every time reachable from v (through exported fields,
// pointers and slices) to UTC, and every empty slice to nil.
func utcTimes(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			utcTimes(v.Elem())
		}
	case reflect.Struct:
		if v.Type() == timeType {
			if v.CanSet() {
				v.Set(reflect.ValueOf(v.Interface().(time.Time).UTC()))
			}
			return
		}
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				utcTimes(v.Field(i))
			}
		}
	case reflect.Slice:
		if v.Len() == 0 {
			if v.CanSet() {
				v.SetZero() // empty and missing alike
			}
			return
		}
		fallthrough
	case reflect.Array:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return
		}
		for i := range v.Len() {
			utcTimes(v.Index(i))
		}
	}
}

// sortedStrings is a sorted copy (nil for none, so that an empty list
// and a missing one digest alike).
func sortedStrings(in []string) []string {
	if len(in) == 0 {
		return nil
	}
	out := slices.Clone(in)
	slices.Sort(out)
	return out
}

// nilIfEmpty is b, or nil when it is empty.
func nilIfEmpty(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

// CompareDigests lists, kind by kind in export order, where two digests
// differ (nil when they are equal): what `abox migrate` reports.
func CompareDigests(source, target map[DumpKind]KindDigest) []string {
	var out []string
	kinds := slices.Clone(DumpKinds)
	for k := range source {
		if !slices.Contains(kinds, k) {
			kinds = append(kinds, k)
		}
	}
	for k := range target {
		if !slices.Contains(kinds, k) {
			kinds = append(kinds, k)
		}
	}
	for _, k := range kinds {
		s, t := source[k], target[k]
		switch {
		case s == t:
		case s.Count != t.Count:
			out = append(out, fmt.Sprintf("%s: %d records in the source, %d in the target", k, s.Count, t.Count))
		default:
			out = append(out, fmt.Sprintf("%s: %d records on both sides, but their content differs", k, s.Count))
		}
	}
	return out
}
