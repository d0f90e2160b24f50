package pgstore

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"abox/store"
)

// Reads of messages and bodies. Each is one query (bodies: one per
// readBatch ids), outside any transaction; none loads more of a mailbox
// than the caller asked for.

// messageCols are the columns scanMessage reads, in its order.
const messageCols = `uid, modseq, flags, internal_date, internal_zone, added_at, size, blob`

func scanMessage(row pgx.Row, m *store.Message) error {
	var uid, blob int64
	var zone int16
	var modseq int64
	err := row.Scan(&uid, &modseq, &m.Flags, &m.InternalDate, &zone, &m.AddedAt, &m.Size, &blob)
	m.UID, m.ModSeq, m.Blob = uint32(uid), uint64(modseq), uint64(blob)
	m.InternalDate = m.InternalDate.In(fixedZone(int(zone)))
	m.AddedAt = m.AddedAt.UTC()
	if len(m.Flags) == 0 {
		m.Flags = nil
	}
	return err
}

// collectMessages reads message rows and closes them.
func collectMessages(rows pgx.Rows) ([]store.Message, error) {
	defer rows.Close()
	var out []store.Message
	for rows.Next() {
		out = append(out, store.Message{})
		if err := scanMessage(rows, &out[len(out)-1]); err != nil {
			return nil, err
		}
	}
	return out, rows.Err()
}

// zones memoises the fixed zones of stored dates by offset in minutes
// (within ±14 hours), as the embedded store does: FETCH decodes
// thousands of dates a command.
var zones [2*14*60 + 1]atomic.Pointer[time.Location]

func fixedZone(offMin int) *time.Location {
	i := offMin + 14*60
	if i < 0 || i >= len(zones) {
		return time.FixedZone("", offMin*60)
	}
	if z := zones[i].Load(); z != nil {
		return z
	}
	z := time.FixedZone("", offMin*60)
	zones[i].Store(z)
	return z
}

// Messages returns up to limit messages of a mailbox with UID >
// afterUID, in UID order (limit <= 0: all of them; callers page).
func (s *Store) Messages(acct uint64, mbox uint32, afterUID uint32, limit int) ([]store.Message, error) {
	sql := `SELECT ` + messageCols + ` FROM messages WHERE account = $1 AND mailbox = $2 AND uid > $3 ORDER BY uid`
	args := []any{acct, int32(mbox), int64(afterUID)}
	if limit > 0 {
		sql += ` LIMIT $4`
		args = append(args, limit)
	}
	rows, err := s.pool.Query(context.Background(), sql, args...)
	if err != nil {
		return nil, storageErr(err)
	}
	out, err := collectMessages(rows)
	return out, storageErr(err)
}

// MessagesByUID returns the messages among uids (ascending, distinct)
// that still exist, in UID order.
func (s *Store) MessagesByUID(acct uint64, mbox uint32, uids []uint32) ([]store.Message, error) {
	if len(uids) == 0 {
		return []store.Message{}, nil
	}
	list := make([]int64, len(uids))
	for i, u := range uids {
		list[i] = int64(u)
	}
	rows, err := s.pool.Query(context.Background(), `SELECT `+messageCols+` FROM messages
		WHERE account = $1 AND mailbox = $2 AND uid = ANY ($3) ORDER BY uid`, acct, int32(mbox), list)
	if err != nil {
		return nil, storageErr(err)
	}
	out, err := collectMessages(rows)
	if out == nil && err == nil {
		out = []store.Message{}
	}
	return out, storageErr(err)
}

// UIDs returns every UID of a mailbox in ascending order, from the
// primary key's index alone.
func (s *Store) UIDs(acct uint64, mbox uint32) ([]uint32, error) {
	rows, err := s.pool.Query(context.Background(), `SELECT uid FROM messages WHERE account = $1 AND mailbox = $2 ORDER BY uid`, acct, int32(mbox))
	if err != nil {
		return nil, storageErr(err)
	}
	defer rows.Close()
	var out []uint32
	for rows.Next() {
		var uid int64
		if err := rows.Scan(&uid); err != nil {
			return nil, storageErr(err)
		}
		out = append(out, uint32(uid))
	}
	return out, storageErr(rows.Err())
}

// FirstUnseen returns the lowest UID without \Seen, or 0.
func (s *Store) FirstUnseen(acct uint64, mbox uint32) (uint32, error) {
	var uid int64
	err := s.pool.QueryRow(context.Background(), `SELECT uid FROM messages WHERE account = $1 AND mailbox = $2 AND NOT seen
		ORDER BY uid LIMIT 1`, acct, int32(mbox)).Scan(&uid)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	return uint32(uid), storageErr(err)
}

// OlderThan returns up to limit UIDs of a mailbox whose message entered
// it before cutoff. Messages get UIDs in the order they enter a
// mailbox, so the scan stops at the first younger one.
func (s *Store) OlderThan(acct uint64, mbox uint32, cutoff time.Time, limit int) ([]uint32, error) {
	if limit <= 0 {
		return nil, nil
	}
	rows, err := s.pool.Query(context.Background(), `SELECT uid, added_at FROM messages WHERE account = $1 AND mailbox = $2
		ORDER BY uid LIMIT $3`, acct, int32(mbox), limit)
	if err != nil {
		return nil, storageErr(err)
	}
	defer rows.Close()
	var out []uint32
	for rows.Next() {
		var uid int64
		var added time.Time
		if err := rows.Scan(&uid, &added); err != nil {
			return nil, storageErr(err)
		}
		if !added.Before(cutoff) {
			break
		}
		out = append(out, uint32(uid))
	}
	return out, storageErr(rows.Err())
}

