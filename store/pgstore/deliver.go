package pgstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"abox/store"
)

// A delivery is one call of abox_deliver (migrations/0003_mail.sql):
// the checks, the UID allocation under the mailbox's row lock, the
// message rows, the counters, the body row and its references and the
// feed's notifications are one statement. Without queue entries or an
// official letter, which other parts of the store write in Go, that
// statement is the whole transaction: one round trip per delivery, the
// body's PUT to the object store (when it is large) before it.

// deliverSQL calls abox_deliver; the argument order is deliverArgs'.
const deliverSQL = `SELECT idx, code, mailbox, uid_validity, uid, modseq, blob FROM abox_deliver(
	$1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23)`

// deliverArgs are abox_deliver's arguments for one body and its
// recipients.
type deliverArgs struct {
	nb                                 *newBody
	accts                              []int64
	special, names                     []string
	flags                              []byte // JSON: one array per recipient; nil when none has flags
	maxBytes, maxMessages, maxReceived []int64
	notReceived                        []bool
	versions                           []int64 // nil: none to check
	internal                           time.Time
	zone                               int16
	now                                time.Time
	day                                int32
	sender                             int64
	maxSent                            int64
	remote, extraRefs                  int
	allOrNothing                       bool
}

func newDeliverArgs(nb *newBody, rcpts []store.Recipient, internal, now time.Time) (*deliverArgs, error) {
	a := &deliverArgs{nb: nb, now: time.Unix(now.Unix(), 0).UTC(), day: store.DayNumber(now)}
	a.internal, a.zone = internalDate(internal)
	flags := make([][]string, len(rcpts))
	for i, r := range rcpts {
		a.accts = append(a.accts, int64(r.Account))
		name := ""
		if r.SpecialUse == "" {
			name = r.Mailbox
			if name == "" {
				name = "INBOX"
			}
			// An invalid name is passed as "", which abox_deliver
			// answers 'invalidmailbox' after the account's checks, as
			// the embedded store does.
			name, _ = store.CanonicalMailboxName(name)
		}
		a.special = append(a.special, r.SpecialUse)
		a.names = append(a.names, name)
		flags[i] = store.StoredFlags(r.Flags)
		a.maxBytes = append(a.maxBytes, r.MaxBytes)
		a.maxMessages = append(a.maxMessages, r.MaxMessages)
		a.maxReceived = append(a.maxReceived, r.MaxReceivedPerDay)
		a.notReceived = append(a.notReceived, r.NotReceived)
		if r.AccountVersion != 0 && a.versions == nil {
			a.versions = make([]int64, len(rcpts))
		}
		if a.versions != nil {
			a.versions[i] = int64(r.AccountVersion)
		}
	}
	if !slices.ContainsFunc(flags, func(f []string) bool { return len(f) > 0 }) {
		return a, nil // p_flags NULL: abox_deliver skips them
	}
	var err error
	a.flags, err = json.Marshal(flags)
	return a, err
}

// internalDate is t to the second with its zone in minutes east of UTC,
// as a message row keeps them.
func internalDate(t time.Time) (time.Time, int16) {
	_, off := t.Zone()
	return time.Unix(t.Unix(), 0).UTC(), int16(off / 60)
}

func (a *deliverArgs) values() []any {
	var object *string
	var body []byte
	if a.nb.object != "" {
		object = &a.nb.object
	} else {
		body = a.nb.body
		if body == nil {
			body = []byte{}
		}
	}
	var flags *string
	if a.flags != nil {
		f := string(a.flags)
		flags = &f
	}
	return []any{a.nb.sha, a.nb.size, a.nb.structure, body, object,
		a.accts, a.special, a.names, flags,
		a.maxBytes, a.maxMessages, a.maxReceived, a.notReceived,
		a.internal, a.zone, a.now, a.day,
		a.sender, a.maxSent, a.remote, a.extraRefs, a.allOrNothing, a.versions}
}

// deliverResult is what abox_deliver reports.
type deliverResult struct {
	out     []store.Delivered
	stored  int
	blob    uint64 // 0: nothing written
	trashed bool
}

// runDeliver runs abox_deliver on q (the pool: a transaction of its
// own; or a transaction) and reads its rows.
func runDeliver(ctx context.Context, q querier, a *deliverArgs, rcpts []store.Recipient) (deliverResult, error) {
	rows, err := q.Query(ctx, deliverSQL, a.values()...)
	if err != nil {
		return deliverResult{}, deliverErr(err, rcpts, a)
	}
	res, err := readDeliverRows(rows, rcpts)
	if err != nil {
		return res, deliverErr(err, rcpts, a)
	}
	return res, nil
}

// readDeliverRows reads abox_deliver's rows and closes them.
func readDeliverRows(rows pgx.Rows, rcpts []store.Recipient) (deliverResult, error) {
	defer rows.Close()
	res := deliverResult{out: make([]store.Delivered, len(rcpts))}
	for i, r := range rcpts {
		res.out[i].Account = r.Account
	}
	for rows.Next() {
		var idx int
		var code *string
		var mbox *int32
		var uv, uid, modseq, blob *int64
		if err := rows.Scan(&idx, &code, &mbox, &uv, &uid, &modseq, &blob); err != nil {
			return res, err
		}
		if idx == 0 {
			if blob != nil {
				res.blob = uint64(*blob)
			}
			res.trashed = code != nil && *code == "trashed"
			continue
		}
		if idx > len(rcpts) {
			continue
		}
		d := &res.out[idx-1]
		if code != nil {
			d.Err = recipientErr(*code, rcpts[idx-1])
			continue
		}
		d.Mailbox, d.UIDValidity, d.UID = uint32(*mbox), uint32(*uv), uint32(*uid)
		res.stored++
	}
	return res, rows.Err()
}

