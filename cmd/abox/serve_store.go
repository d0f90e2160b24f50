package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"abox/store"
	"abox/store/pgstore"
)

// servedStore is the store `abox serve` runs on: the bbolt file in the
// data directory (file set), or the PostgreSQL backend (pg set).
type servedStore struct {
	Store
	file   *store.Store
	pg     *pgstore.Store
	unlock func() // the data directory's serve lock (PostgreSQL only)

	closeOnce sync.Once
	closeErr  error
}

// openServeStore opens the store for serve. On bbolt the file's lock
// keeps a second server off the data directory; on PostgreSQL, where any
// number of nodes share the database, a lock file in the data directory
// does (its control socket and TLS pair are this node's).
func openServeStore(ctx context.Context, cfg *Config, log *slog.Logger) (*servedStore, error) {
	if cfg.postgres() {
		unlock, err := lockData(cfg.Data)
		if err != nil {
			return nil, err
		}
		pg, err := cfg.openPostgres(ctx, log, false)
		if err != nil {
			unlock()
			return nil, err
		}
		cc := pg.Pool().Config().ConnConfig
		log.Info("store: PostgreSQL", "host", cc.Host, "database", cc.Database, "object_store", cfg.ObjectStoreEndpoint, "bucket", cfg.ObjectStoreBucket)
		return &servedStore{Store: pg, pg: pg, unlock: unlock}, nil
	}
	opts := storeOptions(log)
	opts.FastCommits = true
	opts.WAL = true
	if opts.ReserveSpace, _ = parseSize(cfg.ReserveSpace); opts.ReserveSpace == 0 {
		opts.ReserveSpace = -1 // "0": keep none
	}
	st, err := store.Open(cfg.dbPath(), opts)
	if errors.Is(err, store.ErrLocked) {
		return nil, fmt.Errorf("abox serve is already running on %s", cfg.Data)
	}
	if err != nil {
		return nil, err
	}
	return &servedStore{Store: st, file: st}, nil
}

// Close closes the store (once; later calls return the first's error).
func (s *servedStore) Close() error {
	s.closeOnce.Do(func() {
		switch {
		case s.file != nil:
			s.closeErr = s.file.Close()
		case s.pg != nil:
			s.closeErr = s.pg.Close()
			s.unlock()
		}
	})
	return s.closeErr
}

// leaseStore is the PostgreSQL backend's leases (store/pgstore/leases.go).
func (s *servedStore) leaseStore() leaseStore {
	if s.pg == nil {
		return nil
	}
	return s.pg
}

// registerPoolMetrics exports the PostgreSQL connection pool's
// statistics, where the bbolt writer's would be.
func (s *server) registerPoolMetrics(pool *pgxpool.Pool) {
	r := s.registry
	gauge := func(name, help string, f func(*pgxpool.Stat) float64) {
		r.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 { return f(pool.Stat()) }))
	}
	counter := func(name, help string, f func(*pgxpool.Stat) float64) {
		r.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return f(pool.Stat()) }))
	}
	gauge("abox_pg_pool_connections", "PostgreSQL connections open in the pool (idle, in use or being made).",
		func(st *pgxpool.Stat) float64 { return float64(st.TotalConns()) })
	gauge("abox_pg_pool_acquired_connections", "PostgreSQL connections in use.",
		func(st *pgxpool.Stat) float64 { return float64(st.AcquiredConns()) })
	gauge("abox_pg_pool_idle_connections", "PostgreSQL connections idle in the pool.",
		func(st *pgxpool.Stat) float64 { return float64(st.IdleConns()) })
	gauge("abox_pg_pool_max_connections", "The pool's bound on connections (store-max-connections).",
		func(st *pgxpool.Stat) float64 { return float64(st.MaxConns()) })
	counter("abox_pg_pool_acquires_total", "Connections taken from the pool.",
		func(st *pgxpool.Stat) float64 { return float64(st.AcquireCount()) })
	counter("abox_pg_pool_acquire_seconds_total", "Time spent taking connections from the pool.",
		func(st *pgxpool.Stat) float64 { return st.AcquireDuration().Seconds() })
	counter("abox_pg_pool_empty_acquires_total", "Takes that found no idle connection and waited for one (a pool too small shows here).",
		func(st *pgxpool.Stat) float64 { return float64(st.EmptyAcquireCount()) })
	counter("abox_pg_pool_empty_acquire_wait_seconds_total", "Time those takes waited.",
		func(st *pgxpool.Stat) float64 { return st.EmptyAcquireWaitTime().Seconds() })
	counter("abox_pg_pool_canceled_acquires_total", "Takes given up before a connection came.",
		func(st *pgxpool.Stat) float64 { return float64(st.CanceledAcquireCount()) })
	counter("abox_pg_pool_new_connections_total", "Connections made to PostgreSQL.",
		func(st *pgxpool.Stat) float64 { return float64(st.NewConnsCount()) })
}

// registerCommitMetrics exports how the deliveries' COMMITs that got
// no answer turned out (pgstore's resolveCommit).
func (s *server) registerCommitMetrics(pg *pgstore.Store) {
	for _, outcome := range []string{"committed", "unknown"} {
		s.registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "abox_pg_commits_unanswered_total",
			Help:        "Delivery COMMITs that got no answer, by what PostgreSQL said of them afterwards (committed: answered 250; unknown: never learnt, answered 451).",
			ConstLabels: prometheus.Labels{"outcome": outcome},
		}, func() float64 {
			committed, unknown := pg.CommitsResolved()
			if outcome == "committed" {
				return float64(committed)
			}
			return float64(unknown)
		}))
	}
}
