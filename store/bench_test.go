package store

import (
	"bytes"
	"crypto/sha256"
	"flag"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"abox/accounts"
)

// BenchmarkDeliver measures durable single-recipient deliveries of
// distinct messages from concurrent writers.
//
//	go test -run '^$' -bench BenchmarkDeliver -benchtime 20000x ./store/
func BenchmarkDeliver(b *testing.B) {
	for _, size := range []int{1 << 10, 64 << 10} {
		for _, writers := range []int{1, 16} {
			b.Run(fmt.Sprintf("size=%dKiB/writers=%d", size>>10, writers), func(b *testing.B) {
				benchDeliver(b, size, writers)
			})
		}
	}
}

func benchDeliver(b *testing.B, size, writers int) {
	s, err := Open(filepath.Join(b.TempDir(), FileName), Options{FastCommits: true})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ids := benchAccounts(b, s)
	pad := bytes.Repeat([]byte("x"), size)
	var next atomic.Int64
	before := s.WriterStats()
	b.SetBytes(int64(size))
	b.ResetTimer()
	var wg sync.WaitGroup
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				n := next.Add(1)
				if n > int64(b.N) {
					return
				}
				body := append(fmt.Appendf(nil, "Subject: %d\r\n\r\n", n), pad...)
				if _, err := s.Deliver(ctx, &Delivery{Body: body, Recipients: []Recipient{{Account: ids[n%100]}}}); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	st := s.WriterStats()
	commits := st.Commits - before.Commits
	secs := b.Elapsed().Seconds()
	b.ReportMetric(float64(b.N)/secs, "deliveries/s")
	b.ReportMetric(float64(commits)/secs, "fsyncs/s")
	b.ReportMetric(float64(b.N)/float64(max(commits, 1)), "per-commit")
}

// BenchmarkChurnSpace delivers mixed-size messages while expunging the
// oldest ones so the live data stays constant, and reports how large the
// file grows relative to the live bytes (target: at most 1.5x).
//
//	go test -run '^$' -bench BenchmarkChurnSpace -benchtime 1x ./store/
func BenchmarkChurnSpace(b *testing.B) {
	const live = 64 << 20 // bytes kept
	const written = 640 << 20
	sizes := []int{1 << 10, 4 << 10, 16 << 10, 64 << 10}
	for range b.N {
		s, err := Open(filepath.Join(b.TempDir(), FileName), Options{FastCommits: true})
		if err != nil {
			b.Fatal(err)
		}
		s.AddDomain(ctx, "example.kz", op)
		var ids []uint64
		for i := range 50 {
			a, _ := s.CreateAccount(ctx, accounts.Account{Login: fmt.Sprintf("user%d", i), Domain: "example.kz"}, op)
			ids = append(ids, a.ID)
		}
		type ref struct {
			acct uint64
			mbox uint32
			uid  uint32
			size int
		}
		var queue []ref
		var liveBytes, total int64
		var peak int64
		var wg sync.WaitGroup
		var mu sync.Mutex
		next := 0
		for w := 0; w < 8; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					mu.Lock()
					if total >= written {
						mu.Unlock()
						return
					}
					n := next
					next++
					size := sizes[n%len(sizes)]
					total += int64(size)
					mu.Unlock()
					body := append(fmt.Appendf(nil, "Subject: %d\r\n\r\n", n), bytes.Repeat([]byte{'a' + byte(n%26)}, size)...)
					res, err := s.Deliver(ctx, &Delivery{Body: body, Recipients: []Recipient{{Account: ids[n%len(ids)]}}})
					if err != nil {
						b.Error(err)
						return
					}
					mu.Lock()
					queue = append(queue, ref{res[0].Account, res[0].Mailbox, res[0].UID, len(body)})
					liveBytes += int64(len(body))
					var drop []ref
					for liveBytes > live {
						drop = append(drop, queue[0])
						liveBytes -= int64(queue[0].size)
						queue = queue[1:]
					}
					peak = max(peak, s.FileSize())
					mu.Unlock()
					for _, d := range drop {
						if _, err := s.Expunge(ctx, d.acct, d.mbox, []uint32{d.uid}); err != nil {
							b.Error(err)
							return
						}
					}
				}
			}()
		}
		wg.Wait()
		b.ReportMetric(float64(s.FileSize())/float64(liveBytes), "file/live")
		b.ReportMetric(float64(peak)/float64(liveBytes), "peak/live")
		b.ReportMetric(float64(liveBytes)/(1<<20), "live-MiB")
		s.Close()
	}
}

