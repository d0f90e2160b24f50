package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"abox/store"
	"abox/store/pgstore"
)

// `abox migrate` moves a whole installation between the embedded bbolt
// store and the PostgreSQL + object store backend, either way (issue
// 18). The source exports every record (store/dump.go), the target
// imports them into an empty store, then the target is exported again
// and both exports are compared by count and SHA-256 for each kind of
// record. Servers on the source must be stopped (a bbolt source is
// locked; a PostgreSQL source is read in one snapshot, but a node still
// writing would make the target miss what came after it).

// dumpStore is a backend that can export and import a dump.
type dumpStore interface {
	Export(ctx context.Context, fn func(*store.DumpRecord) error) error
	Import(ctx context.Context, next func() (*store.DumpRecord, error)) (store.ImportStats, error)
	Close() error
}

type migrateKind struct {
	Kind   store.DumpKind `json:"kind"`
	Count  int64          `json:"count"`
	SHA256 string         `json:"sha256"`
}

type migrateResult struct {
	From      string        `json:"from"`
	To        string        `json:"to"`
	Records   int64         `json:"records"`
	BodyBytes int64         `json:"body_bytes"`
	Kinds     []migrateKind `json:"kinds"`
	Verified  bool          `json:"verified"`
	Seconds   float64       `json:"seconds"`
}

func (a *app) migrateCmd() *cobra.Command {
	var from, to string
	c := &cobra.Command{
		Use:   "migrate --from SOURCE --to TARGET",
		Short: "move the installation between the bbolt file and PostgreSQL (servers stopped)",
		Long: "Copies every record of SOURCE into TARGET, each a data directory (the embedded bbolt store)\n" +
			"or a postgres:// URL (the PostgreSQL backend, its bodies in the object store the object-store-*\n" +
			"settings name). TARGET must be empty. Then exports TARGET again and compares both, kind by kind,\n" +
			"by count and SHA-256. Stop every abox serve on SOURCE first.",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if from == "" || to == "" {
				return usagef("abox migrate needs --from SOURCE and --to TARGET (a data directory or a postgres:// URL)")
			}
			if from == to {
				return usagef("--from and --to name the same store")
			}
			res, err := migrate(cmd.Context(), &a.cfg, from, to, a.progress())
			if err != nil {
				return err
			}
			return a.emit(res, func(w io.Writer) {
				fmt.Fprintf(w, "migrated %s into %s: %d records, %s of bodies, in %.1f s\n", res.From, res.To, res.Records, formatSize(res.BodyBytes), res.Seconds)
				for _, k := range res.Kinds {
					fmt.Fprintf(w, "  %-14s %10d  %s\n", k.Kind, k.Count, k.SHA256[:16])
				}
				fmt.Fprintln(w, "verified: the target's export has the same count and SHA-256 for every kind")
			})
		},
	}
	c.Flags().StringVar(&from, "from", "", "source: a data directory or a postgres:// URL")
	c.Flags().StringVar(&to, "to", "", "target (empty): a data directory or a postgres:// URL")
	return c
}

// progress reports a long migration's advance on stderr every few
// seconds.
func (a *app) progress() func(records, bytes int64) {
	var last atomic.Int64
	last.Store(time.Now().UnixNano())
	return func(records, bytes int64) {
		now := time.Now().UnixNano()
		if prev := last.Load(); now-prev > int64(5*time.Second) && last.CompareAndSwap(prev, now) {
			fmt.Fprintf(os.Stderr, "migrate: %d records copied (%s of bodies)\n", records, formatSize(bytes))
		}
	}
}

func isPostgresURL(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}

// describe names a store without a password.
func describe(loc string) string {
	if !isPostgresURL(loc) {
		return loc
	}
	if i := strings.Index(loc, "@"); i > 0 {
		if j := strings.Index(loc, "://"); j > 0 && j < i {
			user := loc[j+3 : i]
			if k := strings.IndexByte(user, ':'); k >= 0 {
				user = user[:k] + ":***"
			}
			return loc[:j+3] + user + loc[i:]
		}
	}
	return loc
}

