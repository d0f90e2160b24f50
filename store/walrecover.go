package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"abox/accounts"
)

// Identity and checkpoint keys in the meta bucket.
var (
	keyWALSeq   = []byte("wal_seq")   // last log record in the file
	keyDBID     = []byte("db_id")     // 16 random bytes: this database (a backup copy gets its own)
	keyWALToken = []byte("wal_token") // random, new at every checkpoint: the records that continue it carry it
	keyWALDirty = []byte("wal_dirty") // 1 while a server has the file open with its log
)

func newDBID() []byte {
	id := make([]byte, walIDBytes)
	rand.Read(id)
	return id
}

func newToken() uint64 {
	for {
		var b [8]byte
		rand.Read(b[:])
		if t := binary.BigEndian.Uint64(b[:]); t != 0 {
			return t
		}
	}
}

// walMeta is what the file says about its log.
type walMeta struct {
	id    []byte
	token uint64
	seq   uint64
	dirty bool
}

func readWALMeta(tx *bolt.Tx) walMeta {
	meta := tx.Bucket(bMeta)
	m := walMeta{id: bytes.Clone(meta.Get(keyDBID))}
	if v := meta.Get(keyWALSeq); len(v) == 8 {
		m.seq = decodeU64(v)
	}
	if v := meta.Get(keyWALToken); len(v) == 8 {
		m.token = decodeU64(v)
	}
	m.dirty = len(meta.Get(keyWALDirty)) == 1 && meta.Get(keyWALDirty)[0] == 1
	return m
}

// refuseForeignFiles runs before a new database file is created: a log
// or body segments beside it belong to a database that is gone, and may
// hold acknowledged mail. They are never removed or reused silently.
func refuseForeignFiles(path string) error {
	if fi, err := os.Stat(path + WALFileSuffix); err == nil && fi.Size() > 0 {
		if f, err := os.Open(path + WALFileSuffix); err == nil {
			kind, _, _ := readWALHeader(f)
			f.Close()
			if kind != walEmpty {
				return fmt.Errorf("store: %s does not exist but its write-ahead log %s does: it belongs to the database that was there and may hold acknowledged mail; put that database back, restore a backup with `abox restore`, or move the log away to start an empty database: %w",
					path, path+WALFileSuffix, ErrForeignFiles)
			}
		}
	}
	segs, _ := (&segments{dir: path + SegmentDirSuffix}).list()
	if len(segs) > 0 {
		return fmt.Errorf("store: %s does not exist but %s holds %d body segments of the database that was there; put that database back, restore a backup with `abox restore`, or move the directory away to start an empty database: %w",
			path, path+SegmentDirSuffix, len(segs), ErrForeignFiles)
	}
	return nil
}

// recoverWAL applies what a crash left in the log (only records written
// for this database's last checkpoint), records an incident for every
// sign that acknowledged writes are lost (a damaged record with valid
// ones after it, a missing or truncated log after an unclean stop),
// moves a damaged log aside, and opens the log when Options.WAL asks
// for it. The file's next checkpoint token is new, so no record read
// here can ever be applied again.
func (s *Store) recoverWAL() (err error) {
	// bbolt panics on some damaged pages (in the commit's spill): that
	// is a corrupt file, said in one line, never a crash.
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("store: %s: %w (%v); restore it from a backup with `abox restore`", s.path, ErrCorrupt, r)
		}
	}()
	path := s.path + WALFileSuffix
	var m walMeta
	if err := s.viewNow(func(tx *bolt.Tx) error { m = readWALMeta(tx); return nil }); err != nil {
		return err
	}
	tx, err := s.db.Begin(true)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	defer tx.Rollback()
	r := walRecovery{s: s, tx: tx, m: m, last: m.seq}
	keep, err := r.read(path)
	if err != nil {
		return err
	}
	token := newToken()
	meta := tx.Bucket(bMeta)
	id := m.id
	if len(id) != walIDBytes {
		id = newDBID() // a file from before identities
		if err := meta.Put(keyDBID, id); err != nil {
			return err
		}
	}
	if meta.Get(keySegHeaderFrom) == nil {
		// A file from before segment headers: the segments it has keep
		// none; the next ones have one.
		from := uint32(0)
		if v := meta.Get(keyLastSegment); len(v) == 4 {
			from = binary.BigEndian.Uint32(v)
		}
		if segs, err := s.blobs.segs.list(); err == nil && len(segs) > 0 {
			from = max(from, segs[len(segs)-1])
		}
		if err := meta.Put(keySegHeaderFrom, binary.BigEndian.AppendUint32(nil, from+1)); err != nil {
			return err
		}
	}
	dirty := []byte{0}
	if s.opts.WAL {
		dirty[0] = 1
	}
	for _, kv := range [][2][]byte{{keyWALSeq, u64(r.last)}, {keyWALToken, u64(token)}, {keyWALDirty, dirty}} {
		if err := meta.Put(kv[0], kv[1]); err != nil {
			return err
		}
	}
	moved := ""
	if len(r.incidents) > 0 && !keep && r.w != nil {
		moved = fmt.Sprintf("%s.damaged-%s", path, s.clock().UTC().Format("20060102T150405Z"))
	}
	for _, inc := range r.incidents {
		inc.MovedTo = moved
		if err := recordIncident(tx, s.clock(), inc); err != nil {
			return err
		}
		s.log.Error("store: "+inc.Detail, "kind", inc.Kind, "accounts", inc.Accounts, "moved_to", moved)
	}
	s.buildEvidence(tx)
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: applying the write-ahead log %s: %w", path, err)
	}
	if r.applied > 0 {
		s.log.Info("store: applied the write-ahead log left by an unclean stop", "records", r.applied)
	}
	if r.w != nil {
		r.w.close()
	}
	if moved != "" {
		if err := os.Rename(path, moved); err != nil {
			return fmt.Errorf("store: moving the damaged write-ahead log aside: %w", err)
		}
	}
	s.walSeq, s.ckSeq = r.last, r.last
	if !s.opts.WAL {
		return nil
	}
	w, err := s.openLogFor(path, id, keep && moved == "")
	if err != nil {
		return err
	}
	w.rewind(token)
	s.wal = w
	return nil
}

