package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"abox/cmd/abox/aboxtest"
	"abox/evidence"
)

type proofJSON struct {
	SignedHead *evidence.SignedHead `json:"signed_head"`
	Receipts   []evidence.Receipt   `json:"receipts"`
	Pending    []map[string]any     `json:"pending"`
}

// TestEvidenceEndToEnd: an official letter through the real binary
// leaves signed, provable evidence (accepted, refused, stored, retrieved
// in EXAMINE, read by \Seen), a sender checks its receipts with the
// standalone verifier and the public key only, and `notice verify
// --public-key` catches a copy of the database whose event time was
// moved and whose tree was recomputed without the key.
func TestEvidenceEndToEnd(t *testing.T) {
	t.Parallel()
	a := newAbox(t)
	fastHashing(t, a.Dir)
	keyDir := t.TempDir() // the key is kept outside the data directory
	keyFile, pubFile := filepath.Join(keyDir, "evidence.key"), filepath.Join(keyDir, "evidence.pub")
	a.OK("notice", "keygen", keyFile, "--public-out", pubFile)
	if fi, err := os.Stat(keyFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", fi, err)
	}
	a.OK("domain", "add", testDomain)
	a.OKIn(egovPassword+"\n", "sender", "add", "egov", "--kind", "official", "--from", "notices@egov.kz", "--password-stdin")
	now := time.Now()
	addrs := a.serveOfficial(t, keyFile, now)

	submitOfficial(t, addrs["submission"], "alice@example.kz, bob@example.kz", "Evidence", "ev-1@egov.kz", now)

	rc := rawIMAPLogin(t, addrs["imaps"], "alice@"+testDomain, goodPassword)
	rc.cmd("EXAMINE INBOX")
	if out, st := rc.cmd("FETCH 1 BODY[]"); !strings.HasPrefix(st, "OK") || !strings.Contains(out, "The text.") {
		t.Fatalf("FETCH in EXAMINE: %s %s", st, out)
	}
	rc.cmd("SELECT INBOX")
	if _, st := rc.cmd("STORE 1 +FLAGS.SILENT (\\Seen)"); !strings.HasPrefix(st, "OK") {
		t.Fatalf("STORE: %s", st)
	}
	rc.cmd("LOGOUT")

	a.OK("notice", "sign")
	var p proofJSON
	a.JSON(&p, "notice", "proof", "ev-1@egov.kz")
	var kinds []string
	for _, r := range p.Receipts {
		var e map[string]any
		json.Unmarshal(r.Event, &e)
		kinds = append(kinds, e["kind"].(string)+":"+e["recipient"].(string)+":"+strOr(e["how"]))
		if e["message_sha256"] == nil || e["account"] == nil {
			t.Errorf("event without message hash or account id: %s", r.Event)
		}
		if e["kind"] == "accepted" && (e["tls"] == nil || !strings.HasPrefix(e["tls"].(string), "TLS")) {
			t.Errorf("accepted event without TLS details: %s", r.Event)
		}
	}
	want := "accepted:alice@example.kz: stored:alice@example.kz: refused:bob@example.kz: " +
		"retrieved:alice@example.kz:body-fetched-examine read:alice@example.kz:seen-flag-set"
	if got := strings.Join(kinds, " "); got != want || len(p.Pending) != 0 {
		t.Fatalf("evidence %q (pending %v), want %q", got, p.Pending, want)
	}

	// The sender fetches its receipts and checks them without abox.
	code, body := getReceipts(t, addrs["http"], url.PathEscape("ev-1@egov.kz"), "egov", egovPassword)
	if code != 200 {
		t.Fatalf("GET /v1/receipts: %d %s", code, body)
	}
	verifier := buildVerifier(t)
	receiptFile := writeFile(t, t.TempDir(), "receipts.json", body)
	if out, err := exec.Command(verifier, "-public-key", pubFile, receiptFile).CombinedOutput(); err != nil || strings.Count(string(out), "verified entry") != 5 {
		t.Fatalf("abox-verify-receipt: %v\n%s", err, out)
	}
	forged := strings.Replace(string(body), `"how":"seen-flag-set"`, `"how":"body-fetched-select"`, 1)
	if forged == string(body) {
		t.Fatal("receipt has no readable event to forge")
	}
	if out, err := exec.Command(verifier, "-public-key", pubFile, writeFile(t, t.TempDir(), "forged.json", []byte(forged))).CombinedOutput(); err == nil {
		t.Fatalf("a forged receipt verified:\n%s", out)
	}

	a.OK("notice", "verify", "--public-key", pubFile)
	a.srv.Stop()
	a.srv = nil

	if a.SharedStore() != nil {
		t.Log("the tampered copy is of the bbolt file: not in the harness's cluster mode")
		return
	}
	// An insider moves the first read a day later in a copy of the
	// database and recomputes the tree: only the signature can tell.
	db, err := os.ReadFile(filepath.Join(a.Dir, "abox.db"))
	if err != nil {
		t.Fatal(err)
	}
	copyDir := a.tamperedCopy(db, func(tx *bolt.Tx) (uint64, error) {
		b := tx.Bucket([]byte("evidence"))
		k, v := b.Cursor().Last()
		_, raws := evidenceEntries(t, k, v)
		last := raws[len(raws)-1]
		raw := strings.Replace(string(last), `"at":"`+now.UTC().Format("2006-01-02"), `"at":"`+now.UTC().Add(24*time.Hour).Format("2006-01-02"), 1)
		if raw == string(last) {
			t.Fatalf("no time to move in %s", last)
		}
		raws[len(raws)-1] = []byte(raw)
		if err := b.Put(slices.Clone(k), evidenceValue(raws)); err != nil {
			return 0, err
		}
		// The store's layout (store/evidence_build.go): the leaf hashes
		// of each 64 entries in one value under 0xff block(8), the nodes
		// of level 6 and up under level(1) index(8).
		tree := tx.Bucket([]byte("evidence_tree"))
		var bl evidence.Builder
		var leaves []byte
		var all [][]byte
		c := b.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			_, raws := evidenceEntries(t, k, v)
			all = append(all, raws...)
		}
		for _, v := range all {
			bl.Add(evidence.LeafHash(v), func(level uint8, index uint64, h evidence.Hash) error {
				switch {
				case level == 0:
					leaves = append(leaves, h[:]...)
					return tree.Put(binary.BigEndian.AppendUint64([]byte{0xff}, index/64), bytes.Clone(leaves[index/64*64*32:]))
				case level >= 6:
					return tree.Put(binary.BigEndian.AppendUint64([]byte{level}, index), bytes.Clone(h[:]))
				}
				return nil
			})
		}
		return 0, nil
	})
	copied := aboxAt(t, copyDir.dir)
	r := copied.Fail(1, "notice", "verify", "--public-key", pubFile)
	if !strings.Contains(r.Stdout, "evidence broken at entry 0") || !strings.Contains(r.Stderr, "do not match the head") {
		t.Fatalf("verify of the tampered copy: %s", r)
	}
	copied.SkipStoreCheck("tampered on purpose")
}

