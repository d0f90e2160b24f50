package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"time"

	"abox/store"
)

// Some of serve's background jobs must run on exactly one node at a
// time: the retention and inactivity sweeps (two nodes would each
// deliver the warning letter), the evidence tree heads with the
// receipts mailed after them, and on PostgreSQL the build of the
// evidence log (placing pending entries in the tree). On the bbolt backend one process holds the
// file and runs them. On PostgreSQL every node runs the loop below for
// each such job: it asks for the job's lease (store/pgstore/leases.go)
// every third of lease-ttl, runs the job while it holds the lease, and
// stops it when another node has the lease or when it could not renew
// for two thirds of lease-ttl (the database unreachable: by then another
// node may take over). A node that dies stops renewing: another takes
// the job once its lease has expired, within lease-ttl and one renewal
// interval. A clean stop releases the lease at once.
//
// The outbound sender loop is not one of them: every node runs it (its
// queue leases, taken with SKIP LOCKED, give each entry to one node).

// Names of the leases of serve's one-node jobs.
const (
	leaseSweeps        = "sweeps"
	leaseEvidence      = "evidence-heads"
	leaseEvidenceBuild = "evidence-build"
)

// evidenceBuildEvery is how often the holder of the evidence build's
// lease places pending evidence entries. Readers that need an entry
// placed (a notice, a head) build it themselves, so this only keeps the
// pending set small; with nothing pending a build is one query.
const evidenceBuildEvery = 2 * time.Second

// leaseStore is what the lease loop asks of the store: the PostgreSQL
// backend's leases.
type leaseStore interface {
	TryLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error)
	ReleaseLease(ctx context.Context, name, holder string) error
}

// errLeaseLost is the cause of a job's context ending because its node
// no longer holds the job's lease (not a shutdown).
var errLeaseLost = errors.New("the job's lease passed to another node")

// nodeName names this process as a lease holder: host, process and a
// random part, so that a restarted node never mistakes an old lease of
// its previous process for its own.
func nodeName() string {
	host, _ := os.Hostname()
	var r [4]byte
	rand.Read(r[:])
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(r[:]))
}

// exclusive runs job until ctx ends, on this node only while it holds
// the lease name (always, on the bbolt backend). job must return soon
// after its context ends; context.Cause tells a lost lease
// (errLeaseLost) from a shutdown. The channel closes when job has
// returned and the lease is released.
func (s *server) exclusive(ctx context.Context, name string, job func(context.Context)) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		if s.leases == nil {
			job(ctx)
			return
		}
		s.holdLease(ctx, name, job)
	}()
	return done
}

// holdLease is exclusive's loop on the PostgreSQL backend.
func (s *server) holdLease(ctx context.Context, name string, job func(context.Context)) {
	ttl := s.leaseTTL
	every := ttl / 3
	log := s.log.With("job", name, "node", s.node)
	var (
		stop       context.CancelCauseFunc // the running job's, nil when none runs
		jobDone    chan struct{}
		taken      bool      // we held it at some time (a stop releases it, if still ours)
		validUntil time.Time // on our clock: stop the job past this without a renewal
		elsewhere  bool      // logged that another node runs it
	)
	stopJob := func(cause error) {
		if stop == nil {
			return
		}
		stop(cause)
		<-jobDone
		stop, jobDone = nil, nil
	}
	defer func() {
		stopJob(context.Canceled)
		if taken { // a release of a lease another node has taken since changes nothing
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if err := s.leases.ReleaseLease(rctx, name, s.node); err != nil {
				log.Warn("lease not released: another node takes the job once it expires", "err", err)
			} else {
				log.Info("lease released")
			}
		}
	}()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		asked := time.Now()
		actx, cancel := context.WithTimeout(ctx, every/2)
		ok, err := s.leases.TryLease(actx, name, s.node, ttl)
		cancel()
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			log.Warn("lease not renewed", "err", err)
			if stop != nil && time.Now().After(validUntil) {
				stopJob(errLeaseLost)
				log.Warn("job stopped: its lease could not be renewed in time and may pass to another node")
			}
		case ok:
			taken, elsewhere = true, false
			validUntil = asked.Add(2 * every)
			if stop == nil {
				jctx, cancel := context.WithCancelCause(ctx)
				stop = cancel // called by stopJob, at the latest when the loop ends
				jobDone = make(chan struct{})
				go func(done chan struct{}) {
					defer close(done)
					job(jctx)
				}(jobDone)
				log.Info("lease taken: the job runs on this node", "ttl", ttl)
			}
		default:
			if stop != nil {
				stopJob(errLeaseLost)
				log.Warn("lease lost to another node: job stopped here")
			} else if !elsewhere {
				log.Info("the job runs on another node (it holds the lease)")
			}
			elsewhere = true
		}
		timer.Reset(every)
	}
}

// logJobFailure logs the failure of one turn of a background job: a
// warning when the storage is out of reach for now (PostgreSQL or the
// object store restarting: the job runs again at its next turn, nothing
// to fix in abox), an error otherwise.
func (s *server) logJobFailure(msg string, err error) {
	if errors.Is(err, store.ErrStorageFailing) {
		s.log.Warn(msg, "err", err)
		return
	}
	s.log.Error(msg, "err", err)
}

// evidenceBuilder is the PostgreSQL backend's builder of the evidence
// log: entries are written pending by the deliveries of every node and
// placed in the log by one builder at a time. (The bbolt store builds at
// its checkpoints.)
type evidenceBuilder interface {
	BuildEvidence(ctx context.Context) (int, error)
}

// startEvidenceBuilder places pending evidence entries every
// evidenceBuildEvery, on one node at a time, when the store has a
// builder.
func (s *server) startEvidenceBuilder(ctx context.Context) <-chan struct{} {
	b, ok := s.store.(evidenceBuilder)
	if !ok {
		done := make(chan struct{})
		close(done)
		return done
	}
	return s.exclusive(ctx, leaseEvidenceBuild, func(ctx context.Context) {
		t := time.NewTicker(evidenceBuildEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			n, err := b.BuildEvidence(ctx)
			switch {
			case err != nil && ctx.Err() == nil:
				s.logJobFailure("building the evidence log", err)
			case n > 0:
				s.log.Debug("evidence entries placed in the log", "entries", n)
			}
		}
	})
}
