package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"abox/store"
)

// API tokens (issue 16): made, listed and revoked from the command line
// only, so a token can never make another.

type tokenAddArgs struct {
	Name string `json:"name"`
	Role string `json:"role"`
}

// tokenCreated is the answer to token.add: the secret, shown this once.
type tokenCreated struct {
	store.APIToken
	Token string `json:"token"`
}

type tokenView struct {
	Name      string    `json:"name"`
	Role      string    `json:"role"`
	CreatedAt time.Time `json:"created_at"`
	CreatedBy string    `json:"created_by,omitempty"`
}

func init() {
	register("token.add", func(ctx context.Context, e *env, a tokenAddArgs) (tokenCreated, error) {
		if !slices.Contains(apiRoles, a.Role) {
			return tokenCreated{}, fmt.Errorf("role %q: one of %s", a.Role, strings.Join(apiRoles, ", "))
		}
		if a.Name == "" || len(a.Name) > 64 || strings.ContainsAny(a.Name, " \t\r\n\x00:") {
			return tokenCreated{}, fmt.Errorf("token name %q: 1 to 64 characters, no spaces or colons", a.Name)
		}
		var raw [32]byte
		if _, err := rand.Read(raw[:]); err != nil {
			return tokenCreated{}, err
		}
		secret := "abox_" + base64.RawURLEncoding.EncodeToString(raw[:])
		tok := store.APIToken{Name: a.Name, Role: a.Role, CreatedBy: e.staff}
		if err := e.store.AddAPIToken(ctx, tok, store.TokenHash(secret), e.audit("")); err != nil {
			return tokenCreated{}, err
		}
		tok.CreatedAt = e.now().UTC().Truncate(time.Second)
		return tokenCreated{APIToken: tok, Token: secret}, nil
	})
	register("token.list", func(ctx context.Context, e *env, _ struct{}) ([]tokenView, error) {
		list, err := e.store.APITokens()
		out := []tokenView{}
		for _, t := range list {
			out = append(out, tokenView(t))
		}
		return out, err
	})
	register("token.revoke", func(ctx context.Context, e *env, a nameArgs) (nameArgs, error) {
		return a, e.store.RevokeAPIToken(ctx, a.Name, e.audit(""))
	})
}

func (a *app) tokenCmd() *cobra.Command {
	var role string
	add := &cobra.Command{
		Use:   "add NAME --role portal|operator|auditor",
		Short: "make an API token; its secret is printed once",
		Long: "Makes a token for the provisioning API (docs/API.md). portal: an account's own life (register, password, phone, consent, delete, restore, export);\n" +
			"operator: all of that and blocks, classes, quotas, listing and the audit log; auditor: reads only. The secret is printed once and stored only as a hash.",
		Args: exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if role == "" {
				return usagef("token add needs --role (portal, operator or auditor)")
			}
			var v tokenCreated
			if err := a.client().call(cmd.Context(), "token.add", tokenAddArgs{Name: args[0], Role: role}, &v); err != nil {
				return err
			}
			return a.emit(v, func(w io.Writer) {
				fmt.Fprintf(w, "token %s (%s) made; keep its secret now, it is not shown again:\n%s\n", v.Name, v.Role, v.Token)
			})
		},
	}
	add.Flags().StringVar(&role, "role", "", "portal, operator or auditor")
	list := &cobra.Command{
		Use: "list", Short: "list API tokens (never their secrets)", Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var vs []tokenView
			if err := a.client().call(cmd.Context(), "token.list", struct{}{}, &vs); err != nil {
				return err
			}
			return a.emit(vs, func(w io.Writer) {
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tROLE\tCREATED\tBY")
				for _, v := range vs {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", v.Name, v.Role, v.CreatedAt.Format(time.RFC3339), v.CreatedBy)
				}
				tw.Flush()
			})
		},
	}
	revoke := &cobra.Command{
		Use: "revoke NAME", Short: "revoke an API token at once", Args: exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			var v nameArgs
			if err := a.client().call(cmd.Context(), "token.revoke", nameArgs{Name: args[0]}, &v); err != nil {
				return err
			}
			return a.emit(v, func(w io.Writer) { fmt.Fprintf(w, "token %s revoked\n", v.Name) })
		},
	}
	return group("token", "API tokens for the portal, operator tools and auditors", add, list, revoke)
}
