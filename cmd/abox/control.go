package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"abox/store"
)

// The control socket speaks one request per connection: the client sends
// one JSON line {"op", "args"}; the server answers one JSON line
// {"result"} or {"error"}. A streaming operation (backup) answers
// {"stream": N} and then N raw bytes.

type controlRequest struct {
	Op   string          `json:"op"`
	Args json.RawMessage `json:"args"`
}

type controlResponse struct {
	Result   json.RawMessage `json:"result,omitempty"`
	Error    string          `json:"error,omitempty"`
	Stream   int64           `json:"stream,omitempty"` // a backup stream (store.BackupStream) follows
	Progress json.RawMessage `json:"progress,omitempty"`
}

// maxControlRequest bounds a request line: flags, passwords, and the
// message of a broadcast (up to the largest class size, base64).
const maxControlRequest = 80 << 20

// controlServer serves admin operations to `abox` commands run while the
// server is up.
type controlServer struct {
	env  *env
	ln   net.Listener
	wg   sync.WaitGroup
	log  *slog.Logger
	stop context.CancelFunc
	ctx  context.Context

	mu     sync.Mutex
	closed bool // guarded by mu; close waits for wg once it is set
}

// listenControl creates the socket with mode 0600. A stale socket left by
// a crashed server is replaced; the data directory lock (held by the
// caller) proves no other server is using it.
func listenControl(path string, e *env) (*controlServer, error) {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	old := syscall.Umask(0o177)
	ln, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &controlServer{env: e, ln: ln, log: e.log, stop: cancel, ctx: ctx}, nil
}

func (c *controlServer) serve() {
	for {
		conn, err := c.ln.Accept()
		if err != nil {
			return
		}
		// A connection accepted as close begins is counted before close
		// waits, or not served: counted after, it was a data race and an
		// operation on the store serve closes next.
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			conn.Close()
			return
		}
		c.wg.Add(1)
		c.mu.Unlock()
		go func() {
			defer c.wg.Done()
			defer conn.Close()
			c.handle(conn)
		}()
	}
}

// close stops accepting, removes the socket and waits for running
// operations.
func (c *controlServer) close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.ln.Close() // a unix listener unlinks its socket file on Close
	c.wg.Wait()
	c.stop()
}

func (c *controlServer) handle(conn net.Conn) {
	defer func() {
		if r := recover(); r != nil {
			c.log.Error("control: panic", "panic", r)
			writeControl(conn, controlResponse{Error: "internal error"})
		}
	}()
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	line, err := bufio.NewReader(io.LimitReader(conn, maxControlRequest)).ReadBytes('\n')
	if err != nil {
		writeControl(conn, controlResponse{Error: "control: bad request"})
		return
	}
	conn.SetReadDeadline(time.Time{})
	var req controlRequest
	if err := json.Unmarshal(line, &req); err != nil {
		writeControl(conn, controlResponse{Error: "control: bad request"})
		return
	}
	staff := peerStaff(conn)
	c.log.Info("control request", "op", req.Op, "staff", staff)
	if req.Op == "backup" {
		e := *c.env
		e.staff = staff
		if err := e.auditRead(c.ctx, "backup", ""); err != nil {
			writeControl(conn, controlResponse{Error: err.Error()})
			return
		}
		c.streamBackup(conn)
		return
	}
	fn, ok := ops[req.Op]
	if !ok {
		writeControl(conn, controlResponse{Error: fmt.Sprintf("unknown operation %q", req.Op)})
		return
	}
	// The operation stops when the client goes away (Ctrl-C on a
	// broadcast): nothing more is ever read from it.
	ctx, cancel := context.WithCancel(c.ctx)
	defer cancel()
	go func() {
		var b [1]byte
		conn.Read(b[:])
		cancel()
	}()
	e := *c.env
	e.staff = staff
	var wmu sync.Mutex
	e.progress = func(v any) {
		raw, err := json.Marshal(v)
		if err == nil {
			wmu.Lock()
			writeControl(conn, controlResponse{Progress: raw})
			wmu.Unlock()
		}
	}
	res, err := fn(ctx, &e, req.Args)
	wmu.Lock()
	defer wmu.Unlock()
	if err != nil {
		writeControl(conn, controlResponse{Error: err.Error()})
		return
	}
	raw, err := json.Marshal(res)
	if err != nil {
		writeControl(conn, controlResponse{Error: err.Error()})
		return
	}
	writeControl(conn, controlResponse{Result: raw})
}

// streamBackup sends a consistent copy of the database. The size is known
// from the read transaction before the first byte.
func (c *controlServer) streamBackup(conn net.Conn) {
	st, err := c.env.file()
	if err != nil {
		writeControl(conn, controlResponse{Error: err.Error()})
		return
	}
	err = writeControl(conn, controlResponse{Stream: 1})
	if err == nil {
		err = st.BackupStream(conn)
	}
	switch {
	case err == nil:
	case errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET):
		// The command went away (it could not write its file, or was
		// interrupted): it says so itself; nothing is wrong here.
		c.log.Info("control: backup: the command stopped reading", "err", err)
	default:
		c.log.Error("control: backup", "err", err)
	}
}

func writeControl(w io.Writer, r controlResponse) error {
	raw, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = w.Write(append(raw, '\n'))
	return err
}

// errNoServer means no server answers on the control socket.
var errNoServer = errors.New("no server on the control socket")

// dialControl connects to a running server, or returns errNoServer.
func dialControl(path string) (net.Conn, error) {
	conn, err := net.DialTimeout("unix", path, 2*time.Second)
	if err != nil {
		return nil, errNoServer
	}
	return conn, nil
}

// callControl sends one request and reads the header line of the answer,
// passing progress lines to onProgress (when set). The returned reader
// holds any stream that follows.
func callControl(conn net.Conn, op string, args any, onProgress ...func(json.RawMessage)) (controlResponse, *bufio.Reader, error) {
	raw, err := json.Marshal(args)
	if err != nil {
		return controlResponse{}, nil, err
	}
	req, _ := json.Marshal(controlRequest{Op: op, Args: raw})
	if _, err := conn.Write(append(req, '\n')); err != nil {
		return controlResponse{}, nil, fmt.Errorf("control socket: %w", err)
	}
	br := bufio.NewReaderSize(conn, 64<<10)
	var resp controlResponse
	for {
		line, err := br.ReadBytes('\n')
		if err != nil {
			return controlResponse{}, nil, fmt.Errorf("control socket: the server closed the connection: %w", err)
		}
		resp = controlResponse{}
		if err := json.Unmarshal(line, &resp); err != nil {
			return controlResponse{}, nil, fmt.Errorf("control socket: bad answer: %w", err)
		}
		if resp.Progress == nil {
			break
		}
		for _, f := range onProgress {
			f(resp.Progress)
		}
	}
	if resp.Error != "" {
		return resp, nil, errors.New(resp.Error)
	}
	return resp, br, nil
}

// storeOptions are the options every opener of the store uses.
func storeOptions(log *slog.Logger) store.Options {
	return store.Options{Logger: log, LockTimeout: 500 * time.Millisecond}
}
