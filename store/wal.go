package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
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
// sequence number of the last record it holds in the meta bucket, and
// rewinds the log. Reads wait for a checkpoint when acknowledged writes
// are not yet in it (barrier), so nothing acknowledged is ever invisible
// to a reader that starts after the acknowledgement.
//
// After a crash, Open applies the records after the meta bucket's number
// to the file, in order, in one transaction.
//
// Record: magic(4) seq(8) length(4) crc32c(4) payload; the checksum
// covers seq and payload. Payload: operations, each kind(1) bucket(1)
// key-length(uvarint) key, then for a put value-length(uvarint) value,
// for a sequence the value(8). The file is pre-written with zeros so
// that syncing a record does not also journal block allocation; records
// are written from offset 0 after every checkpoint, and replay stops at
// the first record that is torn or not the next in sequence.

// WALFileSuffix names the log beside the database file.
const WALFileSuffix = ".wal"

const (
	walMagic    = 0x4c41574e // "NWAL"
	walHeader   = 20
	walPrealloc = 32 << 20
)

const (
	opPut = 1 + iota
	opSequence
)

var walCRC = crc32.MakeTable(crc32.Castagnoli)

var errWALFull = errors.New("write-ahead log full")

// wal is the log file. Only the writer goroutine (and Open) use it.
type wal struct {
	f    *os.File
	pos  int64 // where the next record goes
	size int64 // pre-written length
	// fault, in tests, fails a sync after the record was written.
	fault func() error
}

func openWAL(path string) (*wal, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("store: write-ahead log: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("store: write-ahead log: %w", err)
	}
	return &wal{f: f, size: fi.Size()}, nil
}

// prewrite fills the file with zeros up to walPrealloc, once, and syncs
// it (records then overwrite allocated blocks).
func (w *wal) prewrite() error {
	if w.size >= walPrealloc {
		return nil
	}
	zero := make([]byte, 1<<20)
	for off := w.size; off < walPrealloc; off += int64(len(zero)) {
		if _, err := w.f.WriteAt(zero[:min(int64(len(zero)), walPrealloc-off)], off); err != nil {
			return fmt.Errorf("store: write-ahead log: %w", err)
		}
	}
	if err := w.f.Sync(); err != nil {
		return fmt.Errorf("store: write-ahead log: %w", err)
	}
	w.size = walPrealloc
	return nil
}

// append writes one record and syncs it. It refuses a record that would
// pass the pre-written size: the caller checkpoints instead.
func (w *wal) append(seq uint64, payload []byte) error {
	n := int64(walHeader + len(payload))
	if w.pos+n > w.size {
		return errWALFull
	}
	rec := frameRecord(seq, payload)
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
func frameRecord(seq uint64, payload []byte) []byte {
	rec := make([]byte, walHeader, walHeader+len(payload))
	binary.BigEndian.PutUint32(rec[0:], walMagic)
	binary.BigEndian.PutUint64(rec[4:], seq)
	binary.BigEndian.PutUint32(rec[12:], uint32(len(payload)))
	crc := crc32.Update(crc32.Checksum(rec[4:12], walCRC), walCRC, payload)
	binary.BigEndian.PutUint32(rec[16:], crc)
	return append(rec, payload...)
}

func (w *wal) rewind() { w.pos = 0 }

func (w *wal) close() error { return w.f.Close() }

// records calls fn for each record from the start of the file whose
// sequence numbers continue from after, in order, stopping at the first
// torn, foreign or out-of-sequence one. It returns the last sequence
// number and the offset after the last record.
func (w *wal) records(after uint64, fn func(seq uint64, payload []byte) error) (last uint64, end int64, err error) {
	last = after
	var hdr [walHeader]byte
	for {
		if _, err := w.f.ReadAt(hdr[:], end); err != nil {
			if errors.Is(err, io.EOF) {
				return last, end, nil
			}
			return last, end, err
		}
		seq := binary.BigEndian.Uint64(hdr[4:])
		n := int64(binary.BigEndian.Uint32(hdr[12:]))
		if binary.BigEndian.Uint32(hdr[0:]) != walMagic || seq != last+1 || end+walHeader+n > w.size {
			return last, end, nil
		}
		payload := make([]byte, n)
		if _, err := w.f.ReadAt(payload, end+walHeader); err != nil {
			return last, end, nil
		}
		if crc32.Update(crc32.Checksum(hdr[4:12], walCRC), walCRC, payload) != binary.BigEndian.Uint32(hdr[16:]) {
			return last, end, nil
		}
		if err := fn(seq, payload); err != nil {
			return last, end, err
		}
		last, end = seq, end+walHeader+n
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

// applyOps redoes a record's operations in tx.
func applyOps(tx *bolt.Tx, payload []byte) error {
	bad := fmt.Errorf("store: write-ahead log record: %w", ErrCorrupt)
	for len(payload) > 0 {
		if len(payload) < 2 || int(payload[1]) >= len(allBuckets) {
			return bad
		}
		kind, b := payload[0], tx.Bucket(allBuckets[payload[1]])
		payload = payload[2:]
		if b == nil {
			return bad
		}
		if b == tx.Bucket(bBlobs) || b == tx.Bucket(bBodies) || b == tx.Bucket(bBlobLocs) {
			b.FillPercent = appendFill
		}
		klen, n := binary.Uvarint(payload)
		if n <= 0 || uint64(len(payload)-n) < klen {
			return bad
		}
		key := payload[n : n+int(klen)]
		payload = payload[n+int(klen):]
		switch kind {
		case opPut:
			vlen, n := binary.Uvarint(payload)
			if n <= 0 || uint64(len(payload)-n) < vlen {
				return bad
			}
			if err := b.Put(key, payload[n:n+int(vlen)]); err != nil {
				return err
			}
			payload = payload[n+int(vlen):]
		case opSequence:
			if len(payload) < 8 {
				return bad
			}
			if err := b.SetSequence(binary.BigEndian.Uint64(payload)); err != nil {
				return err
			}
			payload = payload[8:]
		default:
			return bad
		}
	}
	return nil
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
	if err := b.Put(kv[:len(key):len(key)], kv[len(key):]); err != nil {
		return err
	}
	if string(bucket) == string(bMail) && len(key) >= 8 {
		if a := decodeU64(key); !slices.Contains(t.accts, a) {
			t.accts = append(t.accts, a)
		}
	}
	return nil
}

// nextSequence is bbolt's NextSequence, recorded in a logged request.
func (t *txn) nextSequence(bucket []byte) (uint64, error) {
	seq, err := t.tx.Bucket(bucket).NextSequence()
	if err == nil && t.log != nil {
		t.log.add(opSequence, bucket, nil, u64(seq))
	}
	return seq, err
}
