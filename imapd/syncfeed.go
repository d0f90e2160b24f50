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
