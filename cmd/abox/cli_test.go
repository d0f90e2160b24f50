package main

// Integration tests of the abox command line (SPEC "Command line" and
// "Defaults and exact rules"). Each scenario runs the real binary twice:
// "direct" opens DIR/abox.db itself, "served" goes through the control
// socket of an `abox serve` running on the same data directory.

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"abox/cmd/abox/aboxtest"
)

const (
	testDomain = "example.kz"
	testPhone  = "+77011234567"
	// goodPassword passes SPEC's rules: 10+ characters, no login in it,
	// zxcvbn score at least 3.
	goodPassword  = "Corr3ct-Horse-Battery!"
	otherPassword = "Violet-Lantern-Quarry-81"

	standardStorage     = 1 << 30  // 1073741824
	organizationStorage = 10 << 30 // 10737418240
)

type userJSON struct {
	Address     string     `json:"address"`
	State       string     `json:"state"`
	Class       string     `json:"class"`
	Phone       string     `json:"phone"`
	CreatedAt   time.Time  `json:"created_at"`
	BlockReason string     `json:"block_reason"`
	DeletionAt  *time.Time `json:"deletion_at"`
	GraceUntil  *time.Time `json:"grace_until"`
	PurgedAt    *time.Time `json:"purged_at"`
	Usage       *struct {
		StorageBytes     int64 `json:"storage_bytes"`
		StorageLimit     int64 `json:"storage_limit"`
		Messages         int64 `json:"messages"`
		MessagesLimit    int64 `json:"messages_limit"`
		StorageOverride  bool  `json:"storage_override"`
		MessagesOverride bool  `json:"messages_override"`
	} `json:"usage"`
}

type classJSON struct {
	Name                  string `json:"name"`
	Storage               int64  `json:"storage"`
	Messages              int64  `json:"messages"`
	MaxMessageSize        int64  `json:"max_message_size"`
	ReceivedPerDay        int64  `json:"received_per_day"`
	SentPerDay            int64  `json:"sent_per_day"`
	RecipientsPerMessage  int64  `json:"recipients_per_message"`
	IMAPCommandsPerMinute int64  `json:"imap_commands_per_minute"`
	IMAPCommandBurst      int64  `json:"imap_command_burst"`
	Mailboxes             int64  `json:"mailboxes"`
	MailboxDepth          int64  `json:"mailbox_depth"`
	MailboxNameBytes      int64  `json:"mailbox_name_bytes"`
	RetentionTrash        string `json:"retention_trash"`
	RetentionJunk         string `json:"retention_junk"`
	MaxAge                string `json:"max_age"`
}

type senderJSON struct {
	Name    string   `json:"name"`
	Kind    string   `json:"kind"`
	From    []string `json:"from"`
	AllowIP []string `json:"allow_ip"`
}

type auditJSON struct {
	At      time.Time `json:"at"`
	Actor   string    `json:"actor"`
	Action  string    `json:"action"`
	Account string    `json:"account"`
	Reason  string    `json:"reason"`
}

// addUser registers login@example.kz (the domain must be hosted).
func (a *abox) addUser(login string, extra ...string) userJSON {
	a.t.Helper()
	var u userJSON
	args := append([]string{"user", "add", login + "@" + testDomain, "--phone", testPhone, "--password-stdin"}, extra...)
	a.JSONIn(goodPassword+"\n", &u, args...)
	return u
}

func (a *abox) showUser(address string) userJSON {
	a.t.Helper()
	var u userJSON
	a.JSON(&u, "user", "show", address)
	return u
}

// listUsers returns the addresses `user list` prints with args.
func (a *abox) listUsers(args ...string) []string {
	a.t.Helper()
	var us []userJSON
	a.JSON(&us, append([]string{"user", "list"}, args...)...)
	if us == nil {
		a.t.Fatalf("user list %v --json: want a JSON array, got null", args)
	}
	var out []string
	for _, u := range us {
		out = append(out, u.Address)
	}
	return out
}

func (a *abox) domains() []string {
	a.t.Helper()
	var ds []struct {
		Domain string `json:"domain"`
	}
	a.JSON(&ds, "domain", "list")
	var out []string
	for _, d := range ds {
		out = append(out, d.Domain)
	}
	return out
}

func (a *abox) audit(args ...string) []auditJSON {
	a.t.Helper()
	var es []auditJSON
	a.JSON(&es, append([]string{"audit"}, args...)...)
	return es
}

func (a *abox) classes() map[string]classJSON {
	a.t.Helper()
	var cs []classJSON
	a.JSON(&cs, "class", "list")
	out := map[string]classJSON{}
	for _, c := range cs {
		out[c.Name] = c
	}
	return out
}

func TestDomain(t *testing.T) {
	t.Parallel()
	bothModes(t, func(t *testing.T, a *abox) {
		a.Fail(2, "domain", "add")
		a.Fail(2, "domain", "add", "a.kz", "b.kz")
		a.Fail(2, "domain", "remove")
		for _, bad := range []string{"bad domain", "example", "-x.kz", "a@b.kz"} {
			a.Fail(1, "domain", "add", "--", bad)
		}
		if ds := a.domains(); len(ds) != 0 {
			t.Fatalf("invalid domains were added: %v", ds)
		}

		if out := a.OK("domain", "add", testDomain); !strings.Contains(out, testDomain) {
			t.Errorf("domain add printed %q", out)
		}
		a.OK("domain", "add", "other.kz")
		a.Fail(1, "domain", "add", testDomain)   // already hosted
		a.Fail(1, "domain", "add", "EXAMPLE.KZ") // same, ignoring case
		if ds := a.domains(); !slices.Equal(sortedCopy(ds), []string{testDomain, "other.kz"}) {
			t.Errorf("domain list: %v", ds)
		}
		if out := a.OK("domain", "list"); !strings.Contains(out, testDomain) || !strings.Contains(out, "other.kz") {
			t.Errorf("human domain list: %q", out)
		}

		a.addUser("alice")
		r := a.Fail(1, "domain", "remove", testDomain)
		if !strings.Contains(r.Stderr, testDomain) {
			t.Errorf("refusal should name the domain: %q", r.Stderr)
		}
		a.OK("domain", "remove", "other.kz")
		a.Fail(1, "domain", "remove", "other.kz")
		a.Fail(1, "domain", "remove", "never-added.kz")
		if ds := a.domains(); !slices.Equal(ds, []string{testDomain}) {
			t.Errorf("after remove: domain list %v, want [%s]", ds, testDomain)
		}

		// ABOX_DATA names the data directory when --data is absent...
		r = a.Exec(aboxtest.RunOpts{Bare: true, Env: []string{"ABOX_DATA=" + a.Dir}}, "domain", "list")
		if r.Code != 0 || strings.TrimSpace(r.Stdout) != testDomain {
			t.Errorf("with ABOX_DATA: %v", r)
		}
		// ...and --data wins over it.
		r = a.Exec(aboxtest.RunOpts{Env: []string{"ABOX_DATA=" + filepath.Join(t.TempDir(), "elsewhere")}}, "domain", "list")
		if r.Code != 0 || strings.TrimSpace(r.Stdout) != testDomain {
			t.Errorf("--data with another ABOX_DATA: %v", r)
		}
	})
}

