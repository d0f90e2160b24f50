package pgstore

import (
	"bytes"
	"errors"
	"net"
	"net/url"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"

	"abox/store"
	"abox/store/pgstore/pgtest"
)

// A COMMIT without an answer (commit.go): the connection dies after
// the COMMIT left, before its answer arrives. A transaction that did
// commit is a delivered letter (no temporary error, so no retry and
// no duplicate); one that did not is a storage error with nothing
// stored.

// commitCutter is a TCP proxy in front of PostgreSQL. Armed, it acts
// on the next COMMIT a client sends: "answer" passes it to the server
// and drops the connection when the server answers (the transaction
// commits, the client never hears of it); "request" drops the
// connection instead of passing the COMMIT on (the transaction never
// commits, and the client cannot tell the two apart).
type commitCutter struct {
	ln       net.Listener
	upstream string
	armed    atomic.Pointer[string]
	cuts     atomic.Int32
}

func newCommitCutter(t *testing.T, dsn string) (*commitCutter, string) {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	c := &commitCutter{ln: ln, upstream: u.Host}
	go c.serve()
	u.Host = ln.Addr().String()
	return c, u.String()
}

func (c *commitCutter) arm(mode string) { c.armed.Store(&mode) }

func (c *commitCutter) serve() {
	for {
		conn, err := c.ln.Accept()
		if err != nil {
			return
		}
		go c.pipe(conn)
	}
}

func (c *commitCutter) pipe(client net.Conn) {
	server, err := net.Dial("tcp", c.upstream)
	if err != nil {
		client.Close()
		return
	}
	var cut atomic.Bool
	go func() { // server to client
		buf := make([]byte, 64<<10)
		for {
			n, err := server.Read(buf)
			if n > 0 && cut.Load() {
				break // the answer to the COMMIT: never delivered
			}
			if n > 0 {
				client.Write(buf[:n])
			}
			if err != nil {
				break
			}
		}
		client.Close()
		server.Close()
	}()
	buf := make([]byte, 64<<10)
	for {
		n, err := client.Read(buf)
		if n > 0 && bytes.Contains(bytes.ToUpper(buf[:n]), []byte("COMMIT\x00")) {
			if mode := c.armed.Swap(nil); mode != nil {
				c.cuts.Add(1)
				if *mode == "request" {
					break
				}
				cut.Store(true)
			}
		}
		if n > 0 {
			server.Write(buf[:n])
		}
		if err != nil {
			break
		}
	}
	client.Close()
	server.Close()
}

func TestCommitWithoutAnswer(t *testing.T) {
	for _, path := range []string{"batch", "alone"} {
		t.Run(path, func(t *testing.T) {
			cutter, dsn := newCommitCutter(t, pgtest.Database(t))
			s, err := Open(bg, Options{DSN: dsn})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			if path == "alone" {
				s.deliveries.flushers = -1 // one transaction per delivery (txKnown)
			}
			acct := mailAccount(t, s, "alice@example.kz").ID

			// Committed, answer lost: delivered, once.
			cutter.arm("answer")
			out, err := s.Deliver(bg, &store.Delivery{Body: letter(1, 200), Recipients: []store.Recipient{{Account: acct}}})
			if err != nil {
				t.Fatalf("a committed delivery whose COMMIT answer was lost: %v", err)
			}
			if cutter.cuts.Load() != 1 {
				t.Fatalf("the proxy cut %d COMMITs, want 1", cutter.cuts.Load())
			}
			if len(out) != 1 || out[0].Err != nil || out[0].UID == 0 {
				t.Fatalf("delivered %+v", out)
			}
			if n := messageCount(t, s, acct); n != 1 {
				t.Fatalf("%d messages stored, want 1", n)
			}
			if committed, unknown := s.CommitsResolved(); committed != 1 || unknown != 0 {
				t.Fatalf("resolved %d committed, %d unknown; want 1, 0", committed, unknown)
			}

			// Never committed: a storage error, nothing stored.
			cutter.arm("request")
			_, err = s.Deliver(bg, &store.Delivery{Body: letter(2, 200), Recipients: []store.Recipient{{Account: acct}}})
			if !errors.Is(err, store.ErrStorageFailing) {
				t.Fatalf("a delivery whose COMMIT never reached the server: %v, want a storage failure", err)
			}
			if n := messageCount(t, s, acct); n != 1 {
				t.Fatalf("%d messages stored, want still 1", n)
			}

			// And the store goes on.
			if _, err := s.Deliver(bg, &store.Delivery{Body: letter(3, 200), Recipients: []store.Recipient{{Account: acct}}}); err != nil {
				t.Fatal(err)
			}
			if n := messageCount(t, s, acct); n != 2 {
				t.Fatalf("%d messages stored, want 2", n)
			}
		})
	}
}

// The id's status alone never says committed: after a crash PostgreSQL
// can hand an id that never reached its WAL to a new transaction and
// report that one's outcome. Here the id is of another transaction
// that did commit, the token is not there: not committed. With the
// token, committed.
func TestCommitOutcomeNeedsTheToken(t *testing.T) {
	s := openTest(t, false)
	var other string
	err := pgx.BeginFunc(bg, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(bg, `CREATE TEMP TABLE scratch (i int) ON COMMIT DROP`); err != nil {
			return err
		}
		return tx.QueryRow(bg, `SELECT pg_current_xact_id()::text`).Scan(&other)
	})
	if err != nil {
		t.Fatal(err)
	}
	if committed, err := s.commitOutcome(bg, other, newCommitToken()); err != nil || committed {
		t.Fatalf("a committed id without its token: committed %v (%v), want not committed", committed, err)
	}
	token := newCommitToken()
	var xid string
	if err := pgx.BeginFunc(bg, s.pool, func(tx pgx.Tx) error { return tx.QueryRow(bg, xidSQL, token).Scan(&xid) }); err != nil {
		t.Fatal(err)
	}
	if committed, err := s.commitOutcome(bg, xid, token); err != nil || !committed {
		t.Fatalf("a committed transaction with its token: committed %v (%v), want committed", committed, err)
	}
}
