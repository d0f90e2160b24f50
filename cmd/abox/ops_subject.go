package main

import (
	"archive/zip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path"
	"strings"
	"time"

	"abox/store"
)

// A subscriber's own data, for the portal (issue 16: privacy policy 4,
// a subject-access request): the official letters and their evidence,
// and everything abox holds about the account as one archive.

// letterView is one official letter to an account and what the evidence
// log records about it, in order.
type letterView struct {
	MessageID  string          `json:"message_id"`
	Sender     string          `json:"sender"`
	MessageSHA string          `json:"message_sha256,omitempty"`
	Events     []letterEventJS `json:"events"`
}

type letterEventJS struct {
	Index    uint64    `json:"index"` // the entry in the evidence log (notice proof gives its receipt)
	Kind     string    `json:"kind"`
	At       time.Time `json:"at"`
	How      string    `json:"how,omitempty"`
	Reason   string    `json:"reason,omitempty"`
	ClientIP string    `json:"client_ip,omitempty"`
}

type lettersPage struct {
	Address string       `json:"address"`
	Account uint64       `json:"account"`
	Letters []letterView `json:"letters"`
	Next    uint64       `json:"next,omitempty"` // pass as after for the rest; 0 when done
}

type lettersArgs struct {
	Address string `json:"address"`
	After   uint64 `json:"after,omitempty"`
}

func init() {
	register("user.letters", userLetters)
}

// userLetters lists an account's official letters with their evidence,
// by its stable id (a re-registered login never sees its previous
// holder's letters).
func userLetters(ctx context.Context, e *env, a lettersArgs) (lettersPage, error) {
	addr, err := normalizeAddress(a.Address)
	if err != nil {
		return lettersPage{}, err
	}
	acct, err := e.store.Account(addr)
	if err != nil {
		return lettersPage{}, refusal(err)
	}
	if err := e.auditRead(ctx, "user.letters", addr); err != nil {
		return lettersPage{}, err
	}
	return lettersOf(e.store, addr, acct.ID, a.After)
}

// lettersOf is one page of an account's letters.
func lettersOf(st Store, addr string, acct, after uint64) (lettersPage, error) {
	entries, next, err := st.EvidenceForAccount(acct, after, 0)
	if err != nil {
		return lettersPage{}, err
	}
	page := lettersPage{Address: addr, Account: acct, Letters: []letterView{}, Next: next}
	at := map[string]int{}
	for _, en := range entries {
		ev := en.Event
		k := ev.Sender + "\x00" + ev.MessageID
		i, ok := at[k]
		if !ok {
			i = len(page.Letters)
			at[k] = i
			page.Letters = append(page.Letters, letterView{MessageID: ev.MessageID, Sender: ev.Sender, MessageSHA: ev.MessageSHA})
		}
		page.Letters[i].Events = append(page.Letters[i].Events, letterEventJS{
			Index: ev.Index, Kind: ev.Kind, At: ev.At, How: ev.How, Reason: ev.Reason, ClientIP: ev.ClientIP,
		})
	}
	return page, nil
}

// auditRead records that subscriber data was read (issue 16: reading is
// audited as changing is), with who read it.
func (e *env) auditRead(ctx context.Context, action, address string) error {
	a := e.audit("")
	return e.store.AppendAudit(ctx, store.AuditEntry{Actor: a.Actor, Action: action, Account: address, Staff: a.Staff})
}

// auditLookup records an evidence lookup about a letter (its Message-ID
// as the reason; the entry names no one account).
func (e *env) auditLookup(ctx context.Context, action, messageID string) error {
	a := e.audit(messageID)
	return e.store.AppendAudit(ctx, store.AuditEntry{Actor: a.Actor, Action: action, Reason: a.Reason, Staff: a.Staff})
}

