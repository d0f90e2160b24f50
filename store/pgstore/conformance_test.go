package pgstore_test

import (
	"context"
	"testing"

	"abox/imapd"
	"abox/policy"
	"abox/store/pgstore"
	"abox/store/pgstore/pgtest"
	"abox/store/storetest"
)

// The interfaces the store's callers ask, checked at compile time.
var (
	_ policy.Store      = (*pgstore.Store)(nil)
	_ imapd.Store       = (*pgstore.Store)(nil)
	_ storetest.Backend = (*pgstore.Store)(nil)
)

// TestConformance runs the store conformance suite (store/storetest),
// the same tests the embedded store passes, against PostgreSQL with
// bodies inline and with bodies in SeaweedFS.
func TestConformance(t *testing.T) {
	for _, objects := range []bool{false, true} {
		name := "postgres"
		if objects {
			name = "postgres+s3"
		}
		t.Run(name, func(t *testing.T) {
			storetest.Run(t, func(t *testing.T) storetest.Backend {
				o := pgstore.Options{DSN: pgtest.Database(t)}
				if objects {
					w := pgtest.ObjectServer(t)
					o.Objects = pgstore.ObjectOptions{Endpoint: w.Endpoint(), Bucket: w.NewBucket(), AccessKey: w.AccessKey, SecretKey: w.SecretKey, CreateBucket: true}
					o.InlineMax = 64
				}
				s, err := pgstore.Open(context.Background(), o)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { s.Close() })
				return s
			})
		})
	}
}
