package main

// Helpers for the integration tests in cli_test.go: they build the real
// abox binary once, run it as a subprocess against a temporary data
// directory, and start and stop `abox serve` on free 127.0.0.1 ports.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// aboxBin is the binary TestMain built.
var aboxBin string

// Generous limits: the suite must pass on a loaded two-core machine with
// the race detector on. None of them is an assertion about speed except
// stopTimeout, which SPEC makes one (drain up to 10 s, then exit).
const (
	commandTimeout = 2 * time.Minute  // one CLI invocation
	readyTimeout   = 90 * time.Second // serve printing "ready"
	stopTimeout    = 15 * time.Second // serve exiting after SIGTERM
)

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "abox-cli-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "TestMain:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	aboxBin = filepath.Join(dir, "abox")
	args := []string{"build", "-o", aboxBin}
	if raceEnabled() {
		// A data race in serve or the control socket then fails the
		// test that provoked it (exit 66 and a multi-line stderr).
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, ".")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "TestMain: building abox:", err)
		return 1
	}
	return m.Run()
}

// raceEnabled says whether this test binary was built with -race.
func raceEnabled() bool {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "-race" {
				return s.Value == "true"
			}
		}
	}
	return false
}

// runResult is what one run of the binary did.
type runResult struct {
	args   []string
	code   int
	stdout string
	stderr string
}

func (r runResult) String() string {
	return fmt.Sprintf("abox %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(r.args, " "), r.code, r.stdout, r.stderr)
}

// runOpts adjust one invocation.
type runOpts struct {
	stdin  string   // "" means stdin is /dev/null (never a terminal)
	env    []string // extra KEY=VALUE pairs
	noData bool     // do not prepend --data DIR
}

// aboxEnv is the environment every run starts from: the test's own,
// without an ABOX_DATA that could point a run at a real data directory.
// A race-enabled binary otherwise sleeps a second at exit
// (atexit_sleep_ms), which would dominate the suite's run time.
func aboxEnv(extra ...string) []string {
	var env []string
	gorace := "atexit_sleep_ms=0"
	for _, kv := range os.Environ() {
		switch {
		case strings.HasPrefix(kv, "ABOX_DATA="):
		case strings.HasPrefix(kv, "GORACE="):
			gorace = strings.TrimPrefix(kv, "GORACE=") + " " + gorace
		default:
			env = append(env, kv)
		}
	}
	return append(append(env, "GORACE="+gorace), extra...)
}

// runBinary runs abox with args in the working directory wd.
func runBinary(t *testing.T, wd string, o runOpts, args ...string) runResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, aboxBin, args...)
	cmd.Dir = wd
	cmd.Env = aboxEnv(o.env...)
	if o.stdin != "" {
		cmd.Stdin = strings.NewReader(o.stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	r := runResult{args: args, stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case ctx.Err() != nil:
		t.Fatalf("abox %s: no exit within %v\nstderr: %s", strings.Join(args, " "), commandTimeout, r.stderr)
	case errors.As(err, &ee) && ee.Exited():
		r.code = ee.ExitCode()
	default:
		t.Fatalf("abox %s: %v\nstderr: %s", strings.Join(args, " "), err, r.stderr)
	}
	return r
}

// checkOneLineError asserts the stderr contract of a failed command:
// exactly one line, starting "abox: ".
func checkOneLineError(t *testing.T, r runResult) {
	t.Helper()
	if !strings.HasPrefix(r.stderr, "abox: ") || !strings.HasSuffix(r.stderr, "\n") || strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("stderr of a failure must be exactly one line starting \"abox: \"; %v", r)
	}
}

// abox runs the CLI against one data directory; when srv is set, a
// server runs on that directory and the CLI goes through its socket.
type abox struct {
	t   *testing.T
	dir string // the data directory
	wd  string // working directory of every run (relative paths land here)
	srv *testServer
}

func newAbox(t *testing.T) *abox {
	// The data directory exists, as an operator's would: read-only
	// commands refuse a directory that does not.
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	return &abox{t: t, dir: dir, wd: t.TempDir()}
}

// exec runs abox --data DIR args... (unless o.noData).
func (a *abox) exec(o runOpts, args ...string) runResult {
	a.t.Helper()
	if !o.noData {
		args = append([]string{"--data", a.dir}, args...)
	}
	return runBinary(a.t, a.wd, o, args...)
}

func (a *abox) run(args ...string) runResult {
	a.t.Helper()
	return a.exec(runOpts{}, args...)
}

// ok runs a command that must succeed and returns its stdout.
func (a *abox) ok(args ...string) string {
	a.t.Helper()
	return a.okIn("", args...)
}

// okIn is ok with stdin.
func (a *abox) okIn(stdin string, args ...string) string {
	a.t.Helper()
	r := a.exec(runOpts{stdin: stdin}, args...)
	if r.code != 0 {
		a.t.Fatalf("want success; %v", r)
	}
	return r.stdout
}

// fail runs a command that must exit with code and one line on stderr.
func (a *abox) fail(code int, args ...string) runResult {
	a.t.Helper()
	return a.failIn("", code, args...)
}

func (a *abox) failIn(stdin string, code int, args ...string) runResult {
	a.t.Helper()
	r := a.exec(runOpts{stdin: stdin}, args...)
	if r.code != code {
		a.t.Errorf("want exit %d; %v", code, r)
	}
	checkOneLineError(a.t, r)
	return r
}

// json runs a successful command with --json appended and decodes its
// stdout into v.
func (a *abox) json(v any, args ...string) {
	a.t.Helper()
	a.jsonIn("", v, args...)
}

