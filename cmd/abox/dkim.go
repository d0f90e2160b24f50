package main

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"abox/accounts"
	"abox/store"
)

// DKIM keys of the hosted domains (issue 17, RFC 6376): `abox domain
// dkim DOMAIN` makes the domain's first key, `--rotate` a new one (the
// newest signs; the older ones stay published until removed, so mail
// signed before the rotation still verifies), and both print the TXT
// records to publish; `domain dns` lists them too. RSA 2048: every
// receiver verifies it (Ed25519, RFC 8463, is not yet verified by all).

type dkimArgs struct {
	Domain string `json:"domain"`
	Rotate bool   `json:"rotate,omitempty"`
}

type dkimView struct {
	Domain   string    `json:"domain"`
	Selector string    `json:"selector"`
	Name     string    `json:"name"`   // the TXT record's owner
	Record   string    `json:"record"` // its value
	Signs    bool      `json:"signs"`  // the newest key: outgoing mail is signed with it
	Created  time.Time `json:"created_at"`
}

func init() {
	register("domain.dkim", func(ctx context.Context, e *env, a dkimArgs) ([]dkimView, error) {
		name, err := accounts.NormalizeDomain(a.Domain)
		if err != nil {
			return nil, err
		}
		keys, err := e.store.DKIMKeys(name)
		if err != nil {
			return nil, err
		}
		if len(keys) == 0 || a.Rotate {
			k, err := newDKIMKey(name, e.now(), keys)
			if err != nil {
				return nil, err
			}
			if err := e.store.AddDKIMKey(ctx, k, e.audit("")); err != nil {
				return nil, refusal(err)
			}
			if keys, err = e.store.DKIMKeys(name); err != nil {
				return nil, err
			}
		}
		return dkimViews(keys)
	})
}

// newDKIMKey makes an RSA-2048 key with a selector of its date ("abox"
// and the day, a letter added when that day has one already).
func newDKIMKey(domain string, now time.Time, have []store.DKIMKey) (store.DKIMKey, error) {
	sel := "abox" + now.UTC().Format("20060102")
	taken := map[string]bool{}
	for _, k := range have {
		taken[k.Selector] = true
	}
	for c := 'a'; taken[sel]; c++ {
		sel = "abox" + now.UTC().Format("20060102") + string(c)
	}
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return store.DKIMKey{}, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return store.DKIMKey{}, err
	}
	return store.DKIMKey{Domain: domain, Selector: sel, Algorithm: "rsa",
		PrivatePEM: string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))}, nil
}

// dkimRecord is a key's TXT record value (RFC 6376 §3.6.1).
func dkimRecord(k store.DKIMKey) (string, error) {
	block, _ := pem.Decode([]byte(k.PrivatePEM))
	if block == nil {
		return "", fmt.Errorf("DKIM key %s of %s: not PEM", k.Selector, k.Domain)
	}
	priv, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return "", fmt.Errorf("DKIM key %s of %s: %w", k.Selector, k.Domain, err)
	}
	rk, ok := priv.(*rsa.PrivateKey)
	if !ok {
		return "", fmt.Errorf("DKIM key %s of %s: not RSA", k.Selector, k.Domain)
	}
	pub, err := x509.MarshalPKIXPublicKey(&rk.PublicKey)
	if err != nil {
		return "", err
	}
	return "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(pub), nil
}

func dkimViews(keys []store.DKIMKey) ([]dkimView, error) {
	out := []dkimView{}
	for i, k := range keys {
		rec, err := dkimRecord(k)
		if err != nil {
			return nil, err
		}
		out = append(out, dkimView{Domain: k.Domain, Selector: k.Selector, Name: k.Selector + "._domainkey." + k.Domain,
			Record: rec, Signs: i == len(keys)-1, Created: k.CreatedAt})
	}
	return out, nil
}

// txtQuoted splits a TXT value into quoted strings of at most 255 bytes
// (RFC 1035 §3.3.14), as a zone file takes it.
func txtQuoted(v string) string {
	var parts []string
	for len(v) > 255 {
		parts = append(parts, `"`+v[:255]+`"`)
		v = v[255:]
	}
	return strings.Join(append(parts, `"`+v+`"`), " ")
}

func (a *app) domainDKIMCmd() *cobra.Command {
	var rotate bool
	c := &cobra.Command{
		Use: "dkim DOMAIN [--rotate]", Short: "the domain's DKIM keys and their DNS records (makes the first key; --rotate a new one)", Args: exactArgs("DOMAIN"),
		RunE: func(cmd *cobra.Command, args []string) error {
			var vs []dkimView
			if err := a.client().call(cmd.Context(), "domain.dkim", dkimArgs{Domain: args[0], Rotate: rotate}, &vs); err != nil {
				return err
			}
			return a.emit(vs, func(w io.Writer) {
				for _, v := range vs {
					state := "published, no longer signs (remove the record once mail signed with it is read)"
					if v.Signs {
						state = "signs outgoing mail"
					}
					fmt.Fprintf(w, "; %s, made %s: %s\n%s IN TXT %s\n", v.Selector, v.Created.Format(time.RFC3339), state, v.Name, txtQuoted(v.Record))
				}
			})
		},
	}
	c.Flags().BoolVar(&rotate, "rotate", false, "make a new key that signs from now on (the old ones stay published)")
	return c
}
