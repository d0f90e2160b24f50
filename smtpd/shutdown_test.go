package smtpd

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"abox/policy"
	"abox/store"
)

// TestShutdownWhileSessionsCycle shuts the server down, round after
// round, while every client sends commands as fast as it can. Shutdown
// wakes each idle session under the server's lock while the sessions
// check for shutdown as they start waiting for a command: the two must
// never wait for each other, and no session may miss the wake-up and
// keep waiting for its command timeout (an hour here), which would hold
// Shutdown until its context ends.
func TestShutdownWhileSessionsCycle(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "abox.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	engine := policy.New(st, policy.Config{ConnectionsPerIP: 1000})
	for round := range 15 {
		s := New(Config{
			Name: "smtp", Hostname: "mx.abox.test", Mode: MX, Policy: engine,
			Log: slog.New(slog.DiscardHandler), CommandTimeout: time.Hour, HelloTimeout: time.Hour,
		})
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go s.Serve(ln)
		var clients sync.WaitGroup
		ready := make(chan struct{}, 24)
		for range 24 {
			clients.Add(1)
			go func() {
				defer clients.Done()
				nc, err := net.Dial("tcp", ln.Addr().String())
				if err != nil {
					ready <- struct{}{}
					return
				}
				defer nc.Close()
				br := bufio.NewReader(nc)
				if _, err := br.ReadString('\n'); err != nil {
					ready <- struct{}{}
					return
				}
				ready <- struct{}{}
				for {
					if _, err := fmt.Fprint(nc, "NOOP\r\n"); err != nil {
						return
					}
					if _, err := br.ReadString('\n'); err != nil {
						return
					}
				}
			}()
		}
		for range 24 {
			<-ready
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		done := make(chan error, 1)
		go func() { done <- s.Shutdown(ctx) }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("round %d: Shutdown: %v (a session missed the wake-up)", round, err)
			}
		case <-time.After(60 * time.Second):
			buf := make([]byte, 1<<20)
			t.Fatalf("round %d: Shutdown hung:\n%s", round, buf[:runtime.Stack(buf, true)])
		}
		cancel()
		clients.Wait()
	}
}

// TestShutdownWhileClientsConnect shuts the server down, round after
// round, while clients keep connecting: a connection accepted as
// Shutdown begins must be either waited for or not served. Counted after
// Shutdown began waiting, it was a data race (found by the race detector
// in a server the CLI tests stopped right after connecting to it) and a
// session running past Shutdown.
func TestShutdownWhileClientsConnect(t *testing.T) {
	t.Parallel()
	st, err := store.Open(filepath.Join(t.TempDir(), "abox.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	engine := policy.New(st, policy.Config{ConnectionsPerIP: 1000})
	for round := range 200 {
		s := New(Config{Name: "smtp", Hostname: "mx.abox.test", Mode: MX, Policy: engine, Log: slog.New(slog.DiscardHandler)})
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go s.Serve(ln)
		stop := make(chan struct{})
		var clients sync.WaitGroup
		for range 2 {
			clients.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					if nc, err := net.Dial("tcp", ln.Addr().String()); err == nil {
						nc.Close()
					}
				}
			})
		}
		time.Sleep(time.Duration(round%3) * time.Millisecond)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		err = s.Shutdown(ctx)
		cancel()
		close(stop)
		clients.Wait()
		if err != nil {
			t.Fatalf("round %d: Shutdown: %v", round, err)
		}
	}
}
