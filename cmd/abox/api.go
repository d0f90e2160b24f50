package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"abox/accounts"
	"abox/consent"
	"abox/policy"
	"abox/store"
)

// The provisioning API (issue 16; docs/API.md, the contract in
// openapi.json): HTTPS JSON for the operator's portal, its tools and its
// auditors. Every route runs one of the operations the CLI and the
// control socket run (ops.go): one code path, one set of rules, the same
// audit entries. What is added here is only what HTTP needs: bearer
// tokens with roles, RFC 9457 problem details, idempotency keys on
// creating calls, and a rate per token.

//go:embed openapi.json
var openAPISpec []byte

// API roles: least privilege for each kind of caller.
const (
	rolePortal   = "portal"   // the subscriber portal and app: an account's own life
	roleOperator = "operator" // the operator's tools: everything an account needs
	roleAuditor  = "auditor"  // reads only
)

var apiRoles = []string{rolePortal, roleOperator, roleAuditor}

// apiOnBehalfHeader, sent by a portal token, says the subscriber asked
// for the change: the audit entry's actor is then "user" and the token
// is named as the staff that carried it.
const apiOnBehalfHeader = "Abox-On-Behalf-Of"

// idempotencyTTL is how long a creating call's answer is replayed for
// its Idempotency-Key.
const idempotencyTTL = 24 * time.Hour

// apiMaxBody bounds a request body (a consent's CMS object is a few KiB).
const apiMaxBody = 1 << 20

// apiRoute is one route of the API.
type apiRoute struct {
	method, path string
	roles        []string
	// op is the operation the route runs with the arguments args makes
	// from the request; run replaces both for routes that stream.
	op      string
	args    func(r *http.Request, c *apiCaller, body []byte) (any, error)
	run     func(w http.ResponseWriter, r *http.Request, c *apiCaller, e *env)
	status  int  // on success: 200 unless said
	creates bool // takes an Idempotency-Key
}

// apiCaller is the authenticated token of a request.
type apiCaller struct {
	tok      store.APIToken
	onBehalf bool
}

func (c *apiCaller) allowed(roles []string) bool {
	for _, r := range roles {
		if r == c.tok.Role {
			return true
		}
	}
	return false
}

// api holds what the routes share: the server, the per-token rates and
// the idempotency keys being answered.
type api struct {
	s        *server
	mu       sync.Mutex
	limiters map[string]*rate.Limiter
	inFlight map[string]bool // token 0x00 key
}

func newAPI(s *server) *api {
	return &api{s: s, limiters: map[string]*rate.Limiter{}, inFlight: map[string]bool{}}
}

// register adds every route, and the OpenAPI document, to mux.
func (a *api) register(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/openapi.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(openAPISpec)
	})
	for _, rt := range apiRoutes() {
		mux.HandleFunc(rt.method+" "+rt.path, a.handler(rt))
	}
}

// problem is an RFC 9457 problem details object.
type problem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail,omitempty"`
	Instance string `json:"instance,omitempty"`
}

// writeProblem answers with a problem of the given code (docs/API.md
// lists them; the type is urn:abox:problem:CODE).
func writeProblem(w http.ResponseWriter, r *http.Request, status int, code, detail string) {
	p := problem{Type: "urn:abox:problem:" + code, Title: http.StatusText(status), Status: status, Detail: detail, Instance: r.URL.Path}
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(p)
}

