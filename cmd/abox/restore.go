package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"abox/store"
)

// A backup (store.ReceiveBackup) is one database file with every body
// inside it and the TLS pair that was generated into the data directory;
// it is a database of its own (a new identity). Restoring it replaces
// the data directory's database, write-ahead log and body segments as
// one: the old ones are moved aside together, never mixed with it.

// backupFiles returns the files a backup carries: the generated TLS
// pair, when the server uses it (a certificate the operator configured
// with --tls-cert lives outside the data directory and is theirs).
func (c *Config) backupFiles() (map[string][]byte, error) {
	if c.TLSCert != "" {
		return nil, nil
	}
	files := map[string][]byte{}
	for _, name := range []string{generatedCert, generatedKey} {
		raw, err := os.ReadFile(filepath.Join(c.Data, name))
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil // not generated yet: nothing to carry
		}
		if err != nil {
			return nil, fmt.Errorf("backup: %w", err)
		}
		files[name] = raw
	}
	return files, nil
}

// restoreResult is what `abox restore` reports.
type restoreResult struct {
	Backup    string   `json:"backup"`
	Database  string   `json:"database"`
	Accounts  int      `json:"accounts"`
	Messages  int      `json:"messages"`
	MovedTo   string   `json:"moved_to,omitempty"` // where the replaced files went
	Moved     []string `json:"moved"`
	TLSPair   bool     `json:"tls_restored"`
	Incidents int      `json:"incidents_in_backup"`
}

func (a *app) restoreCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "restore BACKUP",
		Short: "replace the database with a backup (abox serve must be stopped)",
		Long: "Checks BACKUP, moves the data directory's database, write-ahead log, body segments and\n" +
			"(when BACKUP carries them) TLS pair aside into DIR/replaced-TIME/, then installs BACKUP as the\n" +
			"database and its TLS pair. Refused while abox serve runs on the data directory.",
		Args: exactArgs("BACKUP"),
		RunE: func(cmd *cobra.Command, args []string) error {
			res, err := restore(&a.cfg, args[0], time.Now())
			if err != nil {
				return err
			}
			return a.emit(res, func(w io.Writer) {
				fmt.Fprintf(w, "restored %s into %s: %d accounts, %d messages\n", res.Backup, res.Database, res.Accounts, res.Messages)
				if res.TLSPair {
					fmt.Fprintln(w, "TLS certificate and key restored from the backup")
				}
				if res.MovedTo != "" {
					fmt.Fprintf(w, "moved aside into %s: %s\n", res.MovedTo, strings.Join(res.Moved, ", "))
				}
			})
		},
	}
}

// restore installs the backup at backupPath as cfg's database.
func restore(cfg *Config, backupPath string, now time.Time) (restoreResult, error) {
	if cfg.postgres() {
		return restoreResult{}, errNoFile
	}
	src, err := filepath.Abs(backupPath)
	if err != nil {
		return restoreResult{}, err
	}
	db := cfg.dbPath()
	if abs, _ := filepath.Abs(db); abs == src {
		return restoreResult{}, usagef("BACKUP must not be the live database %s", db)
	}
	if conn, err := dialControl(cfg.socketPath()); err == nil {
		conn.Close()
		return restoreResult{}, fmt.Errorf("abox serve is running on %s: stop it first (a restore never replaces the database under a running server)", cfg.Data)
	}
	res := restoreResult{Backup: src, Database: db, Moved: []string{}}
	// The backup must be an abox database that checks clean.
	rep, err := checkBackup(src)
	if err != nil {
		return res, err
	}
	res.Accounts, res.Messages, res.Incidents = rep.Accounts, rep.Messages, len(rep.Incidents)
	if err := os.MkdirAll(cfg.Data, 0o700); err != nil {
		return res, err
	}
	// Hold bbolt's lock on the database being replaced, so that neither
	// a server nor a command opens it meanwhile.
	if f, err := os.OpenFile(db, os.O_RDWR, 0); err == nil {
		defer f.Close()
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			return res, fmt.Errorf("%s is in use by another abox process: %w", db, store.ErrLocked)
		}
	}
	// Copy first, under a temporary name: a failure here changes nothing.
	tmp := db + ".restoring"
	if err := copyFileSync(src, tmp); err != nil {
		os.Remove(tmp)
		return res, fmt.Errorf("restore: copying %s: %w", src, err)
	}
	files, err := store.ExtractBackupFiles(tmp)
	if err != nil {
		os.Remove(tmp)
		return res, err
	}
	// Everything that belongs to the database being replaced goes aside,
	// together: it is never mixed with the backup.
	aside := filepath.Join(cfg.Data, "replaced-"+now.UTC().Format("20060102T150405Z"))
	move := []string{filepath.Base(db), filepath.Base(db) + store.WALFileSuffix, filepath.Base(db) + store.SegmentDirSuffix}
	if len(files) > 0 {
		move = append(move, generatedCert, generatedKey)
	}
	for _, name := range move {
		from := filepath.Join(cfg.Data, name)
		if _, err := os.Lstat(from); errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err := os.MkdirAll(aside, 0o700); err != nil {
			os.Remove(tmp)
			return res, err
		}
		if err := os.Rename(from, filepath.Join(aside, name)); err != nil {
			os.Remove(tmp)
			return res, fmt.Errorf("restore: moving %s aside (moved so far: %v, in %s): %w", name, res.Moved, aside, err)
		}
		res.Moved = append(res.Moved, name)
		res.MovedTo = aside
	}
	os.Remove(db + store.ReserveFileSuffix) // re-made by the next start
	if err := os.Rename(tmp, db); err != nil {
		return res, fmt.Errorf("restore: installing the backup (the old files are in %s): %w", aside, err)
	}
	for _, name := range []string{generatedCert, generatedKey} {
		if data, ok := files[name]; ok {
			if err := os.WriteFile(filepath.Join(cfg.Data, name), data, 0o600); err != nil {
				return res, fmt.Errorf("restore: writing %s: %w", name, err)
			}
			res.TLSPair = true
		}
	}
	if err := syncDir(cfg.Data); err != nil {
		return res, err
	}
	slices.Sort(res.Moved)
	return res, nil
}

// checkBackup opens a backup read-only and checks it.
func checkBackup(path string) (store.CheckReport, error) {
	if _, err := os.Stat(path); err != nil {
		return store.CheckReport{}, fmt.Errorf("restore: %w", err)
	}
	s, err := store.Open(path, store.Options{ReadOnly: true, LockTimeout: time.Second})
	if err != nil {
		return store.CheckReport{}, fmt.Errorf("restore: %s is not a usable abox backup: %w", path, err)
	}
	defer s.Close()
	rep, err := s.Check()
	if err != nil {
		return rep, fmt.Errorf("restore: checking %s: %w", path, err)
	}
	var bad []string
	for _, p := range rep.Problems {
		if !strings.HasPrefix(p, "incident ") { // incidents travel with the data; check reports them after
			bad = append(bad, p)
		}
	}
	if len(bad) > 0 {
		return rep, fmt.Errorf("restore: %s does not check clean (%d problems; first: %s); nothing was changed", path, len(bad), bad[0])
	}
	return rep, nil
}

func copyFileSync(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
