package smtpd

import (
	"context"
	"errors"
	"log/slog"

	"abox/policy"
)

// reply is one SMTP reply: code, enhanced status code (RFC 3463), text.
type reply struct {
	code int
	enh  string
	text string
}

// refusals maps each policy decision to its reply, as SPEC's SMTP table
// fixes them. It is the only place these codes are written.
var refusals = []struct {
	kind error
	code int
	enh  string
}{
	{policy.ErrUnknownUser, 550, "5.1.1"},
	{policy.ErrRelayDenied, 554, "5.7.1"},
	{policy.ErrNoRelay, 550, "5.7.1"},
	{policy.ErrDisabled, 550, "5.2.1"},
	{policy.ErrOverQuota, 452, "4.2.2"},
	{policy.ErrTooBig, 552, "5.3.4"},
	{policy.ErrRateLimited, 450, "4.7.1"},
	{policy.ErrSpam, 550, "5.7.1"},
	{policy.ErrForbidden, 550, "5.7.1"},
	{policy.ErrNoConsent, 550, "5.7.1"},
	{policy.ErrSenderDenied, 553, "5.7.1"},
	{policy.ErrAuthFailed, 535, "5.7.8"},
	{policy.ErrAuthLocked, 450, "4.7.1"},
	{policy.ErrAuthBusy, 454, "4.7.0"}, // RFC 4954 §6: temporary authentication failure
	{policy.ErrTooManyConns, 421, "4.7.0"},
	{policy.ErrNoStorage, 452, "4.3.1"},
}

// storageUnavailable is the text of the reply to policy.ErrStorageFailing.
const storageUnavailable = "Storage temporarily unavailable, try again later"

// replyFor turns an error from policy into its reply. Anything policy did
// not decide (a store failure, a bug) is logged and answered with a
// temporary failure that reveals nothing.
func replyFor(err error, log *slog.Logger) reply {
	for _, r := range refusals {
		if errors.Is(err, r.kind) {
			text := policy.ReasonOf(err)
			if text == "" {
				text = r.kind.Error()
			}
			return reply{r.code, r.enh, text}
		}
	}
	if errors.Is(err, policy.ErrStorageFailing) {
		// The database or object store is out of reach for now (a
		// restart, a network fault): nothing was stored, the sender
		// tries again later. An operator's matter, not a bug.
		log.Warn("smtp: storage unavailable", "err", err)
		return reply{451, "4.3.0", storageUnavailable}
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return reply{451, "4.3.0", "Server is shutting down, try again later"}
	}
	log.Error("smtp: internal error", "err", err)
	return reply{451, "4.3.0", "Internal error, try again later"}
}

// reasonLabel names a refusal for metrics.
func reasonLabel(err error) string {
	for _, r := range refusals {
		if errors.Is(err, r.kind) {
			return r.kind.Error()
		}
	}
	if errors.Is(err, policy.ErrStorageFailing) {
		return "storage unavailable"
	}
	return "internal error"
}
