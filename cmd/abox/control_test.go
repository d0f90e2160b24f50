package main

import (
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"abox/store"
)

// TestControlCloseWhileClientsConnect closes the control socket, round
// after round, while clients keep connecting: a connection accepted as
// close begins must be either waited for or not served (counted after
// close began waiting, it was a data race, and an operation could run
// on the store serve closes next).
func TestControlCloseWhileClientsConnect(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	st, err := store.Open(filepath.Join(dir, "abox.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	e := &env{store: st, log: slog.New(slog.DiscardHandler)}
	sock := filepath.Join(dir, "control.sock")
	for round := range 20 {
		c, err := listenControl(sock, e)
		if err != nil {
			t.Fatal(err)
		}
		go c.serve()
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
					if conn, err := net.Dial("unix", sock); err == nil {
						conn.Close()
					}
				}
			})
		}
		time.Sleep(time.Duration(round%3) * time.Millisecond)
		c.close()
		close(stop)
		clients.Wait()
	}
}
