package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"abox/store/pgstore"
)

// The distributed backend (issue 18; README "Several nodes on PostgreSQL
// and an object store"): with `store` set, every command and every
// `abox serve` node works on one PostgreSQL database (and one bucket of
// an S3-compatible object store for the bodies) instead of the bbolt
// file in the data directory. The data directory still holds each
// node's control socket and generated TLS pair.

// secretKeyEnv names the environment variable the object store's secret
// key is read from when no object-store-secret-key-file is set.
const secretKeyEnv = "ABOX_OBJECT_STORE_SECRET_KEY"

// openStoreTimeout bounds connecting and migrating at start (another
// node migrating holds the migration lock meanwhile).
const openStoreTimeout = 2 * time.Minute

// postgres reports whether the configuration names the PostgreSQL
// backend.
func (c *Config) postgres() bool { return c.Store != "" }

// validateStore checks the backend's keys. The connection string is
// never quoted back: it may hold a password.
func (c *Config) validateStore() error {
	if c.Store != "" {
		if !strings.HasPrefix(c.Store, "postgres://") && !strings.HasPrefix(c.Store, "postgresql://") && !strings.Contains(c.Store, "=") {
			return errors.New("config: store: want postgres://USER@HOST:PORT/DATABASE (or PostgreSQL's key=value form); empty keeps the bbolt file in the data directory")
		}
	}
	if c.StoreMaxConnections < 0 {
		return errors.New("config: store-max-connections must not be negative (0: the driver's default)")
	}
	objectKeys := c.ObjectStoreEndpoint != "" || c.ObjectStoreBucket != "" || c.ObjectStoreAccessKey != "" || c.ObjectStoreSecretFile != "" || c.ObjectStoreRegion != "" || c.ObjectStoreCreateBucket
	if objectKeys && c.Store == "" {
		return errors.New("config: the object-store-* keys need store (the PostgreSQL backend); the bbolt file keeps its bodies itself")
	}
	if c.ObjectStoreEndpoint != "" {
		u, err := url.Parse(c.ObjectStoreEndpoint)
		if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") || u.User != nil {
			return fmt.Errorf("config: object-store-endpoint %q: want http://HOST:PORT or https://HOST:PORT (credentials go in object-store-access-key and object-store-secret-key-file)", c.ObjectStoreEndpoint)
		}
		if c.ObjectStoreBucket == "" {
			return errors.New("config: object-store-endpoint needs object-store-bucket")
		}
	} else if objectKeys {
		return errors.New("config: the object-store-* keys need object-store-endpoint")
	}
	if c.ObjectStoreSecretFile != "" {
		if _, err := c.objectSecret(); err != nil {
			return err
		}
	}
	if n, err := parseSize(c.ObjectStoreInlineMax); err != nil {
		return fmt.Errorf("config: object-store-inline-max: %w", err)
	} else if n > 64<<20 {
		return fmt.Errorf("config: object-store-inline-max %s: at most 64MiB (larger bodies belong in the object store)", c.ObjectStoreInlineMax)
	}
	if d, err := parseDuration(c.LeaseTTL); err != nil {
		return fmt.Errorf("config: lease-ttl: %w", err)
	} else if d < time.Second || d > 10*time.Minute {
		return fmt.Errorf("config: lease-ttl %s: use 1s to 10m", c.LeaseTTL)
	}
	return nil
}

// objectSecret is the object store's secret key: the first line of
// object-store-secret-key-file, else the environment's
// ABOX_OBJECT_STORE_SECRET_KEY. It is never logged or printed.
func (c *Config) objectSecret() (string, error) {
	if c.ObjectStoreSecretFile == "" {
		return os.Getenv(secretKeyEnv), nil
	}
	f, err := os.Open(c.ObjectStoreSecretFile)
	if err != nil {
		return "", fmt.Errorf("config: object-store-secret-key-file: %w", err)
	}
	defer f.Close()
	line, err := bufio.NewReader(f).ReadString('\n')
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", fmt.Errorf("config: object-store-secret-key-file %s: its first line is empty", c.ObjectStoreSecretFile)
	}
	return line, nil
}

// pgOptions are the PostgreSQL backend's options from the configuration.
func (c *Config) pgOptions() (pgstore.Options, error) {
	o := pgstore.Options{DSN: c.Store, MaxConns: int32(c.StoreMaxConnections)}
	if c.ObjectStoreEndpoint != "" {
		secret, err := c.objectSecret()
		if err != nil {
			return o, err
		}
		o.Objects = pgstore.ObjectOptions{
			Endpoint: c.ObjectStoreEndpoint, Bucket: c.ObjectStoreBucket, Region: c.ObjectStoreRegion,
			AccessKey: c.ObjectStoreAccessKey, SecretKey: secret, CreateBucket: c.ObjectStoreCreateBucket,
		}
		n, _ := parseSize(c.ObjectStoreInlineMax)
		o.InlineMax = int(n)
		if n == 0 {
			o.InlineMax = -1 // "0": every body in the object store
		}
	}
	return o, nil
}

// openPostgres opens the PostgreSQL backend (applying the schema
// migrations a first start needs) and logs where it is, without
// credentials. oneShot: for one command, which then exits
// (pgstore.Options.OneShot).
func (c *Config) openPostgres(ctx context.Context, log *slog.Logger, oneShot bool) (*pgstore.Store, error) {
	o, err := c.pgOptions()
	if err != nil {
		return nil, err
	}
	o.Logger, o.OneShot = log, oneShot
	ctx, cancel := context.WithTimeout(ctx, openStoreTimeout)
	defer cancel()
	st, err := pgstore.Open(ctx, o)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	cc := st.Pool().Config().ConnConfig
	attrs := []any{"host", cc.Host, "port", cc.Port, "database", cc.Database, "user", cc.User}
	if c.ObjectStoreEndpoint != "" {
		attrs = append(attrs, "object_store", c.ObjectStoreEndpoint, "bucket", c.ObjectStoreBucket)
	}
	log.Debug("store: PostgreSQL", attrs...)
	return st, nil
}

// lockData takes the data directory's serve lock on the PostgreSQL
// backend, where no bbolt file lock keeps a second `abox serve` off the
// same directory (its control socket and TLS pair); held until the
// process exits or the returned function runs.
func lockData(dir string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(dir, "serve.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("abox serve is already running on %s", dir)
		}
		return nil, fmt.Errorf("data directory: locking %s: %w", f.Name(), err)
	}
	return func() { f.Close() }, nil
}
