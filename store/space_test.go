package store

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// tmpfs mounts a small tmpfs for a full-disk test (root only; skipped
// elsewhere, saying why).
func tmpfs(t *testing.T, size int64) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d", size), "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("a full disk is a tmpfs here, which needs root: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	return dir
}

func fill(t *testing.T, dir string) {
	t.Helper()
	f, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, n := range []int{1 << 20, 4 << 10, 1} {
		buf := make([]byte, n)
		for {
			if _, err := f.Write(buf); err != nil {
				if !errors.Is(err, syscall.ENOSPC) {
					t.Fatal(err)
				}
				break
			}
		}
	}
}

// TestCheckpointOnAFullDisk: deliveries acknowledged from the log while
// the disk is full must reach readers. The checkpoint that would make
// them readable cannot grow the file; the store gives its reserve back,
// commits, and refuses new mail (ErrNoSpace) until space returns.
// Before, the failed checkpoint woke the readers, who read the file
// without the acknowledged messages.
func TestCheckpointOnAFullDisk(t *testing.T) {
	old := spaceWatch
	spaceWatch = time.Hour // the watcher must not see the full disk first
	defer func() { spaceWatch = old }()
	dir := tmpfs(t, 64<<20)
	path := filepath.Join(dir, FileName)
	s, err := Open(path, Options{WAL: true, ReserveSpace: 8 << 20, SegmentMin: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	a := addAccount(t, s, "alice@example.kz")
	fill(t, dir)
	// Small deliveries are logged: the log was written in advance and
	// needs no new space, so they are acknowledged.
	acked := 0
	for i := range 200 {
		body := append(msg(i), make([]byte, 8<<10)...)
		if _, err := s.Deliver(ctx, &Delivery{Body: body, Recipients: []Recipient{{Account: a.ID}}}); err != nil {
			if !errors.Is(err, ErrNoSpace) {
				t.Fatalf("delivery %d: %v, want ErrNoSpace or success", i, err)
			}
			break
		}
		acked++
	}
	if acked == 0 {
		t.Fatal("nothing acknowledged: the test proves nothing")
	}
	mb, err := s.MailboxByName(a.ID, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	uids, err := s.UIDs(a.ID, mb.ID)
	if err != nil || len(uids) != acked {
		t.Fatalf("%d acknowledged; a reader sees %d (%v)", acked, len(uids), err)
	}
	if !s.LowSpace() {
		t.Fatal("the store does not know the disk is full")
	}
	if _, err := s.Deliver(ctx, &Delivery{Body: msg(1000), Recipients: []Recipient{{Account: a.ID}}}); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("a delivery on a full disk: %v, want ErrNoSpace", err)
	}
	t.Logf("%d deliveries acknowledged on the full disk, all readable", acked)
	os.Remove(filepath.Join(dir, "filler"))
	mustCheck(t, s)
}

// TestFullDiskWithoutReserve: with no reserve to give back, acknowledged
// deliveries stay in the log only: a reader gets ErrStorageFailing (not
// the older file as if it were the truth), Close still returns (before,
// the transaction rebuilt after the failed checkpoint held bbolt's
// writer lock and Close waited for ever), and the next Open, with space,
// applies the log.
func TestFullDiskWithoutReserve(t *testing.T) {
	old := spaceWatch
	spaceWatch = time.Hour
	defer func() { spaceWatch = old }()
	dir := tmpfs(t, 64<<20)
	path := filepath.Join(dir, FileName)
	s, err := Open(path, Options{WAL: true, ReserveSpace: -1, SegmentMin: -1})
	if err != nil {
		t.Fatal(err)
	}
	a := addAccount(t, s, "alice@example.kz")
	mb, err := s.MailboxByName(a.ID, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	fill(t, dir)
	acked := 0
	for i := range 100 {
		body := append(msg(i), make([]byte, 8<<10)...)
		if _, err := s.Deliver(ctx, &Delivery{Body: body, Recipients: []Recipient{{Account: a.ID}}}); err != nil {
			break
		}
		acked++
	}
	if uids, err := s.UIDs(a.ID, mb.ID); !errors.Is(err, ErrStorageFailing) && len(uids) != acked {
		t.Fatalf("%d acknowledged; a reader sees %d and %v (want all, or ErrStorageFailing)", acked, len(uids), err)
	}
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	select {
	case <-closed:
	case <-time.After(30 * time.Second): // a bound, not a speed: Close used to hang for ever
		t.Fatal("Close did not return on a full disk")
	}
	os.Remove(filepath.Join(dir, "filler"))
	s2, err := Open(path, Options{WAL: true, SegmentMin: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if uids, err := s2.UIDs(a.ID, mb.ID); err != nil || len(uids) != acked {
		t.Fatalf("after a restart with space: %d of %d acknowledged, %v", len(uids), acked, err)
	}
	mustCheck(t, s2)
}