// problemFor maps an operation's error to its status and code.
func problemFor(err error) (int, string) {
	switch {
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrNoAccount), errors.Is(err, store.ErrNoDomain),
		errors.Is(err, store.ErrNoClass), errors.Is(err, store.ErrNoSender), errors.Is(err, policy.ErrUnknownUser),
		errors.Is(err, accounts.ErrNoAppPassword):
		return http.StatusNotFound, "not-found"
	case errors.Is(err, store.ErrExists):
		return http.StatusConflict, "exists"
	case errors.Is(err, accounts.ErrTransition), errors.Is(err, accounts.ErrBlocked), errors.Is(err, accounts.ErrPendingDeletion),
		errors.Is(err, accounts.ErrPurged), errors.Is(err, store.ErrUnavailable):
		return http.StatusConflict, "state"
	case errors.Is(err, accounts.ErrInvalidLogin), errors.Is(err, accounts.ErrReservedLogin), errors.Is(err, accounts.ErrInvalidPhone),
		errors.Is(err, accounts.ErrPhonePrefix), errors.Is(err, accounts.ErrWeakPassword), errors.Is(err, accounts.ErrInvalidDomain),
		errors.Is(err, consent.ErrNotCMS), errors.Is(err, consent.ErrSignature), errors.Is(err, consent.ErrStatement),
		errors.Is(err, consent.ErrWrongAccount), errors.Is(err, consent.ErrChain), errors.Is(err, consent.ErrNoIIN),
		errors.Is(err, consent.ErrCertificate):
		return http.StatusUnprocessableEntity, "invalid"
	case errors.Is(err, store.ErrNoSpace), errors.Is(err, store.ErrStorageFailing), errors.Is(err, store.ErrClosed),
		errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable, "unavailable"
	case errors.Is(err, store.ErrCorrupt):
		return http.StatusInternalServerError, "internal"
	}
	// Everything else an operation refuses is about the request (the
	// CLI's exit status 1 with its one line): the line is the detail.
	return http.StatusUnprocessableEntity, "refused"
}

// handler wraps a route: transport, token, role, rate, body,
// idempotency, then the operation.
func (a *api) handler(rt apiRoute) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil && !loopback(r) {
			// Credentials never cross a network in clear (issue 15).
			writeProblem(w, r, http.StatusForbidden, "https-required", "the API takes credentials over HTTPS only (listen-https), or over plain HTTP from this host")
			return
		}
		c, ok := a.authenticate(w, r)
		if !ok {
			return
		}
		if !c.allowed(rt.roles) {
			writeProblem(w, r, http.StatusForbidden, "forbidden", fmt.Sprintf("a %s token may not do this", c.tok.Role))
			return
		}
		if c.onBehalf && c.tok.Role != rolePortal {
			writeProblem(w, r, http.StatusForbidden, "forbidden", apiOnBehalfHeader+" is for portal tokens")
			return
		}
		if lim := a.limiter(c.tok.Name); lim != nil {
			if res := lim.Reserve(); !res.OK() || res.Delay() > 0 {
				d := time.Minute
				if res.OK() {
					d = res.Delay()
					res.Cancel()
				}
				w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(d.Seconds()))))
				writeProblem(w, r, http.StatusTooManyRequests, "rate-limited", fmt.Sprintf("token %s is over its %d requests a minute", c.tok.Name, a.s.cfg.APIRequests))
				return
			}
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, apiMaxBody))
		if err != nil {
			writeProblem(w, r, http.StatusRequestEntityTooLarge, "too-large", fmt.Sprintf("request bodies are limited to %d bytes", apiMaxBody))
			return
		}
		e := *a.s.env
		e.staff = "token:" + c.tok.Name
		e.actor = e.staff
		if c.onBehalf {
			e.actor = store.ActorUser
		}
		e.progress = nil
		if rt.run != nil {
			rt.run(w, r, c, &e)
			return
		}
		key := r.Header.Get("Idempotency-Key")
		if rt.creates && key != "" {
			if !a.replayOrClaim(w, r, c, key, body) {
				return
			}
			defer a.release(c, key)
		}
		status, ctype, out := a.runRoute(r, rt, c, &e, body)
		if rt.creates && key != "" && status < 500 {
			rec := store.IdempotentResult{RequestHash: requestHash(r, body), Status: status}
			if status < 300 {
				var made struct {
					ID uint64 `json:"id"`
				}
				json.Unmarshal(out, &made)
				rec.Account = made.ID
			} else {
				rec.ContentType, rec.Body = ctype, out
			}
			if err := a.s.store.RecordIdempotent(r.Context(), c.tok.Name, key, rec); err != nil {
				a.s.log.Error("API: idempotency key not recorded", "token", c.tok.Name, "err", err)
			}
		}
		w.Header().Set("Content-Type", ctype)
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(status)
		w.Write(out)
	}
}

