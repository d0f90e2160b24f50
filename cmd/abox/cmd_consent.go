package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"abox/accounts"
	"abox/store"
)

// userConsentCmd is `abox user consent`: record a signed consent (the
// SPEC form --certificate FILE takes the CMS file too), withdraw it, or
// export the stored signature.
func (a *app) userConsentCmd() *cobra.Command {
	var certFile, cmsFile, contentFile, exportFile string
	var revoke, shareIIN bool
	c := &cobra.Command{
		Use:   "consent ADDRESS --cms FILE [--content FILE] [--share-iin] | --revoke | --export FILE",
		Short: "record the subscriber's signed consent to official letters (CMS, verified), withdraw or export it",
		Long: "Records the digital-signature confirmation that enables official letters: a CMS (PKCS#7) signature\n" +
			"made with the subscriber's qualified certificate over the consent statement naming the account\n" +
			"(docs/CONSENT.md). --certificate FILE is the same as --cms FILE; a bare certificate is refused.",
		Args: exactArgs("ADDRESS"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if certFile != "" && cmsFile != "" {
				return usagef("give --cms FILE or --certificate FILE, not both")
			}
			if cmsFile == "" {
				cmsFile = certFile
			}
			n := 0
			for _, set := range []bool{cmsFile != "", revoke, exportFile != ""} {
				if set {
					n++
				}
			}
			if n != 1 {
				return usagef("user consent needs exactly one of --cms FILE, --revoke or --export FILE")
			}
			if exportFile != "" {
				return a.exportConsent(cmd, args[0], exportFile)
			}
			ca := consentArgs{Address: args[0], Revoke: revoke, ShareIIN: shareIIN}
			if cmsFile != "" {
				data, err := os.ReadFile(cmsFile)
				if err != nil {
					return err
				}
				ca.CMS = data
				if contentFile != "" {
					if ca.Content, err = os.ReadFile(contentFile); err != nil {
						return err
					}
				}
			}
			done := "consent recorded"
			if revoke {
				done = "consent revoked"
			}
			return a.showUser(cmd, "user.consent", ca, done)
		},
	}
	f := c.Flags()
	f.StringVar(&cmsFile, "cms", "", "the CMS signature over the consent statement (DER, PEM or base64)")
	f.StringVar(&certFile, "certificate", "", "same as --cms (SPEC's form); a bare X.509 certificate is refused")
	f.StringVar(&contentFile, "content", "", "the signed statement, for a detached signature")
	f.BoolVar(&shareIIN, "share-iin", false, "record it even though the IIN is already bound to another active account")
	f.BoolVar(&revoke, "revoke", false, "withdraw the recorded consent")
	f.StringVar(&exportFile, "export", "", "write the stored CMS signature (DER) of the consent in force to FILE")
	return c
}

func (a *app) exportConsent(cmd *cobra.Command, address, file string) error {
	var out consentExport
	if err := a.client().call(cmd.Context(), "user.consent.export", addressArgs{Address: address}, &out); err != nil {
		return err
	}
	if err := os.WriteFile(file, out.CMS, 0o600); err != nil {
		return err
	}
	return a.emit(out, func(w io.Writer) {
		fmt.Fprintf(w, "%s: signed consent of %s (IIN %s) written to %s (%d bytes, SHA-256 %s)\n",
			out.Address, out.Consent.Subject, out.Consent.IIN, file, len(out.CMS), out.Consent.CMSSHA256)
	})
}

// printConsentDetail adds the verification facts to `user show`.
func printConsentDetail(w io.Writer, c *accounts.Consent, status string) {
	switch {
	case c.Verified:
		fmt.Fprintf(w, "consent signed:\t%s, IIN %s, chain valid to %s\n", c.SignedAt.Format("2006-01-02"), c.IIN, c.ChainNotAfter.Format("2006-01-02"))
	case c.Vouched:
		fmt.Fprintf(w, "consent signed:\tno: vouched for by the operator (no trust anchors were configured)\n")
	default:
		fmt.Fprintf(w, "consent signed:\tno: recorded from a bare certificate, never verified\n")
	}
	fmt.Fprintf(w, "consent status:\t%s\n", status)
}

type refusalsArgs struct {
	Sender string `json:"sender,omitempty"`
}

func init() {
	register("notice.refusals", func(ctx context.Context, e *env, a refusalsArgs) ([]store.EvidenceEvent, error) {
		entries, err := e.store.EvidenceFor("", a.Sender)
		out := []store.EvidenceEvent{}
		for _, en := range entries {
			if en.Event.Kind == store.EvidenceRefused {
				out = append(out, en.Event)
			}
		}
		return out, err
	})
}

// noticeRefusalsCmd is `abox notice refusals`: the evidence of official
// letters refused for lack of consent before their content was known
// (every recipient refused at RCPT, so no DATA): they have no Message-ID
// for `notice proof` to find them by.
func (a *app) noticeRefusalsCmd() *cobra.Command {
	var sender string
	c := &cobra.Command{
		Use: "refusals [--sender NAME]", Short: "refused events of official letters never delivered to anyone (no Message-ID)", Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var evs []store.EvidenceEvent
			if err := a.client().call(cmd.Context(), "notice.refusals", refusalsArgs{Sender: sender}, &evs); err != nil {
				return err
			}
			return a.emit(evs, func(w io.Writer) {
				for _, e := range evs {
					fmt.Fprintf(w, "entry %d: %s %s refused %s (%s), consent %s\n", e.Index, e.At.Format(time.RFC3339), e.Sender, e.Recipient, e.Reason, e.ConsentSHA)
				}
			})
		},
	}
	c.Flags().StringVar(&sender, "sender", "", "only this trusted sender's")
	return c
}
