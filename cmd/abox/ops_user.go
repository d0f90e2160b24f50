package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"abox/accounts"
	"abox/policy"
	"abox/store"
)

type userView struct {
	ID             uint64            `json:"id"` // stable: a consent statement names it
	Address        string            `json:"address"`
	State          string            `json:"state"`
	Class          string            `json:"class,omitempty"`
	Phone          string            `json:"phone,omitempty"`
	CreatedAt      time.Time         `json:"created_at"`
	LastUseAt      *time.Time        `json:"last_use_at,omitempty"`
	BlockReason    string            `json:"block_reason,omitempty"`
	BlockedAt      *time.Time        `json:"blocked_at,omitempty"`
	DeletionAt     *time.Time        `json:"deletion_at,omitempty"`
	GraceUntil     *time.Time        `json:"grace_until,omitempty"`
	DeletionReason string            `json:"deletion_reason,omitempty"`
	PurgedAt       *time.Time        `json:"purged_at,omitempty"`
	WarnedAt       *time.Time        `json:"warned_at,omitempty"`
	Exempt         bool              `json:"exempt,omitempty"`
	BannedServices []string          `json:"banned_services,omitempty"`
	AppPasswords   []appPasswordView `json:"app_passwords,omitempty"`
	Consent        *accounts.Consent `json:"consent,omitempty"`
	// ConsentStatus is "in-force" or why the consent carries no official
	// letter now (the evidence log's reason code and the detail).
	ConsentStatus string     `json:"consent_status,omitempty"`
	Usage         *usageView `json:"usage,omitempty"`
}

