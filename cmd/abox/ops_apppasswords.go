package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"abox/accounts"
)

// App passwords (issue 16): one per device's mail app, named, scoped to
// IMAP or submission, revocable alone (accounts/apppasswords.go).

type appPasswordArgs struct {
	Address string `json:"address"`
	Name    string `json:"name"`
	Scope   string `json:"scope,omitempty"`
}

type appPasswordView struct {
	Name      string    `json:"name"`
	Scope     string    `json:"scope"`
	CreatedAt time.Time `json:"created_at"`
	// Password is the secret, in the answer that made it only.
	Password string `json:"password,omitempty"`
}

func appPasswordViews(a *accounts.Account) []appPasswordView {
	out := []appPasswordView{}
	for _, p := range a.AppPasswords {
		out = append(out, appPasswordView{Name: p.Name, Scope: p.Scope, CreatedAt: p.CreatedAt})
	}
	return out
}

func init() {
	register("user.app-password.add", func(ctx context.Context, e *env, a appPasswordArgs) (appPasswordView, error) {
		p, secret, err := accounts.NewAppPassword(a.Name, a.Scope, e.now())
		if err != nil {
			return appPasswordView{}, err
		}
		// The audit log outlives the account: the scope, not the name a
		// subscriber gave the device (it may name a person).
		if _, err := e.updateUserAt(ctx, a.Address, "user.app-password.add", e.audit("scope "+p.Scope), func(x *accounts.Account) error {
			if x.State == accounts.Purged {
				return fmt.Errorf("account %s is purged", x.Address())
			}
			return x.AddAppPassword(p)
		}); err != nil {
			return appPasswordView{}, err
		}
		return appPasswordView{Name: p.Name, Scope: p.Scope, CreatedAt: p.CreatedAt, Password: secret}, nil
	})
	register("user.app-password.list", func(ctx context.Context, e *env, a addressArgs) ([]appPasswordView, error) {
		addr, err := normalizeAddress(a.Address)
		if err != nil {
			return nil, err
		}
		acct, err := e.store.Account(addr)
		if err != nil {
			return nil, refusal(err)
		}
		if err := e.auditRead(ctx, "user.app-password.list", addr); err != nil {
			return nil, err
		}
		return appPasswordViews(&acct), nil
	})
	register("user.app-password.revoke", func(ctx context.Context, e *env, a appPasswordArgs) ([]appPasswordView, error) {
		v, err := e.updateUserAt(ctx, a.Address, "user.app-password.revoke", e.audit(""), func(x *accounts.Account) error {
			return x.RevokeAppPassword(a.Name)
		})
		if err != nil {
			return nil, err
		}
		acct, err := e.store.AccountByID(v.ID)
		if err != nil {
			return nil, err
		}
		return appPasswordViews(&acct), nil
	})
}

func (a *app) appPasswordCmd() *cobra.Command {
	var scope string
	add := &cobra.Command{
		Use:   "add ADDRESS NAME [--scope imap|submission|all]",
		Short: "make a password for one device's mail app; it is printed once",
		Args:  exactArgs("ADDRESS", "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			var v appPasswordView
			if err := a.client().call(cmd.Context(), "user.app-password.add", appPasswordArgs{Address: args[0], Name: args[1], Scope: scope}, &v); err != nil {
				return err
			}
			return a.emit(v, func(w io.Writer) {
				fmt.Fprintf(w, "app password %q (%s) for %s; give it to the device now, it is not shown again:\n%s\n", v.Name, v.Scope, args[0], v.Password)
			})
		},
	}
	add.Flags().StringVar(&scope, "scope", accounts.ScopeAll, "imap, submission or all")
	list := &cobra.Command{
		Use: "list ADDRESS", Short: "the account's app passwords (never their secrets)", Args: exactArgs("ADDRESS"),
		RunE: func(cmd *cobra.Command, args []string) error {
			var vs []appPasswordView
			if err := a.client().call(cmd.Context(), "user.app-password.list", addressArgs{Address: args[0]}, &vs); err != nil {
				return err
			}
			return a.emit(vs, func(w io.Writer) { printAppPasswords(w, vs) })
		},
	}
	revoke := &cobra.Command{
		Use: "revoke ADDRESS NAME", Short: "revoke an app password; sessions that logged in with it end", Args: exactArgs("ADDRESS", "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			var vs []appPasswordView
			if err := a.client().call(cmd.Context(), "user.app-password.revoke", appPasswordArgs{Address: args[0], Name: args[1]}, &vs); err != nil {
				return err
			}
			return a.emit(vs, func(w io.Writer) {
				fmt.Fprintf(w, "app password %q of %s revoked\n", args[1], args[0])
			})
		},
	}
	return group("app-password", "passwords for one device's mail app each, scoped and revocable", add, list, revoke)
}

func printAppPasswords(w io.Writer, vs []appPasswordView) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSCOPE\tCREATED")
	for _, v := range vs {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", v.Name, v.Scope, v.CreatedAt.Format(time.RFC3339))
	}
	tw.Flush()
}