func strOr(v any) string {
	s, _ := v.(string)
	return s
}

func getReceipts(t *testing.T, httpAddr, escapedID, user, password string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest("GET", "http://"+httpAddr+"/v1/receipts/"+escapedID, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(user, password)
	resp, err := (&http.Client{Timeout: netTimeout}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, body
}

// buildVerifier builds cmd/abox-verify-receipt, the sender's tool.
func buildVerifier(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "abox-verify-receipt")
	cmd := exec.Command("go", "build", "-o", bin, "../abox-verify-receipt")
	cmd.Env = aboxtest.Environ()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building abox-verify-receipt: %v\n%s", err, out)
	}
	return bin
}

// submitOfficial sends an official letter from egov's submission
// account to alice; bob, who has no consent, is refused at RCPT.
func submitOfficial(t *testing.T, addr, to, subject, msgID string, now time.Time) {
	t.Helper()
	c := submitter(t, addr, "egov", egovPassword)
	if err := c.Mail("notices@egov.kz"); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("alice@" + testDomain); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("bob@" + testDomain); err == nil {
		t.Fatal("bob has no consent but was accepted")
	}
	sendData(t, c, "From: notices@egov.kz\nTo: "+to+"\nSubject: "+subject+"\nDate: "+now.Format(time.RFC1123Z)+"\nMessage-ID: <"+msgID+">\n\nThe text.\n")
	c.Quit()
}

// serveOfficial adds alice, with a verified consent, and bob, without
// one, and serves with the evidence key and heads signed on demand.
func (a *abox) serveOfficial(t *testing.T, keyFile string, now time.Time) map[string]string {
	t.Helper()
	a.addUser("alice")
	a.addUser("bob") // no consent: refused
	aliceCMS, _ := a.consentFile(configureConsent(t, a, now), "alice@"+testDomain, now)
	a.OK("user", "consent", "alice@"+testDomain, "--cms", aliceCMS)
	a.ServeFlags = []string{"--evidence-key", keyFile, "--evidence-interval", "0"}
	a.srv = a.Start()
	return a.srv.Addrs()
}

// evidenceEntries splits a value of the bbolt store's `evidence` bucket
// into its entries, with their indexes (store/evidence_entries.go: one
// entry's JSON under its index, or a group under its first entry's
// index: 0x01, then each entry's length as a uvarint and its JSON).
func evidenceEntries(t *testing.T, k, v []byte) (first uint64, raws [][]byte) {
	t.Helper()
	first = binary.BigEndian.Uint64(k)
	if len(v) == 0 || v[0] != 0x01 {
		return first, [][]byte{slices.Clone(v)}
	}
	for rest := v[1:]; len(rest) > 0; {
		n, m := binary.Uvarint(rest)
		if m <= 0 || n > uint64(len(rest)-m) {
			t.Fatalf("evidence group %d is malformed", first)
		}
		raws = append(raws, slices.Clone(rest[m:m+int(n)]))
		rest = rest[m+int(n):]
	}
	return first, raws
}

// evidenceValue is the value that stores raws (evidenceEntries' inverse).
func evidenceValue(raws [][]byte) []byte {
	if len(raws) == 1 {
		return raws[0]
	}
	v := []byte{0x01}
	for _, r := range raws {
		v = binary.AppendUvarint(v, uint64(len(r)))
		v = append(v, r...)
	}
	return v
}