// openLogFor reopens the log at path for writing when reuse allows and
// it is this database's, or makes a new one.
func (s *Store) openLogFor(path string, id []byte, reuse bool) (*wal, error) {
	if reuse {
		if f, err := os.OpenFile(path, os.O_RDWR, 0); err == nil {
			kind, got, _ := readWALHeader(f)
			if kind == walCurrent && bytes.Equal(got, id) {
				w := &wal{f: f}
				if err := w.prewrite(); err != nil {
					f.Close()
					return nil, err
				}
				return w, nil
			}
			f.Close()
		}
	}
	return createWAL(path, id)
}

// walRecovery is one Open's reading of the log.
type walRecovery struct {
	s         *Store
	tx        *bolt.Tx
	m         walMeta
	w         *wal
	last      uint64
	applied   int
	incidents []Incident
}

func (r *walRecovery) apply(_ uint64, payload []byte) error {
	r.applied++
	return applyOps(r.tx, payload)
}

// read applies the log at path. keep says the file may go on being used
// (nothing in it is damaged or foreign-looking).
func (r *walRecovery) read(path string) (keep bool, err error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		if r.m.dirty {
			r.incident("wal-missing", fmt.Sprintf("the write-ahead log %s is missing after an unclean stop: every delivery acknowledged after the last checkpoint (record %d) is lost", path, r.m.seq), nil)
		}
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("store: write-ahead log: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return false, fmt.Errorf("store: write-ahead log: %w", err)
	}
	r.w = &wal{f: f, size: fi.Size()}
	kind, id, err := readWALHeader(f)
	if err != nil {
		return false, fmt.Errorf("store: write-ahead log: %w", err)
	}
	switch kind {
	case walLegacy:
		// A log from before headers and tokens: applied as that version
		// did, then replaced.
		r.last, err = r.w.legacyRecords(r.m.seq, r.apply)
		return false, wrapApply(path, err)
	case walEmpty:
		if r.m.dirty {
			r.incident("wal-missing", fmt.Sprintf("the write-ahead log %s is empty after an unclean stop: every delivery acknowledged after the last checkpoint (record %d) is lost", path, r.m.seq), nil)
		}
		return false, nil
	case walCurrent:
		if len(r.m.id) == walIDBytes && !bytes.Equal(id, r.m.id) {
			return false, fmt.Errorf("store: the write-ahead log %s was written for another database (%x), not %s (%x): it may hold mail acknowledged by that database and is never applied here; move it away (or restore with `abox restore`, which does): %w",
				path, id, r.s.path, r.m.id, ErrForeignFiles)
		}
	}
	if !r.m.dirty && kind == walCurrent {
		return true, nil // a clean stop checkpointed everything
	}
	last, end, err := r.w.records(r.m.token, r.m.seq, r.apply)
	r.last = last
	if err != nil {
		return false, wrapApply(path, err)
	}
	keep = kind == walCurrent
	if kind == walBadHead && r.m.dirty {
		r.incident("wal-header", fmt.Sprintf("the write-ahead log %s has a damaged header; %d records written for this database were applied", path, r.applied), nil)
	}
	if lost, payloads := r.w.later(end, r.m.token, last); len(lost) > 0 {
		keep = false
		acctIDs, msgs := lostMail(payloads)
		r.incident("wal-damaged", fmt.Sprintf("the write-ahead log %s is damaged at offset %d: record %d cannot be read, so records %d to %d (%d of them readable, holding %d message records) were acknowledged but are not applied; the database is as of record %d",
			path, end, last+1, last+1, lost[len(lost)-1].seq, len(lost), msgs, last), r.addresses(acctIDs))
	}
	if r.w.size < walPrealloc && r.m.dirty {
		keep = false
		r.incident("wal-truncated", fmt.Sprintf("the write-ahead log %s is %d bytes, shorter than it is written (%d): it was truncated, and deliveries acknowledged after record %d may be lost", path, r.w.size, walPrealloc, last), nil)
	}
	return keep, nil
}

