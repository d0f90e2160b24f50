package pgstore

import (
	"context"
	"os"
	"testing"

	"abox/store/pgstore/pgtest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.StopAll()
	os.Exit(code)
}

// openTest opens a store on a new database, with the test binary's
// SeaweedFS as its object store when objects is set (bodies over 64
// bytes go there, so small test messages exercise it).
func openTest(t testing.TB, objects bool) *Store {
	t.Helper()
	o := Options{DSN: pgtest.Database(t)}
	if objects {
		w := pgtest.ObjectServer(t)
		o.Objects = ObjectOptions{Endpoint: w.Endpoint(), Bucket: w.NewBucket(), AccessKey: w.AccessKey, SecretKey: w.SecretKey, CreateBucket: true}
		o.InlineMax = 64
	}
	s, err := Open(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// openAgain opens a second store (another node) on s's database and
// bucket.
func openAgain(t testing.TB, s *Store, o Options) *Store {
	t.Helper()
	s2, err := Open(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s2.Close() })
	return s2
}
