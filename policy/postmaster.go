package policy

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"abox/accounts"
	"abox/store"
)

// Mail for the postmaster must be accepted: postmaster@ every domain the
// server receives mail for, in any case (RFC 5321 §4.5.1), and the bare
// <Postmaster> (§4.1.1.3), although postmaster is a reserved login no
// subscriber may register. It goes to the account Config.Postmaster
// names when set; otherwise to the domain's role account
// postmaster@<domain> (for the bare form, the first hosted domain in
// alphabetical order), which abox creates on the first such message:
// exempt from the inactivity sweep and without a password, so nobody
// logs in to it until an operator sets one (`abox user passwd`); `abox
// export` reads it meanwhile.

// postmasterLogin is the local part RFC 5321 reserves.
const postmasterLogin = "postmaster"

// postmasterTarget returns the address that receives mail for address
// when address is a postmaster address of a hosted domain or the bare
// "postmaster"; ok is false for any other address.
func (e *Engine) postmasterTarget(address string, d *directory) (target string, ok bool, err error) {
	var domain string
	if strings.EqualFold(address, postmasterLogin) {
		hosted := make([]string, 0, len(d.domains))
		for dom := range d.domains {
			hosted = append(hosted, dom)
		}
		if len(hosted) == 0 {
			return "", false, nil
		}
		domain = slices.Min(hosted)
	} else {
		login, dom, split := accounts.SplitAddress(address)
		dom = strings.TrimSuffix(dom, ".")
		if !split || login != postmasterLogin || !d.domains[dom] {
			return "", false, nil
		}
		domain = dom
	}
	if e.cfg.Postmaster != "" {
		return strings.ToLower(e.cfg.Postmaster), true, nil
	}
	target = postmasterLogin + "@" + domain
	return target, true, e.ensureRoleAccount(domain)
}

// ensureRoleAccount creates the postmaster role account of domain unless
// an account (or its tombstone's successor) holds the address already.
func (e *Engine) ensureRoleAccount(domain string) error {
	_, err := e.store.Account(postmasterLogin + "@" + domain)
	if !errors.Is(err, store.ErrNoAccount) {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err = e.store.CreateAccount(ctx, accounts.Account{Login: postmasterLogin, Domain: domain, Exempt: true},
		store.Audit{Actor: store.ActorSystem, Reason: "role account for mail to the postmaster (RFC 5321 §4.5.1)"})
	if errors.Is(err, store.ErrExists) {
		return nil // created meanwhile by another session
	}
	return err
}
