package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"syscall"

	bolt "go.etcd.io/bbolt"
)

// The write-ahead log lets a delivery be acknowledged after one small
// sequential fdatasync instead of a bbolt commit (two fdatasyncs after
// scattered page writes: ~2 ms against ~0.3 ms here, docs/BENCHMARKS.md).
//
// The writer keeps one bbolt write transaction open across batches of
// deliveries. Each batch runs in it, so later batches see earlier ones
// and every decision (quota, UIDs, daily counters) is taken against the
// true state; the batch's writes (the key/value operations, not the
// requests) are appended to the log as one record and synced; then the
// batch is acknowledged. A checkpoint commits the transaction, with the
// sequence number of the last record it holds and a new random
// checkpoint token in the meta bucket, and rewinds the log. Reads wait
// for a checkpoint when acknowledged writes are not yet in it (barrier),
// so nothing acknowledged is ever invisible to a reader that starts
// after the acknowledgement.
//
// A log belongs to one database and one checkpoint. The file starts with
// a header naming the database's identity (meta "db_id", random, given
// to every new file and to every backup copy); each record carries the
// token of the checkpoint it continues. After a crash, Open applies the
// records that carry the file's current token and continue its sequence
// number, in order, in one transaction (walrecover.go). Records left from
// earlier checkpoints carry older tokens and are never applied again; a
// log written for another database is refused.
//
// File: header (walFileHeader bytes: magic "ABOXWAL2", database id (16),
// CRC-32C of the two; zeros after), then records. Record: magic(4)
// token(8) seq(8) length(4) crc32c(4) payload; the checksum covers
// token, seq, length and payload. Payload: operations, each kind(1)
// bucket(1) key-length(uvarint) key, then for a put value-length
// (uvarint) value, for a sequence the value(8). The file is pre-written
// with zeros so that syncing a record does not also journal block
// allocation; records are written from walFileHeader after every
// checkpoint.

// WALFileSuffix names the log beside the database file.
const WALFileSuffix = ".wal"

const (
	walMagic       = 0x4c41574e // "NWAL"
	walHeader      = 28
	walFileHeader  = 4096
	walFileMagic   = "ABOXWAL2"
	walPrealloc    = 32 << 20
	legacyWALHdr   = 20 // records of logs written before the file header
	walIDBytes     = 16
	walHeaderBytes = len(walFileMagic) + walIDBytes + 4
)

const (
	opPut = 1 + iota
	opSequence
	// opDelete removes a key (the outbound queue's due index and
	// finished entries). A log written by a version without it has none.
	opDelete
)

var walCRC = crc32.MakeTable(crc32.Castagnoli)

var errWALFull = errors.New("write-ahead log full")

// wal is the log file. Only the writer goroutine (and Open) use it.
type wal struct {
	f     *os.File
	pos   int64  // where the next record goes
	size  int64  // pre-written length
	token uint64 // the checkpoint the records being written continue
	// fault, in tests, fails a sync after the record was written.
	fault func() error
}

// createWAL makes a new, empty log for the database id at path (any file
// there is replaced), pre-written and synced with its directory entry.
func createWAL(path string, id []byte) (*wal, error) {
	tmp := path + ".new"
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("store: write-ahead log: %w", err)
	}
	w := &wal{f: f, pos: walFileHeader}
	fail := func(err error) (*wal, error) {
		f.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("store: write-ahead log: %w", err)
	}
	if _, err := f.WriteAt(walFileHeaderBytes(id), 0); err != nil {
		return fail(err)
	}
	if err := w.prewrite(); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fail(err)
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		f.Close()
		return nil, fmt.Errorf("store: write-ahead log: %w", err)
	}
	return w, nil
}

func walFileHeaderBytes(id []byte) []byte {
	h := make([]byte, walFileHeader)
	copy(h, walFileMagic)
	copy(h[len(walFileMagic):], id)
	n := len(walFileMagic) + walIDBytes
	binary.BigEndian.PutUint32(h[n:], crc32.Checksum(h[:n], walCRC))
	return h
}

// walFileKind says what a log file's first bytes are.
type walFileKind int

const (
	walEmpty   walFileKind = iota // no bytes, or only zeros where the header goes
	walCurrent                    // a valid header (id returned)
	walLegacy                     // records from offset 0, no header
	walBadHead                    // neither: the header is damaged
)