func TestUserAdd(t *testing.T) {
	t.Parallel()
	bothModes(t, func(t *testing.T, a *abox) {
		a.OK("domain", "add", testDomain)
		u := a.addUser("alice")
		if u.Address != "alice@"+testDomain || u.State != "active" || u.Class != "standard" {
			t.Errorf("user add answered %+v", u)
		}
		addr := func(login string) string { return login + "@" + testDomain }
		add := func(stdin string, code int, address string, extra ...string) aboxtest.Result {
			t.Helper()
			return a.FailIn(stdin, code, append([]string{"user", "add", address}, extra...)...)
		}
		withPhone := []string{"--phone", testPhone, "--password-stdin"}

		// Weak passwords: refused, and nothing is written.
		for _, pw := range []string{"short1!", "password123", "bobbybobby2024", "qwertyuiop"} {
			r := add(pw+"\n", 1, addr("bobby"), withPhone...)
			if strings.Contains(r.Stderr, pw) {
				t.Errorf("the error line repeats the password: %q", r.Stderr)
			}
		}
		a.Fail(1, "user", "show", addr("bobby"))

		// Phones.
		for _, p := range []string{"123", "+12025550123", "+7abc4567890", "87011234567", "+7"} {
			add(goodPassword+"\n", 1, addr("bobby"), "--phone", p, "--password-stdin")
		}
		add(goodPassword+"\n", 2, addr("bobby"), "--password-stdin") // no --phone

		// Logins.
		for _, login := range []string{
			"admin", "Admin", "postmaster", "mailer-daemon",
			"\u0430lice", // Cyrillic а, a look-alike of alice
			"bo\u0431by", "ab", "1abc", "al..ice", "al ice", "_abc",
		} {
			add(goodPassword+"\n", 1, addr(login), withPhone...)
		}
		add(goodPassword+"\n", 1, "ALICE@"+testDomain, withPhone...) // duplicate ignoring case
		add(goodPassword+"\n", 1, addr("alice"), withPhone...)       // duplicate
		add(goodPassword+"\n", 1, addr("bobby"), "--phone", testPhone, "--class", "no-such-class", "--password-stdin")
		add(goodPassword+"\n", 1, "bobby@not-hosted.kz", withPhone...)
		add(goodPassword+"\n", 1, "not-an-address", withPhone...)

		// Passwords come from stdin with --password-stdin or a terminal
		// prompt; stdin here is never a terminal.
		add("", 2, addr("bobby"), "--phone", testPhone)
		add(goodPassword+"\n", 2, addr("bobby"), "--phone", testPhone)
		add("", 2, addr("bobby"), withPhone...)
		add("\n", 2, addr("bobby"), withPhone...)
		a.Fail(2, "user", "add", "--phone", testPhone, "--password-stdin")

		if got := a.listUsers(); !slices.Equal(got, []string{addr("alice")}) {
			t.Errorf("after the refusals, user list = %v, want only alice", got)
		}
		var adds []string
		for _, e := range a.audit() {
			if e.Action == "user.add" {
				adds = append(adds, e.Account)
			}
		}
		if !slices.Equal(adds, []string{addr("alice")}) {
			t.Errorf("audit user.add entries for %v, want only alice", adds)
		}

		// Only the first line of stdin is the password; the phone is
		// normalised; the login is stored in lower case.
		var u2 userJSON
		a.JSONIn(goodPassword+"\nsecond line\n", &u2, "user", "add", "Carol@Example.KZ", "--phone", "+7 701 123-45-67", "--password-stdin")
		if u2.Address != addr("carol") || u2.Phone != testPhone {
			t.Errorf("user add Carol@Example.KZ: %+v", u2)
		}
		if out := a.OKIn(otherPassword+"\n", "user", "add", addr("dave"), "--phone", testPhone, "--class", "organization", "--password-stdin"); !strings.Contains(out, addr("dave")) {
			t.Errorf("human user add printed %q", out)
		}
	})
}

func TestUserShowList(t *testing.T) {
	t.Parallel()
	bothModes(t, func(t *testing.T, a *abox) {
		a.OK("domain", "add", testDomain)
		a.addUser("alice")
		a.addUser("bob", "--class", "organization")

		u := a.showUser("alice@" + testDomain)
		if u.Address != "alice@"+testDomain || u.State != "active" || u.Class != "standard" || u.Phone != testPhone {
			t.Errorf("user show alice: %+v", u)
		}
		if u.Usage == nil || u.Usage.StorageLimit != standardStorage || u.Usage.MessagesLimit != 100000 || u.Usage.StorageBytes != 0 || u.Usage.Messages != 0 {
			t.Errorf("user show alice: usage %+v, want storage_limit %d, messages_limit 100000, nothing used", u.Usage, standardStorage)
		}
		if time.Since(u.CreatedAt) > time.Hour || time.Until(u.CreatedAt) > time.Hour {
			t.Errorf("created_at %v is not about now", u.CreatedAt)
		}
		if b := a.showUser("BOB@" + testDomain); b.Class != "organization" || b.Usage == nil || b.Usage.StorageLimit != organizationStorage {
			t.Errorf("user show bob: %+v", b)
		}
		out := a.OK("user", "show", "alice@"+testDomain)
		for _, want := range []string{"alice@" + testDomain, "active", "standard", "1GiB"} {
			if !strings.Contains(out, want) {
				t.Errorf("human user show lacks %q:\n%s", want, out)
			}
		}
		a.Fail(1, "user", "show", "nobody@"+testDomain)
		a.Fail(1, "user", "show", "not-an-address")
		a.Fail(2, "user", "show")

		var all []map[string]any
		a.JSON(&all, "user", "list")
		if len(all) != 2 {
			t.Fatalf("user list --json: %d entries, want 2", len(all))
		}
		for _, e := range all {
			for _, k := range []string{"address", "state", "class", "usage"} {
				if _, ok := e[k]; !ok {
					t.Errorf("user list entry lacks %q: %v", k, e)
				}
			}
		}
		if got := sortedCopy(a.listUsers("--state", "active")); !slices.Equal(got, []string{"alice@" + testDomain, "bob@" + testDomain}) {
			t.Errorf("--state active: %v", got)
		}
		for _, st := range []string{"blocked", "pending-deletion", "purged"} {
			if got := a.listUsers("--state", st); len(got) != 0 {
				t.Errorf("--state %s on a fresh store: %v", st, got)
			}
		}
		out = a.OK("user", "list")
		if !strings.Contains(out, "alice@"+testDomain) || !strings.Contains(out, "bob@"+testDomain) {
			t.Errorf("human user list:\n%s", out)
		}
		a.Fail(2, "user", "list", "--state", "bogus")
		a.Fail(2, "user", "list", "--state")
		a.Fail(2, "user", "list", "extra-arg")
	})
}

