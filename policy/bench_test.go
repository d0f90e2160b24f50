package policy

import (
	"bytes"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"abox/accounts"
	"abox/store"
)

// BenchmarkScore is the local content checks on a well-formed 1 KiB
// and a 64 KiB message (DNS checks off): compare with SMTP's end-of-data latency.
//
//	go test -run '^$' -bench BenchmarkScore ./policy/
func BenchmarkScore(b *testing.B) {
	st, err := store.Open(filepath.Join(b.TempDir(), store.FileName), store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	e := New(st, Config{})
	e.extraChecks = nil // local checks only: SPF/DKIM/DMARC wait on DNS
	body := []byte("From: Kazpost <news@post.kz>\r\nTo: alice@example.kz\r\nSubject: hello\r\nDate: Wed, 25 Nov 2026 10:00:00 +0600\r\nMessage-ID: <1@post.kz>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n")
	for _, lines := range []int{22, 1420} { // 1 KiB and 64 KiB
		msg := append(slices.Clip(body), bytes.Repeat([]byte("The quick brown fox jumps over the lazy dog.\r\n"), lines)...)
		b.Run(fmt.Sprintf("%dKiB", len(msg)>>10), func(b *testing.B) {
			b.SetBytes(int64(len(msg)))
			for b.Loop() {
				if v := e.Score(ctx, &Inspection{Body: msg, ClientIP: netip.MustParseAddr("192.0.2.1"), Recipients: 1}); v.Action != Accept {
					b.Fatalf("verdict %+v", v)
				}
			}
		})
	}
}

// BenchmarkRetentionSweep expires 1,000,000 Trash messages in 10,000
// accounts while 4 writers keep delivering, and reports the sweep's time
// and the live deliveries' worst and p99 latency.
//
//	go test -run '^$' -bench BenchmarkRetentionSweep -benchtime 1x -timeout 60m ./policy/
func BenchmarkRetentionSweep(b *testing.B) {
	clk := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	st, err := store.Open(filepath.Join(b.TempDir(), store.FileName), store.Options{Clock: clk.Now, FastCommits: true})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	st.AddDomain(ctx, "example.kz", store.Audit{Actor: store.ActorOperator})
	const accountsN, perAccount = 10_000, 100
	var ids []uint64
	for i := range accountsN {
		a, err := st.CreateAccount(ctx, accounts.Account{Login: fmt.Sprintf("user%05d", i), Domain: "example.kz"}, store.Audit{Actor: store.ActorSystem})
		if err != nil {
			b.Fatal(err)
		}
		ids = append(ids, a.ID)
	}
	// 100 deliveries of one 1 KiB body to 100 accounts' Trash each.
	pad := bytes.Repeat([]byte("x"), 1000)
	for j := range perAccount {
		for start := 0; start < accountsN; start += 100 {
			var rc []store.Recipient
			for _, id := range ids[start : start+100] {
				rc = append(rc, store.Recipient{Account: id, SpecialUse: `\Trash`, NotReceived: true})
			}
			body := append(fmt.Appendf(nil, "Subject: %d %d\r\n\r\n", j, start), pad...)
			if _, err := st.Deliver(ctx, &store.Delivery{Body: body, Recipients: rc, AllOrNothing: true}); err != nil {
				b.Fatal(err)
			}
		}
	}
	e := New(st, Config{Clock: clk.Now})
	live, _ := st.Account("user00001@example.kz")
	b.ResetTimer()
	stop := make(chan struct{})
	var mu sync.Mutex
	var lat []time.Duration
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				t0 := time.Now()
				body := fmt.Appendf(nil, "Subject: live %d %d\r\n\r\nhello\r\n", w, i)
				if _, err := st.Deliver(ctx, &store.Delivery{Body: body, Recipients: []store.Recipient{{Account: live.ID}}}); err != nil {
					b.Error(err)
					return
				}
				mu.Lock()
				lat = append(lat, time.Since(t0))
				mu.Unlock()
				time.Sleep(2 * time.Millisecond)
			}
		}()
	}
	t0 := time.Now()
	n := 0
	if err := e.Sweep(ctx, clk.Now().AddDate(0, 0, 31), false, func(a SweepAction) { n++ }); err != nil {
		b.Fatal(err)
	}
	elapsed := time.Since(t0)
	close(stop)
	wg.Wait()
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(elapsed.Seconds(), "sweep-s")
	b.ReportMetric(float64(n), "actions")
	if len(lat) > 0 {
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "live-p99-ms")
		b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "live-max-ms")
	}
}
