package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
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
		n, err := e.store.Notice(a.MessageID, a.Sender)
		if err != nil {
			return n, err
		}
		return n, e.auditLookup(ctx, "notice.show", n.MessageID)
	})
	register("notice.verify", func(ctx context.Context, e *env, _ struct{}) (noticeReport, error) {
		var r noticeReport
		var err error
		if r.LedgerReport, err = e.store.VerifyLedger(); err != nil {
			return r, err
		}
		// Without the key: the entries against the stored tree and the
		// roots of every head kept (in the database and in the heads file).
		file, err := readHeadsFile(filepath.Join(e.cfg.Data, HeadsFileName))
		if err != nil {
			return r, err
		}
		ev, err := e.store.VerifyEvidence(nil, file)
		r.Evidence = &ev
		return r, err
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
		Use: "verify [--public-key FILE [--heads FILE]]", Short: "check the evidence log against its stored tree and heads (with the operator's public key, against the signed tree heads) and the notice ledger of older letters", Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var r noticeReport
			if err := a.client().call(cmd.Context(), "notice.verify", struct{}{}, &r); err != nil {
				return err
			}
			if pubFile != "" {
				rep, err := a.verifyEvidence(cmd, pubFile, headsFile)
				if err != nil {
					return err
				}
				r.Evidence = &rep
			}
			ev := r.Evidence
			ledgerOK := r.OK
			r.OK = ledgerOK && ev != nil && ev.OK
			if err := a.emit(r, func(w io.Writer) {
				switch {
				case !ledgerOK:
					fmt.Fprintf(w, "ledger broken at entry %d: %s\n", r.BrokenAt, r.Problem)
				case r.Entries > 0:
					fmt.Fprintf(w, "ledger ok: %d entries (letters recorded before the evidence log)\n", r.Entries)
				}
				if ev != nil {
					printEvidenceReport(w, ev)
				}
			}); err != nil {
				return err
			}
			if !ledgerOK {
				return fmt.Errorf("the notice ledger is broken at entry %d: %s", r.BrokenAt, r.Problem)
			}
			if ev == nil || !ev.OK {
				problem := "no report"
				if ev != nil {
					problem = ev.Problem
				}
				return fmt.Errorf("the evidence log does not verify: %s", problem)
			}
			return nil
		},
	}
	verify.Flags().StringVar(&pubFile, "public-key", "", "the operator's evidence public key (PEM): check every evidence entry against the signed tree heads")
	verify.Flags().StringVar(&headsFile, "heads", "", "more signed tree heads (JSON lines, e.g. a copy of DIR/"+HeadsFileName+" kept elsewhere)")
	return group("notice", "official letters: delivery and first-read records, evidence log", append([]*cobra.Command{show, verify, a.noticeRefusalsCmd()}, a.evidenceCmds()...)...)
}

// noticeReport is `notice verify`: the notice ledger's chain (letters
// from before the evidence log; its fields at the top as before, ok
// covering both) and the evidence log's check.
type noticeReport struct {
	store.LedgerReport
	Evidence *store.EvidenceReport `json:"evidence,omitempty"`
}

func printEvidenceReport(w io.Writer, ev *store.EvidenceReport) {
	if !ev.SignaturesChecked && ev.OK {
		fmt.Fprintf(w, "evidence consistent: %d entries match the stored tree and the roots of %d stored heads; signatures not checked (give --public-key to prove it)\n", ev.Entries, ev.Heads)
		return
	}
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
