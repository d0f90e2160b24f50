package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/spf13/cobra"

	"abox/evidence"
	"abox/store"
)

// evidenceCmds are the notice subcommands of the evidence log (issue 15).
func (a *app) evidenceCmds() []*cobra.Command {
	var pubOut string
	keygen := &cobra.Command{
		Use: "keygen FILE [--public-out FILE]", Short: "write a new Ed25519 evidence key (mode 0600) and print its public key", Args: exactArgs("FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			pub, err := evidence.GenerateKey(args[0], rand.Reader)
			if err != nil {
				return err
			}
			return a.writePublicKey(pub, pubOut)
		},
	}
	keygen.Flags().StringVar(&pubOut, "public-out", "", "also write the public key (PEM) to this file")
	pubkey := &cobra.Command{
		Use: "public-key KEYFILE [--public-out FILE]", Short: "print the public key of an evidence key", Args: exactArgs("KEYFILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			key, err := evidence.LoadPrivateKey(args[0])
			if err != nil {
				return err
			}
			return a.writePublicKey(key.Public().(ed25519.PublicKey), pubOut)
		},
	}
	pubkey.Flags().StringVar(&pubOut, "public-out", "", "also write the public key (PEM) to this file")
	var keyFile string
	sign := &cobra.Command{
		Use: "sign [--evidence-key FILE]", Short: "sign the evidence log's tree head now", Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var h evidence.SignedHead
			if err := a.client().call(cmd.Context(), "notice.sign", signArgs{KeyFile: keyFile}, &h); err != nil {
				return err
			}
			return a.emit(h, func(w io.Writer) {
				fmt.Fprintf(w, "signed tree head: %d entries, root %s, at %s\n", h.TreeSize, h.RootHash, h.Time().Format("2006-01-02T15:04:05.000Z"))
			})
		},
	}
	sign.Flags().StringVar(&keyFile, "evidence-key", "", "evidence key (default: the server's, or the evidence-key setting)")
	var sender string
	proof := &cobra.Command{
		Use: "proof MESSAGE-ID [--sender NAME]", Short: "receipts (event, inclusion proof, signed tree head) for a letter's evidence", Args: exactArgs("MESSAGE-ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			var b ProofBundle
			if err := a.client().call(cmd.Context(), "notice.proof", noticeArgs{MessageID: args[0], Sender: sender}, &b); err != nil {
				return err
			}
			return a.emit(b, func(w io.Writer) {
				if b.SignedHead != nil {
					fmt.Fprintf(w, "signed tree head: %d entries at %s\n", b.SignedHead.TreeSize, b.SignedHead.Time().Format("2006-01-02T15:04:05Z"))
				}
				for _, r := range b.Receipts {
					fmt.Fprintf(w, "entry %d: %s (proof of %d hashes)\n", r.LeafIndex, r.Event, len(r.InclusionProof))
				}
				for _, e := range b.Pending {
					fmt.Fprintf(w, "entry %d: %s %s: not yet under a signed head (run `abox notice sign`)\n", e.Index, e.Kind, e.Recipient)
				}
			})
		},
	}
	proof.Flags().StringVar(&sender, "sender", "", "the trusted sender, when several used the same Message-ID")
	consistency := &cobra.Command{
		Use: "consistency FROM-SIZE TO-SIZE", Short: "RFC 9162 consistency proof between two tree sizes", Args: exactArgs("FROM-SIZE", "TO-SIZE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			from, err1 := strconv.ParseUint(args[0], 10, 64)
			to, err2 := strconv.ParseUint(args[1], 10, 64)
			if err1 != nil || err2 != nil {
				return usagef("%s: sizes are numbers of entries", cmd.CommandPath())
			}
			var r ConsistencyResult
			if err := a.client().call(cmd.Context(), "notice.consistency", consistencyArgs{From: from, To: to}, &r); err != nil {
				return err
			}
			return a.emit(r, func(w io.Writer) {
				for _, h := range r.Proof {
					fmt.Fprintln(w, h)
				}
			})
		},
	}
	return []*cobra.Command{keygen, pubkey, sign, proof, consistency}
}

func (a *app) writePublicKey(pub ed25519.PublicKey, path string) error {
	pem := evidence.MarshalPublicKey(pub)
	if path != "" {
		if err := os.WriteFile(path, pem, 0o644); err != nil {
			return err
		}
	}
	return a.emit(map[string]string{"public_key": string(pem), "key_id": evidence.KeyID(pub)}, func(w io.Writer) {
		fmt.Fprintf(w, "%skey id %s\n", pem, evidence.KeyID(pub))
	})
}

// verifyEvidence runs `notice verify --public-key`'s evidence check.
func (a *app) verifyEvidence(cmd *cobra.Command, pubFile, headsFile string) (store.EvidenceReport, error) {
	var rep store.EvidenceReport
	pem, err := os.ReadFile(pubFile)
	if err != nil {
		return rep, err
	}
	args := verifyEvidenceArgs{PublicKey: string(pem)}
	if headsFile != "" {
		if args.Heads, err = readHeadsFile(headsFile); err != nil {
			return rep, err
		}
	}
	err = a.client().call(cmd.Context(), "notice.verify-evidence", args, &rep)
	return rep, err
}
