package main

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"math"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"abox/policy"
	"abox/store"
)

// noticeHandler serves GET /v1/notices/{message-id} to trusted senders
// (SPEC "Official letters"): HTTP Basic auth as the sender NAME with its
// password; 401 without valid credentials, 404 for a letter the caller
// did not send (or that does not exist: the two are not told apart).
func (s *server) noticeHandler(w http.ResponseWriter, r *http.Request) {
	if r.TLS == nil && !loopback(r) {
		// A sender's password never crosses a network in clear (issue 15).
		http.Error(w, "the notice API takes credentials over HTTPS only (listen-https), or over plain HTTP from this host", http.StatusForbidden)
		return
	}
	name, pass, ok := r.BasicAuth()
	ip := netip.IPv6Unspecified()
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		ip = ap.Addr().Unmap()
	}
	if !ok || name == "" || strings.Contains(name, "@") {
		// Only trusted senders use this API; a subscriber's login here
		// must not count as a use of the mailbox.
		unauthorized(w)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	id, delay, err := s.policy.Authenticate(ctx, "submission", name, pass, ip)
	if errors.Is(err, policy.ErrAuthBusy) {
		// Too many password checks running: a temporary failure.
		secs := int(math.Ceil(s.policy.AuthRetryAfter().Seconds()))
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		http.Error(w, "too many logins are being checked; try again later", http.StatusServiceUnavailable)
		return
	}
	if errors.Is(err, store.ErrStorageFailing) {
		// The sender could not be looked up: no verdict on the
		// credentials (a 401 would say they are wrong).
		storageUnavailable(w, r, s.log, "notice API", err)
		return
	}
	if err != nil || id.Sender == nil {
		if delay > 0 {
			time.Sleep(delay)
		}
		s.log.Info("notice API: authentication failed", "user", policy.LoginOf(err), "remote", ip.String())
		unauthorized(w)
		return
	}
	if strings.HasPrefix(r.URL.Path, "/v1/receipts/") {
		s.receipts(w, r, r.PathValue("id"), id.Sender.Name)
		return
	}
	n, err := s.store.Notice(r.PathValue("id"), id.Sender.Name)
	if errors.Is(err, store.ErrNotFound) {
		http.Error(w, "no such letter from this sender", http.StatusNotFound)
		return
	}
	if errors.Is(err, store.ErrStorageFailing) {
		storageUnavailable(w, r, s.log, "notice API", err)
		return
	}
	if err != nil {
		s.log.Error("notice API", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(n)
}

// storageUnavailable answers a request the store could not serve for
// now (PostgreSQL or the object store out of reach): 503 with the API's
// problem document (docs/API.md, unavailable) and a Retry-After, logged
// as a warning: an outage, not a bug.
func storageUnavailable(w http.ResponseWriter, r *http.Request, log *slog.Logger, what string, err error) {
	log.Warn(what+": storage unavailable", "err", err)
	w.Header().Set("Retry-After", "30")
	writeProblem(w, r, http.StatusServiceUnavailable, "unavailable", "the store cannot be reached now; try again later")
}

func unauthorized(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", `Basic realm="abox notices", charset="UTF-8"`)
	http.Error(w, "trusted sender credentials required", http.StatusUnauthorized)
}

// receipts serves GET /v1/receipts/{message-id}: the sender's receipts
// (docs/EVIDENCE.md) for its letter, with the same authentication and
// 404 as the notice itself.
func (s *server) receipts(w http.ResponseWriter, r *http.Request, msgID, sender string) {
	b, err := proofBundle(s.env, msgID, sender)
	if errors.Is(err, store.ErrNotFound) {
		http.Error(w, "no such letter from this sender", http.StatusNotFound)
		return
	}
	if errors.Is(err, store.ErrStorageFailing) {
		storageUnavailable(w, r, s.log, "receipts API", err)
		return
	}
	if err != nil {
		s.log.Error("receipts API", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(b)
}