// readWALHeader classifies the file and returns the database id in its
// header.
func readWALHeader(f *os.File) (walFileKind, []byte, error) {
	h := make([]byte, walHeaderBytes)
	n, err := f.ReadAt(h, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return walBadHead, nil, err
	}
	h = h[:n]
	switch {
	case len(h) == walHeaderBytes && string(h[:len(walFileMagic)]) == walFileMagic:
		m := len(walFileMagic) + walIDBytes
		if crc32.Checksum(h[:m], walCRC) != binary.BigEndian.Uint32(h[m:]) {
			return walBadHead, nil, nil
		}
		return walCurrent, bytes.Clone(h[len(walFileMagic):m]), nil
	case len(h) >= 4 && binary.BigEndian.Uint32(h) == walMagic:
		return walLegacy, nil, nil
	case !slices.ContainsFunc(h, func(b byte) bool { return b != 0 }):
		return walEmpty, nil, nil
	}
	return walBadHead, nil, nil
}

// prewrite fills the file with zeros up to walPrealloc, once, and syncs
// it (records then overwrite allocated blocks).
func (w *wal) prewrite() error {
	fi, err := w.f.Stat()
	if err != nil {
		return fmt.Errorf("store: write-ahead log: %w", err)
	}
	w.size = max(fi.Size(), walFileHeader)
	if w.size < walPrealloc {
		zero := make([]byte, 1<<20)
		for off := w.size; off < walPrealloc; off += int64(len(zero)) {
			if _, err := w.f.WriteAt(zero[:min(int64(len(zero)), walPrealloc-off)], off); err != nil {
				return fmt.Errorf("store: write-ahead log: %w", err)
			}
		}
		w.size = walPrealloc
	}
	if err := w.f.Sync(); err != nil {
		return fmt.Errorf("store: write-ahead log: %w", err)
	}
	return nil
}

// append writes one record and syncs it. It refuses a record that would
// pass the pre-written size: the caller checkpoints instead.
func (w *wal) append(seq uint64, payload []byte) error {
	n := int64(walHeader + len(payload))
	if w.pos+n > w.size {
		return errWALFull
	}
	rec := frameRecord(w.token, seq, payload)
	if _, err := w.f.WriteAt(rec, w.pos); err != nil {
		return err
	}
	if w.fault != nil {
		if err := w.fault(); err != nil {
			return err
		}
	}
	if err := fdatasync(w.f); err != nil {
		return err
	}
	w.pos += n
	return nil
}

// frameRecord puts the header before a payload.
func frameRecord(token, seq uint64, payload []byte) []byte {
	rec := make([]byte, walHeader, walHeader+len(payload))
	binary.BigEndian.PutUint32(rec[0:], walMagic)
	binary.BigEndian.PutUint64(rec[4:], token)
	binary.BigEndian.PutUint64(rec[12:], seq)
	binary.BigEndian.PutUint32(rec[20:], uint32(len(payload)))
	binary.BigEndian.PutUint32(rec[24:], recordCRC(rec[4:24], payload))
	return append(rec, payload...)
}

func recordCRC(head, payload []byte) uint32 {
	return crc32.Update(crc32.Checksum(head, walCRC), walCRC, payload)
}

// rewind starts the next checkpoint's records, which carry token.
func (w *wal) rewind(token uint64) { w.pos, w.token = walFileHeader, token }

func (w *wal) close() error { return w.f.Close() }

// walRecord is a record's place and numbers.
type walRecord struct {
	off   int64
	token uint64
	seq   uint64
	n     int64 // payload length
}

// recordAt reads the record at off when it is whole (magic, length
// inside the file, checksum), with its payload.
func (w *wal) recordAt(off int64) (walRecord, []byte, bool) {
	var hdr [walHeader]byte
	if _, err := w.f.ReadAt(hdr[:], off); err != nil || binary.BigEndian.Uint32(hdr[0:]) != walMagic {
		return walRecord{}, nil, false
	}
	r := walRecord{off: off, token: binary.BigEndian.Uint64(hdr[4:]), seq: binary.BigEndian.Uint64(hdr[12:]),
		n: int64(binary.BigEndian.Uint32(hdr[20:]))}
	if off+walHeader+r.n > w.size {
		return walRecord{}, nil, false
	}
	payload := make([]byte, r.n)
	if _, err := w.f.ReadAt(payload, off+walHeader); err != nil {
		return walRecord{}, nil, false
	}
	if recordCRC(hdr[4:24], payload) != binary.BigEndian.Uint32(hdr[24:]) {
		return walRecord{}, nil, false
	}
	return r, payload, true
}

