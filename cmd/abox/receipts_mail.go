package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"abox/evidence"
	"abox/store"
)

// Receipts by mail (issue 15; docs/EVIDENCE.md): after a tree head is
// signed, every trusted sender with `--receipts-to` gets, for each of its
// letters with events logged since the last head, a report: a
// multipart/report (RFC 6522) whose delivery-status part (RFC 3464)
// lists the recipients the letter was stored for or refused to, and
// whose receipts.json is the notice API's receipt bundle for those
// events (abox-verify-receipt checks it with the operator's public key).

// maxReceiptLetters bounds one head's reports; the rest go with the
// next head.
const maxReceiptLetters = 10_000

var errEnoughLetters = errors.New("enough letters for one head")

// receiptLetter is one letter's events since the last mailed head.
type receiptLetter struct {
	sender, msgID string
	entries       []store.EvidenceEntry
}

// mailReceipts mails the reports for the events logged before head and
// not yet mailed. A report that cannot be delivered is logged and not
// tried again (the receipts stay available from the notice API).
func mailReceipts(ctx context.Context, e *env, head evidence.SignedHead, pub ed25519.PublicKey) error {
	from, started, err := e.store.ReceiptsMailed()
	if err != nil {
		return err
	}
	if !started || from >= head.TreeSize {
		// The first head since receipts exist starts the count: earlier
		// letters are not mailed after the fact.
		if !started || from > head.TreeSize {
			return e.store.SetReceiptsMailed(ctx, head.TreeSize)
		}
		return nil
	}
	senders, err := e.store.Senders()
	if err != nil {
		return err
	}
	to := map[string]string{}
	for _, s := range senders {
		if s.ReceiptsTo != "" {
			to[s.Name] = s.ReceiptsTo
		}
	}
	end := head.TreeSize
	var letters []*receiptLetter
	byKey := map[string]*receiptLetter{}
	if len(to) > 0 {
		err = e.store.EvidenceBetween(from, head.TreeSize, func(en store.EvidenceEntry) error {
			if to[en.Event.Sender] == "" {
				return nil
			}
			key := en.Event.Sender + "\x00" + en.Event.MessageID
			l := byKey[key]
			if l == nil {
				if len(letters) == maxReceiptLetters {
					end = en.Event.Index
					return errEnoughLetters
				}
				l = &receiptLetter{sender: en.Event.Sender, msgID: en.Event.MessageID}
				byKey[key] = l
				letters = append(letters, l)
			}
			l.entries = append(l.entries, en)
			return nil
		})
		if err != nil && !errors.Is(err, errEnoughLetters) {
			return err
		}
	}
	host := e.cfg.Hostname
	for _, l := range letters {
		bundle := ProofBundle{MessageID: l.msgID, SignedHead: &head, Receipts: []evidence.Receipt{}, Pending: []store.EvidenceEvent{}}
		for _, en := range l.entries {
			proof, err := e.store.InclusionProof(en.Event.Index, head.TreeSize)
			if err != nil {
				return err
			}
			bundle.Receipts = append(bundle.Receipts, evidence.NewReceipt(en.Raw, en.Event.Index, proof, head, pub))
		}
		msg, err := receiptReport(host, to[l.sender], l, bundle, e.now())
		if err == nil {
			err = e.policy().DeliverNotice(ctx, to[l.sender], "receipt-"+fmt.Sprint(l.entries[0].Event.Index), msg)
		}
		if err != nil {
			e.log.Error("evidence receipts could not be mailed", "sender", l.sender, "to", to[l.sender], "message_id", l.msgID, "err", err)
		}
	}
	return e.store.SetReceiptsMailed(ctx, end)
}