func wrapApply(path string, err error) error {
	if err != nil {
		return fmt.Errorf("store: applying the write-ahead log %s: %w", path, err)
	}
	return nil
}

func (r *walRecovery) incident(kind, detail string, accts []string) {
	r.incidents = append(r.incidents, Incident{Kind: kind, Detail: detail, Accounts: accts})
}

// lostMail names the accounts whose mail records appear in payloads and
// counts the message records among them.
func lostMail(payloads [][]byte) (accts []uint64, msgs int) {
	mail := byte(slices.IndexFunc(allBuckets, func(b []byte) bool { return bytes.Equal(b, bMail) }))
	for _, p := range payloads {
		_ = walkOps(p, func(kind, bucket byte, key, _ []byte) error {
			if bucket != mail || kind != opPut || len(key) != 16 {
				return nil
			}
			acct, mbox, uid := parseMsgKey(key)
			if !slices.Contains(accts, acct) {
				accts = append(accts, acct)
			}
			if mbox != 0 && uid != 0 && uid != mboxRecordUID {
				msgs++
			}
			return nil
		})
	}
	return accts, msgs
}

// addresses turns account ids into addresses (the id where the record is
// unreadable).
func (r *walRecovery) addresses(ids []uint64) []string {
	var out []string
	for _, id := range ids {
		var a accounts.Account
		if v := r.tx.Bucket(bAccounts).Get(u64(id)); v != nil && json.Unmarshal(v, &a) == nil {
			out = append(out, a.Address())
			continue
		}
		out = append(out, fmt.Sprintf("account %d", id))
	}
	return out
}

// Incident is an event that may have lost or damaged acknowledged data:
// found when the store opened (a damaged, missing or truncated log) or
// while it ran (a damaged body segment). It stays in the database and
// `abox check` reports it until an operator acknowledges it.
type Incident struct {
	Seq          uint64     `json:"seq"`
	At           time.Time  `json:"at"`
	Kind         string     `json:"kind"`
	Detail       string     `json:"detail"`
	Accounts     []string   `json:"accounts,omitempty"`
	MovedTo      string     `json:"moved_to,omitempty"`
	Acknowledged *time.Time `json:"acknowledged,omitempty"`
}

func recordIncident(tx *bolt.Tx, now time.Time, inc Incident) error {
	b := tx.Bucket(bIncidents)
	seq, err := b.NextSequence()
	if err != nil {
		return err
	}
	inc.Seq, inc.At = seq, now.UTC().Truncate(time.Millisecond)
	v, err := json.Marshal(inc)
	if err != nil {
		return err
	}
	if err := b.Put(u64(seq), v); err != nil {
		return err
	}
	t := &txn{tx: tx, now: now}
	return t.appendAudit(AuditEntry{Actor: ActorSystem, Action: "store." + inc.Kind, Reason: inc.Detail})
}

// Incidents returns every recorded incident, oldest first.
func (s *Store) Incidents() ([]Incident, error) {
	return listJSON[Incident](s, bIncidents)
}

// AcknowledgeIncidents marks every open incident as seen by an operator;
// `abox check` no longer fails on them. It returns how many it marked.
func (s *Store) AcknowledgeIncidents(ctx context.Context, a Audit) (int, error) {
	n := 0
	err := s.update(ctx, func(t *txn) error {
		n = 0
		b := t.tx.Bucket(bIncidents)
		var open []Incident
		if err := b.ForEach(func(_, v []byte) error {
			var inc Incident
			if json.Unmarshal(v, &inc) == nil && inc.Acknowledged == nil {
				open = append(open, inc)
			}
			return nil
		}); err != nil {
			return err
		}
		now := t.now.UTC().Truncate(time.Millisecond)
		for _, inc := range open {
			inc.Acknowledged = &now
			if err := putJSON(b, u64(inc.Seq), inc); err != nil {
				return err
			}
			n++
		}
		if n == 0 {
			return nil
		}
		return t.appendAudit(AuditEntry{Actor: a.Actor, Action: "store.incidents-acknowledged", Reason: fmt.Sprintf("%d incidents; %s", n, a.Reason)})
	})
	return n, err
}
