package store

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

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

// BackupTo writes a backup of s to path and returns its size; files
// (name -> bytes, e.g. the generated TLS pair) travel inside it.
func (s *Store) BackupTo(path string, files map[string][]byte) (int64, error) {
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(s.BackupStream(pw)) }()
	n, err := ReceiveBackup(path, pr, files)
	pr.CloseWithError(errors.New("backup: receiver stopped"))
	return n, err
}

// maxBackupBatch bounds the bodies moved into the copy per transaction.
const maxBackupBatch = 64 << 20

// ReceiveBackup reads a backup stream from r into path (atomically) and
// returns the size of the file written. The copy is a database of its
// own: it gets a new identity, so no write-ahead log or body segment of
// the database it was copied from can ever be applied to it or read as
// its own. files are kept inside it (BackupFiles reads them back).
func ReceiveBackup(path string, r io.Reader, files map[string][]byte) (int64, error) {
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
	if err := finishCopy(f.Name(), br, files); err != nil {
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

// finishCopy puts the stream's segment bodies into the copy at path, in
// bounded transactions, drops its segment records, and makes it a
// database of its own.
func finishCopy(path string, br *bufio.Reader, files map[string][]byte) error {
	var head [16]byte
	if _, err := io.ReadFull(br, head[:8]); err != nil {
		return fmt.Errorf("backup: reading the stream: %w", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{FreelistType: bolt.FreelistMapType})
	if err != nil {
		return fmt.Errorf("backup: opening the copy: %w", err)
	}
	if binary.BigEndian.Uint64(head[:8]) != 0 {
		if err := moveBodies(db, br, head); err != nil {
			db.Close()
			return err
		}
	}
	if err := db.Update(func(tx *bolt.Tx) error { return makeOwnDatabase(tx, files) }); err != nil {
		db.Close()
		return fmt.Errorf("backup: %w", err)
	}
	return db.Close()
}

// makeOwnDatabase gives a copy its own identity and checkpoint token
// (a log of the original never applies to it), no segments, and the
// files it carries.
func makeOwnDatabase(tx *bolt.Tx, files map[string][]byte) error {
	meta := tx.Bucket(bMeta)
	if meta == nil {
		return fmt.Errorf("the copy has no meta bucket: %w", ErrCorrupt)
	}
	for _, kv := range [][2][]byte{
		{keyDBID, newDBID()}, {keyWALToken, u64(newToken())}, {keyWALDirty, {0}},
		{keySegHeaderFrom, binary.BigEndian.AppendUint32(nil, 1)},
	} {
		if err := meta.Put(kv[0], kv[1]); err != nil {
			return err
		}
	}
	if err := meta.Delete(keyLastSegment); err != nil {
		return err
	}
	for _, name := range [][]byte{bSegments, bSegBlobs, bBackupFiles} {
		if tx.Bucket(name) != nil {
			if err := tx.DeleteBucket(name); err != nil {
				return err
			}
		}
		if _, err := tx.CreateBucket(name); err != nil {
			return err
		}
	}
	for name, data := range files {
		if err := tx.Bucket(bBackupFiles).Put([]byte(name), data); err != nil {
			return err
		}
	}
	return nil
}

// ExtractBackupFiles returns the files a restored backup at path
// carries and removes them from it (the live database keeps none).
func ExtractBackupFiles(path string) (map[string][]byte, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, FreelistType: bolt.FreelistMapType})
	if err != nil {
		return nil, fmt.Errorf("restore %s: %w", path, err)
	}
	out := map[string][]byte{}
	err = db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bBackupFiles)
		if b == nil {
			return nil
		}
		if err := b.ForEach(func(k, v []byte) error {
			out[string(k)] = bytes.Clone(v)
			return nil
		}); err != nil {
			return err
		}
		if err := tx.DeleteBucket(bBackupFiles); err != nil {
			return err
		}
		_, err := tx.CreateBucket(bBackupFiles)
		return err
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	return out, err
}

// moveBodies moves the stream's segment bodies into the copy's blobs.
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
			return nil
		})
		if err != nil {
			return fmt.Errorf("backup: moving bodies into the copy: %w", err)
		}
	}
	return nil
}
