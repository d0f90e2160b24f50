package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"abox/store"
)

// client runs admin operations: through the control socket when a server
// is running on the data directory, otherwise by opening the store
// itself. Both paths end in the same opFunc.
type client struct {
	cfg *Config
	log *slog.Logger
}

// readOnlyOps never write: run directly on a data directory without a
// database, they report that rather than create an empty one.
var readOnlyOps = map[string]bool{
	"domain.list": true, "user.show": true, "user.list": true, "class.list": true,
	"sender.list": true, "audit": true, "check": true, "backup": true,
	"notice.show": true, "notice.verify": true, "token.list": true, "user.app-password.list": true,
}

func (c *client) call(ctx context.Context, op string, args any, result any) error {
	return c.callProgress(ctx, op, args, result, nil)
}

// callProgress is call for long operations that report progress.
func (c *client) callProgress(ctx context.Context, op string, args any, result any, onProgress func(json.RawMessage)) error {
	conn, err := dialControl(c.cfg.socketPath())
	if err == nil {
		defer conn.Close()
		var hooks []func(json.RawMessage)
		if onProgress != nil {
			hooks = append(hooks, onProgress)
		}
		resp, _, err := callControl(conn, op, args, hooks...)
		if err != nil {
			return err
		}
		if result != nil {
			return json.Unmarshal(resp.Result, result)
		}
		return nil
	}
	return c.direct(readOnlyOps[op], func(e *env) error {
		if onProgress != nil {
			e.progress = func(v any) {
				if raw, err := json.Marshal(v); err == nil {
					onProgress(raw)
				}
			}
		}
		res, err := runOp(ctx, e, op, args)
		if err != nil || result == nil {
			return err
		}
		raw, err := json.Marshal(res)
		if err != nil {
			return err
		}
		return json.Unmarshal(raw, result)
	})
}

// direct opens the store for the length of fn. A read-only operation
// naming a data directory that does not exist says so instead of creating
// it (a mistyped --data must not look like an empty server).
func (c *client) direct(readOnly bool, fn func(*env) error) error {
	if c.cfg.postgres() {
		// The data lives in PostgreSQL: the data directory holds only a
		// node's socket and TLS pair, and need not exist here.
		s, err := c.cfg.openPostgres(context.Background(), c.log, true)
		if err != nil {
			return err
		}
		defer s.Close()
		return fn(&env{store: s, cfg: c.cfg, log: c.log, staff: selfStaff()})
	}
	if _, err := os.Stat(c.cfg.Data); readOnly && errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("data directory %s does not exist (is --data right?)", c.cfg.Data)
	}
	opts := storeOptions(c.log)
	// Admin commands run one after another: wait for another command's
	// lock rather than fail.
	opts.LockTimeout = 10 * time.Second
	s, err := store.Open(c.cfg.dbPath(), opts)
	if errors.Is(err, store.ErrLocked) {
		return fmt.Errorf("%s is locked by another abox process that is not a server answering on %s; try again when it has finished", c.cfg.Data, c.cfg.socketPath())
	}
	if err != nil {
		return err
	}
	defer s.Close()
	return fn(&env{store: s, cfg: c.cfg, log: c.log, staff: selfStaff()})
}

// backup writes a consistent copy of the database to path (atomically),
// with the TLS pair generated into the data directory inside it.
func (c *client) backup(path string) (int64, error) {
	if c.cfg.postgres() {
		return 0, errNoFile
	}
	files, err := c.cfg.backupFiles()
	if err != nil {
		return 0, err
	}
	conn, err := dialControl(c.cfg.socketPath())
	if err == nil {
		defer conn.Close()
		resp, br, err := callControl(conn, "backup", struct{}{})
		if err != nil {
			return 0, err
		}
		if resp.Stream == 0 {
			return 0, errors.New("backup: the server sent no copy")
		}
		return store.ReceiveBackup(path, br, files)
	}
	var n int64
	err = c.direct(true, func(e *env) error {
		if err := e.auditRead(context.Background(), "backup", ""); err != nil {
			return err
		}
		st, err := e.file()
		if err != nil {
			return err
		}
		n, err = st.BackupTo(path, files)
		return err
	})
	return n, err
}
