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

// BackupSize is the size the next backup will have, roughly (the file can
// grow while it is written).
func (s *Store) BackupSize() int64 {
	var n int64
	_ = s.view(func(tx *bolt.Tx) error { n = tx.Size(); return nil })
	return n
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
