package policy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"net/mail"
	"strings"
	"time"

	"abox/accounts"
	"abox/store"
	"abox/store/msginfo"
)

// broadcastBatch is how many accounts one broadcast transaction covers:
// small enough that live delivery never waits long behind it.
const broadcastBatch = 250

// BroadcastRequest is one operator broadcast (user agreement 3.3-3.6:
// informational messages, letters from government bodies, bills).
type BroadcastRequest struct {
	Sender   string // trusted sender NAME
	Message  []byte // the message as the operator wrote it
	Class    string // only this class, or "" for every active account
	Hostname string
	// Again sends a message that was broadcast before once more.
	Again bool
	// Progress, when set, is called after every batch.
	Progress func(b store.Broadcast, total int64)
}

// Broadcast delivers a message to every active account (or one class),
// resuming an interrupted run of the same file. Accounts over quota are
// skipped and counted; for an official sender's letter, accounts without
// digital-signature consent are refused and recorded in the evidence log.
func (e *Engine) Broadcast(ctx context.Context, req BroadcastRequest) (store.Broadcast, error) {
	if err := ctx.Err(); err != nil {
		return store.Broadcast{}, fmt.Errorf("broadcast interrupted before it started; nothing was delivered: %w", err)
	}
	snd, err := e.store.Sender(req.Sender)
	if err != nil {
		return store.Broadcast{}, err
	}
	if req.Class != "" {
		if d, err := e.dir(); err != nil {
			return store.Broadcast{}, err
		} else if _, ok := d.classes[req.Class]; !ok {
			return store.Broadcast{}, fmt.Errorf("class %s: %w", req.Class, store.ErrNoClass)
		}
	}
	hdr, err := mail.ReadMessage(bytes.NewReader(req.Message))
	if err != nil {
		return store.Broadcast{}, fmt.Errorf("the message cannot be parsed: %w", err)
	}
	id := &Identity{Sender: &snd}
	from, err := hdr.Header.AddressList("From")
	if err != nil || len(from) == 0 {
		return store.Broadcast{}, refuse(ErrSenderDenied, "the message needs a From: header with one of %s's addresses", snd.Name)
	}
	for _, a := range from {
		if !id.Owns(a.Address) {
			return store.Broadcast{}, refuse(ErrSenderDenied, "%s may not send as From: %s", snd.Name, a.Address)
		}
	}
	source := sha256.Sum256(req.Message)
	now := e.clock()
	body := broadcastBody(req.Message, hdr.Header, snd, req.Hostname, fmt.Sprintf("%x", source[:8]), now)
	msgID := store.NormalizeMessageID(headerValue(body, "Message-ID"))
	b, _, err := e.store.StartBroadcast(ctx, store.Broadcast{
		Source: fmt.Sprintf("%x", source), Sender: snd.Name, Class: req.Class,
		Official: snd.Kind == accounts.Official, MessageID: msgID,
	}, body, msginfo.Compute(body), req.Again)
	if err != nil {
		return b, err
	}
	total, _ := e.store.CountState(accounts.Active)
	pick := func(a *accounts.Account) (store.Recipient, error) {
		if b.Official {
			if err := e.consentPick(a); err != nil {
				return store.Recipient{}, err
			}
		}
		lim, err := e.LimitsOf(a)
		if err != nil {
			return store.Recipient{}, err
		}
		r := store.Recipient{MaxBytes: lim.StorageBytes, MaxMessages: lim.Messages, NotReceived: true}
		if b.Official {
			r.Flags = []string{store.KeywordOfficial}
		}
		return r, nil
	}
	if err := ctx.Err(); err != nil && b.Scanned == 0 {
		return b, fmt.Errorf("broadcast %d interrupted before it delivered anything (run the same command again to resume): %w", b.ID, err)
	}
	for !b.Done {
		if err := ctx.Err(); err != nil {
			return b, fmt.Errorf("broadcast %d interrupted after %d accounts (run the same command again to resume): %w", b.ID, b.Scanned, err)
		}
		next, err := e.store.BroadcastStep(ctx, b.ID, broadcastBatch, pick)
		if err != nil {
			if ctx.Err() != nil {
				// Cancelled inside a step: that batch was rolled back
				// or committed whole, and the run resumes either way.
				return b, fmt.Errorf("broadcast %d interrupted after %d accounts (run the same command again to resume): %w", b.ID, b.Scanned, err)
			}
			return b, err
		}
		b = next
		if req.Progress != nil {
			req.Progress(b, total)
		}
	}
	return b, nil
}

// broadcastBody adds the headers a broadcast needs, deterministically from
// the file so the same file always makes the same letter: Return-Path,
// a Received line, and Date and Message-ID when missing.
func broadcastBody(msg []byte, h mail.Header, snd accounts.Sender, hostname, tag string, now time.Time) []byte {
	var add bytes.Buffer
	fmt.Fprintf(&add, "Return-Path: <%s>\r\n", snd.From[0])
	fmt.Fprintf(&add, "Received: by %s (abox broadcast) id %s;\r\n\t%s\r\n", hostname, tag, now.Format(time.RFC1123Z))
	if h.Get("Date") == "" {
		fmt.Fprintf(&add, "Date: %s\r\n", now.Format(time.RFC1123Z))
	}
	if h.Get("Message-ID") == "" {
		fmt.Fprintf(&add, "Message-ID: <broadcast-%s@%s>\r\n", tag, hostname)
	}
	return append(add.Bytes(), msg...)
}

func headerValue(msg []byte, key string) string {
	m, err := mail.ReadMessage(bytes.NewReader(msg))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(m.Header.Get(key))
}
