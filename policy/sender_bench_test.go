package policy

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"abox/store"
)

// deferAll answers every recipient "try later", at once.
type deferAll struct {
	mu sync.Mutex
	n  int
}

func (d *deferAll) Send(_ context.Context, _ string, m *OutMessage) OutResult {
	d.mu.Lock()
	d.n++
	d.mu.Unlock()
	res := OutResult{}
	for range m.Recipients {
		res.Recipients = append(res.Recipients, OutOutcome{Status: OutDeferred, Code: 451, Enhanced: "4.4.1", Text: "no answer"})
	}
	return res
}

// BenchmarkOutboundQueueMemory fills the queue with N messages (one
// body shared, as a broadcast's would be), then lets the sender loop
// work through all of them against a destination that defers every
// one, and reports the heap in use while it does: memory follows the
// concurrency, not the queue's length.
//
//	go test -run X -bench OutboundQueueMemory -benchtime 1x ./policy
func BenchmarkOutboundQueueMemory(b *testing.B) {
	for _, n := range []int{1_000, 1_000_000} {
		b.Run(fmt.Sprintf("queued=%d", n), func(b *testing.B) {
			for range b.N {
				benchQueueMemory(b, n)
			}
		})
	}
}

func benchQueueMemory(b *testing.B, n int) {
	clk := &fakeClock{t: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)}
	st, err := store.Open(filepath.Join(b.TempDir(), store.FileName), store.Options{Clock: clk.Now, WAL: true})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	body := []byte("From: alice@example.kz\r\nTo: x@far.test\r\nSubject: hello\r\n\r\n" + string(make([]byte, 4000)) + "\r\n")
	var wg sync.WaitGroup
	per := n / 16
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range per {
				d := &store.Delivery{Body: body, Shareable: true, AllOrNothing: true, Queue: []*store.QueueEntry{{
					Domain: fmt.Sprintf("d%d.test", (w*per+i)%1000), From: "alice@example.kz",
					Recipients: []store.QueueRecipient{{Address: fmt.Sprintf("r%d@d%d.test", i, (w*per+i)%1000)}}}}}
				if _, err := st.Deliver(context.Background(), d); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	tr := &deferAll{}
	e := New(st, Config{Clock: clk.Now, Outbound: &OutboundConfig{Transport: tr, Hostname: "mx.example.kz", RetryMin: time.Hour, RetryMax: time.Hour}})
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	b.ResetTimer()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = e.RunOutbound(ctx) }()
	peak := uint64(0)
	for {
		time.Sleep(100 * time.Millisecond)
		runtime.ReadMemStats(&ms)
		peak = max(peak, ms.HeapInuse)
		tr.mu.Lock()
		sent := tr.n
		tr.mu.Unlock()
		if sent >= per*16 {
			break
		}
	}
	cancel()
	<-done
	b.StopTimer()
	b.ReportMetric(float64(base)/(1<<20), "heap-before-MiB")
	b.ReportMetric(float64(peak)/(1<<20), "heap-peak-MiB")
	b.ReportMetric(float64(per*16)/b.Elapsed().Seconds(), "attempts/s")
}
