package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The outbound queue (issue 17): a message accepted for recipients on
// other domains waits here, one entry per destination domain, until the
// sender loop (package policy) has delivered or given up on every
// recipient. An entry holds a reference on its body like a message
// record does, so a broadcast to many domains keeps one copy.
//
// An entry is created in the delivery's own write request (Delivery.Queue),
// so it is in the write-ahead log before the 250. The sender loop leases
// due entries (QueueLease) and writes each attempt's outcome back
// (QueueUpdate); both are logged requests. A lease is a due time in the
// future: after a crash the entry is due again when its lease runs out,
// or at once when the next start releases the leases (QueueReleaseLeases).
//
// Buckets:
//
//	queue        id(8) -> JSON QueueEntry
//	queue_due    due unix nanos(8) id(8) -> nil, entries not held
//	queue_lease  id(8) -> nil, entries being sent
//	queue_free   blob(8) id(8) -> nil, body references of finished
//	             entries, dropped by QueueReleaseBodies in an unlogged
//	             request (dropping a body's last reference may delete
//	             segment bytes, which the log does not carry)
var (
	bQueue      = []byte("queue")
	bQueueDue   = []byte("queue_due")
	bQueueLease = []byte("queue_lease")
	bQueueFree  = []byte("queue_free")
	// metaQueueSize counts the entries in bQueue.
	metaQueueSize = []byte("queue_size")
)

// Recipient states in a queue entry.
const (
	QueuePending   = ""
	QueueDelivered = "delivered"
	QueueFailed    = "failed"
)

// QueueEntry is one message waiting for delivery to one domain.
type QueueEntry struct {
	ID     uint64 `json:"id"`
	Blob   uint64 `json:"blob"`
	Size   int64  `json:"size"`
	Domain string `json:"domain"`
	// From is the reverse-path ("" the null one: a delivery status
	// notification, never answered by another).
	From       string           `json:"from"`
	Recipients []QueueRecipient `json:"recipients"`
	MessageID  string           `json:"message_id,omitempty"`
	// Account is the submitting subscriber (0: a trusted sender, or
	// the server itself); Sender names a trusted sender.
	Account uint64 `json:"account,omitempty"`
	Sender  string `json:"sender,omitempty"`
	// Submission parameters (RFC 3461 RET/ENVID, RFC 8689, RFC 6531).
	Ret        string `json:"ret,omitempty"`
	EnvID      string `json:"envid,omitempty"`
	RequireTLS bool   `json:"requiretls,omitempty"`
	SMTPUTF8   bool   `json:"smtputf8,omitempty"`
	EightBit   bool   `json:"eightbit,omitempty"`
	// Official marks an official letter a subscriber sends.
	Official bool `json:"official,omitempty"`

	CreatedAt   time.Time `json:"created_at"`
	NextAttempt time.Time `json:"next_attempt"`
	Attempts    int       `json:"attempts"`
	LastAttempt time.Time `json:"last_attempt,omitzero"`
	LastError   string    `json:"last_error,omitempty"`
	// DelayWarned says the delay notification was sent.
	DelayWarned bool `json:"delay_warned,omitempty"`
	// Held entries are not sent until released (HeldReason says why).
	Held       bool   `json:"held,omitempty"`
	HeldReason string `json:"held_reason,omitempty"`
	// Leased says the sender loop is sending it (NextAttempt is then the
	// lease's end).
	Leased bool `json:"leased,omitempty"`
}

// QueueRecipient is one recipient of an entry and its state.
type QueueRecipient struct {
	Address string   `json:"address"`
	Notify  []string `json:"notify,omitempty"` // RFC 3461 NOTIFY (upper case)
	ORcpt   string   `json:"orcpt,omitempty"`  // RFC 3461 ORCPT, "rfc822;addr"
	Status  string   `json:"status,omitempty"` // QueuePending, QueueDelivered, QueueFailed
	// Reply is the last answer for this recipient (the remote server's
	// or our own reason), "code enhanced text".
	Reply string    `json:"reply,omitempty"`
	At    time.Time `json:"at,omitzero"`
}

// Pending counts the recipients not yet delivered or failed.
func (e *QueueEntry) Pending() int {
	n := 0
	for _, r := range e.Recipients {
		if r.Status == QueuePending {
			n++
		}
	}
	return n
}

