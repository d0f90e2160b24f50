package store

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"abox/accounts"
)

// BenchmarkBroadcastMillion builds ABOX_BROADCAST_N accounts (default
// 1,000,000), then broadcasts one message to all of them in batches of
// 1,000 while 4 writers keep delivering single messages, and reports the
// broadcast's duration, the store growth per recipient, and the live
// deliveries' p99 latency. With ABOX_BROADCAST_OFFICIAL=1 the message is
// an official letter: every recipient also gets its evidence entries
// (accepted, stored), tree nodes and index keys, and the bytes the
// evidence log grew by are reported per recipient.
//
//	go test -run '^$' -bench BenchmarkBroadcastMillion -benchtime 1x -timeout 60m ./store/
//	ABOX_BROADCAST_OFFICIAL=1 go test -run '^$' -bench BenchmarkBroadcastMillion -benchtime 1x -timeout 60m ./store/
func BenchmarkBroadcastMillion(b *testing.B) {
	n := 1_000_000
	if v, err := strconv.Atoi(os.Getenv("ABOX_BROADCAST_N")); err == nil {
		n = v
	}
	s, err := Open(filepath.Join(b.TempDir(), FileName), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	start := time.Now()
	addAccounts(b, s, n)
	b.Logf("created %d accounts in %s", n, time.Since(start))
	live, _ := s.Account("user000001@example.kz")
	sizeBefore := s.liveBytes()
	body := msg(1)

	b.ResetTimer()
	stop := make(chan struct{})
	var lat []time.Duration
	var mu sync.Mutex
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
				if _, err := s.Deliver(ctx, &Delivery{Body: msg(w*1_000_000 + i), Recipients: []Recipient{{Account: live.ID}}}); err != nil {
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
	official := os.Getenv("ABOX_BROADCAST_OFFICIAL") == "1"
	evBefore, _, _ := s.EvidenceHead()
	evBytesBefore := s.bucketBytes(bEvidence, bEvidenceTree, bEvidenceMsg, bEvidenceAcct)
	t0 := time.Now()
	bc, _, err := s.StartBroadcast(ctx, Broadcast{Source: "bench", Sender: "kazpost", Official: official, MessageID: "bench-1@kazpost.kz"}, body, nil, false)
	if err != nil {
		b.Fatal(err)
	}
	pick := func(a *accounts.Account) (Recipient, error) { return Recipient{NotReceived: true}, nil }
	for !bc.Done {
		if bc, err = s.BroadcastStep(ctx, bc.ID, broadcastBench, pick); err != nil {
			b.Fatal(err)
		}
	}
	elapsed := time.Since(t0)
	close(stop)
	wg.Wait()
	b.StopTimer()
	slices.Sort(lat)
	grown := s.liveBytes() - sizeBefore
	b.ReportMetric(elapsed.Seconds(), "broadcast-s")
	b.ReportMetric(float64(bc.Delivered)/elapsed.Seconds(), "recipients/s")
	b.ReportMetric(float64(grown)/float64(bc.Delivered), "bytes/recipient")
	if official {
		evAfter, _, _ := s.EvidenceHead()
		b.ReportMetric(float64(evAfter-evBefore)/float64(bc.Delivered), "evidence-entries/recipient")
		b.ReportMetric(float64(s.bucketBytes(bEvidence, bEvidenceTree, bEvidenceMsg, bEvidenceAcct)-evBytesBefore)/float64(bc.Delivered), "evidence-bytes/recipient")
	}
	if len(lat) > 0 {
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "live-p99-ms")
		b.ReportMetric(float64(len(lat)), "live-deliveries")
	}
}

// broadcastBench is the batch size the benchmark uses; policy uses the
// same (policy.broadcastBatch).
const broadcastBench = 250

// bucketBytes is what some buckets occupy (their pages).
func (s *Store) bucketBytes(names ...[]byte) int64 {
	var pages int
	s.view(func(tx *bolt.Tx) error {
		for _, n := range names {
			st := tx.Bucket(n).Stats()
			pages += st.BranchPageN + st.BranchOverflowN + st.LeafPageN + st.LeafOverflowN
		}
		return nil
	})
	return int64(pages) * int64(s.db.Info().PageSize)
}

// liveBytes is what the data occupies: every page of every bucket, page
// slack included (free pages excluded).
func (s *Store) liveBytes() int64 {
	var pages int
	s.view(func(tx *bolt.Tx) error {
		return tx.ForEach(func(_ []byte, b *bolt.Bucket) error {
			st := b.Stats()
			pages += st.BranchPageN + st.BranchOverflowN + st.LeafPageN + st.LeafOverflowN
			return nil
		})
	})
	return int64(pages) * int64(s.db.Info().PageSize)
}
