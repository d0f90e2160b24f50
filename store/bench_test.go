package store

import (
	"bytes"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

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
	s, err := Open(filepath.Join(b.TempDir(), FileName), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	s.AddDomain(ctx, "example.kz", op)
	var ids []uint64
	for i := range 100 {
		a, err := s.CreateAccount(ctx, accounts.Account{Login: fmt.Sprintf("user%d", i), Domain: "example.kz"}, op)
		if err != nil {
			b.Fatal(err)
		}
		ids = append(ids, a.ID)
	}
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