// BenchmarkDeliverOfficial compares official letters (the consent-era
// path: $Official, the official copy record, the evidence entries in the
// same write-ahead-log record, their tree and indexes built at the
// checkpoint) with the same letters without the evidence entries (the
// comparison for issue 15's budget) and with billing letters (none of
// that), on the store as serve opens it (write-ahead log, fast commits),
// 16 writers, 1 KiB, and reports the process's CPU per delivery: the
// evidence log's cost, measured where nothing else on a shared machine
// blurs it as much as wall time.
//
//	go test -run '^$' -bench BenchmarkDeliverOfficial -benchtime 20000x -count 5 ./store/
//
// With -args -official-recipients 16 -official-accounts 16 each letter
// goes to 16 of 16 accounts, as in the end-to-end comparison of
// docs/BENCHMARKS.md.
func BenchmarkDeliverOfficial(b *testing.B) {
	for _, kind := range []string{"billing", "official", "official-without-evidence"} {
		b.Run("kind="+kind, func(b *testing.B) {
			s, err := Open(filepath.Join(b.TempDir(), FileName), Options{FastCommits: true, WAL: true})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			s.benchNoEvidence = kind == "official-without-evidence"
			ids := benchAccounts(b, s)[:*benchAccountsFlag]
			nr := *benchRecipientsFlag
			pad := bytes.Repeat([]byte("x"), 1<<10)
			var next atomic.Int64
			cpu0 := cpuTime()
			b.ResetTimer()
			var wg sync.WaitGroup
			for range 16 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						n := next.Add(1)
						if n > int64(b.N) {
							return
						}
						rcpts := make([]Recipient, nr)
						addrs := make([]string, nr)
						for r := range nr {
							i := (int(n) + r) % len(ids)
							rcpts[r], addrs[r] = Recipient{Account: ids[i]}, fmt.Sprintf("user%d@example.kz", i)
						}
						// Message-IDs in no order, as from many systems: the
						// Message-ID index's inserts land anywhere.
						sum := sha256.Sum256(fmt.Append(nil, n))
						msgID := fmt.Sprintf("<%x@egov.kz>", sum[:8])
						d := &Delivery{Body: append(fmt.Appendf(nil, "Message-ID: %s\r\nSubject: %d\r\n\r\n", msgID, n), pad...),
							Recipients: rcpts}
						if kind != "billing" {
							d.Official = &OfficialLetter{MessageID: msgID, Sender: "egov",
								Addresses: addrs, AcceptedAt: time.Now(),
								ClientIP: "192.0.2.7", TLS: "TLS 1.3 TLS_AES_128_GCM_SHA256"}
						}
						if _, err := s.Deliver(ctx, d); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "deliveries/s")
			b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/delivery")
		})
	}
}

var (
	benchRecipientsFlag = flag.Int("official-recipients", 1, "BenchmarkDeliverOfficial: recipients of each letter")
	benchAccountsFlag   = flag.Int("official-accounts", 100, "BenchmarkDeliverOfficial: accounts the letters go to (at most 100)")
)

// benchAccounts makes example.kz and its 100 accounts user0..user99.
func benchAccounts(b *testing.B, s *Store) []uint64 {
	b.Helper()
	s.AddDomain(ctx, "example.kz", op)
	var ids []uint64
	for i := range 100 {
		a, err := s.CreateAccount(ctx, accounts.Account{Login: fmt.Sprintf("user%d", i), Domain: "example.kz"}, op)
		if err != nil {
			b.Fatal(err)
		}
		ids = append(ids, a.ID)
	}
	return ids
}
