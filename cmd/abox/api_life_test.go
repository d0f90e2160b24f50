package main

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/jackc/pgx/v5"
	bolt "go.etcd.io/bbolt"
)

// TestSubscriberLifeThroughAPI drives a whole subscriber's life through
// the provisioning API of the real binary (issue 16, "Done when"):
// register, consent, receive an official letter, read it over IMAP, see
// it and its evidence, export everything, delete, restore, delete again,
// purge (the sweep after the grace); then nothing personal of the
// subscriber is left in the database: no phone (old or new), no name or
// IIN from the certificate, no signed consent, no password hash, no
// login history, not the letter; the evidence log still proves the
// letter's delivery and reading, by the account's stable id.
func TestSubscriberLifeThroughAPI(t *testing.T) {
	t.Parallel()
	a := newAbox(t)
	fastHashing(t, a.Dir)
	now := time.Now()
	pki := configureConsent(t, a, now)
	a.OK("domain", "add", testDomain)
	a.OKIn(egovPassword+"\n", "sender", "add", "egov", "--kind", "official", "--from", "notices@egov.kz", "--password-stdin")
	a.srv = a.Start()
	portal := a.makeToken("portal-web", rolePortal)
	c := newAPIClient(t, a)
	onBehalf := []string{apiOnBehalfHeader, "subscriber"}

	addr := "aigul@" + testDomain
	path := "/v1/accounts/" + url.PathEscape(addr)
	firstPhone, secondPhone := "+77015550101", "+77015550202"

	// Register.
	var acct struct {
		ID    uint64 `json:"id"`
		State string `json:"state"`
		Phone string `json:"phone"`
	}
	c.want(c.do("POST", "/v1/accounts", portal, map[string]string{"address": addr, "phone": firstPhone, "password": goodPassword},
		append([]string{"Idempotency-Key", "signup-aigul"}, onBehalf...)...), 201, &acct)
	if acct.ID == 0 || acct.State != "active" || acct.Phone != firstPhone {
		t.Fatalf("registered: %+v", acct)
	}
	c.want(c.do("PATCH", path, portal, map[string]string{"phone": secondPhone}, onBehalf...), 200, &acct)

	// Consent: the CMS object the subscriber signed on the portal.
	f, sub, err := pki.Consent(addr, acct.ID, now, now.AddDate(0, 0, -1), now.AddDate(1, 0, 0))
	if err != nil {
		t.Fatal(err)
	}
	cms, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	iin := strings.TrimPrefix(sub.Cert.Subject.SerialNumber, "IIN")
	name := sub.Cert.Subject.CommonName
	if len(iin) != 12 || name == "" {
		t.Fatalf("test certificate: IIN %q, name %q", iin, name)
	}
	var withConsent struct {
		ConsentStatus string `json:"consent_status"`
	}
	c.want(c.do("PUT", path+"/consent", portal, map[string]string{"cms": base64.StdEncoding.EncodeToString(cms)}, onBehalf...), 200, &withConsent)
	if withConsent.ConsentStatus != "in-force" {
		t.Fatalf("consent: %+v", withConsent)
	}

	// Receive an official letter and read it.
	const text = "Decision 4471 of the district court concerning the parcel."
	msg := "From: notices@egov.kz\nTo: " + addr + "\nSubject: Decision\nDate: " + now.Format(time.RFC1123Z) + "\nMessage-ID: <life-1@egov.kz>\n\n" + text + "\n"
	if err := submitAs(t, a.srv.Addrs(), "egov", egovPassword, "notices@egov.kz", []string{addr}, msg); err != nil {
		t.Fatalf("official letter: %v", err)
	}
	ic := imapLogin(t, a.srv.Addr("imaps"), addr, goodPassword)
	if _, err := ic.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, body := fetchOne(t, ic, &imap.FetchItemBodySection{}); !bytes.Contains(body, []byte(text)) {
		t.Fatalf("the letter read over IMAP: %q", body)
	}
	ic.Logout().Wait()

	// The letter and its evidence, as the portal shows them.
	var letters lettersPage
	c.want(c.do("GET", path+"/letters", portal, nil), 200, &letters)
	if len(letters.Letters) != 1 || letters.Letters[0].MessageID != "life-1@egov.kz" || letters.Account != acct.ID {
		t.Fatalf("letters: %+v", letters)
	}
	var kinds []string
	for _, e := range letters.Letters[0].Events {
		kinds = append(kinds, e.Kind)
	}
	if got := strings.Join(kinds, " "); got != "accepted stored retrieved read" {
		t.Fatalf("the letter's evidence: %s", got)
	}

	// The subject-access export holds everything.
	r := c.do("GET", path+"/export", portal, nil)
	if r.status != 200 || r.header.Get("Content-Type") != "application/zip" {
		t.Fatalf("export: %d %v %.200s", r.status, r.header, r.body)
	}
	zr, err := zip.NewReader(bytes.NewReader(r.body), int64(len(r.body)))
	if err != nil {
		t.Fatalf("export is not a whole ZIP: %v", err)
	}
	files := map[string][]byte{}
	for _, zf := range zr.File {
		rc, err := zf.Open()
		if err != nil {
			t.Fatal(err)
		}
		files[zf.Name], _ = io.ReadAll(rc)
		rc.Close()
	}
	for name, want := range map[string]string{
		"account.json":    secondPhone,
		"consent.p7s":     "",
		"logins.json":     `"outcome": "ok"`,
		"audit.json":      `"action": "user.consent"`,
		"letters.json":    `"kind": "read"`,
		"mail/INBOX.mbox": text,
	} {
		body, ok := files[name]
		if !ok || !bytes.Contains(body, []byte(want)) {
			t.Errorf("export %s: present %v, want it to hold %q:\n%.400s", name, ok, want, body)
		}
	}
	if !bytes.Equal(files["consent.p7s"], cms) {
		t.Errorf("export consent.p7s is not the signed object recorded")
	}
	for _, mb := range []string{"mail/Sent.mbox", "mail/Trash.mbox", "mail/Junk.mbox"} {
		if _, ok := files[mb]; !ok {
			t.Errorf("export lacks %s (%v)", mb, keys(files))
		}
	}

	// Delete, change of mind, delete again.
	c.want(c.do("DELETE", path, portal, nil, onBehalf...), 200, &acct)
	if acct.State != "pending-deletion" {
		t.Fatalf("delete: %+v", acct)
	}
	c.want(c.do("POST", path+"/restore", portal, nil, onBehalf...), 200, &acct)
	if acct.State != "active" {
		t.Fatalf("restore: %+v", acct)
	}
	c.want(c.do("DELETE", path, portal, nil, onBehalf...), 200, &acct)

	// The grace ends; the sweep purges.
	out := a.OK("policy", "run", "--at", now.Add(33*24*time.Hour).UTC().Format(time.RFC3339))
	if !strings.Contains(out, addr) {
		t.Fatalf("policy run did not purge %s:\n%s", addr, out)
	}
	var gone struct {
		State   string          `json:"state"`
		Phone   string          `json:"phone"`
		Consent json.RawMessage `json:"consent"`
	}
	c.want(c.do("GET", path, portal, nil), 200, &gone)
	if gone.State != "purged" || gone.Phone != "" || gone.Consent != nil {
		t.Fatalf("after purge: %+v", gone)
	}

	forbidden := map[string]string{
		"the first phone": firstPhone, "the second phone": secondPhone, "the IIN": iin,
		"the certificate's name": name, "the letter": "Decision 4471",
	}
	if sh := a.SharedStore(); sh != nil {
		// The harness's cluster mode: the same look at every row of
		// every table of the PostgreSQL database.
		purgedFromPostgres(t, sh.DSN, forbidden, acct.ID)
		return
	}
	// Nothing personal is left in the database (read with bbolt from a
	// backup taken now, every bucket, every key and value).
	backup := filepath.Join(t.TempDir(), "after-purge.db")
	a.OK("backup", backup)
	db, err := bolt.Open(backup, 0o600, &bolt.Options{ReadOnly: true, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var evidence int
	err = db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(bucket []byte, b *bolt.Bucket) error {
			return b.ForEach(func(k, v []byte) error {
				for what, s := range forbidden {
					if bytes.Contains(k, []byte(s)) || bytes.Contains(v, []byte(s)) {
						t.Errorf("after purge %s is still in bucket %s (key %q)", what, bucket, k)
					}
				}
				if string(bucket) == "accounts" && bytes.Contains(v, []byte("argon2")) {
					t.Errorf("after purge a password hash is still in the account record")
				}
				if string(bucket) == "logins" {
					t.Errorf("after purge a login record is left: %q", v)
				}
				if string(bucket) == "consents" {
					t.Errorf("after purge a signed consent is left")
				}
				if string(bucket) == "evidence" { // one entry or a group of them
					evidence += bytes.Count(v, []byte(fmt.Sprintf(`"account":%d,`, acct.ID)))
				}
				return nil
			})
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	if evidence < 4 {
		t.Errorf("the evidence log holds %d events about account %d after purge, want the letter's 4 (accepted, stored, retrieved, read) and its deletion", evidence, acct.ID)
	}
}

// purgedFromPostgres is the bbolt check above on the PostgreSQL backend:
// no table holds a row with the purged subscriber's data (as text, or
// hex as bytea shows it), no password hash is left in the accounts,
// no login record and no signed consent; the evidence log keeps the
// letter's events. (The bodies' bucket is not listed: a body's row in
// blobs goes with its last reference.)
func purgedFromPostgres(t *testing.T, dsn string, forbidden map[string]string, acct uint64) {
	t.Helper()
	ctx := context.Background()
	conn := pgConnect(t, dsn)
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename`)
	if err != nil {
		t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	for _, table := range tables {
		rows, err := conn.Query(ctx, `SELECT t::text FROM `+pgx.Identifier{table}.Sanitize()+` t`)
		if err != nil {
			t.Fatal(err)
		}
		texts, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		for _, row := range texts {
			for what, s := range forbidden {
				if strings.Contains(row, s) || strings.Contains(row, hex.EncodeToString([]byte(s))) {
					t.Errorf("after purge %s is still in table %s: %.200s", what, table, row)
				}
			}
			if table == "accounts" && strings.Contains(row, "argon2") {
				t.Errorf("after purge a password hash is still in the accounts table")
			}
		}
		if (table == "logins" || table == "consent_cms") && len(texts) > 0 {
			t.Errorf("after purge table %s holds %d rows", table, len(texts))
		}
	}
	var evidence int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM evidence WHERE account = $1`, int64(acct)).Scan(&evidence); err != nil {
		t.Fatal(err)
	}
	if evidence < 4 {
		t.Errorf("the evidence log holds %d events about account %d after purge, want the letter's 4 (accepted, stored, retrieved, read) and its deletion", evidence, acct)
	}
}

func keys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestAuditByStableID: a login registered again after a purge is another
// account: `audit --account` shows the new holder's entries only, the
// previous holder's with --account-id, and --staff shows the ids.
func TestAuditByStableID(t *testing.T) {
	t.Parallel()
	a := newAbox(t)
	fastHashing(t, a.Dir)
	a.OK("domain", "add", testDomain)
	alice := "alice@" + testDomain
	a.addUser("alice")
	first := a.accountID(alice)
	a.OK("user", "block", alice, "--reason", "first holder's block")
	a.OK("user", "unblock", alice)
	a.OK("user", "delete", alice)
	a.OK("policy", "run", "--at", time.Now().Add(40*24*time.Hour).UTC().Format(time.RFC3339))
	a.addUser("alice")
	second := a.accountID(alice)
	if first == second {
		t.Fatalf("the new holder has the old id %d", first)
	}
	var now []struct {
		Action    string `json:"action"`
		Reason    string `json:"reason"`
		AccountID uint64 `json:"account_id"`
	}
	a.JSON(&now, "audit", "--account", alice, "--staff")
	if len(now) == 0 {
		t.Fatal("no entries for the new holder")
	}
	for _, e := range now {
		if e.AccountID != second || strings.Contains(e.Reason, "first holder") {
			t.Errorf("the new holder's trail shows %+v", e)
		}
	}
	var before []struct {
		Action    string `json:"action"`
		AccountID uint64 `json:"account_id"`
	}
	a.JSON(&before, "audit", "--account", alice, "--account-id", fmt.Sprint(first), "--staff")
	var acts []string
	for _, e := range before {
		if e.AccountID != first {
			t.Errorf("--account-id %d shows %+v", first, e)
		}
		acts = append(acts, e.Action)
	}
	if got := strings.Join(acts, " "); !strings.Contains(got, "user.block") || !strings.Contains(got, "user.purge") {
		t.Errorf("the first holder's trail: %s", got)
	}
}
