package imapd

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"

	"abox/policy"
	"abox/store"
)

// TestErrorReplies: every decided error gets its response code; only an
// error nobody decided is NO [SERVERBUG] (issue 13: client errors were
// answered as server faults).
func TestErrorReplies(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	refusal := &policy.Refusal{Kind: policy.ErrRateLimited, Reason: "slow down"}
	for _, tc := range []struct {
		name string
		err  error
		typ  imap.StatusResponseType
		code imap.ResponseCode
	}{
		{"over quota", fmt.Errorf("copy: %w", store.ErrOverQuota), imap.StatusResponseTypeNo, imap.ResponseCodeOverQuota},
		{"no mailbox", store.ErrNoMailbox, imap.StatusResponseTypeNo, imap.ResponseCodeNonExistent},
		{"mailbox exists", store.ErrMailboxExists, imap.StatusResponseTypeNo, imap.ResponseCodeAlreadyExists},
		{"invalid name", store.ErrInvalidMailbox, imap.StatusResponseTypeNo, imap.ResponseCodeCannot},
		{"mailbox limit", fmt.Errorf("17 levels: %w", store.ErrMailboxLimit), imap.StatusResponseTypeNo, imap.ResponseCodeLimit},
		{"rate limited", refusal, imap.StatusResponseTypeNo, imap.ResponseCodeLimit},
		{"too big", &policy.Refusal{Kind: policy.ErrTooBig}, imap.StatusResponseTypeNo, imap.ResponseCodeTooBig},
		{"account not active", store.ErrUnavailable, imap.StatusResponseTypeNo, imap.ResponseCodeUnavailable},
		{"already an IMAP answer", &imap.Error{Type: imap.StatusResponseTypeBad, Code: imap.ResponseCodeClientBug}, imap.StatusResponseTypeBad, imap.ResponseCodeClientBug},
		{"a fault nobody decided", errors.New("disk on fire"), imap.StatusResponseTypeNo, imap.ResponseCodeServerBug},
		{"a corrupt store", store.ErrCorrupt, imap.StatusResponseTypeNo, imap.ResponseCodeServerBug},
	} {
		var ie *imap.Error
		if !errors.As(noFor(tc.err, log), &ie) || ie.Type != tc.typ || ie.Code != tc.code {
			t.Errorf("%s: %v, want %s [%s]", tc.name, ie, tc.typ, tc.code)
		}
	}
	var ie *imap.Error
	storage := fmt.Errorf("status: %w", errors.Join(store.ErrStorageFailing, errors.New("dial tcp 10.0.0.5:5432: connection refused\nmore")))
	if errors.As(noFor(storage, log), &ie); ie.Code != imap.ResponseCodeUnavailable || strings.ContainsAny(ie.Text, "\r\n") || strings.Contains(ie.Text, "10.0.0.5") {
		t.Errorf("the storage failing: %v, want NO [UNAVAILABLE] without the driver's text", ie)
	}
	if errors.As(noFor(refusal, log), &ie); ie.Text != "slow down" {
		t.Errorf("a refusal's text: %q, want its reason", ie.Text)
	}
	if errors.As(tryCreate(store.ErrNoMailbox, log), &ie); ie.Code != imap.ResponseCodeTryCreate {
		t.Errorf("COPY to a missing mailbox: %v, want [TRYCREATE]", ie)
	}
}