func TestUserPasswd(t *testing.T) {
	t.Parallel()
	bothModes(t, func(t *testing.T, a *abox) {
		a.OK("domain", "add", testDomain)
		a.addUser("alice")
		alice := "alice@" + testDomain
		a.OKIn(otherPassword+"\n", "user", "passwd", alice, "--password-stdin")
		a.FailIn("short\n", 1, "user", "passwd", alice, "--password-stdin")
		a.FailIn("alice-"+testDomain+"-2024!\n", 1, "user", "passwd", alice, "--password-stdin")
		a.FailIn(otherPassword+"\n", 1, "user", "passwd", "nobody@"+testDomain, "--password-stdin")
		a.FailIn(otherPassword+"\n", 2, "user", "passwd", alice) // stdin is not a terminal
		a.FailIn("", 2, "user", "passwd", alice, "--password-stdin")
		a.Fail(2, "user", "passwd", "--password-stdin")
		n := 0
		for _, e := range a.audit("--account", alice) {
			if e.Action == "user.passwd" {
				n++
			}
		}
		if n != 1 {
			t.Errorf("audit has %d user.passwd entries for alice, want 1", n)
		}
	})
}

func TestUserSet(t *testing.T) {
	t.Parallel()
	bothModes(t, func(t *testing.T, a *abox) {
		a.OK("domain", "add", testDomain)
		a.addUser("alice")
		alice := "alice@" + testDomain

		a.OK("user", "set", alice, "--class", "organization")
		u := a.showUser(alice)
		if u.Class != "organization" || u.Usage == nil || u.Usage.StorageLimit != organizationStorage || u.Usage.MessagesLimit != 1000000 {
			t.Errorf("after --class organization: %+v %+v", u, u.Usage)
		}

		var set userJSON
		a.JSON(&set, "user", "set", alice, "--quota-storage", "5MiB")
		if set.Usage == nil || set.Usage.StorageLimit != 5<<20 || !set.Usage.StorageOverride {
			t.Errorf("user set --quota-storage 5MiB answered usage %+v", set.Usage)
		}
		if u := a.showUser(alice); u.Usage.StorageLimit != 5<<20 {
			t.Errorf("after --quota-storage 5MiB: storage_limit %d", u.Usage.StorageLimit)
		}
		a.OK("user", "set", alice, "--quota-storage", "default")
		if u := a.showUser(alice); u.Usage.StorageLimit != organizationStorage || u.Usage.StorageOverride {
			t.Errorf("after --quota-storage default: %+v", u.Usage)
		}
		a.OK("user", "set", alice, "--quota-messages", "10")
		if u := a.showUser(alice); u.Usage.MessagesLimit != 10 || !u.Usage.MessagesOverride {
			t.Errorf("after --quota-messages 10: %+v", u.Usage)
		}
		a.OK("user", "set", alice, "--quota-messages", "default", "--class", "standard")
		if u := a.showUser(alice); u.Class != "standard" || u.Usage.MessagesLimit != 100000 || u.Usage.StorageLimit != standardStorage {
			t.Errorf("after --quota-messages default --class standard: %+v %+v", u, u.Usage)
		}
		a.OK("user", "set", alice, "--phone", "+7 702 000 11 22")
		if u := a.showUser(alice); u.Phone != "+77020001122" {
			t.Errorf("after --phone: phone %q", u.Phone)
		}

		for _, bad := range []string{"5XB", "5 MiB", "-1", "1.5GiB", "MiB", "5mib", ""} {
			a.Fail(2, "user", "set", alice, "--quota-storage", bad)
		}
		for _, bad := range []string{"ten", "-3", "1e3", ""} {
			a.Fail(2, "user", "set", alice, "--quota-messages", bad)
		}
		a.Fail(2, "user", "set", alice) // nothing to change
		a.Fail(1, "user", "set", alice, "--class", "no-such-class")
		a.Fail(1, "user", "set", alice, "--phone", "123")
		a.Fail(1, "user", "set", "nobody@"+testDomain, "--class", "organization")
		if u := a.showUser(alice); u.Class != "standard" || u.Phone != "+77020001122" || u.Usage.StorageLimit != standardStorage {
			t.Errorf("refused changes changed the account: %+v %+v", u, u.Usage)
		}
	})
}

func TestUserLifecycle(t *testing.T) {
	t.Parallel()
	bothModes(t, func(t *testing.T, a *abox) {
		a.OK("domain", "add", testDomain)
		a.addUser("alice")
		a.addUser("bob")
		alice, bob := "alice@"+testDomain, "bob@"+testDomain

		a.Fail(2, "user", "block", alice)
		a.Fail(2, "user", "block", alice, "--reason", "")
		a.Fail(1, "user", "block", "nobody@"+testDomain, "--reason", "x")
		a.Fail(1, "user", "unblock", alice) // not blocked
		a.OK("user", "block", alice, "--reason", "phishing reports")
		if u := a.showUser(alice); u.State != "blocked" || u.BlockReason != "phishing reports" {
			t.Errorf("after block: %+v", u)
		}
		if got := a.listUsers("--state", "blocked"); !slices.Equal(got, []string{alice}) {
			t.Errorf("--state blocked: %v", got)
		}
		if got := a.listUsers("--state", "active"); !slices.Equal(got, []string{bob}) {
			t.Errorf("--state active with alice blocked: %v", got)
		}
		a.OK("user", "unblock", alice)
		if u := a.showUser(alice); u.State != "active" || u.BlockReason != "" {
			t.Errorf("after unblock: %+v", u)
		}
		if got := a.listUsers("--state", "blocked"); len(got) != 0 {
			t.Errorf("--state blocked after unblock: %v", got)
		}

		a.Fail(1, "user", "restore", alice) // not being deleted
		before := time.Now()
		var d userJSON
		a.JSON(&d, "user", "delete", alice)
		after := time.Now()
		if d.State != "pending-deletion" || d.GraceUntil == nil || d.DeletionAt == nil {
			t.Fatalf("user delete answered %+v", d)
		}
		// "blocked for one month": about 28 to 31 days, starting now.
		if d.DeletionAt.Before(before.Add(-time.Minute)) || d.DeletionAt.After(after.Add(time.Minute)) {
			t.Errorf("deletion_at %v is not the moment of the delete (%v..%v)", d.DeletionAt, before, after)
		}
		if g := d.GraceUntil.Sub(*d.DeletionAt); g < 28*24*time.Hour || g > 31*24*time.Hour {
			t.Errorf("grace_until %v is %v after deletion_at, want about one month", d.GraceUntil, g)
		}
		if u := a.showUser(alice); u.State != "pending-deletion" || u.GraceUntil == nil || !u.GraceUntil.Equal(*d.GraceUntil) {
			t.Errorf("user show after delete: %+v", u)
		}
		if out := a.OK("user", "show", alice); !strings.Contains(out, "pending-deletion") {
			t.Errorf("human user show after delete:\n%s", out)
		}
		if got := a.listUsers("--state", "pending-deletion"); !slices.Equal(got, []string{alice}) {
			t.Errorf("--state pending-deletion: %v", got)
		}
		a.Fail(1, "user", "delete", alice) // already
		a.Fail(1, "user", "block", alice, "--reason", "x")
		a.OK("user", "restore", alice)
		if u := a.showUser(alice); u.State != "active" || u.GraceUntil != nil {
			t.Errorf("after restore: %+v", u)
		}
		if got := a.listUsers("--state", "pending-deletion"); len(got) != 0 {
			t.Errorf("--state pending-deletion after restore: %v", got)
		}
		a.Fail(1, "user", "restore", alice)

		// Nothing can be purged without a sweep a month later; the list
		// is empty but well-formed, in both outputs.
		if got := a.listUsers("--state", "purged"); len(got) != 0 {
			t.Errorf("--state purged: %v", got)
		}
		a.OK("user", "list", "--state", "purged")

		// Blocked accounts can be deleted; deletion survives an unblock
		// attempt.
		a.OK("user", "block", bob, "--reason", "abuse")
		a.OK("user", "delete", bob)
		a.Fail(1, "user", "unblock", bob)
		if u := a.showUser(bob); u.State != "pending-deletion" {
			t.Errorf("bob after block, delete, unblock: %+v", u)
		}
		a.OK("user", "restore", bob)
		if u := a.showUser(bob); u.State != "blocked" || u.BlockReason != "abuse" {
			t.Errorf("restoring must not lift the operator block: bob after restore: %+v", u)
		}
	})
}

