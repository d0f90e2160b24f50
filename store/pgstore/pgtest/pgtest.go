// Package pgtest starts the real servers store/pgstore's tests and
// cmd/abox's cluster tests run against: a private PostgreSQL (Debian's
// postgresql package: initdb and postgres in a temporary directory, on
// a Unix socket and a free port of 127.0.0.1) and a private SeaweedFS
// (`weed server` with its S3 gateway). Each test gets its own database
// and bucket. Nothing here fakes a server.
//
// Without the binaries a test skips, unless ABOX_REQUIRE_POSTGRES=1
// (or ABOX_REQUIRE_S3=1), which CI sets (.ci/run installs them), makes
// it fail. ABOX_PG_BIN names the directory of initdb and postgres
// (default: the newest /usr/lib/postgresql/*/bin), ABOX_WEED_BIN the
// weed binary (default: weed on PATH, then ~/go/bin/weed).
package pgtest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Postgres is a running private PostgreSQL server.
type Postgres struct {
	Dir  string // data directory
	Port int
	Bin  string // directory of postgres, pg_ctl, initdb
	cmd  *exec.Cmd
	log  string
	// stopped is closed once the server was stopped (startTied).
	stopped chan struct{}
}

var (
	pgOnce  sync.Once
	pgSrv   *Postgres
	pgErr   error
	dbCount atomic.Int64
)

// PGBin finds the directory of PostgreSQL's server binaries, or "".
func PGBin() string {
	if d := os.Getenv("ABOX_PG_BIN"); d != "" {
		return d
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[i])))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[j])))
		return vi > vj
	})
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p)
	}
	return ""
}

func need(tb testing.TB, env, what string) {
	tb.Helper()
	if os.Getenv(env) == "1" {
		tb.Fatalf("%s is required (%s=1): %s", what, env, "see store/pgstore/pgtest")
	}
	tb.Skipf("%s not available (set %s=1 to make this a failure)", what, env)
}

// Server returns the test binary's PostgreSQL server, starting it on
// first use; it runs until the process exits (StopAll in TestMain stops
// it earlier).
func Server(tb testing.TB) *Postgres {
	tb.Helper()
	pgOnce.Do(func() {
		bin := PGBin()
		if bin == "" {
			pgErr = errNoBinary
			return
		}
		pgSrv, pgErr = StartPostgres(bin, "")
	})
	if pgErr == errNoBinary {
		need(tb, "ABOX_REQUIRE_POSTGRES", "PostgreSQL (initdb and postgres)")
	}
	if pgErr != nil {
		tb.Fatalf("starting PostgreSQL: %v", pgErr)
	}
	return pgSrv
}

var errNoBinary = fmt.Errorf("no binary")

// StartPostgres creates a cluster in dir (a new temporary directory
// when "") and starts it on a free port. Durability settings are
// PostgreSQL's defaults (fsync on), so the fault tests' kills mean what
// they say.
func StartPostgres(bin, dir string) (*Postgres, error) {
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "abox-pg-"); err != nil {
			return nil, err
		}
	}
	p := &Postgres{Dir: dir, Bin: bin, log: filepath.Join(dir, "postgres.log")}
	data := filepath.Join(dir, "data")
	if _, err := os.Stat(filepath.Join(data, "PG_VERSION")); err != nil {
		cmd := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", "abox", "-A", "trust", "-E", "UTF8", "--no-locale", "--no-sync")
		asPostgresUser(cmd, dir)
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("initdb: %v\n%s", err, out)
		}
	}
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	p.Port = port
	return p, p.Start()
}

// Start starts (or starts again) the server on its port and waits
// until it accepts connections.
func (p *Postgres) Start() error {
	data := filepath.Join(p.Dir, "data")
	logf, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o666)
	if err != nil {
		return err
	}
	cmd := exec.Command(filepath.Join(p.Bin, "postgres"), "-D", data, "-p", strconv.Itoa(p.Port),
		"-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="+p.Dir,
		"-c", "max_connections=400", "-c", "shared_buffers=128MB")
	cmd.Stdout, cmd.Stderr = logf, logf
	asPostgresUser(cmd, p.Dir)
	cmd.SysProcAttr.Setpgid = true
	p.stopped = make(chan struct{})
	if err := startTied(cmd, p.stopped); err != nil {
		logf.Close()
		return fmt.Errorf("postgres: %v", err)
	}
	logf.Close()
	p.cmd = cmd
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		c, err := pgx.Connect(ctx, p.DSN("postgres"))
		cancel()
		if err == nil {
			c.Close(context.Background())
			return nil
		}
		if cmd.ProcessState != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	b, _ := os.ReadFile(p.log)
	return fmt.Errorf("postgres did not start on port %d:\n%s", p.Port, tail(b))
}