// receiptReport renders one letter's report.
func receiptReport(host, to string, l *receiptLetter, bundle ProofBundle, now time.Time) ([]byte, error) {
	js, err := json.MarshalIndent(bundle, "", "  ")
	if err != nil {
		return nil, err
	}
	var rnd [12]byte
	_, _ = rand.Read(rnd[:])
	boundary := "receipt-" + hex.EncodeToString(rnd[:])
	var status bytes.Buffer // per-recipient fields, RFC 3464 §2.3
	var lines []string
	for _, en := range l.entries {
		ev := en.Event
		line := fmt.Sprintf("%s  %-9s", ev.At.UTC().Format(time.RFC3339), ev.Kind)
		if ev.Recipient != "" {
			line += " " + ev.Recipient
		}
		if ev.How != "" {
			line += " (" + ev.How + ")"
		}
		if ev.Reason != "" {
			line += ": " + ev.Reason
		}
		lines = append(lines, line)
		switch ev.Kind {
		case store.EvidenceStored:
			fmt.Fprintf(&status, "\r\nFinal-Recipient: rfc822; %s\r\nAction: delivered\r\nStatus: 2.0.0\r\n", ev.Recipient)
		case store.EvidenceRefused:
			fmt.Fprintf(&status, "\r\nFinal-Recipient: rfc822; %s\r\nAction: failed\r\nStatus: 5.7.1\r\nDiagnostic-Code: X-abox; %s\r\n", ev.Recipient, ev.Reason)
		}
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: Evidence receipts <MAILER-DAEMON@%s>\r\nTo: <%s>\r\n", host, to)
	fmt.Fprintf(&b, "Subject: Evidence receipts for <%s>\r\n", l.msgID)
	fmt.Fprintf(&b, "Date: %s\r\nMessage-ID: <receipt.%s@%s>\r\n", now.Format(time.RFC1123Z), hex.EncodeToString(rnd[:]), host)
	b.WriteString("Auto-Submitted: auto-generated\r\nMIME-Version: 1.0\r\n")
	if status.Len() > 0 {
		fmt.Fprintf(&b, "Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"%s\"\r\n\r\n", boundary)
	} else {
		fmt.Fprintf(&b, "Content-Type: multipart/mixed; boundary=\"%s\"\r\n\r\n", boundary)
	}
	fmt.Fprintf(&b, "--%s\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n", boundary)
	fmt.Fprintf(&b, "Evidence log entries for your letter <%s> (sender %s),\r\nin the log of %d entries whose head the operator signed at %s:\r\n\r\n",
		l.msgID, l.sender, bundle.SignedHead.TreeSize, time.UnixMilli(bundle.SignedHead.Timestamp).UTC().Format(time.RFC3339))
	for _, line := range lines {
		b.WriteString(line + "\r\n")
	}
	b.WriteString("\r\nreceipts.json proves each entry with the operator's public key\r\n(abox-verify-receipt -public-key KEY.pem receipts.json).\r\n\r\n")
	if status.Len() > 0 {
		fmt.Fprintf(&b, "--%s\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; %s\r\n", boundary, host)
		b.Write(status.Bytes())
		b.WriteString("\r\n")
	}
	fmt.Fprintf(&b, "--%s\r\nContent-Type: application/json; name=\"receipts.json\"\r\nContent-Disposition: attachment; filename=\"receipts.json\"\r\nContent-Transfer-Encoding: base64\r\n\r\n", boundary)
	enc := base64.StdEncoding.EncodeToString(js)
	for len(enc) > 76 {
		b.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	b.WriteString(enc + "\r\n")
	fmt.Fprintf(&b, "--%s--\r\n", boundary)
	return b.Bytes(), nil
}

// validReceiptsTo checks a --receipts-to value ("none" clears it).
func validReceiptsTo(v string) (string, error) {
	if v == "" || v == "none" {
		return "", nil
	}
	at := strings.LastIndexByte(v, '@')
	if at <= 0 || at == len(v)-1 || strings.ContainsAny(v, " <>\"\r\n") {
		return "", fmt.Errorf("--receipts-to %q is not an address", v)
	}
	return strings.ToLower(v), nil
}
