package pgstore

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"abox/store"
)

// ListAudit returns entries in the order they were written (their
// sequence numbers), at most f.Limit of them; pass the last Seq as
// f.After for the next page. With an Account it walks audit_account,
// otherwise the primary key.
//
// Sequence numbers are taken when an entry is written, not when its
// transaction commits: a page read while transactions are in flight on
// other nodes can miss an entry with a lower number that commits
// afterwards. The audit log is read by people after the fact; it never
// drives a cursor that must not miss anything.
func (s *Store) ListAudit(f store.AuditFilter) ([]store.AuditEntry, error) {
	if f.Limit <= 0 {
		f.Limit = 1000
	}
	var where []string
	args := []any{f.After}
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, strings.ReplaceAll(cond, "$?", "$"+strconv.Itoa(len(args))))
	}
	where = append(where, "seq > $1")
	if f.Account != "" {
		add("account = $? AND account <> ''", f.Account)
	}
	if !f.Since.IsZero() {
		add("at >= $?", f.Since)
	}
	if f.AccountID != 0 {
		// Entries about the address's other holder are left out; those
		// written before ids were recorded are kept.
		add("account_id IN (0, $?)", int64(f.AccountID))
	}
	args = append(args, f.Limit)
	order := "seq"
	if f.Account != "" {
		order = "account, seq"
	}
	q := `SELECT seq, data FROM audit WHERE ` + strings.Join(where, " AND ") + ` ORDER BY ` + order + ` LIMIT $` + strconv.Itoa(len(args))
	rows, err := s.pool.Query(context.Background(), q, args...)
	if err != nil {
		return nil, storageErr(err)
	}
	defer rows.Close()
	var out []store.AuditEntry
	for rows.Next() {
		var seq uint64
		var raw []byte
		if err := rows.Scan(&seq, &raw); err != nil {
			return nil, storageErr(err)
		}
		var e store.AuditEntry
		if err := json.Unmarshal(raw, &e); err != nil {
			return nil, fmt.Errorf("audit entry %d: %w", seq, store.ErrCorrupt)
		}
		e.Seq = seq
		out = append(out, e)
	}
	return out, storageErr(rows.Err())
}

// PruneAudit removes audit entries recorded before before, oldest first
// (in sequence order, stopping at the first entry that is not older, as
// the embedded store does), at most batch per transaction, and returns
// how many it removed. It is the audit log's retention: the only thing
// that ever removes an entry, and only from the old end.
func (s *Store) PruneAudit(ctx context.Context, before time.Time, batch int) (int, error) {
	if batch <= 0 {
		return 0, nil
	}
	total := 0
	for {
		var n int
		err := s.tx(ctx, func(tx pgx.Tx) error {
			tag, err := tx.Exec(ctx, `WITH head AS (SELECT seq, at FROM audit ORDER BY seq LIMIT $2),
				stop AS (SELECT coalesce(min(seq), $3) AS seq FROM head WHERE at >= $1)
				DELETE FROM audit WHERE seq IN (SELECT seq FROM head WHERE seq < (SELECT seq FROM stop))`,
				before, batch, int64(math.MaxInt64))
			n = int(tag.RowsAffected())
			return err
		})
		if err != nil {
			return total, err
		}
		total += n
		if n < batch {
			return total, nil
		}
	}
}