// records calls fn for each record from the start of the records whose
// token is token and whose sequence numbers continue from after, in
// order, stopping at the first torn, foreign or out-of-sequence one. It
// returns the last sequence number and the offset after the last record.
func (w *wal) records(token, after uint64, fn func(seq uint64, payload []byte) error) (last uint64, end int64, err error) {
	last, end = after, walFileHeader
	for {
		r, payload, ok := w.recordAt(end)
		if !ok || r.token != token || r.seq != last+1 {
			return last, end, nil
		}
		if err := fn(r.seq, payload); err != nil {
			return last, end, err
		}
		last, end = r.seq, end+walHeader+r.n
	}
}

// later finds the whole records after from that carry token and a
// sequence number past after: records that were acknowledged but cannot
// be applied because one before them is damaged. The file is searched
// for the record magic, since a damaged length cannot be trusted.
func (w *wal) later(from int64, token, after uint64) ([]walRecord, [][]byte) {
	var found []walRecord
	var payloads [][]byte
	magic := binary.BigEndian.AppendUint32(nil, walMagic)
	const chunk = 1 << 20
	buf := make([]byte, chunk+len(magic)-1)
	for base := from + 1; base < w.size; base += chunk {
		n, _ := w.f.ReadAt(buf, base)
		if n == 0 {
			break
		}
		for i := 0; i+len(magic) <= n; {
			j := bytes.Index(buf[i:n], magic)
			if j < 0 {
				break
			}
			off := base + int64(i+j)
			i += j + 1
			r, p, ok := w.recordAt(off)
			if !ok || r.token != token || r.seq <= after {
				continue
			}
			if len(found) > 0 && found[len(found)-1].off+walHeader+found[len(found)-1].n > off {
				continue // inside the payload of the one before
			}
			found = append(found, r)
			payloads = append(payloads, p)
		}
	}
	return found, payloads
}

// legacyRecords reads a log written before logs had a header and
// tokens: records from offset 0 whose sequence numbers continue from
// after.
func (w *wal) legacyRecords(after uint64, fn func(seq uint64, payload []byte) error) (uint64, error) {
	last, end := after, int64(0)
	var hdr [legacyWALHdr]byte
	for {
		if _, err := w.f.ReadAt(hdr[:], end); err != nil {
			return last, nil
		}
		seq := binary.BigEndian.Uint64(hdr[4:])
		n := int64(binary.BigEndian.Uint32(hdr[12:]))
		if binary.BigEndian.Uint32(hdr[0:]) != walMagic || seq != last+1 || end+legacyWALHdr+n > w.size {
			return last, nil
		}
		payload := make([]byte, n)
		if _, err := w.f.ReadAt(payload, end+legacyWALHdr); err != nil {
			return last, nil
		}
		if crc32.Update(crc32.Checksum(hdr[4:12], walCRC), walCRC, payload) != binary.BigEndian.Uint32(hdr[16:]) {
			return last, nil
		}
		if err := fn(seq, payload); err != nil {
			return last, err
		}
		last, end = seq, end+legacyWALHdr+n
	}
}

func fdatasync(f *os.File) error {
	for {
		err := syscall.Fdatasync(int(f.Fd()))
		if err != syscall.EINTR {
			return err
		}
	}
}

// opLog collects one batch's operations as they are made, up to
// maxRecord bytes: past that the batch is committed instead of logged,
// and its operations are no longer copied.
type opLog struct {
	buf  []byte
	full bool
}

func (l *opLog) reset() { l.buf, l.full = l.buf[:0], false }

func bucketIndex(name []byte) byte {
	for i, b := range allBuckets {
		if string(b) == string(name) {
			return byte(i)
		}
	}
	panic(fmt.Sprintf("store: bucket %q not in allBuckets", name))
}

func (l *opLog) add(kind byte, bucket []byte, key, val []byte) {
	if l.full || len(l.buf)+2+2*binary.MaxVarintLen64+len(key)+len(val) > maxRecord {
		l.full = true
		return
	}
	l.buf = append(l.buf, kind, bucketIndex(bucket))
	l.buf = binary.AppendUvarint(l.buf, uint64(len(key)))
	l.buf = append(l.buf, key...)
	switch kind {
	case opPut:
		l.buf = binary.AppendUvarint(l.buf, uint64(len(val)))
		l.buf = append(l.buf, val...)
	case opSequence:
		l.buf = append(l.buf, val...)
	}
}

