package store

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// A full disk must never cost acknowledged mail, nor keep it from
// readers: deliveries are acknowledged from the write-ahead log, which
// is written in advance and never needs new space, but a checkpoint
// (bbolt's commit) may have to grow the file. So the server keeps a
// reserve: a file of real blocks beside the database (ReserveFileSuffix).
// When a checkpoint fails for lack of space, the reserve is given back
// and the checkpoint tried again, so everything acknowledged reaches the
// file and readers; from the first sign of a full disk (a failed write,
// or less free space than the reserve) the store refuses new mail with
// ErrNoSpace, which SMTP answers 452 4.3.1, until the disk has twice the
// reserve free again and the reserve is back.

// ReserveFileSuffix names the reserve beside the database file.
const ReserveFileSuffix = ".reserve"

// defaultReserve is Options.ReserveSpace's default: enough for a
// checkpoint of a full log (32 MiB of operations) and bbolt's copies of
// the pages they touch.
const defaultReserve = 128 << 20

// spaceWatch checks the free space this often (a variable for tests).
var spaceWatch = 2 * time.Second

// space watches the disk under the data directory.
type space struct {
	path    string // the reserve file
	dir     string // the data directory
	size    int64  // the reserve's size; 0: no reserve (short-lived commands)
	log     *slog.Logger
	low     atomic.Bool // refusing new mail
	mu      sync.Mutex  // guards has
	has     bool        // the reserve file is in place
	stop    chan struct{}
	stopped chan struct{}
}

func newSpace(dbPath string, size int64, log *slog.Logger) *space {
	return &space{path: dbPath + ReserveFileSuffix, dir: filepath.Dir(dbPath), size: size, log: log}
}

// start makes the reserve and watches the free space until close.
func (sp *space) start() {
	if sp.size <= 0 {
		return
	}
	if err := sp.makeReserve(); err != nil {
		sp.goLow("cannot keep the disk reserve: " + err.Error())
	}
	sp.stop, sp.stopped = make(chan struct{}), make(chan struct{})
	go sp.watch()
}

func (sp *space) close() {
	if sp.stop != nil {
		close(sp.stop)
		<-sp.stopped
	}
}

// makeReserve writes the reserve file with real blocks (fallocate, so
// that the space is taken now and can be given back later).
func (sp *space) makeReserve() error {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if sp.has {
		return nil
	}
	f, err := os.OpenFile(sp.path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := syscall.Fallocate(int(f.Fd()), 0, 0, sp.size); err != nil {
		f.Truncate(0)
		return fmt.Errorf("reserving %d bytes: %w", sp.size, err)
	}
	sp.has = true
	return nil
}

// release gives the reserve back to the file system. It says whether
// there was one to give.
func (sp *space) release() bool {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if !sp.has {
		return false
	}
	if err := os.Remove(sp.path); err != nil {
		sp.log.Error("store: giving back the disk reserve", "err", err)
		return false
	}
	sp.has = false
	return true
}

func (sp *space) goLow(why string) {
	if !sp.low.Swap(true) {
		sp.log.Error("store: the disk is full: new mail is refused (452 4.3.1) until space is freed", "reason", why, "dir", sp.dir)
	}
}

// free returns the bytes available to this process under the directory.
func (sp *space) free() (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(sp.dir, &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}

// watch goes low when less than the reserve is free, and back when
// twice the reserve is free and the reserve could be made again.
func (sp *space) watch() {
	defer close(sp.stopped)
	t := time.NewTicker(spaceWatch)
	defer t.Stop()
	for {
		select {
		case <-sp.stop:
			return
		case <-t.C:
		}
		free, err := sp.free()
		if err != nil {
			continue
		}
		switch {
		case !sp.low.Load() && free < sp.size:
			sp.goLow(fmt.Sprintf("%d bytes free, less than the reserve of %d", free, sp.size))
		case sp.low.Load() && free >= 2*sp.size:
			if err := sp.makeReserve(); err == nil {
				sp.low.Store(false)
				sp.log.Info("store: disk space is back: accepting mail again", "free", free)
			}
		}
	}
}

// noSpace says err is the file system's "full" (or over a disk quota).
func noSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) || errors.Is(err, ErrNoSpace)
}

// spaceErr turns a full disk into ErrNoSpace (and puts the store in its
// low-space state); other errors pass unchanged.
func (s *Store) spaceErr(err error) error {
	if err == nil || !noSpace(err) {
		return err
	}
	s.space.goLow(err.Error())
	if errors.Is(err, ErrNoSpace) {
		return err
	}
	return fmt.Errorf("%w (%w)", ErrNoSpace, err)
}

// LowSpace says the store refuses new mail because the disk is full.
func (s *Store) LowSpace() bool { return s.space.low.Load() }