// dueKey is the entry's key in the due index when it is due at at: the
// time, the id, and the domain, so that a lease can pass over a busy
// domain's entries without reading them.
func (e *QueueEntry) dueKey(at time.Time) []byte {
	k := make([]byte, 16, 16+len(e.Domain))
	binary.BigEndian.PutUint64(k, uint64(max(at.UnixNano(), 0)))
	binary.BigEndian.PutUint64(k[8:], e.ID)
	return append(k, e.Domain...)
}

// dueLimit sorts after every due key of an entry due at or before at.
func dueLimit(at time.Time) []byte {
	k := make([]byte, 16)
	binary.BigEndian.PutUint64(k, uint64(max(at.UnixNano(), 0)))
	binary.BigEndian.PutUint64(k[8:], ^uint64(0))
	return k
}

func (t *txn) getQueueEntry(id uint64) (*QueueEntry, error) {
	v := t.tx.Bucket(bQueue).Get(u64(id))
	if v == nil {
		return nil, fmt.Errorf("queue entry %d: %w", id, ErrNotFound)
	}
	var e QueueEntry
	if err := json.Unmarshal(v, &e); err != nil {
		return nil, fmt.Errorf("queue entry %d: %w", id, ErrCorrupt)
	}
	return &e, nil
}

func (t *txn) putQueueEntry(e *QueueEntry) error {
	raw, err := json.Marshal(e)
	if err != nil {
		return err
	}
	return t.put(bQueue, u64(e.ID), raw, appendFill)
}

// addQueueSize moves the entry count by n.
func (t *txn) addQueueSize(n int64) error {
	var size int64
	if v := t.tx.Bucket(bMeta).Get(metaQueueSize); len(v) == 8 {
		size = int64(decodeU64(v))
	}
	return t.put(bMeta, metaQueueSize, u64(uint64(max(size+n, 0))), 0)
}

// enqueue writes new entries for a delivery whose body is blob (the
// caller counts their body references).
func (t *txn) enqueue(entries []*QueueEntry, blob uint64, size int64) error {
	for _, e := range entries {
		id, err := t.nextSequence(bQueue)
		if err != nil {
			return err
		}
		e.ID, e.Blob, e.Size = id, blob, size
		e.CreatedAt = t.now.UTC()
		if e.NextAttempt.IsZero() {
			e.NextAttempt = e.CreatedAt
		}
		if err := t.putQueueEntry(e); err != nil {
			return err
		}
		if !e.Held {
			if err := t.put(bQueueDue, e.dueKey(e.NextAttempt), nil, 0); err != nil {
				return err
			}
		}
	}
	return t.addQueueSize(int64(len(entries)))
}

// finishQueueEntry removes an entry whose recipients are all done; its
// body reference goes to queue_free.
func (t *txn) finishQueueEntry(e *QueueEntry) error {
	if err := t.del(bQueue, u64(e.ID)); err != nil {
		return err
	}
	if !e.Held {
		if err := t.del(bQueueDue, e.dueKey(e.NextAttempt)); err != nil {
			return err
		}
	}
	if e.Leased {
		if err := t.del(bQueueLease, u64(e.ID)); err != nil {
			return err
		}
	}
	free := make([]byte, 16)
	binary.BigEndian.PutUint64(free, e.Blob)
	binary.BigEndian.PutUint64(free[8:], e.ID)
	if err := t.put(bQueueFree, free, nil, 0); err != nil {
		return err
	}
	return t.addQueueSize(-1)
}