// deliverErr maps abox_deliver's AB001 exception to the store's error.
func deliverErr(err error, rcpts []store.Recipient, a *deliverArgs) error {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "AB001" {
		return err
	}
	i, _ := strconv.Atoi(pe.Detail)
	if pe.Message == "sentlimit" {
		return fmt.Errorf("the sender has sent its %d messages for today: %w", a.maxSent, store.ErrDailyLimit)
	}
	if i < 1 || i > len(rcpts) {
		return fmt.Errorf("account %d: %w", a.sender, store.ErrNoAccount)
	}
	r := rcpts[i-1]
	return fmt.Errorf("recipient %d: %w", r.Account, recipientErr(pe.Message, r))
}

// recipientErr is the error of one recipient's abox_deliver code.
func recipientErr(code string, r store.Recipient) error {
	name := r.Mailbox
	if r.SpecialUse != "" {
		name = r.SpecialUse
	} else if name == "" {
		name = "INBOX"
	}
	switch {
	case code == "noaccount":
		return fmt.Errorf("account %d: %w", r.Account, store.ErrNoAccount)
	case strings.HasPrefix(code, "unavailable:"):
		return fmt.Errorf("account %d is %s: %w", r.Account, strings.TrimPrefix(code, "unavailable:"), store.ErrUnavailable)
	case code == "changed":
		return fmt.Errorf("account %d: %w", r.Account, store.ErrAccountChanged)
	case code == "quota":
		return fmt.Errorf("account %d: %w", r.Account, store.ErrOverQuota)
	case code == "daily":
		return fmt.Errorf("account %d: %w", r.Account, store.ErrDailyLimit)
	case code == "invalidmailbox":
		return fmt.Errorf("%q: %w", name, store.ErrInvalidMailbox)
	case code == "nomailbox":
		return fmt.Errorf("%s: %w", name, store.ErrNoMailbox)
	case code == "full":
		return fmt.Errorf("mailbox %s has used every UID: %w", name, store.ErrMailboxFull)
	case code == "keywords":
		return store.ErrKeywordLimit
	}
	return fmt.Errorf("delivery: unknown outcome %q: %w", code, store.ErrCorrupt)
}

// deliverAlone runs one plain delivery as its own transaction (txKnown:
// again when PostgreSQL broke a deadlock by aborting it, and resolved
// when its COMMIT gets no answer).
func (s *Store) deliverAlone(ctx context.Context, a *deliverArgs, rcpts []store.Recipient) (res deliverResult, err error) {
	err = s.txKnown(ctx, func(tx pgx.Tx) error {
		var err error
		res, err = runDeliver(ctx, tx, a, rcpts)
		return err
	})
	return res, err
}

// Deliver stores d and returns when it is durable (store.Store.Deliver
// says what it promises): with AllOrNothing any recipient's error fails
// the call and writes nothing; otherwise a failed recipient writes
// nothing and its error is in its Delivered.Err.
func (s *Store) Deliver(ctx context.Context, d *store.Delivery) ([]store.Delivered, error) {
	now := s.clock()
	if d.InternalDate.IsZero() {
		d.InternalDate = now
	}
	if d.Official != nil {
		sum := sha256.Sum256(d.Body)
		d.Official.MessageSHA = hex.EncodeToString(sum[:])
		for i := range d.Recipients {
			d.Recipients[i].Flags = append(slices.Clone(d.Recipients[i].Flags), store.KeywordOfficial)
		}
	}
	nb, err := s.prepareBody(ctx, d.Body, d.Structure, d.Shareable)
	if err != nil {
		return nil, err
	}
	a, err := newDeliverArgs(nb, d.Recipients, d.InternalDate, now)
	if err != nil {
		return nil, err
	}
	a.allOrNothing = d.AllOrNothing
	for _, e := range d.Queue {
		a.remote += len(e.Recipients)
	}
	a.extraRefs = len(d.Queue)
	if d.Sender != nil {
		a.sender, a.maxSent = int64(d.Sender.Account), d.Sender.MaxSentPerDay
	}
	var res deliverResult
	if len(d.Queue) == 0 && d.Official == nil {
		// One statement, in a batch with other callers' deliveries
		// (deliver_batch.go), or alone in its own transaction; a
		// deadlock PostgreSQL broke (shared bodies) is retried as s.tx
		// does.
		if s.deliveries.flushers >= 0 {
			res, err = s.deliverBatched(ctx, a, d.Recipients)
		} else {
			res, err = s.deliverAlone(ctx, a, d.Recipients)
		}
		err = storageErr(err)
	} else {
		err = s.txKnown(ctx, func(tx pgx.Tx) error {
			var err error
			if res, err = runDeliver(ctx, tx, a, d.Recipients); err != nil {
				return err
			}
			if res.stored == 0 && a.remote == 0 {
				return nil
			}
			if len(d.Queue) > 0 {
				if err := s.enqueueTx(ctx, tx, d.Queue, res.blob, nb.size, now); err != nil {
					return err
				}
			}
			if d.Official != nil {
				return s.recordOfficialTx(ctx, tx, d.Official, res.out, res.blob, now)
			}
			return nil
		})
	}
	if err != nil {
		return nil, err
	}
	if res.trashed {
		s.emptyTrashSoon()
	}
	out := res.out
	if len(out) > 0 {
		for _, r := range out {
			if r.Err == nil {
				return out, nil
			}
		}
		return out, out[0].Err
	}
	return out, nil
}
