package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"abox/store"
)

type noticeArgs struct {
	MessageID string `json:"message_id"`
	Sender    string `json:"sender,omitempty"`
}

func init() {
	register("notice.show", func(ctx context.Context, e *env, a noticeArgs) (store.Notice, error) {
		if store.NormalizeMessageID(a.MessageID) == "" {
			return store.Notice{}, fmt.Errorf("a Message-ID is required")
		}
		return e.store.Notice(a.MessageID, a.Sender)
	})
	register("notice.verify", func(ctx context.Context, e *env, _ struct{}) (store.LedgerReport, error) {
		return e.store.VerifyLedger()
	})
}

func (a *app) noticeCmd() *cobra.Command {
	var sender string
	show := &cobra.Command{
		Use: "show MESSAGE-ID [--sender NAME]", Short: "delivery and first-read record of an official letter", Args: exactArgs("MESSAGE-ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			var n store.Notice
			if err := a.client().call(cmd.Context(), "notice.show", noticeArgs{MessageID: args[0], Sender: sender}, &n); err != nil {
				return err
			}
			return a.emit(n, func(w io.Writer) {
				fmt.Fprintf(w, "message %s from %s\n", n.MessageID, n.Sender)
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "RECIPIENT\tACCEPTED\tSTORED\tFIRST READ\tDELETED")
				for _, r := range n.Recipients {
					if r.Refused != "" {
						fmt.Fprintf(tw, "%s\trefused: %s\t\t\t\n", r.Address, r.Refused)
						continue
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Address, fmtT(r.AcceptedAt), fmtT(r.StoredAt), fmtT(r.FirstReadAt), fmtT(r.DeletedAt))
				}
				tw.Flush()
			})
		},
	}
	show.Flags().StringVar(&sender, "sender", "", "the trusted sender, when several used the same Message-ID")
	var pubFile, headsFile string
	verify := &cobra.Command{
		Use: "verify [--public-key FILE [--heads FILE]]", Short: "recompute the notice ledger's hash chain; with the operator's public key, check the evidence log against its signed tree heads", Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var r store.LedgerReport
			if err := a.client().call(cmd.Context(), "notice.verify", struct{}{}, &r); err != nil {
				return err
			}
			var ev *store.EvidenceReport
			if pubFile != "" {
				rep, err := a.verifyEvidence(cmd, pubFile, headsFile)
				if err != nil {
					return err
				}
				ev = &rep
			}
			out := struct {
				store.LedgerReport
				Evidence *store.EvidenceReport `json:"evidence,omitempty"`
			}{r, ev}
			if err := a.emit(out, func(w io.Writer) {
				if r.OK {
					fmt.Fprintf(w, "ledger ok: %d entries\n", r.Entries)
				} else {
					fmt.Fprintf(w, "ledger broken at entry %d: %s\n", r.BrokenAt, r.Problem)
				}
				if ev != nil {
					printEvidenceReport(w, ev)
				}
			}); err != nil {
				return err
			}
			if !r.OK {
				return fmt.Errorf("the notice ledger is broken at entry %d: %s", r.BrokenAt, r.Problem)
			}
			if ev != nil && !ev.OK {
				return fmt.Errorf("the evidence log does not verify: %s", ev.Problem)
			}
			return nil
		},
	}
	verify.Flags().StringVar(&pubFile, "public-key", "", "the operator's evidence public key (PEM): check every evidence entry against the signed tree heads")
	verify.Flags().StringVar(&headsFile, "heads", "", "more signed tree heads (JSON lines, e.g. a copy of DIR/"+HeadsFileName+" kept elsewhere)")
	return group("notice", "official letters: delivery and first-read records, evidence log", append([]*cobra.Command{show, verify, a.noticeRefusalsCmd()}, a.evidenceCmds()...)...)
}

func printEvidenceReport(w io.Writer, ev *store.EvidenceReport) {
	switch {
	case !ev.OK && ev.BadEntry != nil:
		fmt.Fprintf(w, "evidence broken at entry %d: %s\n", *ev.BadEntry, ev.Problem)
	case !ev.OK:
		fmt.Fprintf(w, "evidence broken: %s\n", ev.Problem)
	case ev.Heads == 0 || ev.LatestHead == nil:
		fmt.Fprintf(w, "evidence: %d entries, no signed tree head yet: nothing is proven (run `abox notice sign`)\n", ev.Entries)
	default:
		fmt.Fprintf(w, "evidence ok: %d entries, %d signed heads; the latest (%s) covers %d, %d newer entries await the next head\n",
			ev.Entries, ev.Heads, ev.LatestHead.Format(time.RFC3339), ev.SignedUpTo, ev.Entries-ev.SignedUpTo)
	}
}

func fmtT(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.Format(time.RFC3339)
}
