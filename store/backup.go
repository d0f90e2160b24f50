package store

import (
	"fmt"
	"io"

	"github.com/google/renameio/v2"
	bolt "go.etcd.io/bbolt"
)

// Backup writes a consistent copy of the database to w from one read
// transaction: deliveries go on while it runs and are either wholly in
// the copy or not at all. It returns the number of bytes written.
func (s *Store) Backup(w io.Writer) (int64, error) {
	var n int64
	err := s.view(func(tx *bolt.Tx) error {
		var err error
		n, err = tx.WriteTo(w)
		return err
	})
	return n, err
}

// BackupTx gives fn the exact size of a consistent copy and a function
// that writes it, both from one read transaction, so a caller can
// announce the size before streaming the bytes.
func (s *Store) BackupTx(fn func(size int64, write func(io.Writer) (int64, error)) error) error {
	return s.view(func(tx *bolt.Tx) error { return fn(tx.Size(), tx.WriteTo) })
}

// BackupFile writes a backup to path atomically: a temporary file in the
// same directory is written, fsync'd and renamed, so path holds either
// the old content or a whole backup.
func BackupFile(path string, write func(io.Writer) (int64, error)) (int64, error) {
	f, err := renameio.NewPendingFile(path, renameio.WithPermissions(0o600))
	if err != nil {
		return 0, fmt.Errorf("backup: %w", err)
	}
	defer f.Cleanup()
	n, err := write(f)
	if err != nil {
		return n, fmt.Errorf("backup: %w", err)
	}
	if err := f.CloseAtomicallyReplace(); err != nil {
		return n, fmt.Errorf("backup: %w", err)
	}
	return n, nil
}
