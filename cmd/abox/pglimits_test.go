package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"abox/policy"
	"abox/store/pgstore"
	"abox/store/pgstore/pgtest"
)

// Failed logins on several nodes (issue 18): on the PostgreSQL backend
// the counters and lockouts are the database's, so a guesser who
// alternates between nodes is locked after as many tries as on one
// node, and the lockout holds on every node.

var _ policy.SharedLogins = (*pgstore.Store)(nil)

// lockTime is the end of a lockout as a refusal writes it.
var lockTime = regexp.MustCompile(`try again after (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)`)

// normalReply is a login reply with the end of its lockout left out, to
// compare replies given at different times.
func normalReply(r string) string { return lockTime.ReplaceAllString(r, "try again after TIME") }

// lockedUntil is the end of the lockout a refusal names.
func lockedUntil(t *testing.T, reply string) time.Time {
	t.Helper()
	m := lockTime.FindStringSubmatch(reply)
	if m == nil {
		t.Fatalf("no lockout in %q", reply)
	}
	until, err := time.Parse(time.RFC3339, m[1])
	if err != nil {
		t.Fatal(err)
	}
	return until
}

// imapLoginReply is the tagged reply to LOGIN on a new IMAP connection.
func imapLoginReply(t *testing.T, addr, user, password string) string {
	t.Helper()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: netTimeout}, "tcp", addr, &tls.Config{ServerName: "test.local", InsecureSkipVerify: true})
	if err != nil {
		t.Errorf("imaps dial %s: %v", addr, err)
		return ""
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(netTimeout))
	r := bufio.NewReader(conn)
	if line, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(line, "* OK") {
		t.Errorf("IMAP greeting: %q %v", line, err)
		return ""
	}
	fmt.Fprintf(conn, "a1 LOGIN %q %q\r\n", user, password)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Errorf("IMAP LOGIN: %v", err)
			return ""
		}
		if rest, ok := strings.CutPrefix(line, "a1 "); ok {
			return strings.TrimSpace(rest)
		}
	}
}

// submissionAuthReply is the reply to AUTH PLAIN on a new submission
// connection.
func submissionAuthReply(t *testing.T, addr, user, password string) string {
	t.Helper()
	c, err := dialSubmission(addr)
	if err != nil {
		t.Errorf("submission %s: %v", addr, err)
		return ""
	}
	defer c.Close()
	host, _, _ := net.SplitHostPort(addr)
	if err := c.Auth(plainAuth(user, password, host)); err != nil {
		code, msg := smtpCode(err)
		return fmt.Sprintf("%d %s", code, msg)
	}
	return "235"
}

// loginService is one protocol's login, its listener and its replies.
type loginService struct {
	name     string
	listener string
	login    func(t *testing.T, addr, user, password string) string
	ok       func(reply string) bool
	locked   func(reply string) bool
}

var loginServices = []loginService{
	{"IMAP", "imaps", imapLoginReply,
		func(r string) bool { return strings.HasPrefix(r, "OK") },
		func(r string) bool { return strings.HasPrefix(r, "NO [LIMIT]") }},
	{"submission", "submission", submissionAuthReply,
		func(r string) bool { return r == "235" },
		func(r string) bool { return strings.HasPrefix(r, "450 4.7.1") }},
}

// guessUntilLocked tries wrong passwords for user, the i-th on
// nodes[i % len(nodes)], until one is refused as locked; it returns
// every reply.
func guessUntilLocked(t *testing.T, svc loginService, nodes []*abox, user string) []string {
	t.Helper()
	var replies []string
	for i := 0; i < 30; i++ {
		r := svc.login(t, nodes[i%len(nodes)].srv.Addr(svc.listener), user, fmt.Sprintf("wrong guess %d", i))
		replies = append(replies, r)
		if svc.locked(r) || r == "" {
			break
		}
	}
	return replies
}

