package aboxtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Generous limits: the suites must pass on a loaded two-core machine with
// the race detector on. None of them is an assertion about speed except
// StopTimeout, which SPEC makes one (drain up to 10 s, then exit).
const (
	CommandTimeout = 2 * time.Minute  // one CLI invocation
	ReadyTimeout   = 90 * time.Second // serve logging "ready"
	StopTimeout    = 20 * time.Second // serve exiting after SIGTERM
)

// DefaultHostname is the --hostname of every server unless Env.Hostname
// says otherwise.
const DefaultHostname = "mx.abox.test"

// Env is one data directory and the servers a test runs on it. A field
// set applies to the runs and servers started after.
type Env struct {
	Dir      string // the data directory; New creates it (0700), as an operator would
	WD       string // working directory of every run (relative paths land here)
	Config   string // --config FILE for every run and server; "" for none
	Hostname string // --hostname of every server
	// ServeFlags are more flags for every `abox serve`.
	ServeFlags []string
	// ServeEnv is more environment (NAME=value) for every `abox serve`.
	ServeEnv []string
	// ProductionHashing keeps argon2id at its default cost; otherwise
	// the harness makes it cheap (config.go's hashLines).
	ProductionHashing bool

	t testing.TB

	mu         sync.Mutex
	servers    []*Server // every server that became ready, in order; guarded by mu
	registered bool      // the cleanup checks are registered; guarded by mu
	allowed    []string  // error messages the test expects; guarded by mu
	noCheck    string    // why the store is not checked at cleanup; guarded by mu
	checked    bool      // the store was checked at cleanup; guarded by mu

	cluster  *cluster   // the shared store in the cluster mode (cluster.go); nil on bbolt
	configMu sync.Mutex // serializes prepareConfig
}

// New returns an environment with a new, empty data directory.
func New(t testing.TB) *Env {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	e := &Env{Dir: dir, WD: t.TempDir(), Hostname: DefaultHostname, t: t}
	if n := ClusterNodes(); n > 0 {
		e.cluster = newCluster(t, n)
		e.noCheck = "abox check works on the bbolt file: the cluster mode runs on PostgreSQL"
	}
	return e
}

// Result is what one run of the binary did.
type Result struct {
	Args   []string // the command line after "abox"
	Code   int      // exit status
	Stdout string
	Stderr string
}

func (r Result) String() string {
	return fmt.Sprintf("abox %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(r.Args, " "), r.Code, r.Stdout, r.Stderr)
}

// RunOpts adjust one run.
type RunOpts struct {
	Stdin string   // "" means stdin is /dev/null (never a terminal)
	Env   []string // extra KEY=VALUE pairs
	// Bare runs the arguments as given: without --data DIR and
	// --config FILE in front.
	Bare bool
}

// Exec runs abox --data DIR [--config FILE] args... in e.WD. It fails
// the test when the binary cannot run or does not exit within
// CommandTimeout; any exit status is a Result.
func (e *Env) Exec(o RunOpts, args ...string) Result {
	e.t.Helper()
	cluster := e.prepareConfig()
	if !o.Bare {
		args = append(e.globalFlags(e.cliDir(cluster)), args...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), CommandTimeout)
	defer cancel()
	bin := CLIBin(e.t)
	if raceCommands[commandOf(args)] {
		bin = Bin(e.t)
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = e.WD
	cmd.Env = Environ(o.Env...)
	if o.Stdin != "" {
		cmd.Stdin = strings.NewReader(o.Stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	r := Result{Args: args, Stdout: stdout.String(), Stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case ctx.Err() != nil:
		e.t.Fatalf("abox %s: no exit within %v\nstderr: %s", strings.Join(args, " "), CommandTimeout, r.Stderr)
	case errors.As(err, &ee) && ee.Exited():
		r.Code = ee.ExitCode()
	default:
		e.t.Fatalf("abox %s: %v\nstderr: %s", strings.Join(args, " "), err, r.Stderr)
	}
	return r
}

// commandOf is the command a command line runs: its first word that is
// neither a flag nor the value of a global flag.
func commandOf(args []string) string {
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case a == "--data" || a == "--config" || a == "--store":
			i++
		case !strings.HasPrefix(a, "-"):
			return a
		}
	}
	return ""
}

// globalFlags come before the command of every run that is not Bare,
// on data directory dir.
func (e *Env) globalFlags(dir string) []string {
	f := []string{"--data", dir}
	if e.Config != "" {
		f = append(f, "--config", e.Config)
	}
	return f
}

// Run runs a command, whatever its exit status.
func (e *Env) Run(args ...string) Result {
	e.t.Helper()
	return e.Exec(RunOpts{}, args...)
}

// OK runs a command that must succeed and returns its stdout.
func (e *Env) OK(args ...string) string {
	e.t.Helper()
	return e.OKIn("", args...)
}

// OKIn is OK with stdin.
func (e *Env) OKIn(stdin string, args ...string) string {
	e.t.Helper()
	r := e.Exec(RunOpts{Stdin: stdin}, args...)
	if r.Code != 0 {
		e.t.Fatalf("want success; %v", r)
	}
	return r.Stdout
}

// Fail runs a command that must exit with code and say why in one line
// on stderr (CheckOneLineError).
func (e *Env) Fail(code int, args ...string) Result {
	e.t.Helper()
	return e.FailIn("", code, args...)
}

// FailIn is Fail with stdin.
func (e *Env) FailIn(stdin string, code int, args ...string) Result {
	e.t.Helper()
	r := e.Exec(RunOpts{Stdin: stdin}, args...)
	if r.Code != code {
		e.t.Errorf("want exit %d; %v", code, r)
	}
	CheckOneLineError(e.t, r)
	return r
}

// JSON runs a command that must succeed with --json appended and decodes
// its stdout into v.
func (e *Env) JSON(v any, args ...string) {
	e.t.Helper()
	e.JSONIn("", v, args...)
}

// JSONIn is JSON with stdin.
func (e *Env) JSONIn(stdin string, v any, args ...string) {
	e.t.Helper()
	out := e.OKIn(stdin, append(args, "--json")...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		e.t.Fatalf("abox %s --json: stdout is not the expected JSON: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// CheckOneLineError asserts the stderr contract of a failed command:
// exactly one line, starting "abox: ".
func CheckOneLineError(t testing.TB, r Result) {
	t.Helper()
	if !strings.HasPrefix(r.Stderr, "abox: ") || !strings.HasSuffix(r.Stderr, "\n") || strings.Count(r.Stderr, "\n") != 1 {
		t.Errorf("stderr of a failure must be exactly one line starting \"abox: \"; %v", r)
	}
}

// Check asserts that `abox check` finds no problem in the data
// directory (through the control socket when a server runs on it).
func (e *Env) Check() {
	e.t.Helper()
	if e.cluster != nil {
		e.t.Log("abox check works on the bbolt file: not in the cluster mode (PostgreSQL)")
		return
	}
	r := e.Run("check", "--json")
	var rep struct {
		Problems []string `json:"problems"`
	}
	if r.Code != 0 || json.Unmarshal([]byte(r.Stdout), &rep) != nil || len(rep.Problems) != 0 {
		e.t.Errorf("abox check finds problems; %v", r)
	}
}