// QueueLease takes up to max entries that are due at the store's clock
// and not held, marks them leased until lease from now, and returns
// them oldest due first. Their bodies are read with QueueBody.
//
// skip, when set, is asked about each due entry's domain with the
// number of that domain's entries this call has taken so far; an entry
// it skips stays due. The sender loop skips domains already at their
// concurrency, so one slow destination does not fill every slot. The
// domain is in the due key, so passing an entry over costs no read;
// after 64 entries passed over in a row the call stops (a long run of
// one busy domain's entries is not scanned for every freed slot).
func (s *Store) QueueLease(ctx context.Context, max int, lease time.Duration, skip func(domain string, taken int) bool) ([]QueueEntry, error) {
	var out []QueueEntry
	err := s.updateLogged(ctx, func(t *txn) error {
		out = out[:0]
		now := t.now
		until := now.Add(lease).UTC()
		limit := dueLimit(now)
		c := t.tx.Bucket(bQueueDue).Cursor()
		var keys [][]byte
		taken := map[string]int{}
		passed := 0
		for k, _ := c.First(); k != nil && len(keys) < max && passed < 64 && bytes.Compare(k, limit) <= 0; k, _ = c.Next() {
			domain := string(k[16:])
			if skip != nil && skip(domain, taken[domain]) {
				passed++
				continue
			}
			passed = 0
			taken[domain]++
			keys = append(keys, bytes.Clone(k))
		}
		for _, k := range keys {
			e, err := t.getQueueEntry(binary.BigEndian.Uint64(k[8:16]))
			if err != nil {
				return err
			}
			if err := t.del(bQueueDue, k); err != nil {
				return err
			}
			e.Leased, e.NextAttempt = true, until
			if err := t.putQueueEntry(e); err != nil {
				return err
			}
			if err := t.put(bQueueDue, e.dueKey(until), nil, 0); err != nil {
				return err
			}
			if err := t.put(bQueueLease, u64(e.ID), nil, 0); err != nil {
				return err
			}
			out = append(out, *e)
		}
		return nil
	})
	return out, err
}

// QueueUpdate writes back the outcome of an attempt on a leased entry:
// its recipients' states, the attempt counters, the next attempt and
// the delay notification mark. An entry with no pending recipient left
// is removed. An entry the operator dropped meanwhile stays dropped;
// one held meanwhile stays held.
func (s *Store) QueueUpdate(ctx context.Context, upd *QueueEntry) error {
	return s.updateLogged(ctx, func(t *txn) error {
		e, err := t.getQueueEntry(upd.ID)
		if err != nil {
			return nil // dropped while it was being sent
		}
		e.Recipients, e.Attempts, e.LastAttempt, e.LastError = upd.Recipients, upd.Attempts, upd.LastAttempt, upd.LastError
		e.DelayWarned = e.DelayWarned || upd.DelayWarned
		if e.Pending() == 0 {
			return t.finishQueueEntry(e)
		}
		if e.Leased {
			if err := t.del(bQueueLease, u64(e.ID)); err != nil {
				return err
			}
		}
		if !e.Held {
			if err := t.del(bQueueDue, e.dueKey(e.NextAttempt)); err != nil {
				return err
			}
		}
		e.Leased, e.NextAttempt = false, upd.NextAttempt.UTC()
		if !e.Held {
			if err := t.put(bQueueDue, e.dueKey(e.NextAttempt), nil, 0); err != nil {
				return err
			}
		}
		return t.putQueueEntry(e)
	})
}

// QueueDueBefore reports whether an entry not held is due at t, as far
// as the last checkpoint knows (an advisory read: entries written since
// are new mail, whose sender is woken anyway, or due later).
func (s *Store) QueueDueBefore(t time.Time) bool {
	due := false
	_ = s.viewNow(func(tx *bolt.Tx) error {
		k, _ := tx.Bucket(bQueueDue).Cursor().First()
		due = k != nil && bytes.Compare(k, dueLimit(t)) <= 0
		return nil
	})
	return due
}