// Stop stops the server: mode is "smart", "fast" or "immediate" (a
// crash: no checkpoint, recovery at the next start), or "kill" for
// SIGKILL of the postmaster.
func (p *Postgres) Stop(mode string) error {
	if p.cmd == nil {
		return nil
	}
	sig := map[string]syscall.Signal{"smart": syscall.SIGTERM, "fast": syscall.SIGINT, "immediate": syscall.SIGQUIT, "kill": syscall.SIGKILL}[mode]
	if sig == 0 {
		return fmt.Errorf("stop mode %q", mode)
	}
	if mode == "kill" {
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	} else {
		p.cmd.Process.Signal(sig)
	}
	err := p.cmd.Wait()
	p.cmd = nil
	close(p.stopped)
	if mode == "kill" {
		// The backends of a killed postmaster go with their group;
		// its shared memory and pid file are cleaned at the next start.
		return nil
	}
	if err != nil && !strings.Contains(err.Error(), "exit status") {
		return err
	}
	return nil
}

// DSN is a connection string for database db.
func (p *Postgres) DSN(db string) string {
	return fmt.Sprintf("postgres://abox@127.0.0.1:%d/%s?sslmode=disable", p.Port, db)
}

// NewDatabase creates an empty database for one test and returns its
// connection string; the test's cleanup drops it.
func (p *Postgres) NewDatabase(tb testing.TB) string {
	tb.Helper()
	name := fmt.Sprintf("t%d_%d", os.Getpid(), dbCount.Add(1))
	ctx := context.Background()
	c, err := pgx.Connect(ctx, p.DSN("postgres"))
	if err != nil {
		tb.Fatalf("postgres: %v", err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, "CREATE DATABASE "+name+" TEMPLATE template0"); err != nil {
		tb.Fatalf("create database: %v", err)
	}
	tb.Cleanup(func() {
		if p.cmd == nil {
			return
		}
		c, err := pgx.Connect(ctx, p.DSN("postgres"))
		if err != nil {
			return
		}
		defer c.Close(ctx)
		c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	})
	return p.DSN(name)
}

// Database is Server(tb).NewDatabase(tb).
func Database(tb testing.TB) string {
	tb.Helper()
	return Server(tb).NewDatabase(tb)
}

// FreePort returns a TCP port of 127.0.0.1 free at the time of the
// call.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// asPostgresUser runs PostgreSQL as the unprivileged postgres user
// when the tests run as root (it refuses to run as root), owning dir.
func asPostgresUser(cmd *exec.Cmd, dir string) {
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	if os.Geteuid() != 0 {
		return
	}
	uid, gid, ok := lookupUser("postgres")
	if !ok {
		uid, gid, ok = lookupUser("nobody")
	}
	if !ok {
		return
	}
	filepath.Walk(dir, func(path string, _ os.FileInfo, err error) error {
		if err == nil {
			os.Lchown(path, uid, gid)
		}
		return nil
	})
	os.Chmod(dir, 0o700)
	cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
}

func lookupUser(name string) (uid, gid int, ok bool) {
	b, err := os.ReadFile("/etc/passwd")
	if err != nil {
		return 0, 0, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Split(line, ":")
		if len(f) > 3 && f[0] == name {
			u, err1 := strconv.Atoi(f[2])
			g, err2 := strconv.Atoi(f[3])
			return u, g, err1 == nil && err2 == nil
		}
	}
	return 0, 0, false
}

func tail(b []byte) string {
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// StopAll stops the servers this process started; TestMain calls it
// after the tests.
func StopAll() {
	if pgSrv != nil {
		pgSrv.Stop("fast")
		os.RemoveAll(pgSrv.Dir)
	}
	stopWeed()
}

// PrivatePostgres starts a PostgreSQL server of the test's own (for a
// test that stops, kills or restarts it), removed at the test's end;
// it skips or fails as Server does without the binaries.
func PrivatePostgres(tb testing.TB) *Postgres {
	tb.Helper()
	bin := PGBin()
	if bin == "" {
		need(tb, "ABOX_REQUIRE_POSTGRES", "PostgreSQL (initdb and postgres)")
	}
	p, err := StartPostgres(bin, "")
	if err != nil {
		tb.Fatalf("starting a private PostgreSQL: %v", err)
	}
	tb.Cleanup(func() {
		p.Stop("immediate")
		os.RemoveAll(p.Dir)
	})
	return p
}

// PrivateWeed starts a SeaweedFS of the test's own (for a test that
// kills it), removed at the test's end.
func PrivateWeed(tb testing.TB) *Weed {
	tb.Helper()
	bin := WeedBin()
	if bin == "" {
		need(tb, "ABOX_REQUIRE_S3", "SeaweedFS (weed)")
	}
	w, err := StartWeed(bin, "")
	if err != nil {
		tb.Fatalf("starting a private SeaweedFS: %v", err)
	}
	tb.Cleanup(func() {
		w.Kill()
		os.RemoveAll(w.Dir)
	})
	return w
}
