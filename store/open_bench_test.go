package store

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"abox/accounts"
)

// TestOpenChild opens the store named by ABOX_OPEN_DB, reads one account,
// and prints the open time and this process's peak RSS. It is the child
// half of BenchmarkOpenMillion, run in a fresh process so the RSS is the
// open's alone.
func TestOpenChild(t *testing.T) {
	path := os.Getenv("ABOX_OPEN_DB")
	if path == "" {
		t.Skip("child of BenchmarkOpenMillion")
	}
	start := time.Now()
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Account("user1@example.kz"); err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	status, _ := os.ReadFile("/proc/self/status")
	var hwm string
	for _, line := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			hwm = strings.Fields(line)[1]
		}
	}
	fmt.Printf("OPEN %d %s\n", elapsed.Microseconds(), hwm)
	s.Close()
}

// BenchmarkOpenMillion builds a store of 1,000,000 messages in 10,000
// accounts (bulk-loaded through the store's own write path in large
// transactions), then opens it in a child process and reports the time to
// open and the child's peak RSS.
//
//	go test -run '^$' -bench BenchmarkOpenMillion -benchtime 1x -timeout 30m ./store/
func BenchmarkOpenMillion(b *testing.B) {
	path := filepath.Join(b.TempDir(), FileName)
	s, err := Open(path, Options{FastCommits: true})
	if err != nil {
		b.Fatal(err)
	}
	s.AddDomain(ctx, "example.kz", op)
	const accountsN, perAccount = 10_000, 100
	ids := make([]uint64, 0, accountsN)
	for i := range accountsN {
		a, err := s.CreateAccount(ctx, accounts.Account{Login: fmt.Sprintf("user%d", i), Domain: "example.kz"}, op)
		if err != nil {
			b.Fatal(err)
		}
		ids = append(ids, a.ID)
	}
	pad := bytes.Repeat([]byte("x"), 300)
	for start := 0; start < accountsN; start += 100 {
		err := s.update(ctx, func(t *txn) error {
			for _, id := range ids[start : start+100] {
				for j := range perAccount {
					body := append(fmt.Appendf(nil, "Subject: %d/%d\r\n\r\n", id, j), pad...)
					blob, known, err := t.blobFor([32]byte{}, false)
					if err != nil {
						return err
					}
					r := Recipient{Account: id}
					if _, err := t.deliverOne(&r, blob, int64(len(body)), t.now); err != nil {
						return err
					}
					h := [32]byte{}
					copy(h[:], fmt.Sprint(id, j))
					if err := t.addBodyRefs(blob, known, false, h, body, nil, 1); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	size := s.FileSize()
	s.Close()
	b.ResetTimer()
	for range b.N {
		cmd := exec.Command(os.Args[0], "-test.run=^TestOpenChild$")
		cmd.Env = append(os.Environ(), "ABOX_OPEN_DB="+path)
		out, err := cmd.CombinedOutput()
		if err != nil {
			b.Fatalf("child: %v\n%s", err, out)
		}
		for _, line := range strings.Split(string(out), "\n") {
			if f := strings.Fields(line); len(f) == 3 && f[0] == "OPEN" {
				us, _ := strconv.Atoi(f[1])
				kb, _ := strconv.Atoi(f[2])
				b.ReportMetric(float64(us)/1000, "open-ms")
				b.ReportMetric(float64(kb)/1024, "peak-RSS-MiB")
			}
		}
	}
	b.ReportMetric(float64(size)/(1<<20), "file-MiB")
}