type usageView struct {
	StorageBytes  int64 `json:"storage_bytes"`
	StorageLimit  int64 `json:"storage_limit"` // 0 = unlimited
	Messages      int64 `json:"messages"`
	MessagesLimit int64 `json:"messages_limit"` // 0 = unlimited
	ReceivedToday int64 `json:"received_today"`
	SentToday     int64 `json:"sent_today"`
	// Overrides say whether the limits are the account's own rather
	// than its class's.
	StorageOverride  bool `json:"storage_override"`
	MessagesOverride bool `json:"messages_override"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

// view renders an account. A purged account shows its address and dates
// only: its personal data is gone (user agreement 2.12.1.2).
func (e *env) view(a *accounts.Account, withUsage bool) (userView, error) {
	v := userView{
		ID: a.ID, Address: a.Address(), State: string(a.State), CreatedAt: a.CreatedAt.UTC(),
		DeletionAt: timePtr(a.DeletionAt), GraceUntil: timePtr(a.GraceUntil),
		PurgedAt: timePtr(a.PurgedAt),
	}
	if a.State == accounts.Purged {
		return v, nil
	}
	v.Class, v.Phone, v.LastUseAt = a.Class, a.Phone, timePtr(a.LastUseAt)
	v.BlockReason, v.BlockedAt, v.DeletionReason = a.BlockReason, timePtr(a.BlockedAt), a.DeletionReason
	v.Consent, v.WarnedAt, v.Exempt = a.Consent, timePtr(a.WarnedAt), a.Exempt
	v.BannedServices = a.BannedServices
	if len(a.AppPasswords) > 0 {
		v.AppPasswords = appPasswordViews(a)
	}
	v.ConsentStatus = e.consentStatus(a.Consent)
	if !withUsage {
		return v, nil
	}
	class, err := e.store.Class(a.Class)
	if err != nil {
		return v, err
	}
	u, err := e.store.Usage(a.ID)
	if err != nil {
		return v, err
	}
	l := policy.EffectiveLimits(a, &class)
	uv := &usageView{
		StorageBytes: u.Bytes, StorageLimit: l.StorageBytes, Messages: u.Messages, MessagesLimit: l.Messages,
		StorageOverride: a.QuotaStorage != nil, MessagesOverride: a.QuotaMessages != nil,
	}
	if u.Day == store.DayNumber(e.now()) {
		uv.ReceivedToday, uv.SentToday = u.Received, u.Sent
	}
	v.Usage = uv
	return v, nil
}

type userAddArgs struct {
	Address  string `json:"address"`
	Phone    string `json:"phone"`
	Class    string `json:"class"`
	Password string `json:"password"`
}

type addressArgs struct {
	Address string `json:"address"`
}

type userLoginsArgs struct {
	Address string `json:"address"`
	Limit   int    `json:"limit,omitempty"`
}

type passwdArgs struct {
	Address  string `json:"address"`
	Password string `json:"password"`
}

type userSetArgs struct {
	Address       string  `json:"address"`
	Phone         *string `json:"phone,omitempty"`
	Class         *string `json:"class,omitempty"`
	QuotaStorage  *string `json:"quota_storage,omitempty"`  // SIZE or "default"
	QuotaMessages *string `json:"quota_messages,omitempty"` // N or "default"
	Exempt        *bool   `json:"exempt,omitempty"`
	// BanServices replaces the account's banned services: a list of
	// imap, submission, or "none".
	BanServices *string `json:"ban_services,omitempty"`
}

type blockArgs struct {
	Address string `json:"address"`
	Reason  string `json:"reason"`
}

type userListArgs struct {
	State string `json:"state"`
	After uint64 `json:"after"`
	Limit int    `json:"limit"`
}

type userPage struct {
	Users []userView `json:"users"`
	Next  uint64     `json:"next"` // pass as After; 0 when done
}

// normalizeAddress validates and lower-cases an address for lookup.
func normalizeAddress(addr string) (string, error) {
	login, domain, ok := accounts.SplitAddress(strings.TrimSpace(addr))
	if !ok {
		return "", fmt.Errorf("%q is not an address (login@domain)", addr)
	}
	return login + "@" + domain, nil
}

func init() {
	register("user.add", userAdd)
	register("user.logins", func(ctx context.Context, e *env, a userLoginsArgs) ([]store.LoginRecord, error) {
		addr, err := normalizeAddress(a.Address)
		if err != nil {
			return nil, err
		}
		acct, err := e.store.Account(addr)
		if err != nil {
			return nil, refusal(err)
		}
		if err := e.auditRead(ctx, "user.logins", addr); err != nil {
			return nil, err
		}
		out, err := e.store.Logins(acct.ID, a.Limit)
		if out == nil {
			out = []store.LoginRecord{}
		}
		return out, err
	})
	register("user.show", func(ctx context.Context, e *env, a addressArgs) (userView, error) {
		addr, err := normalizeAddress(a.Address)
		if err != nil {
			return userView{}, err
		}
		acct, err := e.store.Account(addr)
		if err != nil {
			return userView{}, refusal(err)
		}
		if err := e.auditRead(ctx, "user.show", addr); err != nil {
			return userView{}, err
		}
		return e.view(&acct, true)
	})
	register("user.list", func(ctx context.Context, e *env, a userListArgs) (userPage, error) {
		var st accounts.State
		if a.State != "" {
			var ok bool
			if st, ok = accounts.ParseState(a.State); !ok {
				return userPage{}, fmt.Errorf("unknown state %q", a.State)
			}
		}
		limit := a.Limit
		if limit <= 0 || limit > 1000 {
			limit = 1000
		}
		list, err := e.store.ListAccounts(store.AccountFilter{State: st, After: a.After, Limit: limit})
		if err != nil {
			return userPage{}, err
		}
		// A page of accounts is subscriber data read: one entry per page.
		why := fmt.Sprintf("%d accounts", len(list))
		if a.State != "" {
			why += " " + a.State
		}
		if err := e.store.AppendAudit(ctx, store.AuditEntry{Actor: e.audit("").Actor, Action: "user.list", Reason: why, Staff: e.staff}); err != nil {
			return userPage{}, err
		}
		page := userPage{Users: []userView{}}
		for i := range list {
			v, err := e.view(&list[i], true)
			if err != nil {
				return userPage{}, err
			}
			page.Users = append(page.Users, v)
		}
		if len(list) == limit {
			page.Next = list[len(list)-1].ID
		}
		return page, nil
	})
	register("user.passwd", func(ctx context.Context, e *env, a passwdArgs) (userView, error) {
		addr, err := normalizeAddress(a.Address)
		if err != nil {
			return userView{}, err
		}
		acct, err := e.store.Account(addr)
		if err != nil {
			return userView{}, refusal(err)
		}
		if err := e.cfg.rules().CheckPassword(a.Password, acct.Login, acct.Domain, acct.Phone); err != nil {
			return userView{}, err
		}
		hash, err := accounts.HashPassword(a.Password, e.cfg.hashParams())
		if err != nil {
			return userView{}, err
		}
		return e.updateUser(ctx, addr, "user.passwd", e.audit(""), func(x *accounts.Account) error {
			if x.State == accounts.Purged {
				return fmt.Errorf("account %s is purged", addr)
			}
			// A new password revokes every app password too: the
			// change is how a subscriber locks out whoever else knew
			// a credential (accounts/apppasswords.go).
			x.PasswordHash, x.AppPasswords = hash, nil
			return nil
		})
	})
	register("user.set", userSet)
	register("user.block", func(ctx context.Context, e *env, a blockArgs) (userView, error) {
		now := e.now()
		return e.updateUserAt(ctx, a.Address, "user.block", e.audit(a.Reason), func(x *accounts.Account) error {
			return x.Block(a.Reason, now)
		})
	})
	register("user.unblock", func(ctx context.Context, e *env, a addressArgs) (userView, error) {
		now := e.now()
		return e.updateUserAt(ctx, a.Address, "user.unblock", e.audit(""), func(x *accounts.Account) error {
			return x.Unblock(now)
		})
	})
	register("user.delete", func(ctx context.Context, e *env, a addressArgs) (userView, error) {
		now := e.now()
		return e.updateUserAt(ctx, a.Address, "user.delete", e.audit("deletion requested"), func(x *accounts.Account) error {
			return x.StartDeletion("deletion requested", now)
		})
	})
	register("user.restore", func(ctx context.Context, e *env, a addressArgs) (userView, error) {
		now := e.now()
		return e.updateUserAt(ctx, a.Address, "user.restore", e.audit(""), func(x *accounts.Account) error {
			return x.Restore(now)
		})
	})
}

func (e *env) updateUserAt(ctx context.Context, address, action string, a store.Audit, fn func(*accounts.Account) error) (userView, error) {
	addr, err := normalizeAddress(address)
	if err != nil {
		return userView{}, err
	}
	return e.updateUser(ctx, addr, action, a, fn)
}

func (e *env) updateUser(ctx context.Context, addr, action string, a store.Audit, fn func(*accounts.Account) error) (userView, error) {
	acct, err := e.store.UpdateAccount(ctx, addr, action, fn, a)
	if err != nil {
		return userView{}, refusal(err)
	}
	if e.endSessions != nil {
		e.endSessions(acct.ID) // only those the change ends: see imapd.EndInvalidSessions
	}
	return e.view(&acct, true)
}

func userAdd(ctx context.Context, e *env, a userAddArgs) (userView, error) {
	rules := e.cfg.rules()
	rawLogin, rawDomain, ok := strings.Cut(strings.TrimSpace(a.Address), "@")
	if !ok || strings.Contains(rawDomain, "@") {
		return userView{}, fmt.Errorf("%q is not an address (login@domain)", a.Address)
	}
	login, err := rules.NormalizeLogin(rawLogin)
	if err != nil {
		return userView{}, err
	}
	domain, err := accounts.NormalizeDomain(rawDomain)
	if err != nil {
		return userView{}, err
	}
	phone, err := rules.NormalizePhone(a.Phone)
	if err != nil {
		return userView{}, err
	}
	if err := rules.CheckPassword(a.Password, login, domain, phone); err != nil {
		return userView{}, err
	}
	hash, err := accounts.HashPassword(a.Password, e.cfg.hashParams())
	if err != nil {
		return userView{}, err
	}
	acct, err := e.store.CreateAccount(ctx, accounts.Account{
		Login: login, Domain: domain, Phone: phone, Class: a.Class, PasswordHash: hash,
	}, e.audit(""))
	if err != nil {
		return userView{}, err
	}
	return e.view(&acct, true)
}

func userSet(ctx context.Context, e *env, a userSetArgs) (userView, error) {
	addr, err := normalizeAddress(a.Address)
	if err != nil {
		return userView{}, err
	}
	var changes []string
	var phone string
	if a.Phone != nil {
		if phone, err = e.cfg.rules().NormalizePhone(*a.Phone); err != nil {
			return userView{}, err
		}
		changes = append(changes, "phone")
	}
	if a.Class != nil {
		if _, err := e.store.Class(*a.Class); err != nil {
			return userView{}, err
		}
		changes = append(changes, "class="+*a.Class)
	}
	quota := func(s *string, parse func(string) (int64, error)) (*int64, bool, error) {
		if s == nil {
			return nil, false, nil
		}
		if *s == "default" {
			return nil, true, nil
		}
		v, err := parse(*s)
		return &v, true, err
	}
	storageQ, setStorage, err := quota(a.QuotaStorage, parseSize)
	if err != nil {
		return userView{}, err
	}
	if setStorage {
		changes = append(changes, "quota-storage="+*a.QuotaStorage)
	}
	msgQ, setMsgs, err := quota(a.QuotaMessages, parseCount)
	if err != nil {
		return userView{}, err
	}
	if setMsgs {
		changes = append(changes, "quota-messages="+*a.QuotaMessages)
	}
	if a.Exempt != nil {
		changes = append(changes, fmt.Sprintf("exempt=%v", *a.Exempt))
	}
	var banned []string
	if a.BanServices != nil {
		if banned, err = parseBannedServices(*a.BanServices); err != nil {
			return userView{}, err
		}
		changes = append(changes, "ban-services="+*a.BanServices)
	}
	if len(changes) == 0 {
		return userView{}, errors.New("nothing to change: give --phone, --class, --quota-storage, --quota-messages, --exempt or --ban-services")
	}
	return e.updateUser(ctx, addr, "user.set", e.audit(strings.Join(changes, ", ")), func(x *accounts.Account) error {
		if x.State == accounts.Purged {
			return fmt.Errorf("account %s is purged", addr)
		}
		if a.Phone != nil {
			x.Phone = phone
		}
		if a.Class != nil {
			x.Class = *a.Class
		}
		if setStorage {
			x.QuotaStorage = storageQ
		}
		if setMsgs {
			x.QuotaMessages = msgQ
		}
		if a.Exempt != nil {
			x.Exempt = *a.Exempt
		}
		if a.BanServices != nil {
			x.BannedServices = banned
		}
		return nil
	})
}

// parseBannedServices reads --ban-services: imap and submission,
// comma-separated, or "none" (no ban).
func parseBannedServices(v string) ([]string, error) {
	if strings.EqualFold(strings.TrimSpace(v), "none") {
		return nil, nil
	}
	var out []string
	for _, sv := range strings.Split(v, ",") {
		switch sv = strings.ToLower(strings.TrimSpace(sv)); sv {
		case accounts.ServiceIMAP, accounts.ServiceSubmission:
			if !slices.Contains(out, sv) {
				out = append(out, sv)
			}
		default:
			return nil, usageError{fmt.Errorf("--ban-services %q: use imap, submission (comma-separated) or none", sv)}
		}
	}
	return out, nil
}

// parseCount reads a non-negative whole number (0 = unlimited).
func parseCount(s string) (int64, error) {
	var v int64
	if _, err := fmt.Sscanf(s, "%d", &v); err != nil || v < 0 || fmt.Sprint(v) != s {
		return 0, fmt.Errorf("invalid number %q: use a whole number, 0 for unlimited", s)
	}
	return v, nil
}