// openDumpStore opens one side. A bbolt target directory is created;
// a bbolt source must exist.
func openDumpStore(ctx context.Context, cfg *Config, loc string, target bool) (dumpStore, error) {
	if isPostgresURL(loc) {
		o, err := cfg.pgOptions()
		if err != nil {
			return nil, err
		}
		o.DSN = loc
		ctx, cancel := context.WithTimeout(ctx, openStoreTimeout)
		defer cancel()
		s, err := pgstore.Open(ctx, o)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", describe(loc), err)
		}
		return s, nil
	}
	db := filepath.Join(loc, store.FileName)
	if !target {
		if _, err := os.Stat(db); err != nil {
			return nil, fmt.Errorf("%s holds no abox database (%s)", loc, store.FileName)
		}
	} else if err := os.MkdirAll(loc, 0o700); err != nil {
		return nil, err
	}
	s, err := store.Open(db, store.Options{ReadOnly: !target})
	if errors.Is(err, store.ErrLocked) {
		return nil, fmt.Errorf("%s is in use by another abox process: stop abox serve on it first", loc)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", loc, err)
	}
	return s, nil
}

func migrate(ctx context.Context, cfg *Config, from, to string, progress func(records, bytes int64)) (migrateResult, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	start := time.Now()
	res := migrateResult{From: describe(from), To: describe(to)}
	src, err := openDumpStore(ctx, cfg, from, false)
	if err != nil {
		return res, err
	}
	defer src.Close()
	dst, err := openDumpStore(ctx, cfg, to, true)
	if err != nil {
		return res, err
	}
	defer dst.Close()

	// The source's export streams into the target's import.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	records := make(chan *store.DumpRecord, 64)
	exported := make(chan error, 1)
	want := store.DumpDigest()
	var n, bytes int64
	go func() {
		defer close(records)
		exported <- src.Export(ctx, func(r *store.DumpRecord) error {
			want.Add(r)
			select {
			case records <- r:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	}()
	_, err = dst.Import(ctx, func() (*store.DumpRecord, error) {
		r, ok := <-records
		if !ok {
			if err := <-exported; err != nil {
				return nil, fmt.Errorf("reading %s: %w", res.From, err)
			}
			return nil, io.EOF
		}
		n++
		if r.Body != nil {
			bytes += int64(len(r.Body.Data))
		}
		progress(n, bytes)
		return r, nil
	})
	if err != nil {
		cancel()
		for range records {
		}
		if errors.Is(err, store.ErrStoreNotEmpty) {
			return res, fmt.Errorf("%s: %w", res.To, err)
		}
		return res, fmt.Errorf("migrate into %s: %w (the target is incomplete: start again with an empty one)", res.To, err)
	}
	if err := want.Err(); err != nil {
		return res, err
	}
	res.Records, res.BodyBytes = n, bytes

	// Verify: the target, read back, must say the same.
	got := store.DumpDigest()
	if err := dst.Export(ctx, func(r *store.DumpRecord) error { got.Add(r); return nil }); err != nil {
		return res, fmt.Errorf("reading %s back: %w", res.To, err)
	}
	if err := got.Err(); err != nil {
		return res, err
	}
	ws, gs := want.Sum(), got.Sum()
	if diff := store.CompareDigests(ws, gs); len(diff) > 0 {
		return res, fmt.Errorf("verification failed: %s differ between %s and %s (the target is left as it is)", strings.Join(diff, "; "), res.From, res.To)
	}
	for _, k := range store.DumpKinds {
		d, ok := ws[k]
		if !ok {
			continue
		}
		res.Kinds = append(res.Kinds, migrateKind{Kind: k, Count: d.Count, SHA256: hex.EncodeToString(d.SHA256[:])})
	}
	res.Verified = true
	res.Seconds = time.Since(start).Seconds()
	return res, nil
}
