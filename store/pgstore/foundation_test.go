package pgstore

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"abox/store"
)

var bg = context.Background()

// TestMigrationsOnce: two nodes opening one database apply each
// migration exactly once; a database migrated by a newer abox is
// refused.
func TestMigrationsOnce(t *testing.T) {
	s := openTest(t, false)
	o := Options{DSN: s.pool.Config().ConnString()}
	done := make(chan error, 3)
	for range 3 {
		go func() {
			s2, err := Open(bg, o)
			if err == nil {
				s2.Close()
			}
			done <- err
		}()
	}
	for range 3 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	ms, _ := migrations()
	var n, max int
	if err := s.pool.QueryRow(bg, `SELECT count(*), max(version) FROM abox_schema`).Scan(&n, &max); err != nil {
		t.Fatal(err)
	}
	if n != len(ms) || max != len(ms) {
		t.Fatalf("abox_schema holds %d rows up to %d, want %d", n, max, len(ms))
	}
	if _, err := s.pool.Exec(bg, `INSERT INTO abox_schema (version, name) VALUES ($1, 'future')`, len(ms)+1); err != nil {
		t.Fatal(err)
	}
	_, err := Open(bg, o)
	if err == nil || !strings.Contains(err.Error(), "newer abox") {
		t.Fatalf("Open of a newer schema: %v", err)
	}
}

