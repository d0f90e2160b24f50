package imapd

import (
	"context"
	"time"
)

// A distributed store (store/pgstore) publishes each node's commits on
// every node's feed a little after they commit. A client that got a
// 250 from one node and sends NOOP (or CHECK, or starts IDLE) to
// another expects the new message in the answer, so before those
// commands report pending changes the session asks the store to catch
// its feed up with every commit made so far. The embedded store's feed
// is published at commit and has no such method: nothing changes there.

// The same holds for a session's own writes: on the embedded store a
// COPY, MOVE, APPEND or EXPUNGE finds its own changes on the feed as it
// answers (the EXISTS of a message moved or appended into the selected
// mailbox, the EXPUNGEs, the ADDTO and REMOVEFROM of CONTEXT=UPDATE
// searches); on the distributed one they come back through PostgreSQL,
// so these commands catch the feed up before their answer too
// (ownChanges). STORE does it itself, before it tells its own changes
// from others' (messages.go).
var ownChanges = map[string]bool{"COPY": true, "MOVE": true, "APPEND": true, "EXPUNGE": true}

// feedSyncer is a store whose feed can lag commits made elsewhere.
type feedSyncer interface {
	SyncFeed(ctx context.Context) error
}

// syncFeedWait bounds the wait: past it the command answers with what
// has arrived, and the rest comes with the next one.
const syncFeedWait = time.Second

// syncFeed waits until the changes committed anywhere before it was
// called are on this node's feed (or syncFeedWait passed).
func (s *session) syncFeed() {
	fs, ok := s.srv.cfg.Store.(feedSyncer)
	if !ok || s.acct == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), syncFeedWait)
	defer cancel()
	if err := fs.SyncFeed(ctx); err != nil {
		s.log.Debug("imap: the change feed did not catch up", "err", err)
	}
}
