package store

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"abox/accounts"
)

// TestCrashChild is the child half of TestSIGKILLLosesNoAcknowledgedDelivery:
// it delivers in a loop from several goroutines and prints the number of
// every delivery as soon as Deliver has returned.
func TestCrashChild(t *testing.T) {
	path := os.Getenv("ABOX_CRASH_DB")
	if path == "" {
		t.Skip("child of the crash test")
	}
	s, err := Open(path, Options{WAL: os.Getenv("ABOX_CRASH_WAL") != ""})
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(3)
	}
	acct, err := s.Account("alice@example.kz")
	if err != nil {
		fmt.Println("account:", err)
		os.Exit(3)
	}
	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				n := w*1_000_000 + i
				if _, err := s.Deliver(ctx, &Delivery{Body: crashBody(n), Shareable: true, Recipients: []Recipient{{Account: acct.ID}}}); err != nil {
					fmt.Println("deliver:", err)
					os.Exit(3)
				}
				mu.Lock()
				fmt.Fprintf(out, "acked %d\n", n)
				out.Flush()
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

// crashBody is delivery n's body: every third one large enough for a
// body segment.
func crashBody(n int) []byte {
	b := msg(n)
	if n%3 == 0 {
		b = append(b, strings.Repeat(fmt.Sprintf("padding of %d\r\n", n), 20<<10/16)...)
	}
	return b
}

func TestSIGKILLLosesNoAcknowledgedDelivery(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a child process")
	}
	t.Run("commits", func(t *testing.T) { crashRounds(t, false) })
	// With the write-ahead log, acknowledged deliveries are mostly in the
	// log only when the child dies; Open applies them.
	t.Run("write-ahead log", func(t *testing.T) { crashRounds(t, true) })
}

func crashRounds(t *testing.T, wal bool) {
	path := filepath.Join(t.TempDir(), FileName)
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.AddDomain(ctx, "example.kz", op)
	if _, err := s.CreateAccount(ctx, accounts.Account{Login: "alice", Domain: "example.kz"}, op); err != nil {
		t.Fatal(err)
	}
	s.Close()

	for round := range 3 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.v")
		cmd.Env = append(os.Environ(), "ABOX_CRASH_DB="+path)
		if wal {
			cmd.Env = append(cmd.Env, "ABOX_CRASH_WAL=1")
		}
		stdout, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		var acked []int
		sc := bufio.NewScanner(stdout)
		deadline := time.Now().Add(20 * time.Second) // a bound, not a target: the child stops at its count
		for sc.Scan() {
			line := sc.Text()
			if n, ok := strings.CutPrefix(line, "acked "); ok {
				v, _ := strconv.Atoi(n)
				acked = append(acked, v)
			} else if strings.HasPrefix(line, "open:") || strings.HasPrefix(line, "deliver:") || strings.HasPrefix(line, "account:") {
				t.Fatalf("child: %s", line)
			}
			if len(acked) >= 300+round*200 || time.Now().After(deadline) {
				break
			}
		}
		cmd.Process.Signal(syscall.SIGKILL)
		// Whatever the child printed after the kill decision is also acked.
		for sc.Scan() {
			if n, ok := strings.CutPrefix(sc.Text(), "acked "); ok {
				v, _ := strconv.Atoi(n)
				acked = append(acked, v)
			}
		}
		cmd.Wait()
		if len(acked) == 0 {
			t.Fatal("child acknowledged nothing")
		}

		s, err := Open(path, Options{WAL: wal})
		if err != nil {
			t.Fatalf("reopen after SIGKILL: %v", err)
		}
		mustCheck(t, s)
		for _, n := range acked {
			blob, err := s.BodyByHash(sha256.Sum256(crashBody(n)))
			if err != nil {
				t.Fatalf("round %d: acknowledged delivery %d lost: %v", round, n, err)
			}
			if body, _, err := s.Body(blob); err != nil || !bytes.Equal(body, crashBody(n)) {
				t.Fatalf("round %d: acknowledged delivery %d: %d bytes (want %d), %v", round, n, len(body), len(crashBody(n)), err)
			}
		}
		if segs, _ := filepath.Glob(filepath.Join(path+SegmentDirSuffix, "*")); len(segs) == 0 {
			t.Fatalf("round %d: no body segments: the large deliveries were not exercised", round)
		}
		t.Logf("round %d: %d acknowledged deliveries all present", round, len(acked))
		s.Close()
	}
}