// Body returns a stored body and its precomputed structure.
func (s *Store) Body(blob uint64) (body, structure []byte, err error) {
	return s.loadBody(context.Background(), blob, true)
}

// Structure returns a body's precomputed structure without reading the
// body.
func (s *Store) Structure(blob uint64) ([]byte, error) {
	_, st, err := s.loadBody(context.Background(), blob, false)
	return st, err
}

// BodyByHash finds a stored (shareable) body's id by its SHA-256.
func (s *Store) BodyByHash(hash [32]byte) (uint64, error) {
	var id int64
	err := s.pool.QueryRow(context.Background(), `SELECT id FROM blobs WHERE sha256 = $1`, hash[:]).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, fmt.Errorf("body %x: %w", hash[:8], store.ErrNotFound)
	}
	return uint64(id), storageErr(err)
}

// readBatch bounds the ids one query of ReadBodies, ReadStructures or
// Structures asks for; fetchAhead how many bodies are fetched from the
// object store at once (and held ahead of the caller).
const (
	readBatch  = 1000
	fetchAhead = 8
)

// ReadBodies calls fn for each body, in the order of ids, with its bytes
// and stored structure; an id with no body (deleted meanwhile, or whose
// object is gone from the object store) is skipped. Bodies in the
// object store are fetched a few at a time ahead of fn.
func (s *Store) ReadBodies(ids []uint64, fn func(i int, body, structure []byte) error) error {
	return s.readBodies(ids, true, fn)
}

// ReadStructures is ReadBodies without the bodies: fn gets a nil body.
func (s *Store) ReadStructures(ids []uint64, fn func(i int, body, structure []byte) error) error {
	return s.readBodies(ids, false, fn)
}

type bodyRow struct {
	structure, body []byte
	object          *string
}

// bodyRows reads the rows of ids (at most readBatch of them).
func (s *Store) bodyRows(ctx context.Context, ids []uint64, withBody bool) (map[uint64]*bodyRow, error) {
	list := make([]int64, len(ids))
	for i, id := range ids {
		list[i] = int64(id)
	}
	q := `SELECT id, structure, body, object FROM blobs WHERE id = ANY ($1)`
	if !withBody {
		q = `SELECT id, structure, NULL::bytea, NULL::text FROM blobs WHERE id = ANY ($1)`
	}
	rows, err := s.pool.Query(ctx, q, list)
	if err != nil {
		return nil, storageErr(err)
	}
	defer rows.Close()
	out := make(map[uint64]*bodyRow, len(ids))
	for rows.Next() {
		var id int64
		r := &bodyRow{}
		if err := rows.Scan(&id, &r.structure, &r.body, &r.object); err != nil {
			return nil, storageErr(err)
		}
		out[uint64(id)] = r
	}
	return out, storageErr(rows.Err())
}

// fetched is one body on its way from the object store.
type fetched struct {
	done chan struct{}
	body []byte
	err  error
}

func (s *Store) readBodies(ids []uint64, withBody bool, fn func(i int, body, structure []byte) error) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for base := 0; base < len(ids); base += readBatch {
		chunk := ids[base:min(base+readBatch, len(ids))]
		rows, err := s.bodyRows(ctx, chunk, withBody)
		if err != nil {
			return err
		}
		gets := make([]*fetched, len(chunk))
		started := 0
		startUpTo := func(end int) error {
			for ; started < min(end, len(chunk)); started++ {
				r := rows[chunk[started]]
				if r == nil || r.object == nil {
					continue
				}
				if s.objects == nil {
					return ErrNoObjectStore
				}
				f := &fetched{done: make(chan struct{})}
				gets[started] = f
				go func(key string) {
					defer close(f.done)
					f.body, f.err = s.objects.get(ctx, key)
				}(*r.object)
			}
			return nil
		}
		for i, id := range chunk {
			if err := startUpTo(i + fetchAhead); err != nil {
				return err
			}
			r := rows[id]
			if r == nil {
				continue
			}
			body := r.body
			if f := gets[i]; f != nil {
				<-f.done
				gets[i] = nil
				if errors.Is(f.err, errGoneObject) {
					continue // gone meanwhile: its message is skipped
				}
				if f.err != nil {
					return storageErr(f.err)
				}
				body = f.body
			}
			if err := fn(base+i, body, r.structure); err != nil {
				return err
			}
		}
	}
	return nil
}

// Structures returns the precomputed structures of several bodies (nil
// where a body is missing).
func (s *Store) Structures(ids []uint64) ([][]byte, error) {
	out := make([][]byte, len(ids))
	for base := 0; base < len(ids); base += readBatch {
		chunk := ids[base:min(base+readBatch, len(ids))]
		rows, err := s.bodyRows(context.Background(), chunk, false)
		if err != nil {
			return nil, err
		}
		for i, id := range chunk {
			if r := rows[id]; r != nil {
				out[base+i] = r.structure
			}
		}
	}
	return out, nil
}