func TestClass(t *testing.T) {
	t.Parallel()
	bothModes(t, func(t *testing.T, a *abox) {
		cs := a.classes()
		want := map[string]classJSON{
			"standard": {
				Name: "standard", Storage: 1073741824, Messages: 100000, MaxMessageSize: 26214400,
				ReceivedPerDay: 5000, SentPerDay: 500, RecipientsPerMessage: 100, IMAPCommandsPerMinute: 600,
				IMAPCommandBurst: 150000, Mailboxes: 1000, MailboxDepth: 16, MailboxNameBytes: 512,
				RetentionTrash: "30d", RetentionJunk: "30d", MaxAge: "0",
			},
			"organization": {
				Name: "organization", Storage: 10737418240, Messages: 1000000, MaxMessageSize: 52428800,
				ReceivedPerDay: 100000, SentPerDay: 10000, RecipientsPerMessage: 100, IMAPCommandsPerMinute: 600,
				IMAPCommandBurst: 1500000, Mailboxes: 5000, MailboxDepth: 16, MailboxNameBytes: 512,
				RetentionTrash: "30d", RetentionJunk: "30d", MaxAge: "0",
			},
		}
		for name, w := range want {
			if got, ok := cs[name]; !ok || got != w {
				t.Errorf("class %s:\n got %+v\nwant %+v", name, got, w)
			}
		}
		if out := a.OK("class", "list"); !strings.Contains(out, "standard") || !strings.Contains(out, "organization") {
			t.Errorf("human class list:\n%s", out)
		}

		var c classJSON
		a.JSON(&c, "class", "set", "gov", "--storage", "2GiB", "--retention-trash", "7d")
		if c.Name != "gov" || c.Storage != 2<<30 || c.RetentionTrash != "7d" {
			t.Errorf("class set gov answered %+v", c)
		}
		g := a.classes()["gov"]
		// A new class starts from standard's limits (class set --help).
		w := want["standard"]
		w.Name, w.Storage, w.RetentionTrash = "gov", 2<<30, "7d"
		if g != w {
			t.Errorf("class gov:\n got %+v\nwant %+v", g, w)
		}
		a.OK("class", "set", "gov", "--messages", "0", "--max-age", "36h", "--max-message-size", "1MiB",
			"--mailboxes", "20", "--mailbox-depth", "3", "--mailbox-name-bytes", "0", "--imap-command-burst", "900")
		g = a.classes()["gov"]
		if g.Messages != 0 || g.MaxAge != "36h0m0s" && g.MaxAge != "36h" || g.MaxMessageSize != 1<<20 || g.Storage != 2<<30 ||
			g.Mailboxes != 20 || g.MailboxDepth != 3 || g.MailboxNameBytes != 0 || g.IMAPCommandBurst != 900 {
			t.Errorf("class gov after a second set: %+v", g)
		}
		if out := a.OK("class", "list"); !strings.Contains(out, "MAILBOXES") || !strings.Contains(out, "DEPTH") || !strings.Contains(out, "IMAP BURST") {
			t.Errorf("human class list lacks the mailbox limits:\n%s", out)
		}
		// --services narrows what a class may use, and "all" widens it
		// again (it used to print success and change nothing).
		services := func() []string {
			var cs []struct {
				Name     string   `json:"name"`
				Services []string `json:"services"`
			}
			a.JSON(&cs, "class", "list")
			for _, c := range cs {
				if c.Name == "gov" {
					return c.Services
				}
			}
			t.Fatal("class gov is not listed")
			return nil
		}
		a.OK("class", "set", "gov", "--services", "imap")
		if got := services(); !slices.Equal(got, []string{"imap"}) {
			t.Errorf("services after --services imap: %v", got)
		}
		a.OK("class", "set", "gov", "--services", "all")
		if got := services(); !slices.Equal(got, []string{"imap", "submission"}) {
			t.Errorf("services after --services all: %v, want imap and submission", got)
		}

		for _, bad := range [][]string{
			{"--retention-trash", "7x"}, {"--retention-junk", "-1d"}, {"--max-age", "forever"},
			{"--storage", "2GB"}, {"--max-message-size", "-5"}, {"--messages", "many"},
			{"--sent-per-day", "1.5"}, {"--mailboxes", "-1"}, {"--mailbox-depth", "x"},
		} {
			a.Fail(2, append([]string{"class", "set", "broken"}, bad...)...)
		}
		a.Fail(2, "class", "set")
		a.Fail(1, "class", "set", "Bad Name", "--storage", "1GiB")
		if _, ok := a.classes()["broken"]; ok {
			t.Errorf("a refused class set created class broken")
		}

		// A new account of the new class gets its limits.
		a.OK("domain", "add", testDomain)
		if u := a.addUser("civil", "--class", "gov"); u.Class != "gov" || u.Usage == nil || u.Usage.StorageLimit != 2<<30 || u.Usage.MessagesLimit != 0 {
			t.Errorf("user of class gov: %+v %+v", u, u.Usage)
		}
	})
}