// apiExport streams a subject-access export: a ZIP archive holding
// account.json (the account as `user show` gives it), consent.p7s (the
// signed consent, when there is one), logins.json, audit.json (every
// audit entry about the account), letters.json (the official letters'
// evidence) and one mbox file per mailbox under mail/. It is written as
// it is read (no copy of the mailbox in memory or on disk); a failure
// after the first byte ends the archive early, which the client sees as
// a ZIP without its central directory.
func apiExport(w http.ResponseWriter, r *http.Request, _ *apiCaller, e *env) {
	ctx := r.Context()
	addr, err := normalizeAddress(r.PathValue("address"))
	if err != nil {
		writeProblem(w, r, http.StatusBadRequest, "bad-request", err.Error())
		return
	}
	acct, err := e.store.Account(addr)
	if err != nil {
		status, code := problemFor(err)
		writeProblem(w, r, status, code, err.Error())
		return
	}
	view, err := e.view(&acct, true)
	if err != nil {
		status, code := problemFor(err)
		writeProblem(w, r, status, code, err.Error())
		return
	}
	if err := e.auditRead(ctx, "user.export", addr); err != nil {
		status, code := problemFor(err)
		writeProblem(w, r, status, code, err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/zip")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s.zip"`, strings.ReplaceAll(addr, `"`, "")))
	w.Header().Set("Cache-Control", "no-store")
	zw := zip.NewWriter(w)
	fail := func(err error) {
		e.log.Error("API: export ended early", "account", addr, "err", err)
	}
	put := func(name string, v any) error {
		f, err := zw.Create(name)
		if err != nil {
			return err
		}
		enc := json.NewEncoder(f)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	if err := put("account.json", view); err != nil {
		fail(err)
		return
	}
	if acct.Consent != nil && acct.Consent.Verified {
		if cms, err := e.store.ConsentCMS(acct.ID, acct.Consent.RecordedAt.UnixNano()); err == nil {
			f, err := zw.Create("consent.p7s")
			if err == nil {
				_, err = f.Write(cms)
			}
			if err != nil {
				fail(err)
				return
			}
		}
	}
	logins, err := e.store.Logins(acct.ID, 0)
	if err == nil {
		err = put("logins.json", logins)
	}
	if err != nil {
		fail(err)
		return
	}
	var audit []store.AuditEntry
	for after := uint64(0); ; {
		page, err := e.store.ListAudit(store.AuditFilter{Account: addr, AccountID: acct.ID, After: after, Limit: 1000})
		if err != nil {
			fail(err)
			return
		}
		audit = append(audit, page...)
		if len(page) < 1000 {
			break
		}
		after = page[len(page)-1].Seq
	}
	if err := put("audit.json", audit); err != nil {
		fail(err)
		return
	}
	var letters []letterView
	for after := uint64(0); ; {
		page, err := lettersOf(e.store, addr, acct.ID, after)
		if err != nil {
			fail(err)
			return
		}
		letters = append(letters, page.Letters...)
		if page.Next == 0 {
			break
		}
		after = page.Next
	}
	if err := put("letters.json", letters); err != nil {
		fail(err)
		return
	}
	mboxes, err := e.store.Mailboxes(acct.ID)
	if err != nil {
		fail(err)
		return
	}
	for _, mb := range mboxes {
		f, err := zw.Create(path.Join("mail", mboxFileName(mb.Name)))
		if err != nil {
			fail(err)
			return
		}
		if err := writeMailboxMbox(ctx, e.store, acct.ID, mb, f); err != nil {
			fail(err)
			return
		}
	}
	if err := zw.Close(); err != nil {
		fail(err)
	}
}

// mboxFileName turns a mailbox name into a file name inside the archive
// (its hierarchy as folders).
func mboxFileName(name string) string {
	parts := strings.Split(name, "/")
	for i, p := range parts {
		p = strings.ReplaceAll(p, "..", "__")
		if p == "" {
			p = "_"
		}
		parts[i] = p
	}
	return strings.Join(parts, "/") + ".mbox"
}

// writeMailboxMbox writes every message of mb to w in mbox form, a page
// at a time.
func writeMailboxMbox(ctx context.Context, st Store, acct uint64, mb store.Mailbox, w io.Writer) error {
	var after uint32
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		msgs, err := st.Messages(acct, mb.ID, after, 500)
		if err != nil {
			return err
		}
		if len(msgs) == 0 {
			return nil
		}
		for _, m := range msgs {
			body, _, err := st.Body(m.Blob)
			if err != nil {
				return err
			}
			if err := writeMbox(w, m, body); err != nil {
				return err
			}
		}
		after = msgs[len(msgs)-1].UID
	}
}
