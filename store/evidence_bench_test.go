package store

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"abox/evidence"
)

// BenchmarkEvidence fills a real bbolt file with EVIDENCE_EVENTS events
// (default 100,000; recipient-sized like a broadcast's) and reports the
// bytes each costs on disk, the time of one inclusion proof, and of a
// full VerifyEvidence. docs/BENCHMARKS.md has the numbers and command.
func BenchmarkEvidence(b *testing.B) {
	n := 100_000
	if v, err := strconv.Atoi(os.Getenv("EVIDENCE_EVENTS")); err == nil && v > 0 {
		n = v
	}
	s, clk := openTest(b)
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	for start := 0; start < n; start += 5000 {
		err := s.update(ctx, func(t *txn) error {
			for i := start; i < min(start+5000, n); i++ {
				e := EvidenceEvent{Kind: EvidenceStored, MessageID: "broadcast-1@egov.kz", Sender: "egov",
					Recipient: fmt.Sprintf("user%07d@example.kz", i), Account: uint64(i + 1),
					MessageSHA: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
					ConsentSHA: "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752"}
				if err := t.appendEvidence(e); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	size, root, err := s.EvidenceHead()
	if err != nil {
		b.Fatal(err)
	}
	h, _ := evidence.Sign(priv, size, clk.Now(), root)
	if err := s.AddSignedHead(ctx, h); err != nil {
		b.Fatal(err)
	}
	perEvent := float64(evidenceBytes(b, s)) / float64(n)
	start := time.Now()
	const proofs = 1000
	for i := 0; i < proofs; i++ {
		if _, err := s.InclusionProof(uint64(i*7919)%size, size); err != nil {
			b.Fatal(err)
		}
	}
	perProof := float64(time.Since(start).Microseconds()) / proofs
	// CPU time, not wall time: the machine is shared.
	cpu0 := cpuTime()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rep, err := s.VerifyEvidence(pub, nil)
		if err != nil || !rep.OK {
			b.Fatalf("%+v %v", rep, err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "verify-wall-ns/event")
	b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N)/float64(n), "verify-cpu-ns/event")
	b.ReportMetric(perEvent, "file-bytes/event")
	b.ReportMetric(perProof, "µs/proof")
}

// evidenceBytes is the space the evidence buckets use in the file.
func evidenceBytes(b *testing.B, s *Store) int {
	n := 0
	err := s.view(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bEvidence, bEvidenceTree, bEvidenceMsg} {
			st := tx.Bucket(name).Stats()
			n += st.BranchAlloc + st.LeafAlloc
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return n
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