// QueueReleaseLeases makes every leased entry due now: at start, no
// attempt of an earlier process is still running. It returns how many.
func (s *Store) QueueReleaseLeases(ctx context.Context) (int, error) {
	n := 0
	err := s.updateLogged(ctx, func(t *txn) error {
		n = 0
		var ids []uint64
		_ = t.tx.Bucket(bQueueLease).ForEach(func(k, _ []byte) error {
			ids = append(ids, decodeU64(k))
			return nil
		})
		for _, id := range ids {
			if err := t.del(bQueueLease, u64(id)); err != nil {
				return err
			}
			e, err := t.getQueueEntry(id)
			if err != nil {
				continue
			}
			if !e.Held {
				if err := t.del(bQueueDue, e.dueKey(e.NextAttempt)); err != nil {
					return err
				}
				if err := t.put(bQueueDue, e.dueKey(t.now), nil, 0); err != nil {
					return err
				}
			}
			e.Leased, e.NextAttempt = false, t.now.UTC()
			if err := t.putQueueEntry(e); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	return n, err
}

// QueueReleaseBodies drops the body references of up to max finished
// entries and returns how many it dropped.
func (s *Store) QueueReleaseBodies(ctx context.Context, max int) (int, error) {
	// An unlogged request costs a checkpoint: none when there is nothing
	// to release (the committed file may lag the log; the next call sees
	// what this one missed).
	empty := true
	if err := s.viewNow(func(tx *bolt.Tx) error {
		k, _ := tx.Bucket(bQueueFree).Cursor().First()
		empty = k == nil
		return nil
	}); err != nil || empty {
		return 0, err
	}
	n := 0
	err := s.update(ctx, func(t *txn) error {
		n = 0
		b := t.tx.Bucket(bQueueFree)
		c := b.Cursor()
		var keys [][]byte
		for k, _ := c.First(); k != nil && len(keys) < max; k, _ = c.Next() {
			keys = append(keys, bytes.Clone(k))
		}
		for _, k := range keys {
			if err := t.dropBodyRef(decodeU64(k)); err != nil {
				return err
			}
			if err := b.Delete(k); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	return n, err
}

// QueueBody returns the message of an entry (a copy).
func (s *Store) QueueBody(e *QueueEntry) ([]byte, error) {
	var out []byte
	err := s.viewBlobs(e.Blob, func(tx *bolt.Tx) error {
		data, inBuf, err := s.blobs.read(tx, e.Blob, nil)
		if err != nil {
			return err
		}
		if !inBuf {
			data = bytes.Clone(data)
		}
		out = data
		return nil
	})
	return out, err
}

// QueueGet returns one entry.
func (s *Store) QueueGet(id uint64) (QueueEntry, error) {
	var e QueueEntry
	err := s.view(func(tx *bolt.Tx) error {
		t := &txn{tx: tx, s: s}
		got, err := t.getQueueEntry(id)
		if err == nil {
			e = *got
		}
		return err
	})
	return e, err
}

// QueueFilter selects entries for QueueList.
type QueueFilter struct {
	After  uint64 // entries with a larger id (paging)
	Limit  int    // at most this many (0: 100)
	Held   bool   // held ones only
	Domain string // to this domain only
}

// QueueList returns entries in id (arrival) order.
func (s *Store) QueueList(f QueueFilter) ([]QueueEntry, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	var out []QueueEntry
	err := s.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bQueue).Cursor()
		for k, v := c.Seek(u64(f.After + 1)); k != nil && len(out) < f.Limit; k, v = c.Next() {
			var e QueueEntry
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("queue entry %d: %w", decodeU64(k), ErrCorrupt)
			}
			if f.Held && !e.Held || f.Domain != "" && e.Domain != f.Domain {
				continue
			}
			out = append(out, e)
		}
		return nil
	})
	return out, err
}

// QueueStats are the queue's figures for /metrics.
type QueueStats struct {
	Entries int64
	// Oldest is when the oldest entry was accepted (zero: empty).
	Oldest time.Time
}

// QueueStats reads the queue's size and its oldest entry without a scan.
func (s *Store) QueueStats() (QueueStats, error) {
	var st QueueStats
	err := s.view(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bMeta).Get(metaQueueSize); len(v) == 8 {
			st.Entries = int64(decodeU64(v))
		}
		if _, v := tx.Bucket(bQueue).Cursor().First(); v != nil {
			var e QueueEntry
			if err := json.Unmarshal(v, &e); err == nil {
				st.Oldest = e.CreatedAt
			}
		}
		return nil
	})
	return st, err
}

// QueueAction is what an operator does to an entry.
type QueueAction int

const (
	QueueHold    QueueAction = iota + 1 // stop sending it
	QueueRelease                        // undo a hold: due now
	QueueRetry                          // due now (a held entry stays held)
	QueueDrop                           // remove it without a notification
)

var queueActionNames = map[QueueAction]string{QueueHold: "queue.hold", QueueRelease: "queue.release", QueueRetry: "queue.retry", QueueDrop: "queue.drop"}

