package pgstore

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"abox/store"
)

// Changes cross nodes through PostgreSQL's LISTEN/NOTIFY: a transaction
// that changes a mailbox calls notify with its changes, PostgreSQL
// delivers the notification to every listening node when (and only
// if) the transaction commits, in commit order, and each node's
// listener publishes them on its feed, its own commits included. So
// IDLE and NOTIFY sessions see the same changes in the same order on
// every node.
//
// A notification's payload is one letter saying what it carries and
// the rest:
//
//	c[JSON array of changes]  mailbox and account changes
//	d                         the directory changed (domains, classes, senders, keys)
//	s<node>:<n>               SyncFeed's marker
const feedChannel = "abox_feed"

// maxPayload stays under PostgreSQL's 8000-byte limit on a payload.
const maxPayload = 7000

type wireChange struct {
	K store.ChangeKind `json:"k"`
	A uint64           `json:"a"`
	M uint32           `json:"m,omitempty"`
	U uint32           `json:"u,omitempty"`
	F []string         `json:"f,omitempty"`
	S uint64           `json:"s,omitempty"`
}

// notify queues changes in tx; they reach every node's feed when tx
// commits.
func notify(ctx context.Context, tx pgx.Tx, changes []store.Change) error {
	var batch []wireChange
	size := 2
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		b, err := json.Marshal(batch)
		if err != nil {
			return err
		}
		batch, size = batch[:0], 2
		_, err = tx.Exec(ctx, `SELECT pg_notify($1, $2)`, feedChannel, "c"+string(b))
		return err
	}
	for _, c := range changes {
		w := wireChange{K: c.Kind, A: c.Account, M: c.Mailbox, U: c.UID, F: c.Flags, S: c.ModSeq}
		n := 48
		for _, f := range c.Flags {
			n += len(f) + 3
		}
		if size+n > maxPayload {
			if err := flush(); err != nil {
				return err
			}
		}
		batch = append(batch, w)
		size += n
	}
	return flush()
}

// notifyDirectory tells every node, at tx's commit, that the directory
// changed.
func notifyDirectory(ctx context.Context, tx pgx.Tx) error {
	_, err := tx.Exec(ctx, `SELECT pg_notify($1, 'd')`, feedChannel)
	return err
}

type listener struct {
	s      *Store
	cfg    *pgx.ConnConfig
	node   string
	cancel context.CancelFunc
	done   chan struct{}

	dirGen atomic.Uint64 // raised by each directory notification (and reconnect)

	mu      sync.Mutex
	syncSeq uint64
	waiting map[uint64]chan struct{} // SyncFeed markers not yet heard back
	conn    *pgx.Conn                // the listening connection, while up
	onAcct  []func(uint64)           // OnAccountChanged's functions
}

// accountChanged runs the OnAccountChanged functions, each in a
// goroutine of its own: the listener never waits on them.
func (l *listener) accountChanged(id uint64) {
	l.mu.Lock()
	fns := l.onAcct
	l.mu.Unlock()
	for _, fn := range fns {
		go fn(id)
	}
}

var nodeSeq atomic.Uint64

func startListener(ctx context.Context, s *Store, cfg *pgx.ConnConfig) (*listener, error) {
	l := &listener{s: s, cfg: cfg.Copy(), done: make(chan struct{}), waiting: map[uint64]chan struct{}{}}
	l.node = fmt.Sprintf("%d.%d.%d", time.Now().UnixNano(), nodeSeq.Add(1), os.Getpid())
	l.dirGen.Store(1)
	conn, err := l.connect(ctx)
	if err != nil {
		return nil, err
	}
	lctx, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	go l.run(lctx, conn)
	return l, nil
}

func (l *listener) connect(ctx context.Context) (*pgx.Conn, error) {
	conn, err := pgx.ConnectConfig(ctx, l.cfg)
	if err != nil {
		return nil, storageErr(fmt.Errorf("postgres: listening: %w", err))
	}
	if _, err := conn.Exec(ctx, "LISTEN "+feedChannel); err != nil {
		conn.Close(context.Background())
		return nil, storageErr(fmt.Errorf("postgres: listening: %w", err))
	}
	return conn, nil
}

