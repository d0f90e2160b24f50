package imapd

import (
	"errors"
	"log/slog"

	"github.com/emersion/go-imap/v2"

	"abox/policy"
	"abox/store"
)

// responseCodeExpungeIssue (RFC 5530) says some messages a command named
// were expunged by another session; go-imap does not name it.
const responseCodeExpungeIssue imap.ResponseCode = "EXPUNGEISSUE"

// codes maps store and policy errors to IMAP response codes (RFC 5530),
// as SPEC fixes them. It is the only place these codes are written.
var codes = []struct {
	kind error
	code imap.ResponseCode
}{
	{store.ErrOverQuota, imap.ResponseCodeOverQuota},
	{policy.ErrOverQuota, imap.ResponseCodeOverQuota},
	{store.ErrNoMailbox, imap.ResponseCodeNonExistent},
	{store.ErrMailboxExists, imap.ResponseCodeAlreadyExists},
	{store.ErrInvalidMailbox, imap.ResponseCodeCannot},
	{store.ErrMailboxFull, imap.ResponseCodeLimit},
	{store.ErrMailboxLimit, imap.ResponseCodeLimit},
	{store.ErrKeywordLimit, imap.ResponseCodeLimit},
	{policy.ErrTooBig, imap.ResponseCodeTooBig},
	{policy.ErrRateLimited, imap.ResponseCodeLimit},
	{policy.ErrAuthFailed, imap.ResponseCodeAuthenticationFailed},
	{policy.ErrAuthLocked, imap.ResponseCodeLimit},
	{policy.ErrAuthBusy, imap.ResponseCodeUnavailable},
	{policy.ErrTooManyConns, imap.ResponseCodeLimit},
	{store.ErrUnavailable, imap.ResponseCodeUnavailable},
	// The server's disk is full, or cannot take writes: a temporary
	// failure of a subsystem (RFC 5530 UNAVAILABLE), not the user's quota.
	{policy.ErrNoStorage, imap.ResponseCodeUnavailable},
	{store.ErrNoSpace, imap.ResponseCodeUnavailable},
	{store.ErrStorageFailing, imap.ResponseCodeUnavailable},
}

// noFor turns an error into a tagged NO with its code. Errors nobody
// decided (a store failure, a bug) are logged and answered [SERVERBUG]
// with generic text.
func noFor(err error, log *slog.Logger) error {
	if err == nil {
		return nil
	}
	var ie *imap.Error
	if errors.As(err, &ie) {
		return err
	}
	if errors.Is(err, store.ErrStorageFailing) {
		// The database or object store is out of reach for now: an
		// operator's matter, not a bug; the error's text (a server's
		// address, several lines) is not the client's.
		log.Warn("imap: storage unavailable", "err", err)
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeUnavailable, Text: "Storage temporarily unavailable, try again later"}
	}
	for _, c := range codes {
		if errors.Is(err, c.kind) {
			text := policy.ReasonOf(err)
			if text == "" {
				text = err.Error()
			}
			return &imap.Error{Type: imap.StatusResponseTypeNo, Code: c.code, Text: text}
		}
	}
	log.Error("imap: internal error", "err", err)
	return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeServerBug, Text: "Internal error, try again later"}
}

// tryCreate is the answer to COPY, MOVE or APPEND into a mailbox that
// does not exist (RFC 9051 §6.3.12).
func tryCreate(err error, log *slog.Logger) error {
	if errors.Is(err, store.ErrNoMailbox) {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeTryCreate, Text: "No such mailbox"}
	}
	return noFor(err, log)
}

func readOnlyErr() error {
	return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeCannot, Text: "Mailbox is read-only (EXAMINE)"}
}