// QueueChange applies an operator's action to an entry, audited, and
// returns the entry as it was before.
func (s *Store) QueueChange(ctx context.Context, id uint64, act QueueAction, reason string, a Audit) (QueueEntry, error) {
	var before QueueEntry
	// Unlogged: rare, and audited (the audit log is written directly).
	err := s.update(ctx, func(t *txn) error {
		e, err := t.getQueueEntry(id)
		if err != nil {
			return err
		}
		before = *e
		if err := t.queueApply(e, act, reason); err != nil {
			return err
		}
		return t.queueAudit(a, act, e, reason)
	})
	return before, err
}

// QueueSelect chooses the entries of QueueChangeAll.
type QueueSelect struct {
	Account uint64 // sent by this subscriber only (0: any)
	Domain  string // to this domain only ("": any)
}

// QueueChangeAll applies an action to every entry it concerns (release:
// the held ones; hold and retry: the others; drop: all) that matches
// sel, in transactions of at most 1,000 entries (one audit entry each),
// so that delivery is never stalled behind it. It returns how many.
func (s *Store) QueueChangeAll(ctx context.Context, sel QueueSelect, act QueueAction, reason string, a Audit, account string) (int, error) {
	total := uint64(0)
	after := uint64(0)
	for {
		n, last, more := 0, uint64(0), false
		err := s.update(ctx, func(t *txn) error {
			n, last, more = 0, after, false
			c := t.tx.Bucket(bQueue).Cursor()
			var picked []*QueueEntry
			scanned := 0
			for k, v := c.Seek(u64(after + 1)); k != nil; k, v = c.Next() {
				if scanned++; scanned > 10_000 || len(picked) >= 1000 {
					more = true
					break
				}
				last = decodeU64(k)
				var e QueueEntry
				if err := json.Unmarshal(v, &e); err != nil {
					return fmt.Errorf("queue entry %d: %w", last, ErrCorrupt)
				}
				if sel.Account != 0 && e.Account != sel.Account || sel.Domain != "" && e.Domain != sel.Domain {
					continue
				}
				if act == QueueRelease && !e.Held || (act == QueueHold || act == QueueRetry) && e.Held {
					continue
				}
				picked = append(picked, &e)
			}
			for _, e := range picked {
				if err := t.queueApply(e, act, reason); err != nil {
					return err
				}
			}
			if n = len(picked); n == 0 || a.Actor == "" {
				return nil
			}
			a.Reason = fmt.Sprintf("%d queue entries, %d to %d", n, picked[0].ID, picked[n-1].ID)
			if reason != "" {
				a.Reason += ": " + reason
			}
			return t.audit(a, queueActionNames[act], account)
		})
		if err != nil {
			return int(total), err
		}
		total += uint64(n)
		if !more {
			return int(total), nil
		}
		after = last
	}
}

// queueApply changes one entry (read in this transaction) as act says.
func (t *txn) queueApply(e *QueueEntry, act QueueAction, reason string) error {
	switch act {
	case QueueHold:
		if e.Held {
			return nil
		}
		if err := t.del(bQueueDue, e.dueKey(e.NextAttempt)); err != nil {
			return err
		}
		e.Held, e.HeldReason = true, reason
	case QueueRelease, QueueRetry:
		inDue := !e.Held
		if act == QueueRelease {
			e.Held, e.HeldReason = false, ""
		}
		if inDue {
			if err := t.del(bQueueDue, e.dueKey(e.NextAttempt)); err != nil {
				return err
			}
		}
		if !e.Leased {
			e.NextAttempt = t.now.UTC()
		}
		if !e.Held {
			if err := t.put(bQueueDue, e.dueKey(e.NextAttempt), nil, 0); err != nil {
				return err
			}
		}
	case QueueDrop:
		for i := range e.Recipients {
			if e.Recipients[i].Status == QueuePending {
				e.Recipients[i].Status = QueueFailed
			}
		}
		return t.finishQueueEntry(e)
	default:
		return fmt.Errorf("store: unknown queue action %d", act)
	}
	return t.putQueueEntry(e)
}

func (t *txn) queueAudit(a Audit, act QueueAction, e *QueueEntry, reason string) error {
	if a.Actor == "" {
		return nil
	}
	a.Reason = fmt.Sprintf("queue entry %d to %s", e.ID, e.Domain)
	if reason != "" {
		a.Reason += ": " + reason
	}
	return t.audit(a, queueActionNames[act], "")
}