func (a *abox) jsonIn(stdin string, v any, args ...string) {
	a.t.Helper()
	out := a.okIn(stdin, append(args, "--json")...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		a.t.Fatalf("abox %s --json: stdout is not the expected JSON: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// bothModes runs fn once with no server ("direct") and once with a server
// running on the data directory ("served"), each in parallel with a fresh
// data directory.
func bothModes(t *testing.T, fn func(t *testing.T, a *abox)) {
	t.Helper()
	for _, mode := range []string{"direct", "served"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			a := newAbox(t)
			if mode == "served" {
				a.srv = startServer(t, a.dir)
			}
			fn(t, a)
			if a.srv != nil {
				// CONVENTIONS: never log passwords.
				for _, pw := range []string{goodPassword, otherPassword} {
					if strings.Contains(a.srv.log.String(), pw) {
						t.Errorf("the server logged a password")
					}
				}
			}
		})
	}
}

// freePorts returns n distinct free TCP ports on 127.0.0.1. They are
// only free for now: startServer retries when one was taken meanwhile.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("finding a free port: %v", err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// testServer is a running `abox serve`.
type testServer struct {
	t      *testing.T
	dir    string
	cmd    *exec.Cmd
	log    *lineLog
	http   string // host:port of --listen-http
	exited chan struct{}
	err    error // from Wait, once exited is closed

	stopOnce sync.Once
}

var listenFlags = []string{
	"--listen-smtp", "--listen-submission", "--listen-submissions",
	"--listen-imap", "--listen-imaps", "--listen-http",
}

// serveArgs is the command line of a server on dir with every listener
// on the given ports.
func serveArgs(dir string, ports []int) []string {
	args := []string{"--data", dir, "serve", "--hostname", "test.local"}
	for i, f := range listenFlags {
		args = append(args, f, fmt.Sprintf("127.0.0.1:%d", ports[i]))
	}
	return args
}

// startServer runs abox serve on dir until the test ends, when it is
// stopped with SIGTERM and must exit 0 within stopTimeout.
func startServer(t *testing.T, dir string) *testServer {
	t.Helper()
	for attempt := 1; ; attempt++ {
		s, err := tryStartServer(t, dir)
		if err == nil {
			t.Cleanup(s.stop)
			return s
		}
		if attempt < 5 && strings.Contains(err.Error(), "address already in use") {
			t.Logf("retrying serve: %v", err)
			continue
		}
		t.Fatal(err)
	}
}

func tryStartServer(t *testing.T, dir string) (*testServer, error) {
	ports := freePorts(t, len(listenFlags))
	cmd := exec.Command(aboxBin, serveArgs(dir, ports)...)
	cmd.Dir = filepath.Dir(dir)
	cmd.Env = aboxEnv()
	log := newLineLog(`"msg":"ready"`)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting abox serve: %w", err)
	}
	s := &testServer{
		t: t, dir: dir, cmd: cmd, log: log, exited: make(chan struct{}),
		http: fmt.Sprintf("127.0.0.1:%d", ports[len(ports)-1]),
	}
	go func() {
		s.err = cmd.Wait()
		close(s.exited)
	}()
	select {
	case <-log.ready:
		return s, nil
	case <-s.exited:
		return nil, fmt.Errorf("abox serve exited before ready (%v):\n%s", s.err, log)
	case <-time.After(readyTimeout):
		cmd.Process.Kill()
		<-s.exited
		return nil, fmt.Errorf("abox serve not ready within %v:\n%s", readyTimeout, log)
	}
}

// stop sends SIGTERM and asserts a clean exit (status 0) within
// stopTimeout. It is idempotent.
func (s *testServer) stop() { s.stopWith(syscall.SIGTERM) }

// stopWith is stop with another signal (SPEC: SIGTERM or SIGINT).
func (s *testServer) stopWith(sig os.Signal) {
	s.stopOnce.Do(func() {
		s.t.Helper()
		select {
		case <-s.exited:
			s.t.Errorf("abox serve exited before it was stopped (%v):\n%s", s.err, s.log)
			return
		default:
		}
		if err := s.cmd.Process.Signal(sig); err != nil {
			s.t.Errorf("%v: %v", sig, err)
		}
		select {
		case <-s.exited:
			if s.err != nil {
				s.t.Errorf("abox serve after %v: %v (want exit 0):\n%s", sig, s.err, s.log)
			}
		case <-time.After(stopTimeout):
			// SIGQUIT makes the Go runtime print every goroutine's stack
			// (into the log below) before it exits.
			s.cmd.Process.Signal(syscall.SIGQUIT)
			select {
			case <-s.exited:
			case <-time.After(5 * time.Second):
				s.cmd.Process.Kill()
				<-s.exited
			}
			s.t.Errorf("abox serve still running %v after %v:\n%s", stopTimeout, sig, s.log)
		}
	})
}

// kill stops the server with SIGKILL, as a crash would.
func (s *testServer) kill() {
	s.stopOnce.Do(func() {
		s.cmd.Process.Kill()
		<-s.exited
	})
}

// lineLog collects a process's output and signals the first line that
// contains a word.
type lineLog struct {
	word  string
	ready chan struct{}

	mu      sync.Mutex
	buf     bytes.Buffer
	partial []byte
	seen    bool
}

func newLineLog(word string) *lineLog {
	return &lineLog{word: word, ready: make(chan struct{})}
}

func (l *lineLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	l.partial = append(l.partial, p...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		line := string(l.partial[:i])
		l.partial = l.partial[i+1:]
		if !l.seen && strings.Contains(line, l.word) {
			l.seen = true
			close(l.ready)
		}
	}
	return len(p), nil
}

func (l *lineLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// lines returns the complete lines logged so far.
func (l *lineLog) lines() []string {
	s := l.String()
	s = s[:strings.LastIndexByte(s, '\n')+1]
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}