func TestSender(t *testing.T) {
	t.Parallel()
	bothModes(t, func(t *testing.T, a *abox) {
		var s senderJSON
		a.JSONIn(goodPassword+"\n", &s, "sender", "add", "egov", "--kind", "official",
			"--from", "noreply@egov.kz", "--from", "notices@egov.kz", "--allow-ip", "10.0.0.0/8", "--password-stdin")
		wantFrom := []string{"noreply@egov.kz", "notices@egov.kz"}
		if s.Name != "egov" || s.Kind != "official" || !slices.Equal(s.From, wantFrom) || !slices.Equal(s.AllowIP, []string{"10.0.0.0/8"}) {
			t.Errorf("sender add answered %+v", s)
		}
		a.OKIn(otherPassword+"\n", "sender", "add", "kaztelecom-billing", "--kind", "billing", "--from", "bills@telecom.kz", "--password-stdin")

		var ss []senderJSON
		a.JSON(&ss, "sender", "list")
		byName := map[string]senderJSON{}
		for _, s := range ss {
			byName[s.Name] = s
		}
		if e := byName["egov"]; len(ss) != 2 || e.Kind != "official" || !slices.Equal(e.From, wantFrom) || !slices.Equal(e.AllowIP, []string{"10.0.0.0/8"}) {
			t.Errorf("sender list: %+v", ss)
		}
		if b := byName["kaztelecom-billing"]; b.Kind != "billing" || b.AllowIP == nil || len(b.AllowIP) != 0 {
			t.Errorf("sender without --allow-ip: %+v (allow_ip should be [], meaning anywhere)", b)
		}
		if out := a.OK("sender", "list"); !strings.Contains(out, "egov") || !strings.Contains(out, "10.0.0.0/8") {
			t.Errorf("human sender list:\n%s", out)
		}

		// A bad kind is refused (SPEC allows either a usage error or a
		// refused action), with one line on stderr.
		r := a.Exec(aboxtest.RunOpts{Stdin: goodPassword + "\n"}, "sender", "add", "spammer", "--kind", "advertising", "--from", "ads@x.kz", "--password-stdin")
		if r.Code != 1 && r.Code != 2 {
			t.Errorf("bad --kind: want exit 1 or 2; %v", r)
		}
		aboxtest.CheckOneLineError(t, r)
		a.FailIn(goodPassword+"\n", 2, "sender", "add", "nofrom", "--kind", "billing", "--password-stdin")
		a.FailIn(goodPassword+"\n", 2, "sender", "add", "nokind", "--from", "a@x.kz", "--password-stdin")
		a.FailIn(goodPassword+"\n", 2, "sender", "add", "nopw", "--kind", "billing", "--from", "a@x.kz")
		a.FailIn("short\n", 1, "sender", "add", "weak", "--kind", "billing", "--from", "a@x.kz", "--password-stdin")
		a.FailIn(goodPassword+"\n", 1, "sender", "add", "badfrom", "--kind", "billing", "--from", "not-an-address", "--password-stdin")
		a.FailIn(goodPassword+"\n", 1, "sender", "add", "badnet", "--kind", "billing", "--from", "a@x.kz", "--allow-ip", "10.0.0.0/33", "--password-stdin")
		a.FailIn(goodPassword+"\n", 1, "sender", "add", "egov", "--kind", "billing", "--from", "a@x.kz", "--password-stdin") // duplicate
		a.JSON(&ss, "sender", "list")
		if len(ss) != 2 {
			t.Errorf("refused sender adds changed the list: %+v", ss)
		}

		a.OK("sender", "remove", "egov")
		a.Fail(1, "sender", "remove", "egov")
		a.Fail(2, "sender", "remove")
		ss = nil
		a.JSON(&ss, "sender", "list")
		if len(ss) != 1 || ss[0].Name != "kaztelecom-billing" {
			t.Errorf("sender list after remove: %+v", ss)
		}
	})
}

func TestAudit(t *testing.T) {
	t.Parallel()
	bothModes(t, func(t *testing.T, a *abox) {
		if es := a.audit(); es == nil || len(es) != 0 {
			t.Errorf("audit --json on a fresh store: %v, want []", es)
		}
		a.OK("domain", "add", testDomain)
		a.addUser("alice")
		a.addUser("bob")
		alice, bob := "alice@"+testDomain, "bob@"+testDomain
		a.OK("user", "block", alice, "--reason", "phishing reports")
		a.OK("user", "set", bob, "--class", "organization")

		var raw []map[string]json.RawMessage
		a.JSON(&raw, "audit")
		wantKeys := []string{"account", "action", "actor", "at", "reason"}
		for _, e := range raw {
			var keys []string
			for k := range e {
				keys = append(keys, k)
			}
			if !slices.Equal(sortedCopy(keys), wantKeys) {
				t.Errorf("audit entry keys %v, want exactly %v", sortedCopy(keys), wantKeys)
			}
		}
		es := a.audit()
		if len(es) != len(raw) || len(es) < 5 {
			t.Fatalf("audit: %d entries: %+v", len(es), es)
		}
		var block *auditJSON
		for i, e := range es {
			if e.Action == "user.block" {
				block = &es[i]
			}
			if e.At.IsZero() || e.Actor == "" {
				t.Errorf("audit entry without time or actor: %+v", e)
			}
			if i > 0 && e.At.Before(es[i-1].At) {
				t.Errorf("audit entries out of order: %+v before %+v", es[i-1], e)
			}
		}
		if block == nil || block.Account != alice || block.Reason != "phishing reports" || block.Actor != "operator" {
			t.Errorf("audit user.block entry: %+v", block)
		}

		forAlice := a.audit("--account", alice)
		var actions []string
		for _, e := range forAlice {
			if e.Account != alice {
				t.Errorf("audit --account %s returned %+v", alice, e)
			}
			actions = append(actions, e.Action)
		}
		if !slices.Contains(actions, "user.add") || !slices.Contains(actions, "user.block") || slices.Contains(actions, "user.set") {
			t.Errorf("audit --account alice: actions %v", actions)
		}
		for _, e := range a.audit("--account", "BOB@"+testDomain) {
			if e.Account != bob || e.Action == "user.block" {
				t.Errorf("audit --account BOB: %+v", e)
			}
		}
		if es := a.audit("--account", "nobody@"+testDomain); len(es) != 0 {
			t.Errorf("audit for an unknown account: %+v", es)
		}
		if es := a.audit("--since", "1h"); len(es) != len(raw) {
			t.Errorf("audit --since 1h: %d entries, want %d", len(es), len(raw))
		}
		if es := a.audit("--since", time.Now().Add(24*time.Hour).UTC().Format(time.RFC3339)); len(es) != 0 {
			t.Errorf("audit --since tomorrow: %+v", es)
		}
		if es := a.audit("--since", "2000-01-01"); len(es) != len(raw) {
			t.Errorf("audit --since 2000-01-01: %d entries, want %d", len(es), len(raw))
		}
		a.Fail(2, "audit", "--since", "last tuesday")
		a.Fail(1, "audit", "--account", "not-an-address")
		if out := a.OK("audit"); !strings.Contains(out, "user.block") || !strings.Contains(out, "phishing reports") {
			t.Errorf("human audit:\n%s", out)
		}
	})
}

