package pgstore

import (
	"fmt"
	"testing"

	"abox/accounts"
	"abox/store"
)

// BenchmarkFootprint measures what one account and one 1 KiB letter
// cost in PostgreSQL (docs/SCALING.md's capacity model): the growth of
// the database (tables and indexes, as pg_database_size counts them,
// after VACUUM) for b.N accounts with their six mailboxes, then for
// b.N letters delivered to them. Sizes, not times: the machine's load
// does not change them.
//
//	go test -run '^$' -bench Footprint -benchtime 20000x ./store/pgstore
func BenchmarkFootprint(b *testing.B) {
	s := openTest(b, false)
	op := store.Audit{Actor: store.ActorOperator}
	if err := s.AddDomain(bg, "example.kz", op); err != nil {
		b.Fatal(err)
	}
	size := func() int64 {
		b.Helper()
		if _, err := s.pool.Exec(bg, `VACUUM`); err != nil {
			b.Fatal(err)
		}
		var n int64
		if err := s.pool.QueryRow(bg, `SELECT pg_database_size(current_database())`).Scan(&n); err != nil {
			b.Fatal(err)
		}
		return n
	}
	tables := func() map[string]int64 {
		out := map[string]int64{}
		rows, err := s.pool.Query(bg, `SELECT relname, pg_total_relation_size(oid) FROM pg_class WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace`)
		if err != nil {
			b.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var name string
			var n int64
			rows.Scan(&name, &n)
			out[name] = n
		}
		return out
	}
	before, t0 := size(), tables()
	ids := make([]uint64, b.N)
	for i := range b.N {
		a, err := s.CreateAccount(bg, accounts.Account{Login: fmt.Sprintf("u%d", i), Domain: "example.kz", Phone: "+77010000000", PasswordHash: "$argon2id$v=19$m=65536,t=3,p=2$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g"}, op)
		if err != nil {
			b.Fatal(err)
		}
		ids[i] = a.ID
	}
	mid, t1 := size(), tables()
	body := letter(0, 1024)
	for i := range b.N {
		if _, err := s.Deliver(bg, &store.Delivery{Body: body, AllOrNothing: true, Recipients: []store.Recipient{{Account: ids[i]}}}); err != nil {
			b.Fatal(err)
		}
	}
	after, t2 := size(), tables()
	b.ReportMetric(float64(mid-before)/float64(b.N), "B/account")
	b.ReportMetric(float64(after-mid)/float64(b.N), "B/letter")
	for _, name := range []string{"accounts", "usage", "mailboxes", "mailbox_ids", "audit"} {
		b.ReportMetric(float64(t1[name]-t0[name])/float64(b.N), "B/account-"+name)
	}
	for _, name := range []string{"messages", "blobs", "mailboxes", "usage"} {
		b.ReportMetric(float64(t2[name]-t1[name])/float64(b.N), "B/letter-"+name)
	}
}
