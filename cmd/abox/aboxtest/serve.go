package aboxtest

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"os/exec"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Listeners names every listener of `abox serve` (its --listen-NAME
// flag) as the ready line names it.
var Listeners = []string{"smtp", "submission", "submissions", "imap", "imaps", "http", "https"}

// Server is a running `abox serve`.
type Server struct {
	// Log is everything the server wrote, stdout and stderr.
	Log *Log

	env    *Env
	dir    string // its data directory
	cmd    *exec.Cmd
	addrs  map[string]string // listener name -> host:port, from the ready line
	exited chan struct{}
	err    error // from Wait, once exited is closed

	stopOnce sync.Once

	// nodes are the cluster mode's servers (cluster.go), each with its
	// own log, cmd and addresses; this Server's Log has all their
	// lines and its methods act on them all. nil for one server.
	nodes []*Server
	rot   atomic.Uint32 // rotation of Addr and Addrs over nodes
}

// ServeArgs is the command line of `abox serve` on e's data directory
// with every listener on 127.0.0.1 and a port the kernel picks (the
// ready line says which): nothing else can take the port between a
// check that it is free and the server's bind. A listener ServeFlags
// sets (--listen-NAME ADDR) keeps that address.
func (e *Env) ServeArgs() []string { return e.serveArgs(e.Dir) }

func (e *Env) serveArgs(dir string) []string {
	args := append(e.globalFlags(dir), "serve", "--hostname", e.Hostname)
	args = append(args, e.ServeFlags...)
	for _, name := range Listeners {
		if !slices.Contains(e.ServeFlags, "--listen-"+name) {
			args = append(args, "--listen-"+name, "127.0.0.1:0")
		}
	}
	return args
}

// Start runs abox serve on e's data directory until the test ends (or
// Stop or Kill), and returns once it has logged "ready". At the test's
// cleanup the server is stopped with SIGTERM and must exit 0 within
// StopTimeout, and e's cleanup checks run: the store checks clean
// (through the control socket of the server the test left running, or
// directly when none runs; SkipStoreCheck), and the log of every server
// the test started on e shows no bug (AllowError). In the cluster mode
// (ABOX_TEST_CLUSTER) it starts every node, and the checks apply to
// each.
func (e *Env) Start() *Server {
	e.t.Helper()
	s, err := e.TryStart()
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

// TryStart is Start for a server that may refuse to start: it returns
// why, with the server's output, when it exits before it is ready.
func (e *Env) TryStart() (*Server, error) {
	e.t.Helper()
	if e.prepareConfig() {
		return e.startCluster()
	}
	s, err := e.startNode(e.Dir, nil)
	if err != nil {
		return nil, err
	}
	e.started(s)
	return s, nil
}

// startNode starts abox serve on data directory dir and waits for its
// ready line; also, when not nil, gets its output.
func (e *Env) startNode(dir string, also io.Writer) (*Server, error) {
	cmd := exec.Command(Bin(e.t), e.serveArgs(dir)...)
	cmd.Dir = e.WD
	cmd.Env = append(Environ(), e.ServeEnv...)
	log := newLog()
	cmd.Stdout, cmd.Stderr = log, log
	if also != nil {
		w := io.MultiWriter(log, also)
		cmd.Stdout, cmd.Stderr = w, w
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting abox serve: %w", err)
	}
	s := &Server{Log: log, env: e, dir: dir, cmd: cmd, exited: make(chan struct{})}
	go func() {
		s.err = cmd.Wait()
		close(s.exited)
	}()
	timer := time.NewTimer(ReadyTimeout)
	defer timer.Stop()
	select {
	case <-log.ready:
	case <-s.exited:
		return nil, fmt.Errorf("abox serve exited before ready (%v):\n%s", s.err, log)
	case <-timer.C:
		cmd.Process.Kill()
		<-s.exited
		return nil, fmt.Errorf("abox serve not ready within %v:\n%s", ReadyTimeout, log)
	}
	addrs, err := readyAddrs(log.readyLine())
	if err != nil {
		s.Kill()
		return nil, fmt.Errorf("%v:\n%s", err, log)
	}
	s.addrs = addrs
	return s, nil
}

// readyAddrs returns the listener addresses the ready line names.
func readyAddrs(line string) (map[string]string, error) {
	var rec map[string]any
	if err := json.Unmarshal([]byte(line), &rec); err != nil {
		return nil, fmt.Errorf("the ready line is not JSON: %q", line)
	}
	addrs := map[string]string{}
	for _, name := range Listeners {
		a, _ := rec[name].(string)
		host, port, err := net.SplitHostPort(a)
		if err != nil || host == "" || port == "0" {
			return nil, fmt.Errorf("the ready line names no %s listener: %q", name, line)
		}
		addrs[name] = a
	}
	return addrs, nil
}

// Addr is the host:port of a listener (Listeners), as the server's ready
// line names it; in the cluster mode, each call names the next node's.
func (s *Server) Addr(name string) string {
	if s.nodes != nil {
		return s.nextNode().Addr(name)
	}
	a, ok := s.addrs[name]
	if !ok {
		s.env.t.Fatalf("abox serve has no listener %q (Listeners)", name)
	}
	return a
}

// Addrs maps every listener's name to its address. In the cluster mode
// the listeners are spread over the nodes (SMTP on one, IMAP on
// another), starting at the next node of the rotation.
func (s *Server) Addrs() map[string]string {
	if s.nodes == nil {
		return maps.Clone(s.addrs)
	}
	start := int(s.rot.Add(1) - 1)
	m := map[string]string{}
	for i, name := range Listeners {
		m[name] = s.nodes[(start+i)%len(s.nodes)].addrs[name]
	}
	return m
}

// Running reports whether the process has not exited yet (in the
// cluster mode: whether any node has not).
func (s *Server) Running() bool {
	if s.nodes != nil {
		return slices.ContainsFunc(s.nodes, (*Server).Running)
	}
	select {
	case <-s.exited:
		return false
	default:
		return true
	}
}

// Stop sends SIGTERM and asserts a clean exit (status 0) within
// StopTimeout. It is idempotent, and safe in a goroutine of the test.
func (s *Server) Stop() { s.StopWith(syscall.SIGTERM) }

// StopWith is Stop with another signal (SPEC: SIGTERM or SIGINT).
func (s *Server) StopWith(sig os.Signal) {
	t := s.env.t
	if s.nodes != nil {
		s.eachNode(func(n *Server) { n.StopWith(sig) })
		return
	}
	s.stopOnce.Do(func() {
		t.Helper()
		if !s.Running() {
			t.Errorf("abox serve exited before it was stopped (%v):\n%s", s.err, s.Log)
			return
		}
		if err := s.cmd.Process.Signal(sig); err != nil {
			t.Errorf("%v: %v", sig, err)
		}
		timer := time.NewTimer(StopTimeout)
		defer timer.Stop()
		select {
		case <-s.exited:
			if s.err != nil {
				t.Errorf("abox serve after %v: %v (want exit 0):\n%s", sig, s.err, s.Log)
			}
		case <-timer.C:
			// SIGQUIT makes the Go runtime print every goroutine's stack
			// (into the log below) before it exits.
			s.cmd.Process.Signal(syscall.SIGQUIT)
			select {
			case <-s.exited:
			case <-time.After(5 * time.Second):
				s.cmd.Process.Kill()
				<-s.exited
			}
			t.Errorf("abox serve still running %v after %v:\n%s", StopTimeout, sig, s.Log)
		}
	})
}

// Signal sends sig to the running server (SIGHUP, say) without
// stopping it.
func (s *Server) Signal(sig os.Signal) error {
	s.env.prepareConfig() // a configuration rewritten for a reload
	if s.nodes != nil {
		var errs []error
		for _, n := range s.nodes {
			errs = append(errs, n.Signal(sig))
		}
		return errors.Join(errs...)
	}
	return s.cmd.Process.Signal(sig)
}

// Kill stops the server with SIGKILL, as a crash would.
func (s *Server) Kill() {
	if s.nodes != nil {
		s.eachNode((*Server).Kill)
		return
	}
	s.stopOnce.Do(func() {
		s.cmd.Process.Kill()
		<-s.exited
	})
}

// Pid is the server's process ID (in the cluster mode: the first
// node's).
func (s *Server) Pid() int {
	if s.nodes != nil {
		return s.nodes[0].Pid()
	}
	return s.cmd.Process.Pid
}

// eachNode runs fn on every node of a cluster at once (their drains
// overlap) and returns when all are done.
func (s *Server) eachNode(fn func(*Server)) {
	var wg sync.WaitGroup
	for _, n := range s.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(n)
		}()
	}
	wg.Wait()
}