// run publishes notifications until stopped; when the connection
// drops it connects again, and since commits made meanwhile were not
// heard, every subscription is told it lost changes.
func (l *listener) run(ctx context.Context, conn *pgx.Conn) {
	defer close(l.done)
	backoff := 50 * time.Millisecond
	for {
		l.mu.Lock()
		l.conn = conn
		l.mu.Unlock()
		for {
			n, err := conn.WaitForNotification(ctx)
			if err != nil {
				break
			}
			backoff = 50 * time.Millisecond
			l.dispatch(n.Payload)
		}
		l.mu.Lock()
		l.conn = nil
		l.mu.Unlock()
		conn.Close(context.Background())
		if ctx.Err() != nil {
			return
		}
		lostAt := time.Now()
		if lg := l.s.log; lg != nil {
			lg.Warn("store: the change feed's connection to PostgreSQL is lost; reconnecting (IDLE and NOTIFY sessions reload their state when it is back)")
		}
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			if backoff < 2*time.Second {
				backoff *= 2
			}
			c, err := l.connect(ctx)
			if err == nil {
				conn = c
				break
			}
		}
		// Whatever committed while no one listened is unknown here.
		l.dirGen.Add(1)
		l.s.feed.LoseAll()
		if lg := l.s.log; lg != nil {
			lg.Info("store: the change feed's connection to PostgreSQL is back", "after", time.Since(lostAt).Round(time.Millisecond).String())
		}
	}
}

func (l *listener) dispatch(p string) {
	if p == "" {
		return
	}
	switch p[0] {
	case 'c':
		var ws []wireChange
		if json.Unmarshal([]byte(p[1:]), &ws) != nil {
			return
		}
		cs := make([]store.Change, len(ws))
		for i, w := range ws {
			cs[i] = store.Change{Kind: w.K, Account: w.A, Mailbox: w.M, UID: w.U, Flags: w.F, ModSeq: w.S}
		}
		l.s.feed.Publish(cs)
		for _, c := range cs {
			if c.Kind == store.AccountChanged {
				l.accountChanged(c.Account)
			}
		}
	case 'd':
		l.dirGen.Add(1)
	case 's':
		node, seq, ok := strings.Cut(p[1:], ":")
		if !ok || node != l.node {
			return
		}
		n, err := strconv.ParseUint(seq, 10, 64)
		if err != nil {
			return
		}
		l.mu.Lock()
		ch := l.waiting[n]
		delete(l.waiting, n)
		l.mu.Unlock()
		if ch != nil {
			close(ch)
		}
	}
}

func (l *listener) stop() {
	l.cancel()
	<-l.done
}

// OnAccountChanged has fn called with the account's id whenever an
// account's state, class or credentials change on any node (this one
// included), so a node can end the sessions another node's block,
// deletion or password change ends. fn runs in a goroutine of its own.
// A OneShot store never calls it.
func (s *Store) OnAccountChanged(fn func(id uint64)) {
	l := s.listener
	if l == nil {
		return
	}
	l.mu.Lock()
	l.onAcct = append(l.onAcct, fn)
	l.mu.Unlock()
}

// SyncFeed returns once every change committed before it was called,
// on any node, has been published on this node's feed: it sends a
// marker through PostgreSQL and waits to hear it back (notifications
// arrive in commit order). The IMAP layer calls it behind NOOP and
// CHECK, so a client that saw a 250 from one node and asks another
// sees the message. A OneShot store's feed publishes nothing: it returns
// at once.
func (s *Store) SyncFeed(ctx context.Context) error {
	l := s.listener
	if l == nil {
		return ctx.Err()
	}
	l.mu.Lock()
	l.syncSeq++
	n := l.syncSeq
	ch := make(chan struct{})
	l.waiting[n] = ch
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		delete(l.waiting, n)
		l.mu.Unlock()
	}()
	if _, err := s.pool.Exec(ctx, `SELECT pg_notify($1, $2)`, feedChannel, "s"+l.node+":"+strconv.FormatUint(n, 10)); err != nil {
		return storageErr(err)
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Subscribe returns a subscription to one account's changes, made on
// any node (store.Store.Subscribe says how wake is called).
func (s *Store) Subscribe(account uint64, wake func()) *store.Subscription {
	return s.feed.Subscribe(account, wake)
}

// SubscribeAll returns a subscription to every account's changes.
func (s *Store) SubscribeAll(wake func()) *store.Subscription { return s.feed.SubscribeAll(wake) }

// DirectoryGeneration changes whenever any node changes the directory
// (and when this node may have missed such a change); a OneShot store's,
// which hears of no change, at every call.
func (s *Store) DirectoryGeneration() uint64 {
	if s.listener == nil {
		return s.uncachedGen.Add(1)
	}
	return s.listener.dirGen.Load()
}