// TestBodies: a body over the inline limit goes to the object store, a
// small one stays in PostgreSQL; a shareable body stored twice is one
// row with two references, and dropping them removes the row and, after
// the trash is emptied, the object.
func TestBodies(t *testing.T) {
	s := openTest(t, true)
	small := []byte("Subject: hi\r\n\r\nshort\r\n")
	large := bytes.Repeat([]byte("0123456789abcdef"), 100)
	store1 := func(body []byte, shareable bool) uint64 {
		t.Helper()
		nb, err := s.prepareBody(bg, body, []byte("S"), shareable)
		if err != nil {
			t.Fatal(err)
		}
		var id uint64
		if err := s.tx(bg, func(tx pgx.Tx) error {
			id, err = nb.insert(bg, tx, 1)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return id
	}
	a, b := store1(small, false), store1(large, false)
	for _, c := range []struct {
		id     uint64
		body   []byte
		object bool
	}{{a, small, false}, {b, large, true}} {
		got, st, err := s.loadBody(bg, c.id, true)
		if err != nil || !bytes.Equal(got, c.body) || string(st) != "S" {
			t.Fatalf("body %d: %q %q %v", c.id, got, st, err)
		}
		var object *string
		s.pool.QueryRow(bg, `SELECT object FROM blobs WHERE id = $1`, c.id).Scan(&object)
		if (object != nil) != c.object {
			t.Fatalf("body %d of %d bytes: object %v, want in the object store: %v", c.id, len(c.body), object, c.object)
		}
	}
	s1, s2 := store1(large, true), store1(large, true)
	if s1 != s2 {
		t.Fatalf("a shareable body stored twice is two rows: %d, %d", s1, s2)
	}
	var refs int
	var key string
	s.pool.QueryRow(bg, `SELECT refs, object FROM blobs WHERE id = $1`, s1).Scan(&refs, &key)
	if refs != 2 {
		t.Fatalf("refs %d, want 2", refs)
	}
	if n, _ := s.EmptyTrash(bg, 100); n != 1 {
		t.Fatalf("the second copy's object: %d emptied, want 1", n)
	}
	if err := s.tx(bg, func(tx pgx.Tx) error {
		_, err := dropRefs(bg, tx, map[uint64]int{s1: 2})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.loadBody(bg, s1, true); err == nil {
		t.Fatal("a body without references is still there")
	}
	if n, _ := s.EmptyTrash(bg, 100); n != 1 {
		t.Fatalf("emptied %d objects, want 1", n)
	}
	if _, err := s.objects.get(bg, key); err == nil {
		t.Fatalf("object %s is still in the bucket", key)
	}
}

// TestFeedAcrossNodes: a change committed through one node reaches a
// subscriber on another, a rolled-back one reaches no one, and
// SyncFeed returns only after every earlier commit was published.
func TestFeedAcrossNodes(t *testing.T) {
	a := openTest(t, false)
	b := openAgain(t, a, Options{DSN: a.pool.Config().ConnString()})
	woke := make(chan struct{}, 10)
	sub := b.Subscribe(7, func() { woke <- struct{}{} })
	defer sub.Close()
	want := store.Change{Kind: store.MessageAdded, Account: 7, Mailbox: 1, UID: 3, Flags: []string{`\Seen`}, ModSeq: 9}
	rollback := store.Change{Kind: store.MessageAdded, Account: 7, Mailbox: 1, UID: 4}
	if err := a.tx(bg, func(tx pgx.Tx) error { return notify(bg, tx, []store.Change{rollback}) }); err != nil {
		t.Fatal(err)
	}
	pgx.BeginFunc(bg, a.pool, func(tx pgx.Tx) error {
		notify(bg, tx, []store.Change{rollback})
		return context.Canceled // rolled back
	})
	// The first commit above is not what we want: take it, then check
	// the rolled-back one never comes.
	select {
	case <-woke:
	case <-time.After(10 * time.Second):
		t.Fatal("no change reached the other node")
	}
	sub.Take()
	if err := a.tx(bg, func(tx pgx.Tx) error { return notify(bg, tx, []store.Change{want}) }); err != nil {
		t.Fatal(err)
	}
	if err := b.SyncFeed(bg); err != nil {
		t.Fatal(err)
	}
	got, lost := sub.Take()
	if lost || len(got) != 1 || got[0].UID != 3 || got[0].ModSeq != 9 || len(got[0].Flags) != 1 {
		t.Fatalf("after SyncFeed: %+v lost=%v, want exactly %+v", got, lost, want)
	}
	// Many changes in one transaction are split over payloads and
	// arrive in order.
	var many []store.Change
	for i := range 500 {
		many = append(many, store.Change{Kind: store.FlagsChanged, Account: 7, Mailbox: 1, UID: uint32(i + 1), Flags: []string{"$Label" + strings.Repeat("x", 20)}})
	}
	if err := a.tx(bg, func(tx pgx.Tx) error { return notify(bg, tx, many) }); err != nil {
		t.Fatal(err)
	}
	if err := b.SyncFeed(bg); err != nil {
		t.Fatal(err)
	}
	got, lost = sub.Take()
	if !lost {
		// 500 is past a subscription's buffer: it must say so.
		t.Fatalf("500 changes: got %d and no loss reported", len(got))
	}
	dir := b.DirectoryGeneration()
	if err := a.tx(bg, func(tx pgx.Tx) error { return notifyDirectory(bg, tx) }); err != nil {
		t.Fatal(err)
	}
	b.SyncFeed(bg)
	if b.DirectoryGeneration() == dir {
		t.Fatal("a directory change on one node did not move the other's generation")
	}
}

// TestOneShotHoldsOneConnection: a OneShot store (a CLI command) opens
// one connection to PostgreSQL where a node's holds a listening one
// besides, and its directory generation moves at every call, so nothing
// of the directory is cached without a listener to say it changed.
func TestOneShotHoldsOneConnection(t *testing.T) {
	node := openTest(t, false)
	backends := func(app string) int {
		t.Helper()
		var n int
		if err := node.pool.QueryRow(bg, `SELECT count(*) FROM pg_stat_activity WHERE application_name = $1`, app).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	for _, oneShot := range []bool{false, true} {
		app := fmt.Sprintf("abox-oneshot-%v", oneShot)
		cfg := node.pool.Config().ConnConfig
		dsn := fmt.Sprintf("postgres://%s@%s:%d/%s?sslmode=disable&application_name=%s", cfg.User, cfg.Host, cfg.Port, cfg.Database, app)
		s, err := Open(bg, Options{DSN: dsn, OneShot: oneShot})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Domains(); err != nil {
			t.Fatal(err)
		}
		if err := s.AddDomain(bg, app+".kz", op); err != nil {
			t.Fatal(err)
		}
		n := backends(app)
		switch {
		case oneShot && n != 1:
			t.Errorf("a OneShot store opened %d connections, want 1", n)
		case !oneShot && n < 2:
			t.Errorf("a node's store opened %d connections, want its pool's and its listener's", n)
		}
		g := s.DirectoryGeneration()
		if moved := s.DirectoryGeneration() != g; moved != oneShot {
			t.Errorf("OneShot %v: the directory generation moved between two calls: %v", oneShot, moved)
		}
		if err := s.SyncFeed(bg); err != nil {
			t.Errorf("OneShot %v: SyncFeed: %v", oneShot, err)
		}
		s.Close()
	}
}
