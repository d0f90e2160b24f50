package main

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"abox/accounts"
	"abox/consent"
	"abox/policy"
	"abox/store"
)

// env is what an operation runs against: the open store and the settings
// of the process that opened it (the server's when the request came over
// the control socket, the CLI's when it opened the store itself).
type env struct {
	store Store
	cfg   *Config
	log   *slog.Logger
	// progress, when set, reports how a long operation is going (sent
	// as progress lines on the control socket).
	progress func(v any)
	// engine is the server's policy engine, or one made for a direct
	// command.
	engine *policy.Engine
	// evidenceKey signs evidence tree heads (serve loads it at start; a
	// direct command loads cfg.EvidenceKey when it needs it).
	evidenceKey ed25519.PrivateKey
	// staff is who among the operator's staff runs the operation
	// (staff.go), for the audit log.
	staff string
	// actor is the audit log's actor for the operation: "" for the
	// operator (the CLI), "token:NAME" for an API token, "user" when a
	// portal token acts on the subscriber's behalf.
	actor string
	// endSessions, set in the serving process, ends the open sessions
	// of an account that may no longer use them (user agreement 2.7-2.8).
	endSessions func(acctID uint64)
	// consentV verifies consent signatures and checks consents in force
	// (serve builds it at start; a direct command when it needs it).
	consentV *consent.Verifier
}

// consent returns the consent verifier, built from cfg on first use.
func (e *env) consent() (*consent.Verifier, error) {
	if e.consentV == nil {
		v, err := e.cfg.consentVerifier()
		if err != nil {
			return nil, err
		}
		e.consentV = v
	}
	return e.consentV, nil
}

func (e *env) policy() *policy.Engine {
	if e.engine == nil {
		pc := e.cfg.policyConfig()
		if v, err := e.consent(); err == nil {
			pc.Consent = v
		}
		e.engine = policy.New(e.store, pc)
	}
	return e.engine
}

func (e *env) now() time.Time { return e.store.Now() }

// opFunc runs one admin operation. Both paths (control socket and direct
// open) call exactly these functions.
type opFunc func(ctx context.Context, e *env, args json.RawMessage) (any, error)

var ops = map[string]opFunc{}

// register adds an operation whose arguments decode into A.
func register[A any, R any](name string, fn func(context.Context, *env, A) (R, error)) {
	ops[name] = func(ctx context.Context, e *env, raw json.RawMessage) (any, error) {
		var a A
		if len(raw) > 0 {
			if err := json.Unmarshal(raw, &a); err != nil {
				return nil, fmt.Errorf("%s: bad arguments: %w", name, err)
			}
		}
		return fn(ctx, e, a)
	}
}

// runOp executes an operation in this process.
func runOp(ctx context.Context, e *env, name string, args any) (any, error) {
	fn, ok := ops[name]
	if !ok {
		return nil, fmt.Errorf("unknown operation %q", name)
	}
	raw, err := json.Marshal(args)
	if err != nil {
		return nil, err
	}
	return fn(ctx, e, raw)
}

// audit is an operator action's audit record, carrying who among the
// operator's staff acted (issue 16: staff accountability).
func (e *env) audit(reason string) store.Audit {
	actor := e.actor
	if actor == "" {
		actor = store.ActorOperator
	}
	return store.Audit{Actor: actor, Reason: reason, Staff: e.staff}
}

// refusal turns store and rule errors into the one line an operator
// reads; the sentinels already carry clear text ("x@y: no such account").
func refusal(err error) error { return err }

// --- domains ---

type domainArgs struct {
	Domain string `json:"domain"`
}

type domainView struct {
	Domain    string    `json:"domain"`            // A-label (xn--) form for an internationalised name
	Unicode   string    `json:"unicode,omitempty"` // its Unicode form, when it differs
	CreatedAt time.Time `json:"created_at"`
}

func newDomainView(name string, created time.Time) domainView {
	v := domainView{Domain: name, CreatedAt: created}
	if u := accounts.UnicodeDomain(name); u != name {
		v.Unicode = u
	}
	return v
}

func init() {
	register("domain.add", func(ctx context.Context, e *env, a domainArgs) (domainView, error) {
		name, err := accounts.NormalizeDomain(a.Domain)
		if err != nil {
			return domainView{}, err
		}
		if err := e.store.AddDomain(ctx, name, e.audit("")); err != nil {
			return domainView{}, err
		}
		return newDomainView(name, e.now().UTC()), nil
	})
	register("domain.remove", func(ctx context.Context, e *env, a domainArgs) (domainView, error) {
		name, err := accounts.NormalizeDomain(a.Domain)
		if err != nil {
			return domainView{}, err
		}
		return domainView{Domain: name}, e.store.RemoveDomain(ctx, name, e.audit(""))
	})
	register("domain.list", func(ctx context.Context, e *env, _ struct{}) ([]domainView, error) {
		ds, err := e.store.Domains()
		out := []domainView{}
		for _, d := range ds {
			out = append(out, newDomainView(d.Name, d.CreatedAt))
		}
		return out, err
	})
}