// TestPostgresLoginLockout: wrong passwords sent alternately to two
// nodes on one database, over IMAP and submission, are locked out
// after the same number of tries, with the same replies, as on one
// bbolt node; the correct password is then refused on both nodes with
// the bbolt node's reply until the lockout ends, and accepted on both
// after it.
func TestPostgresLoginLockout(t *testing.T) {
	t.Parallel()
	// A lockout of 30 s instead of the default minute: the test waits it
	// out, and the guessers' growing delays leave it the margin to see
	// the lockout hold first.
	const lockout = "login-lockout = '30s'"
	c := newPGCluster(t, false, "outbound = false", "argon2-memory-kib = 64", "argon2-iterations = 1", lockout)
	n1, n2 := c.node(), c.node()
	c.serve(n1)
	c.serve(n2)
	n1.OK("domain", "add", testDomain)
	bolt := newAbox(t)
	fastHashing(t, bolt.Dir, lockout)
	bolt.OK("domain", "add", testDomain)
	// One account per service, so that the services' tries do not add
	// up (127.0.0.1 is a trusted network: there is no per-IP counter).
	users := map[string]string{}
	for _, svc := range loginServices {
		login := strings.ToLower(svc.name)
		n1.addUser(login)
		bolt.addUser(login)
		users[svc.name] = login + "@" + testDomain
	}
	bolt.srv = bolt.Start()

	type run struct {
		svc     loginService
		nodes   []*abox
		replies []string
	}
	var runs []*run
	for _, svc := range loginServices {
		runs = append(runs, &run{svc: svc, nodes: []*abox{bolt}}, &run{svc: svc, nodes: []*abox{n1, n2}})
	}
	// The four guessers run at once (each failure is answered after a
	// growing delay: about 15 s each).
	var wg sync.WaitGroup
	for _, r := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.replies = guessUntilLocked(t, r.svc, r.nodes, users[r.svc.name])
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	var until time.Time
	for i := 0; i < len(runs); i += 2 {
		bolt, pg := runs[i], runs[i+1]
		svc := bolt.svc
		// One node's memory: 10 failures a minute, or in a row; the
		// 11th failure locks, the 12th try is refused.
		if n := len(bolt.replies); n != 12 || !svc.locked(bolt.replies[n-1]) {
			t.Errorf("%s on bbolt: %d tries, the last %q; want the 12th locked out", svc.name, n, bolt.replies[n-1])
		}
		if len(pg.replies) != len(bolt.replies) {
			t.Errorf("%s on two PostgreSQL nodes: locked out at try %d (%q), on one bbolt node at try %d",
				svc.name, len(pg.replies), pg.replies[len(pg.replies)-1], len(bolt.replies))
			continue
		}
		for j := range pg.replies {
			if normalReply(pg.replies[j]) != normalReply(bolt.replies[j]) {
				t.Errorf("%s try %d: %q on PostgreSQL (node %d), %q on bbolt", svc.name, j+1, pg.replies[j], j%2+1, bolt.replies[j])
			}
		}
		if u := lockedUntil(t, pg.replies[len(pg.replies)-1]); u.After(until) {
			until = u
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	// The right password, during the lockout: refused on every node as
	// on bbolt.
	for _, svc := range loginServices {
		user := users[svc.name]
		want := normalReply(svc.login(t, bolt.srv.Addr(svc.listener), user, goodPassword))
		if !svc.locked(want) {
			t.Fatalf("%s on bbolt: the right password during the lockout: %q", svc.name, want)
		}
		for i, n := range []*abox{n1, n2} {
			if got := svc.login(t, n.srv.Addr(svc.listener), user, goodPassword); normalReply(got) != want {
				t.Errorf("%s on node %d: the right password during the lockout: %q, want %q as on bbolt", svc.name, i+1, got, want)
			}
		}
	}

	// After it (the time in the reply is cut to the second), accepted
	// on both nodes.
	time.Sleep(time.Until(until.Add(1500 * time.Millisecond)))
	for _, svc := range loginServices {
		user := users[svc.name]
		if r := svc.login(t, bolt.srv.Addr(svc.listener), user, goodPassword); !svc.ok(r) {
			t.Errorf("%s on bbolt after the lockout: %q", svc.name, r)
		}
		if r := svc.login(t, n2.srv.Addr(svc.listener), user, goodPassword); !svc.ok(r) {
			t.Errorf("%s on node 2 after the lockout: %q", svc.name, r)
		}
		between := time.Now()
		if r := svc.login(t, n1.srv.Addr(svc.listener), user, goodPassword); !svc.ok(r) {
			t.Errorf("%s on node 1 after the lockout: %q", svc.name, r)
		}
		// Node 2's success made the network known and ended the
		// account's streak, for both nodes; node 1's, with nothing to
		// clear and the network known a moment ago, wrote nothing.
		pair, acct := loginRow(t, c.dsn, "pair:"+user+"|127.0.0.0/24"), loginRow(t, c.dsn, "acct:"+user)
		if pair.success == 0 || pair.success >= between.UnixNano() || acct.streak != 0 {
			t.Errorf("%s after the successes: pair known at %d (node 1's success began at %d), account's streak %d",
				svc.name, pair.success, between.UnixNano(), acct.streak)
		}
	}
}

type loginRowView struct {
	streak  int
	success int64
}

// loginRow reads a failed-login counter from the database.
func loginRow(t *testing.T, dsn, name string) loginRowView {
	t.Helper()
	ctx := context.Background()
	conn := pgConnect(t, dsn)
	defer conn.Close(ctx)
	key := sha256.Sum256([]byte(name))
	var v loginRowView
	if err := conn.QueryRow(ctx, `SELECT streak, last_success FROM login_counters WHERE key = $1`, key[:]).Scan(&v.streak, &v.success); err != nil {
		t.Fatalf("counter %s: %v", name, err)
	}
	return v
}

// TestPostgresSharedLoginRules: policy's rules for failed logins (its
// TestFailedLoginsByNetwork and TestSlowGuesserIsLocked), on two engines
// over two stores on one database, each try through the other node: the
// counters, the known networks and the lockouts are the same as one
// node's.
func TestPostgresSharedLoginRules(t *testing.T) {
	t.Parallel()
	dsn := pgtest.Database(t)
	var nodes [2]*policy.RateLimits
	var now time.Time
	for i := range nodes {
		s, err := pgstore.Open(context.Background(), pgstore.Options{DSN: dsn})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		nodes[i] = policy.New(s, policy.Config{FailedLoginsPerMinute: 3, KnownLoginTTL: 30 * 24 * time.Hour, KnownLogins: 10,
			Clock: func() time.Time { return now }}).Limits
	}
	turn := 0
	node := func() *policy.RateLimits { turn++; return nodes[turn%2] }
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now = t0
	home, attacker, stranger := netip.MustParseAddr("198.51.100.7"), netip.MustParseAddr("203.0.113.9"), netip.MustParseAddr("192.0.2.1")

	// By network (FailedLoginsPerMinute 3).
	node().LoginSucceeded(home, "a@x", t0)
	for range 5 {
		node().LoginFailed(attacker, "a@x", t0)
	}
	for _, n := range nodes {
		if _, err := n.LoginAllowed(attacker, "b@x", t0); err == nil {
			t.Error("the guessing address may go on with another account")
		}
		if _, err := n.LoginAllowed(stranger, "a@x", t0); err == nil {
			t.Error("an address new to the account may go on guessing it")
		}
		if d, err := n.LoginAllowed(home, "a@x", t0); err != nil || d != 0 {
			t.Errorf("the subscriber's own network: delay %v, %v; want no delay, allowed", d, err)
		}
	}
	for range 5 {
		node().LoginFailed(home, "a@x", t0)
	}
	if _, err := node().LoginAllowed(home, "a@x", t0); err == nil {
		t.Error("failures from the subscriber's own network are not limited")
	}
	node().LoginSucceeded(netip.MustParseAddr("198.51.100.8"), "a@x", t0.Add(2*time.Minute))
	later := t0.Add(2*time.Minute + 31*24*time.Hour)
	if _, err := node().LoginAllowed(home, "a@x", later); err != nil {
		t.Errorf("after its lock ended: %v", err)
	}
	for range 5 {
		node().LoginFailed(attacker, "a@x", later)
	}
	if _, err := node().LoginAllowed(home, "a@x", later); err == nil {
		t.Error("a network whose last success is past the TTL is still exempt from the account's counter")
	}

	// A slow guesser (FailedLoginsPerMinute 3, tries 25 s apart: slower
	// than the bucket refills) is locked by its streak: the 4th failure
	// locks, and the delay grows by 250 ms a failure.
	now = later.Add(time.Hour)
	guesser := netip.MustParseAddr("203.0.113.77")
	tries := 0
	for ; tries < 10; tries++ {
		d, err := node().LoginAllowed(guesser, "c@x", now)
		if err != nil {
			break
		}
		if want := time.Duration(tries) * 250 * time.Millisecond; d != want {
			t.Errorf("try %d: delay %v, want %v", tries+1, d, want)
		}
		node().LoginFailed(guesser, "c@x", now)
		now = now.Add(25 * time.Second)
	}
	if tries != 4 {
		t.Errorf("locked after %d failures spaced 25 s apart; want after 4", tries)
	}
	_, err := nodes[0].LoginAllowed(guesser, "c@x", now)
	_, err2 := nodes[1].LoginAllowed(guesser, "c@x", now)
	if err == nil || err2 == nil || err.Error() != err2.Error() || !strings.Contains(err.Error(), "too many failed logins; try again after") {
		t.Errorf("the lockout through each node: %v / %v", err, err2)
	}
	now = now.Add(2 * time.Minute)
	node().LoginSucceeded(guesser, "c@x", now)
	node().LoginFailed(guesser, "d@x", now)
	if _, err := node().LoginAllowed(guesser, "d@x", now); err != nil {
		t.Errorf("one failure after a success locks: %v", err)
	}
}
