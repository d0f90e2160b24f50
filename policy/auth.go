package policy

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"

	"abox/accounts"
	"abox/store"
)

// Identity is who authenticated: a subscriber or a trusted sender.
type Identity struct {
	Account *accounts.Account // set for a subscriber
	Sender  *accounts.Sender  // set for a trusted submitting system
	// AppPassword is the app password the subscriber logged in with
	// (nil: the main password); revoking it ends the session (Recheck).
	AppPassword *accounts.AppPassword
}

// Name is what the identity logged in as.
func (id *Identity) Name() string {
	if id.Sender != nil {
		return id.Sender.Name
	}
	return id.Account.Address()
}

// Owns reports whether the identity may use addr as envelope or header
// sender: a subscriber its own address, a trusted sender its --from list.
func (id *Identity) Owns(addr string) bool {
	addr = canonicalAddress(addr)
	if id.Sender != nil {
		for _, f := range id.Sender.From {
			if f == addr {
				return true
			}
		}
		return false
	}
	return addr == id.Account.Address()
}

// canonicalAddress is an address as abox keys it: lower case, its domain
// in A-label form (a Unicode domain and its xn-- form are one domain). A
// name without '@' (a trusted sender's) is only lower-cased.
func canonicalAddress(s string) string {
	s = strings.TrimSpace(s)
	if login, domain, ok := accounts.SplitAddress(s); ok {
		return login + "@" + domain
	}
	return strings.ToLower(s)
}

// dummyHash is verified against when the user does not exist, so that a
// login for an unknown name takes as long as one with a wrong password.
var dummyHash = sync.OnceValue(func() string {
	h, _ := accounts.HashPassword("abox-dummy-password-for-timing", accounts.DefaultHashParams())
	return h
})

// Authenticate checks a login for a service ("submission" or "imap").
// A name with '@' is a subscriber; without, a trusted sender (submission
// only), who must also connect from an allowed network. Failures are
// counted per IP and per account, by network (logins.go); past the limit
// the login is refused without checking the password. The returned delay
// is how long the caller should wait before answering a failure.
//
// A refusal carries the name as it may be logged (LoginOf).
func (e *Engine) Authenticate(ctx context.Context, service, username, password string, ip netip.Addr) (*Identity, time.Duration, error) {
	id, delay, err := e.authenticate(ctx, service, username, password, ip)
	var r *Refusal
	if errors.As(err, &r) && r.Login == "" {
		r.Login = e.loggableLogin(username)
	}
	return id, delay, err
}