func TestBackupCheck(t *testing.T) {
	aboxtest.SkipInCluster(t, "abox backup and abox check work on the bbolt file (PostgreSQL: pg_dump, amcheck)")
	t.Parallel()
	bothModes(t, func(t *testing.T, a *abox) {
		if out := a.OK("check"); !strings.Contains(out, "ok") {
			t.Errorf("check on a fresh store:\n%s", out)
		}
		a.OK("domain", "add", testDomain)
		a.addUser("alice")
		// One message large enough for a body segment: the backup must
		// carry it inside the one file.
		big := strings.Repeat("a line of the attachment, repeated\n", 1000)
		mbox := filepath.Join(t.TempDir(), "in.mbox")
		if err := os.WriteFile(mbox, []byte("From a@example.org Mon Jan  2 15:04:05 2006\nSubject: big\n\n"+big+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		a.OK("import", "alice@"+testDomain, mbox)
		if segs, _ := filepath.Glob(filepath.Join(a.Dir, "abox.db.bodies", "*.seg")); len(segs) == 0 {
			t.Fatal("the large message is not in a body segment: the test proves nothing")
		}
		a.OK("user", "block", "alice@"+testDomain, "--reason", "before backup")

		file := filepath.Join(t.TempDir(), "backup.db")
		var res struct {
			File  string `json:"file"`
			Bytes int64  `json:"bytes"`
		}
		a.JSON(&res, "backup", file)
		fi, err := os.Stat(file)
		if err != nil {
			t.Fatalf("backup wrote no file: %v", err)
		}
		if res.File != file || res.Bytes != fi.Size() || fi.Size() == 0 {
			t.Errorf("backup answered %+v; the file has %d bytes", res, fi.Size())
		}
		// It holds password hashes: no access for group or others.
		if fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("backup file mode %v, want no group or other access", fi.Mode())
		}
		// A relative FILE is relative to the working directory.
		a.OK("backup", "rel.db")
		if _, err := os.Stat(filepath.Join(a.WD, "rel.db")); err != nil {
			t.Errorf("backup rel.db: %v", err)
		}
		a.Fail(2, "backup")
		a.Fail(2, "backup", filepath.Join(a.Dir, "abox.db")) // the live database
		// A backup into a directory that does not exist: the CLI gives up
		// once the stream has begun; the server sees the command go away
		// and logs that at INFO (a client's typo is no server error).
		a.Fail(1, "backup", filepath.Join(t.TempDir(), "no", "such", "dir", "b.db"))

		// The backup is a working data directory of its own.
		restored := filepath.Join(t.TempDir(), "restored")
		if err := os.Mkdir(restored, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(file, filepath.Join(restored, "abox.db")); err != nil {
			t.Fatal(err)
		}
		b := aboxAt(t, restored)
		if out := b.OK("check"); !strings.Contains(out, "ok") || strings.Contains(out, "problem") {
			t.Errorf("check of the backup:\n%s", out)
		}
		var rep struct {
			Accounts int             `json:"accounts"`
			Problems json.RawMessage `json:"problems"`
		}
		b.JSON(&rep, "check")
		if rep.Accounts != 1 || string(rep.Problems) != "[]" {
			t.Errorf("check --json of the backup: %+v", rep)
		}
		if u := b.showUser("alice@" + testDomain); u.State != "blocked" || u.BlockReason != "before backup" {
			t.Errorf("alice in the backup: %+v", u)
		}
		out := filepath.Join(t.TempDir(), "out.mbox")
		b.OK("export", "alice@"+testDomain, out)
		if got, err := os.ReadFile(out); err != nil || !strings.Contains(string(got), big) {
			t.Errorf("the large message in the backup: %d bytes, %v", len(got), err)
		}

		// The live store is still fine after the backups.
		a.JSON(&rep, "check")
		if rep.Accounts != 1 || string(rep.Problems) != "[]" {
			t.Errorf("check --json of the live store: %+v", rep)
		}
	})
}

func TestJSONFlagAnywhere(t *testing.T) {
	t.Parallel()
	bothModes(t, func(t *testing.T, a *abox) {
		a.OK("domain", "add", testDomain)
		for _, args := range [][]string{
			{"--json", "--data", a.Dir, "domain", "list"},
			{"--data", a.Dir, "--json", "domain", "list"},
			{"--data", a.Dir, "domain", "--json", "list"},
			{"--data", a.Dir, "domain", "list", "--json"},
			{"domain", "list", "--json", "--data", a.Dir},
		} {
			r := a.Exec(aboxtest.RunOpts{Bare: true}, args...)
			var ds []struct {
				Domain string `json:"domain"`
			}
			if r.Code != 0 || json.Unmarshal([]byte(r.Stdout), &ds) != nil || len(ds) != 1 || ds[0].Domain != testDomain {
				t.Errorf("want a JSON list with %s; %v", testDomain, r)
			}
		}
		var cs []classJSON
		a.JSON(&cs, "class", "list")
		r := a.Run("--json", "class", "list")
		if r.Code != 0 || !json.Valid([]byte(r.Stdout)) {
			t.Errorf("--json class list: %v", r)
		}
		// Without --json the output is not JSON.
		if out := a.OK("domain", "list"); json.Valid([]byte(out)) {
			t.Errorf("domain list without --json printed JSON: %q", out)
		}
	})
}

// TestUsageErrors covers command lines that never reach the store.
func TestUsageErrors(t *testing.T) {
	t.Parallel()
	a := newAbox(t)
	if err := os.Remove(a.Dir); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{},
		{"frobnicate"},
		{"user"},
		{"user", "frobnicate"},
		{"user", "list", "--no-such-flag"},
		{"domain", "list", "extra"},
		{"--json=maybe", "domain", "list"},
		{"class", "set", "x", "--storage"},
	} {
		a.Fail(2, args...)
	}
	if _, err := os.Stat(a.Dir); err == nil {
		t.Errorf("usage errors created the data directory %s", a.Dir)
	}
}

// TestServe covers what only a running server has: the lock against a
// second server, the control socket, HTTP, and a clean stop.
func TestServe(t *testing.T) {
	t.Parallel()
	a := newAbox(t)
	a.srv = a.Start()
	sock := filepath.Join(a.Dir, "control.sock")

	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatalf("control socket: %v", err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Errorf("control socket mode %v, want a socket with 0600", fi.Mode())
	}

	// A second server on the same data directory is refused, and leaves
	// the first one's socket alone.
	second := a.Exec(aboxtest.RunOpts{Bare: true}, a.ServeArgs()...)
	if second.Code != 1 || !strings.Contains(second.Stderr, "already running") {
		t.Errorf("second serve: want exit 1 mentioning \"already running\"; %v", second)
	}
	aboxtest.CheckOneLineError(t, second)
	a.OK("domain", "add", testDomain)

	hc := &http.Client{Timeout: 30 * time.Second}
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := hc.Get("http://" + a.srv.Addr("http") + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		return resp.StatusCode, string(body)
	}
	if code, body := get("/healthz"); code != 200 || strings.TrimSpace(body) != "ok" {
		t.Errorf("/healthz: %d %q, want 200 ok", code, body)
	}
	code, body := get("/metrics")
	if aboxtest.InCluster() {
		// PostgreSQL's pool where the bbolt writer's commits are.
		if code != 200 || metricValue(body, "abox_pg_pool_max_connections") <= 0 {
			t.Errorf("/metrics: %d, abox_pg_pool_max_connections missing:\n%.2000s", code, body)
		}
	} else {
		if code != 200 || !strings.Contains(body, "abox_store_commits_total") {
			t.Errorf("/metrics: %d, abox_store_commits_total missing:\n%.2000s", code, body)
		}
		if n := metricValue(body, "abox_store_commits_total"); n < 1 {
			t.Errorf("abox_store_commits_total = %v after a domain add through the server, want at least 1", n)
		}
	}
	if code, _ := get("/no-such-page"); code != 404 {
		t.Errorf("/no-such-page: %d, want 404", code)
	}

	// The server logs JSON when stderr is not a terminal; the ready line
	// names every listener where it accepts (the harness asks for port
	// 0: the port the kernel gave).
	var ready map[string]any
	for _, l := range a.srv.Log.Lines() {
		if strings.Contains(l, `"msg":"ready"`) {
			if err := json.Unmarshal([]byte(l), &ready); err != nil {
				t.Errorf("ready line is not JSON: %q", l)
			}
			break
		}
	}
	for _, name := range aboxtest.Listeners {
		addr, _ := ready[name].(string)
		if addr == "" || strings.HasSuffix(addr, ":0") {
			t.Errorf("ready line %v does not name the %s listener's address", ready, name)
			continue
		}
		c, err := net.DialTimeout("tcp", addr, netTimeout)
		if err != nil {
			t.Errorf("the ready line names %s for the %s listener, which does not accept: %v", addr, name, err)
			continue
		}
		c.Close()
	}

	a.srv.Stop()
	if _, err := os.Lstat(sock); err == nil {
		t.Errorf("control socket %s still exists after the server stopped", sock)
	}
	if ds := a.domains(); !slices.Equal(ds, []string{testDomain}) {
		t.Errorf("direct domain list after stop: %v", ds)
	}
	a.OK("domain", "add", "after-stop.kz")

	// A server that dies leaves a stale socket; direct mode still works
	// and the next server replaces the socket.
	a.srv = a.Start()
	a.srv.Kill()
	if _, err := os.Lstat(sock); err != nil {
		t.Logf("no stale socket after SIGKILL (%v); the rest still applies", err)
	}
	if ds := a.domains(); !slices.Equal(sortedCopy(ds), []string{"after-stop.kz", testDomain}) {
		t.Errorf("direct domain list after a crash: %v", ds)
	}
	a.srv = a.Start()
	a.OK("domain", "add", "third.kz")
	if aboxtest.InCluster() { // abox check is bbolt's
		if ds := a.domains(); len(ds) != 3 {
			t.Errorf("domains through a restarted cluster: %v", ds)
		}
	} else if out := a.OK("check"); !strings.Contains(out, "ok") {
		t.Errorf("check through a restarted server:\n%s", out)
	}
	a.srv.StopWith(syscall.SIGINT)
	if ds := a.domains(); len(ds) != 3 {
		t.Errorf("domains after three servers: %v", ds)
	}
}

// TestServeConcurrentClients runs several commands at once through one
// server: each must succeed, and every write must land.
func TestServeConcurrentClients(t *testing.T) {
	t.Parallel()
	a := newAbox(t)
	a.srv = a.Start()
	a.OK("domain", "add", testDomain)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failed []aboxtest.Result
	do := func(stdin string, args ...string) {
		wg.Go(func() {
			r := a.Exec(aboxtest.RunOpts{Stdin: stdin}, args...)
			if r.Code != 0 {
				mu.Lock()
				failed = append(failed, r)
				mu.Unlock()
			}
		})
	}
	const users = 6
	for i := range users {
		do(goodPassword+"\n", "user", "add", fmt.Sprintf("user%d@%s", i, testDomain), "--phone", testPhone, "--password-stdin")
		do("", "user", "list", "--json")
	}
	if !aboxtest.InCluster() { // abox check is bbolt's
		do("", "check")
	}
	do("", "audit")
	wg.Wait()
	for _, r := range failed {
		t.Errorf("concurrent command failed: %v", r)
	}
	if got := a.listUsers(); len(got) != users {
		t.Errorf("user list after %d concurrent adds: %v", users, got)
	}
}

// TestDirectCommandsShareTheStore: with no server, two admin commands run
// at the same moment (an operator's and a cron job's) both open abox.db.
// One holding the file for a couple of seconds (a backup of a large
// store, a slow password hash) must make the other wait, not fail with
// a message about a server that is not running. The lock is taken here
// as bbolt takes it (flock on abox.db).
func TestDirectCommandsShareTheStore(t *testing.T) {
	aboxtest.SkipInCluster(t, "direct commands sharing the bbolt file's lock (flock on abox.db)")
	t.Parallel()
	a := newAbox(t)
	a.OK("domain", "add", testDomain)
	f, err := os.OpenFile(filepath.Join(a.Dir, "abox.db"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatalf("flock: %v", err)
	}
	const hold = 2 * time.Second
	released := make(chan struct{})
	go func() {
		defer close(released)
		time.Sleep(hold)
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	}()
	r := a.Run("domain", "list")
	<-released
	if r.Code != 0 {
		aboxtest.CheckOneLineError(t, r)
		if strings.Contains(r.Stderr, "abox serve") {
			t.Errorf("no server runs (no control socket), yet the error names one; %v", r)
		}
		t.Errorf("a direct command should wait %v for another command's lock on abox.db; %v", hold, r)
	} else if strings.TrimSpace(r.Stdout) != testDomain {
		t.Errorf("domain list after waiting: %v", r)
	}
}

// metricValue returns the value of an unlabelled metric in Prometheus
// text format, or -1.
func metricValue(text, name string) float64 {
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 && f[0] == name {
			v, err := strconv.ParseFloat(f[1], 64)
			if err == nil {
				return v
			}
		}
	}
	return -1
}

func TestBadDataDir(t *testing.T) {
	t.Parallel()

	t.Run("regular-file", func(t *testing.T) {
		t.Parallel()
		a := newAbox(t)
		if err := os.Remove(a.Dir); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(a.Dir, []byte("not a directory\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		for _, args := range [][]string{
			{"domain", "list"},
			{"domain", "add", testDomain},
			{"check"},
		} {
			r := a.Fail(1, args...)
			if !strings.Contains(r.Stderr, "not a directory") {
				t.Errorf("want a clear error saying the data dir is not a directory; %v", r)
			}
		}
		r := a.Exec(aboxtest.RunOpts{Bare: true, Env: []string{"ABOX_DATA=" + a.Dir}}, "user", "list")
		if r.Code != 1 {
			t.Errorf("ABOX_DATA naming a file: want exit 1; %v", r)
		}
		aboxtest.CheckOneLineError(t, r)
		// With --config given, the data directory is reached by the store.
		cfg := filepath.Join(t.TempDir(), "abox.toml")
		if err := os.WriteFile(cfg, []byte("log-level = \"info\"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		a.Fail(1, "--config", cfg, "domain", "list")
		r = a.Exec(aboxtest.RunOpts{Bare: true}, a.ServeArgs()...)
		if r.Code != 1 {
			t.Errorf("serve on a file: want exit 1; %v", r)
		}
		aboxtest.CheckOneLineError(t, r)
		if b, err := os.ReadFile(a.Dir); err != nil || string(b) != "not a directory\n" {
			t.Errorf("the file changed: %q %v", b, err)
		}
	})

	t.Run("corrupt-db", func(t *testing.T) {
		t.Parallel()
		aboxtest.SkipInCluster(t, "a corrupt bbolt file")
		a := newAbox(t)
		db := filepath.Join(a.Dir, "abox.db")
		junk := make([]byte, 64<<10)
		rand.Read(junk)
		if err := os.WriteFile(db, junk, 0o600); err != nil {
			t.Fatal(err)
		}
		for _, args := range [][]string{
			{"user", "list"},
			{"domain", "add", testDomain},
			{"check"},
			{"backup", filepath.Join(t.TempDir(), "b.db")},
		} {
			r := a.Fail(1, args...)
			if !strings.Contains(r.Stderr, "corrupt") {
				t.Errorf("want an error mentioning \"corrupt\"; %v", r)
			}
		}
		r := a.FailIn(goodPassword+"\n", 1, "user", "add", "alice@"+testDomain, "--phone", testPhone, "--password-stdin")
		if !strings.Contains(r.Stderr, "corrupt") {
			t.Errorf("want an error mentioning \"corrupt\"; %v", r)
		}
		r = a.Exec(aboxtest.RunOpts{Bare: true}, a.ServeArgs()...)
		if r.Code != 1 || !strings.Contains(r.Stderr, "corrupt") {
			t.Errorf("serve on a corrupt database: want exit 1 mentioning \"corrupt\"; %v", r)
		}
		aboxtest.CheckOneLineError(t, r)
		after, err := os.ReadFile(db)
		if err != nil || !bytes.Equal(after, junk) {
			t.Errorf("the corrupt database was changed (%v)", err)
		}
		if _, err := os.Lstat(filepath.Join(a.Dir, "control.sock")); err == nil {
			t.Errorf("serve left a control socket behind")
		}
	})
}

func TestConfigFile(t *testing.T) {
	t.Parallel()

	t.Run("unknown-key", func(t *testing.T) {
		t.Parallel()
		a := newAbox(t)
		cfg := filepath.Join(t.TempDir(), "f.toml")
		if err := os.WriteFile(cfg, []byte("bogus-key = 1\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		for _, args := range [][]string{
			{"--config", cfg, "domain", "list"},
			{"domain", "list", "--config", cfg},
		} {
			r := a.Run(args...)
			if r.Code == 0 || !strings.Contains(r.Stderr, "bogus-key") {
				t.Errorf("want a failure naming bogus-key; %v", r)
			}
			aboxtest.CheckOneLineError(t, r)
		}
		r := a.Exec(aboxtest.RunOpts{Bare: true}, append([]string{"--config", cfg}, a.ServeArgs()...)...)
		if r.Code == 0 || !strings.Contains(r.Stderr, "bogus-key") {
			t.Errorf("serve: want a failure naming bogus-key; %v", r)
		}
		aboxtest.CheckOneLineError(t, r)

		// The same file as DIR/abox.toml is read without --config.
		if err := os.MkdirAll(a.Dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(a.Dir, "abox.toml"), []byte("[listen]\nbogus-key = 1\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		r = a.Run("domain", "list")
		if r.Code == 0 || !strings.Contains(r.Stderr, "listen") {
			t.Errorf("DIR/abox.toml with an unknown table: want a failure naming it; %v", r)
		}
		aboxtest.CheckOneLineError(t, r)
	})

	t.Run("missing-and-malformed", func(t *testing.T) {
		t.Parallel()
		a := newAbox(t)
		a.Fail(1, "--config", filepath.Join(t.TempDir(), "absent.toml"), "domain", "list")
		bad := filepath.Join(t.TempDir(), "bad.toml")
		if err := os.WriteFile(bad, []byte("log-level = \n"), 0o600); err != nil {
			t.Fatal(err)
		}
		a.Fail(1, "--config", bad, "domain", "list")
		wrong := filepath.Join(t.TempDir(), "wrong.toml")
		if err := os.WriteFile(wrong, []byte("log-level = \"loud\"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		a.Fail(1, "--config", wrong, "domain", "list")
	})

	// Keys mirror the flags and change the rules the CLI applies.
	t.Run("rules", func(t *testing.T) {
		t.Parallel()
		a := newAbox(t)
		cfg := filepath.Join(t.TempDir(), "rules.toml")
		if err := os.WriteFile(cfg, []byte(fmt.Sprintf("data = %q\nreserved-logins = [\"alice\"]\nphone-prefixes = [\"+7\", \"+1\"]\n", a.Dir)), 0o600); err != nil {
			t.Fatal(err)
		}
		r := a.Exec(aboxtest.RunOpts{Bare: true}, "--config", cfg, "domain", "add", testDomain)
		if r.Code != 0 {
			t.Fatalf("data from --config: %v", r)
		}
		r = a.Exec(aboxtest.RunOpts{Bare: true, Stdin: goodPassword + "\n"}, "--config", cfg, "user", "add", "alice@"+testDomain, "--phone", testPhone, "--password-stdin")
		if r.Code != 1 {
			t.Errorf("reserved-logins from the config: want exit 1; %v", r)
		}
		aboxtest.CheckOneLineError(t, r)
		r = a.Exec(aboxtest.RunOpts{Bare: true, Stdin: goodPassword + "\n"}, "--config", cfg, "user", "add", "admin@"+testDomain, "--phone", "+12025550123", "--password-stdin")
		if r.Code != 0 {
			t.Errorf("admin is no longer reserved and +1 is allowed: %v", r)
		}
	})
}

func sortedCopy(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// TestReadOnlyCommandsNeedTheDataDir: a mistyped --data must not look like
// an empty server, nor create a directory.
func TestReadOnlyCommandsNeedTheDataDir(t *testing.T) {
	t.Parallel()
	a := newAbox(t)
	if err := os.Remove(a.Dir); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"check"}, {"user", "list"}, {"audit"}, {"class", "list"}} {
		if r := a.Fail(1, args...); !strings.Contains(r.Stderr, "does not exist") {
			t.Errorf("%v: stderr %q", args, r.Stderr)
		}
	}
	if _, err := os.Stat(a.Dir); err == nil {
		t.Errorf("a read-only command created %s", a.Dir)
	}
}
