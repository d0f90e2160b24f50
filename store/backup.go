package store

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/google/renameio/v2"
	bolt "go.etcd.io/bbolt"
)

// A backup is one database file that holds every body: the bodies kept
// in segment files (segments.go) are moved into it. It is made from one
// read transaction, so deliveries go on while it runs and are either
// wholly in the copy or not at all, and it is written to a temporary file
// beside its path, fsync'd and renamed.
//
// The copy travels as a stream (from a running server over the control
// socket, or through a pipe in one process): the file's size and bytes
// as bbolt writes them, then each segment body as its blob id, length and
// bytes, then a zero id. The receiving side writes the file, then moves
// the bodies into it.

// BackupStream writes a backup stream to w.
func (s *Store) BackupStream(w io.Writer) error {
	e := s.blobs.segs.readers.enter()
	defer s.blobs.segs.readers.leave(e)
	return s.view(func(tx *bolt.Tx) error {
		bw := bufio.NewWriterSize(w, 256<<10)
		if err := binary.Write(bw, binary.BigEndian, uint64(tx.Size())); err != nil {
			return err
		}
		if _, err := tx.WriteTo(bw); err != nil {
			return err
		}
		var buf []byte
		c := tx.Bucket(bBlobLocs).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			loc, ok := decodeLoc(v)
			if !ok || len(k) != 8 {
				return fmt.Errorf("backup: body %x: bad location: %w", k, ErrCorrupt)
			}
			body, err := s.blobs.segs.read(loc, buf)
			if err != nil {
				return fmt.Errorf("backup: %w", err)
			}
			buf = body
			var head [16]byte
			copy(head[:8], k)
			binary.BigEndian.PutUint64(head[8:], uint64(len(body)))
			if _, err := bw.Write(head[:]); err != nil {
				return err
			}
			if _, err := bw.Write(body); err != nil {
				return err
			}
		}
		if _, err := bw.Write(make([]byte, 8)); err != nil {
			return err
		}
		return bw.Flush()
	})
}

// BackupTo writes a backup of s to path and returns its size.
func (s *Store) BackupTo(path string) (int64, error) {
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(s.BackupStream(pw)) }()
	n, err := ReceiveBackup(path, pr)
	pr.CloseWithError(errors.New("backup: receiver stopped"))
	return n, err
}

// maxBackupBatch bounds the bodies moved into the copy per transaction.
const maxBackupBatch = 64 << 20

// ReceiveBackup reads a backup stream from r into path (atomically) and
// returns the size of the file written.
func ReceiveBackup(path string, r io.Reader) (int64, error) {
	f, err := renameio.NewPendingFile(path, renameio.WithPermissions(0o600))
	if err != nil {
		return 0, fmt.Errorf("backup: %w", err)
	}
	defer f.Cleanup()
	br := bufio.NewReaderSize(r, 256<<10)
	var size uint64
	if err := binary.Read(br, binary.BigEndian, &size); err != nil {
		return 0, fmt.Errorf("backup: reading the stream: %w", err)
	}
	if n, err := io.CopyN(f, br, int64(size)); err != nil {
		return n, fmt.Errorf("backup: the stream ended after %d of %d bytes: %w", n, size, err)
	}
	if err := moveBodiesIn(f.Name(), br); err != nil {
		return 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("backup: %w", err)
	}
	if err := f.CloseAtomicallyReplace(); err != nil {
		return 0, fmt.Errorf("backup: %w", err)
	}
	return fi.Size(), nil
}

// moveBodiesIn puts the stream's segment bodies into the copy at path,
// in bounded transactions, and drops its segment records.
func moveBodiesIn(path string, br *bufio.Reader) error {
	var head [16]byte
	if _, err := io.ReadFull(br, head[:8]); err != nil {
		return fmt.Errorf("backup: reading the stream: %w", err)
	}
	if binary.BigEndian.Uint64(head[:8]) == 0 {
		return nil // no segment bodies: the copy is whole already
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{FreelistType: bolt.FreelistMapType})
	if err != nil {
		return fmt.Errorf("backup: opening the copy: %w", err)
	}
	if err := moveBodies(db, br, head); err != nil {
		db.Close()
		return err
	}
	return db.Close()
}

func moveBodies(db *bolt.DB, br *bufio.Reader, head [16]byte) error {
	done := false
	for !done {
		err := db.Update(func(tx *bolt.Tx) error {
			blobs, locs := tx.Bucket(bBlobs), tx.Bucket(bBlobLocs)
			if blobs == nil || locs == nil {
				return fmt.Errorf("backup: the copy has no body buckets: %w", ErrCorrupt)
			}
			blobs.FillPercent = appendFill
			batch := 0
			for batch < maxBackupBatch {
				id := binary.BigEndian.Uint64(head[:8])
				if id == 0 {
					done = true
					break
				}
				if _, err := io.ReadFull(br, head[8:]); err != nil {
					return fmt.Errorf("backup: reading the stream: %w", err)
				}
				n := binary.BigEndian.Uint64(head[8:])
				if n > 1<<40 {
					return fmt.Errorf("backup: body %d of %d bytes in the stream: %w", id, n, ErrCorrupt)
				}
				body := make([]byte, n)
				if _, err := io.ReadFull(br, body); err != nil {
					return fmt.Errorf("backup: reading the stream: %w", err)
				}
				if err := blobs.Put(u64(id), body); err != nil {
					return err
				}
				if err := locs.Delete(u64(id)); err != nil {
					return err
				}
				batch += len(body)
				if _, err := io.ReadFull(br, head[:8]); err != nil {
					return fmt.Errorf("backup: reading the stream: %w", err)
				}
			}
			if !done {
				return nil
			}
			// Every body is in the copy now: no segment is referenced.
			// A write-ahead log beside a restored copy must not apply to
			// it: its records would repoint segment counts the copy no
			// longer has. Its checkpoint number moves past any such log.
			meta := tx.Bucket(bMeta)
			var seq uint64
			if v := meta.Get(keyWALSeq); len(v) == 8 {
				seq = decodeU64(v)
			}
			if err := meta.Put(keyWALSeq, u64(seq+1<<32)); err != nil {
				return err
			}
			for _, name := range [][]byte{bSegments, bSegBlobs} {
				if err := tx.DeleteBucket(name); err != nil {
					return err
				}
				if _, err := tx.CreateBucket(name); err != nil {
					return err
				}
			}
			return tx.Bucket(bMeta).Delete(keyLastSegment)
		})
		if err != nil {
			return fmt.Errorf("backup: moving bodies into the copy: %w", err)
		}
	}
	return nil
}