// runRoute runs rt's operation and renders its answer or its problem.
func (a *api) runRoute(r *http.Request, rt apiRoute, c *apiCaller, e *env, body []byte) (int, string, []byte) {
	problemOf := func(status int, code, detail string) (int, string, []byte) {
		p := problem{Type: "urn:abox:problem:" + code, Title: http.StatusText(status), Status: status, Detail: detail, Instance: r.URL.Path}
		raw, _ := json.Marshal(p)
		return status, "application/problem+json", append(raw, '\n')
	}
	args, err := rt.args(r, c, body)
	if err != nil {
		var pe *apiProblem
		if errors.As(err, &pe) {
			return problemOf(pe.status, pe.code, pe.detail)
		}
		return problemOf(http.StatusBadRequest, "bad-request", err.Error())
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Minute)
	defer cancel()
	if !selfAudited[rt.op] {
		// Every request is audited: these operations name no subscriber
		// and write no entry of their own (the CLI's do not either).
		a := e.audit(rt.method + " " + r.URL.RequestURI())
		if err := e.store.AppendAudit(ctx, store.AuditEntry{Actor: a.Actor, Action: "api." + rt.op, Reason: a.Reason, Staff: a.Staff}); err != nil {
			return problemOf(http.StatusServiceUnavailable, "unavailable", "the request could not be audited")
		}
	}
	res, err := runOp(ctx, e, rt.op, args)
	if err != nil {
		status, code := problemFor(err)
		if status == http.StatusInternalServerError {
			a.s.log.Error("API", "op", rt.op, "err", err)
		}
		return problemOf(status, code, err.Error())
	}
	raw, err := json.Marshal(res)
	if err != nil {
		return problemOf(http.StatusInternalServerError, "internal", "the answer could not be encoded")
	}
	status := rt.status
	if status == 0 {
		status = http.StatusOK
	}
	return status, "application/json", append(raw, '\n')
}

// selfAudited are the operations that write their own audit entries
// (changes, and reads of subscriber data); the API audits the others.
var selfAudited = map[string]bool{
	"user.add": true, "user.show": true, "user.list": true, "user.set": true, "user.passwd": true,
	"user.block": true, "user.unblock": true, "user.delete": true, "user.restore": true,
	"user.consent": true, "user.consent.export": true, "user.logins": true, "user.letters": true,
	"user.app-password.add": true, "user.app-password.list": true, "user.app-password.revoke": true,
}

// apiProblem is an argument error with its own status and code.
type apiProblem struct {
	status       int
	code, detail string
}

func (p *apiProblem) Error() string { return p.detail }

func forbidden(detail string) error {
	return &apiProblem{http.StatusForbidden, "forbidden", detail}
}