// walkOps calls fn for each operation of a record's payload, in order;
// a malformed payload is ErrCorrupt.
func walkOps(payload []byte, fn func(kind, bucket byte, key, val []byte) error) error {
	bad := fmt.Errorf("store: write-ahead log record: %w", ErrCorrupt)
	for len(payload) > 0 {
		if len(payload) < 2 || int(payload[1]) >= len(allBuckets) {
			return bad
		}
		kind, bucket := payload[0], payload[1]
		payload = payload[2:]
		klen, n := binary.Uvarint(payload)
		if n <= 0 || uint64(len(payload)-n) < klen {
			return bad
		}
		key := payload[n : n+int(klen)]
		payload = payload[n+int(klen):]
		var val []byte
		switch kind {
		case opPut:
			vlen, n := binary.Uvarint(payload)
			if n <= 0 || uint64(len(payload)-n) < vlen {
				return bad
			}
			val = payload[n : n+int(vlen)]
			payload = payload[n+int(vlen):]
		case opSequence:
			if len(payload) < 8 {
				return bad
			}
			val = payload[:8]
			payload = payload[8:]
		case opDelete:
		default:
			return bad
		}
		if err := fn(kind, bucket, key, val); err != nil {
			return err
		}
	}
	return nil
}

// applyOps redoes a record's operations in tx.
func applyOps(tx *bolt.Tx, payload []byte) error {
	return walkOps(payload, func(kind, bucket byte, key, val []byte) error {
		b := tx.Bucket(allBuckets[bucket])
		if b == nil {
			return fmt.Errorf("store: write-ahead log record: bucket %s missing: %w", allBuckets[bucket], ErrCorrupt)
		}
		if b == tx.Bucket(bBlobs) || b == tx.Bucket(bBodies) || b == tx.Bucket(bBlobLocs) {
			b.FillPercent = appendFill
		}
		switch kind {
		case opSequence:
			return b.SetSequence(binary.BigEndian.Uint64(val))
		case opDelete:
			return b.Delete(key)
		}
		return b.Put(key, val)
	})
}

// put writes a key in a write request; in a logged request it also
// records the operation. bbolt keeps the slices it is given until the
// commit, which for a logged batch comes after the callers have been
// answered and may reuse their buffers, so those get copies; a batch
// too large for the log is committed before its answers.
func (t *txn) put(bucket []byte, key, val []byte, fill float64) error {
	b := t.tx.Bucket(bucket)
	if fill > 0 {
		b.FillPercent = fill
	}
	if t.log == nil {
		return b.Put(key, val)
	}
	if t.log.add(opPut, bucket, key, val); t.log.full {
		return b.Put(key, val)
	}
	kv := make([]byte, len(key)+len(val))
	copy(kv, key)
	copy(kv[len(key):], val)
	return t.putLogged(b, bucket, kv[:len(key):len(key)], kv[len(key):])
}

// putOwned is put for a key and value the caller built in one slice and
// never touches again (kv[:klen] is the key): bbolt keeps them as they
// are, without put's copy.
func (t *txn) putOwned(bucket []byte, kv []byte, klen int, fill float64) error {
	key, val := kv[:klen:klen], kv[klen:]
	b := t.tx.Bucket(bucket)
	if fill > 0 {
		b.FillPercent = fill
	}
	if t.log == nil {
		return b.Put(key, val)
	}
	if t.log.add(opPut, bucket, key, val); t.log.full {
		return b.Put(key, val)
	}
	return t.putLogged(b, bucket, key, val)
}

// putLogged puts a logged request's key and value, which stay unchanged
// until the transaction commits, and notes the account a mail key is of.
func (t *txn) putLogged(b *bolt.Bucket, bucket, key, val []byte) error {
	if err := b.Put(key, val); err != nil {
		return err
	}
	if string(bucket) == string(bMail) && len(key) >= 8 {
		if a := decodeU64(key); !slices.Contains(t.accts, a) {
			t.accts = append(t.accts, a)
		}
	}
	return nil
}

// del deletes a key in a write request; in a logged request it also
// records the operation.
func (t *txn) del(bucket, key []byte) error {
	if t.log != nil {
		t.log.add(opDelete, bucket, key, nil)
	}
	return t.tx.Bucket(bucket).Delete(key)
}

// nextSequence is bbolt's NextSequence, recorded in a logged request.
func (t *txn) nextSequence(bucket []byte) (uint64, error) {
	seq, err := t.tx.Bucket(bucket).NextSequence()
	if err == nil && t.log != nil {
		t.log.add(opSequence, bucket, nil, u64(seq))
	}
	return seq, err
}