func (e *Engine) authenticate(ctx context.Context, service, username, password string, ip netip.Addr) (*Identity, time.Duration, error) {
	now := e.clock()
	key := canonicalAddress(username)
	delay, attempt, err := e.Limits.loginAllowed(ctx, ip, key, now)
	if err != nil {
		return nil, 0, err
	}
	fail := func(reason string) (*Identity, time.Duration, error) {
		if err := e.Limits.loginFailed(ctx, attempt, ip, key, now); err != nil {
			return nil, 0, err
		}
		return nil, delay, &Refusal{Kind: ErrAuthFailed, Reason: reason}
	}
	succeeded := func() error { return e.Limits.loginSucceeded(ctx, attempt, ip, key, now) }
	// verify checks the password against phc ("" for the dummy) within
	// the hashing bounds; an error (ErrAuthBusy) is a temporary failure,
	// not a failed login.
	verify := func(phc string) (bool, error) {
		release, err := e.hashes.acquire(ctx, ip, !e.Limits.trusted(ip))
		if err != nil {
			return false, err
		}
		defer release()
		if phc == "" {
			phc = dummyHash()
		}
		ok, _ := accounts.VerifyPassword(phc, password)
		return ok, nil
	}
	if !strings.Contains(key, "@") {
		var snd accounts.Sender
		err := store.ErrNoSender // senders log in to submission only
		if service == "submission" {
			snd, err = e.store.Sender(username)
		}
		if errors.Is(err, store.ErrNoSender) {
			if _, err := verify(""); err != nil {
				return nil, 0, err
			}
			return fail("")
		}
		if err != nil {
			return nil, 0, err
		}
		if ok, err := verify(snd.PasswordHash); err != nil {
			return nil, 0, err
		} else if !ok {
			return fail("")
		}
		if !senderNetworkAllowed(&snd, ip) {
			return fail("sender " + snd.Name + " may not connect from " + ip.Unmap().String())
		}
		if err := succeeded(); err != nil {
			return nil, 0, err
		}
		return &Identity{Sender: &snd}, 0, nil
	}
	acct, err := e.store.Account(key)
	if errors.Is(err, store.ErrNoAccount) || err == nil && acct.State == accounts.Purged {
		if _, err := verify(""); err != nil {
			return nil, 0, err
		}
		return fail("")
	}
	if err != nil {
		return nil, 0, err
	}
	rec := store.LoginRecord{At: now, Service: service, Address: ip.Unmap().String()}
	// An app password is checked first: it needs no argon2 (its secret
	// is random), and a device using one never costs the hashing slots.
	app := acct.MatchAppPassword(password)
	if app != nil {
		rec.AppPassword = app.Name
	} else if ok, err := verify(acct.PasswordHash); err != nil {
		return nil, 0, err
	} else if !ok {
		rec.Outcome = "failed"
		if err := e.noteLogin(ctx, acct.ID, rec); err != nil {
			return nil, 0, err
		}
		return fail("")
	}
	if err := succeeded(); err != nil {
		return nil, 0, err
	}
	// Only a caller who knows the password learns the account's state.
	refusal := func(err error) (*Identity, time.Duration, error) {
		rec.Outcome, rec.Reason = "refused", ReasonOf(err)
		if nerr := e.noteLogin(ctx, acct.ID, rec); nerr != nil {
			return nil, 0, nerr
		}
		return nil, 0, err
	}
	if err := acct.CanLogin(); err != nil {
		return refusal(&Refusal{Kind: ErrAuthFailed, Reason: err.Error(), Cause: err})
	}
	if err := e.serviceRefusal(&acct, service); err != nil {
		return refusal(err)
	}
	if app != nil && !app.Allows(service) {
		return refusal(&Refusal{Kind: ErrAuthFailed, Cause: ErrServiceDenied, Reason: fmt.Sprintf("the app password %q is for %s only", app.Name, app.Scope)})
	}
	rec.Outcome = "ok"
	if err := e.noteLogin(ctx, acct.ID, rec); err != nil {
		return nil, 0, err
	}
	if err := e.markUsed(ctx, &acct, now); err != nil && !errors.Is(err, store.ErrNoSpace) {
		// A full disk must not keep subscribers from their mail: the
		// last use is then recorded at a later login.
		return nil, 0, err
	}
	return &Identity{Account: &acct, AppPassword: app}, 0, nil
}

// logNameKey keys the hash that stands for unknown user names in logs;
// it is new at every start, so the hash cannot be looked up in a table.
var logNameKey = sync.OnceValue(func() []byte {
	k := make([]byte, 32)
	rand.Read(k)
	return k
})

// loggableLogin is the user name of a refused login as logs may show
// it: an existing account's address or sender's name as is, anything
// else (a typo, a guess, a password typed as the name) as a keyed hash.
func (e *Engine) loggableLogin(username string) string {
	key := strings.ToLower(strings.TrimSpace(username))
	if key == "" {
		return ""
	}
	if strings.Contains(key, "@") {
		if a, err := e.store.Account(key); err == nil && a.State != accounts.Purged {
			return key
		}
	} else if _, err := e.store.Sender(key); err == nil {
		return key
	}
	m := hmac.New(sha256.New, logNameKey())
	m.Write([]byte(key))
	return "unknown:" + hex.EncodeToString(m.Sum(nil)[:4])
}

// markUsed moves the account's last use (the inactivity clock) forward,
// at most once an hour so logins cost no write most of the time.
func (e *Engine) markUsed(ctx context.Context, a *accounts.Account, now time.Time) error {
	probe := *a
	if !probe.MarkUsed(now) {
		return nil
	}
	updated, err := e.store.UpdateAccount(ctx, a.Address(), "", func(x *accounts.Account) error {
		x.MarkUsed(now)
		return nil
	}, store.Audit{})
	if err == nil {
		*a = updated
	}
	return err
}

func senderNetworkAllowed(s *accounts.Sender, ip netip.Addr) bool {
	if len(s.AllowIP) == 0 {
		return true
	}
	ip = ip.Unmap()
	for _, n := range s.AllowIP {
		if p, err := netip.ParsePrefix(n); err == nil && p.Contains(ip) {
			return true
		}
	}
	return false
}