// authenticate finds the request's token (Authorization: Bearer).
func (a *api) authenticate(w http.ResponseWriter, r *http.Request) (*apiCaller, bool) {
	h := r.Header.Get("Authorization")
	secret, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || secret == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="abox"`)
		writeProblem(w, r, http.StatusUnauthorized, "unauthorized", "an API token is required (Authorization: Bearer TOKEN; abox token add)")
		return nil, false
	}
	tok, found, err := a.s.store.APITokenByHash(store.TokenHash(strings.TrimSpace(secret)))
	if err != nil {
		writeProblem(w, r, http.StatusServiceUnavailable, "unavailable", "the token could not be checked")
		return nil, false
	}
	if !found {
		a.s.log.Info("API: unknown token", "remote", r.RemoteAddr, "path", r.URL.Path)
		w.Header().Set("WWW-Authenticate", `Bearer realm="abox", error="invalid_token"`)
		writeProblem(w, r, http.StatusUnauthorized, "unauthorized", "the token is not known (revoked?)")
		return nil, false
	}
	c := &apiCaller{tok: tok}
	switch v := strings.ToLower(strings.TrimSpace(r.Header.Get(apiOnBehalfHeader))); v {
	case "":
	case "subscriber":
		c.onBehalf = true
	default:
		writeProblem(w, r, http.StatusBadRequest, "bad-request", apiOnBehalfHeader+" takes the value subscriber")
		return nil, false
	}
	return c, true
}

// limiter is the token's rate (nil: unlimited).
func (a *api) limiter(name string) *rate.Limiter {
	n := a.s.cfg.APIRequests
	if n <= 0 {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	l := a.limiters[name]
	if l == nil {
		l = rate.NewLimiter(rate.Limit(float64(n)/60), max(1, n/10))
		a.limiters[name] = l
	}
	return l
}

// requestHash fingerprints a creating request for its Idempotency-Key:
// method, path and the JSON body's fields but the password, so that no
// hash of a password is ever kept (the first request's password is the
// one the account got; a repeat differing only in it is the same
// request).
func requestHash(r *http.Request, body []byte) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s %s\n", r.Method, r.URL.Path)
	var fields map[string]json.RawMessage
	if json.Unmarshal(body, &fields) == nil && fields != nil {
		delete(fields, "password")
		canon, _ := json.Marshal(fields) // map keys in order
		h.Write(canon)
	} else {
		h.Write(body)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// replayOrClaim answers a creating call whose Idempotency-Key was seen
// (the same answer again, or a problem when the request differs or is
// still running) and returns false; otherwise it claims the key.
func (a *api) replayOrClaim(w http.ResponseWriter, r *http.Request, c *apiCaller, key string, body []byte) bool {
	if len(key) > 255 {
		writeProblem(w, r, http.StatusBadRequest, "bad-request", "Idempotency-Key is limited to 255 characters")
		return false
	}
	id := c.tok.Name + "\x00" + key
	a.mu.Lock()
	if a.inFlight[id] {
		a.mu.Unlock()
		writeProblem(w, r, http.StatusConflict, "idempotency-in-progress", "a request with this Idempotency-Key is still being answered")
		return false
	}
	a.inFlight[id] = true
	a.mu.Unlock()
	prev, ok, err := a.s.store.Idempotent(c.tok.Name, key, a.s.store.Now().Add(-idempotencyTTL))
	if err != nil {
		a.release(c, key)
		writeProblem(w, r, http.StatusServiceUnavailable, "unavailable", "the Idempotency-Key could not be checked")
		return false
	}
	if !ok {
		return true
	}
	a.release(c, key)
	if prev.RequestHash != requestHash(r, body) {
		writeProblem(w, r, http.StatusUnprocessableEntity, "idempotency-key-reused", "this Idempotency-Key was used for a different request")
		return false
	}
	w.Header().Set("Idempotent-Replayed", "true")
	if prev.Account == 0 {
		w.Header().Set("Content-Type", prev.ContentType)
		w.WriteHeader(prev.Status)
		w.Write(prev.Body)
		return false
	}
	acct, err := a.s.store.AccountByID(prev.Account)
	if err != nil {
		writeProblem(w, r, http.StatusConflict, "state", "the account this Idempotency-Key made is gone")
		return false
	}
	e := *a.s.env
	v, err := e.view(&acct, true)
	if err != nil {
		writeProblem(w, r, http.StatusServiceUnavailable, "unavailable", "the account could not be read")
		return false
	}
	raw, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(prev.Status)
	w.Write(append(raw, '\n'))
	return false
}

func (a *api) release(c *apiCaller, key string) {
	a.mu.Lock()
	delete(a.inFlight, c.tok.Name+"\x00"+key)
	a.mu.Unlock()
}

// loopback reports whether the request comes from this host.
func loopback(r *http.Request) bool {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	return err == nil && ap.Addr().Unmap().IsLoopback()
}

// decodeJSON reads a request body into v, refusing unknown fields (a
// misspelt field must not be ignored in silence).
func decodeJSON(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return fmt.Errorf("a JSON body is required")
	}
	d := json.NewDecoder(bytes.NewReader(body))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return fmt.Errorf("the JSON body: %v", err)
	}
	return nil
}
