package main

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// apiClient talks to the provisioning API of a running server.
type apiClient struct {
	t    *testing.T
	base string // https://host:port
	hc   *http.Client
}

func newAPIClient(t *testing.T, a *abox) *apiClient {
	return &apiClient{t: t, base: "https://" + a.srv.Addr("https"), hc: &http.Client{Timeout: netTimeout,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}}
}

type apiResult struct {
	status int
	header http.Header
	body   []byte
}

// problem decodes an RFC 9457 answer, failing unless it is one.
func (r apiResult) problem(t *testing.T) problem {
	t.Helper()
	var p problem
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("answer %d with Content-Type %q, want application/problem+json: %s", r.status, ct, r.body)
	}
	if err := json.Unmarshal(r.body, &p); err != nil || p.Status != r.status || !strings.HasPrefix(p.Type, "urn:abox:problem:") || p.Title == "" {
		t.Fatalf("not a problem document (%v): %s", err, r.body)
	}
	return p
}

func (c *apiClient) do(method, path, token string, body any, header ...string) apiResult {
	c.t.Helper()
	var rd io.Reader
	if body != nil {
		raw, ok := body.([]byte)
		if !ok {
			var err error
			if raw, err = json.Marshal(body); err != nil {
				c.t.Fatal(err)
			}
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	return apiResult{resp.StatusCode, resp.Header, raw}
}

// want checks the status and decodes a JSON answer into v (when not nil).
func (c *apiClient) want(r apiResult, status int, v any) {
	c.t.Helper()
	if r.status != status {
		c.t.Fatalf("answer %d, want %d: %s", r.status, status, r.body)
	}
	if v != nil {
		if err := json.Unmarshal(r.body, v); err != nil {
			c.t.Fatalf("answer %d: %v: %s", r.status, err, r.body)
		}
	}
}

// makeToken runs `abox token add` and returns the secret.
func (a *abox) makeToken(name, role string) string {
	a.t.Helper()
	var v struct {
		Name  string `json:"name"`
		Role  string `json:"role"`
		Token string `json:"token"`
	}
	a.JSON(&v, "token", "add", name, "--role", role)
	if v.Name != name || v.Role != role || !strings.HasPrefix(v.Token, "abox_") || len(v.Token) < 40 {
		a.t.Fatalf("token add %s: %+v", name, v)
	}
	return v.Token
}

// TestAPI: the provisioning API over HTTPS from the real binary:
// tokens and roles, problem details, idempotency keys, the audit log's
// actors, and the same rules as the CLI.
func TestAPI(t *testing.T) {
	t.Parallel()
	a := newAbox(t)
	fastHashing(t, a.Dir)
	a.OK("domain", "add", testDomain)
	a.srv = a.Start()
	portal := a.makeToken("portal-web", rolePortal)
	ops := a.makeToken("ops", roleOperator)
	auditor := a.makeToken("audit-office", roleAuditor)
	c := newAPIClient(t, a)

	// The token list shows names and roles, never a secret or its hash.
	out := a.OK("token", "list")
	for _, want := range []string{"portal-web", "ops", "audit-office", "auditor"} {
		if !strings.Contains(out, want) {
			t.Errorf("token list lacks %q:\n%s", want, out)
		}
	}
	for _, secret := range []string{portal, ops, auditor} {
		if strings.Contains(out, secret) || strings.Contains(a.OK("token", "list", "--json"), secret) {
			t.Fatalf("token list shows a secret")
		}
	}
	a.Fail(1, "token", "add", "ops", "--role", roleOperator)  // the name is taken
	a.Fail(1, "token", "add", "other", "--role", "superuser") // no such role
	a.Fail(2, "token", "add", "other")                        // --role is required

	alice := "alice@" + testDomain
	reg := map[string]string{"address": alice, "phone": testPhone, "password": goodPassword}

	// Authentication and roles.
	r := c.do("POST", "/v1/accounts", "", reg)
	if r.status != 401 || !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") || r.problem(t).Type != "urn:abox:problem:unauthorized" {
		t.Fatalf("no token: %d %v %s", r.status, r.header, r.body)
	}
	if r := c.do("GET", "/v1/accounts", "abox_not-a-token", nil); r.status != 401 {
		t.Fatalf("unknown token: %d %s", r.status, r.body)
	}
	if r := c.do("POST", "/v1/accounts", auditor, reg); r.status != 403 || r.problem(t).Type != "urn:abox:problem:forbidden" {
		t.Fatalf("auditor registering: %d %s", r.status, r.body)
	}
	if r := c.do("GET", "/v1/accounts", portal, nil); r.status != 403 {
		t.Fatalf("portal listing every account: %d %s", r.status, r.body)
	}

	// Registration follows the CLI's rules, as problems.
	weak := map[string]string{"address": alice, "phone": testPhone, "password": "password1"}
	if r := c.do("POST", "/v1/accounts", portal, weak); r.status != 422 || r.problem(t).Type != "urn:abox:problem:invalid" {
		t.Fatalf("weak password: %d %s", r.status, r.body)
	}
	if r := c.do("POST", "/v1/accounts", portal, []byte(`{"address":"x@example.kz","phone":"+77011234567","pasword":"typo"}`)); r.status != 400 || !strings.Contains(r.problem(t).Detail, "pasword") {
		t.Fatalf("misspelt field: %d %s", r.status, r.body)
	}
	withClass := map[string]string{"address": alice, "phone": testPhone, "password": goodPassword, "class": "standard"}
	if r := c.do("POST", "/v1/accounts", portal, withClass); r.status != 403 {
		t.Fatalf("portal choosing the class: %d %s", r.status, r.body)
	}

	// Idempotency: the same key and request replay the first answer; the
	// same key with another request is refused; no key, a conflict.
	var created userJSON
	r = c.do("POST", "/v1/accounts", portal, reg, "Idempotency-Key", "reg-alice-1")
	c.want(r, 201, &created)
	if created.Address != alice || created.State != "active" {
		t.Fatalf("registered: %+v", created)
	}
	again := c.do("POST", "/v1/accounts", portal, reg, "Idempotency-Key", "reg-alice-1")
	if again.status != 201 || again.header.Get("Idempotent-Replayed") != "true" || !bytes.Equal(again.body, r.body) {
		t.Fatalf("replay: %d %v %s", again.status, again.header, again.body)
	}
	other := map[string]string{"address": "bob@" + testDomain, "phone": testPhone, "password": goodPassword}
	if r := c.do("POST", "/v1/accounts", portal, other, "Idempotency-Key", "reg-alice-1"); r.status != 422 || r.problem(t).Type != "urn:abox:problem:idempotency-key-reused" {
		t.Fatalf("key reused for another request: %d %s", r.status, r.body)
	}
	if r := c.do("POST", "/v1/accounts", portal, reg); r.status != 409 || r.problem(t).Type != "urn:abox:problem:exists" {
		t.Fatalf("registering twice without a key: %d %s", r.status, r.body)
	}
	// Another token's key is its own.
	if r := c.do("POST", "/v1/accounts", ops, reg, "Idempotency-Key", "reg-alice-1"); r.status != 409 {
		t.Fatalf("another token with the same key: %d %s", r.status, r.body)
	}

	// Reads and changes, each by the roles allowed.
	path := "/v1/accounts/" + url.PathEscape(alice)
	var shown userJSON
	c.want(c.do("GET", path, auditor, nil), 200, &shown)
	if shown.Address != alice || shown.Phone != testPhone {
		t.Fatalf("show: %+v", shown)
	}
	if r := c.do("GET", "/v1/accounts/"+url.PathEscape("nobody@"+testDomain), ops, nil); r.status != 404 || r.problem(t).Type != "urn:abox:problem:not-found" {
		t.Fatalf("unknown account: %d %s", r.status, r.body)
	}
	newPhone := "+77017654321"
	c.want(c.do("PATCH", path, portal, map[string]string{"phone": newPhone}, apiOnBehalfHeader, "subscriber"), 200, &shown)
	if shown.Phone != newPhone {
		t.Fatalf("phone not changed: %+v", shown)
	}
	if r := c.do("PATCH", path, portal, map[string]string{"class": "standard"}); r.status != 403 {
		t.Fatalf("portal changing the class: %d %s", r.status, r.body)
	}
	if r := c.do("POST", path+"/block", portal, map[string]string{"reason": "x"}); r.status != 403 {
		t.Fatalf("portal blocking: %d %s", r.status, r.body)
	}
	c.want(c.do("POST", path+"/block", ops, map[string]string{"reason": "fraud report 17"}), 200, &shown)
	if shown.State != "blocked" {
		t.Fatalf("block: %+v", shown)
	}
	if r := c.do("POST", path+"/block", ops, map[string]string{"reason": "again"}); r.status != 409 || r.problem(t).Type != "urn:abox:problem:state" {
		t.Fatalf("blocking a blocked account: %d %s", r.status, r.body)
	}
	c.want(c.do("POST", path+"/unblock", ops, nil), 200, &shown)
	if r := c.do("PUT", path+"/password", portal, map[string]string{"password": otherPassword}, apiOnBehalfHeader, "subscriber"); r.status != 200 {
		t.Fatalf("password change: %d %s", r.status, r.body)
	}
	if r := c.do("PUT", path+"/password", ops, map[string]string{"password": otherPassword}, apiOnBehalfHeader, "subscriber"); r.status != 403 {
		t.Fatalf("an operator token acting for a subscriber: %d %s", r.status, r.body)
	}
	var logins []map[string]any
	c.want(c.do("GET", path+"/logins", auditor, nil), 200, &logins)

	// The audit log names the token, or the subscriber with the token as
	// staff; reads are audited too.
	var page struct {
		Entries []struct {
			Actor, Action, Account, Reason, Staff string
		} `json:"entries"`
	}
	c.want(c.do("GET", "/v1/audit?account="+url.QueryEscape(alice), auditor, nil), 200, &page)
	got := map[string]string{}
	for _, e := range page.Entries {
		got[e.Action] = e.Actor + "/" + e.Staff
	}
	for action, who := range map[string]string{
		"user.add": "token:portal-web/token:portal-web", "user.set": "user/token:portal-web",
		"user.block": "token:ops/token:ops", "user.passwd": "user/token:portal-web",
		"user.show": "token:audit-office/token:audit-office", "user.logins": "token:audit-office/token:audit-office",
	} {
		if got[action] != who {
			t.Errorf("audit %s: actor/staff %q, want %q (all: %v)", action, got[action], who, got)
		}
	}
	if r := c.do("GET", "/v1/audit", portal, nil); r.status != 403 {
		t.Fatalf("portal reading the audit log: %d %s", r.status, r.body)
	}
	// Requests whose operation writes no entry of its own (the class
	// list, the audit log) are audited by the API.
	var all struct {
		Entries []struct{ Actor, Action, Reason string } `json:"entries"`
	}
	c.want(c.do("GET", "/v1/classes", auditor, nil), 200, nil)
	c.want(c.do("GET", "/v1/audit?limit=1000", auditor, nil), 200, &all)
	seenAPI := map[string]bool{}
	for _, e := range all.Entries {
		if strings.HasPrefix(e.Action, "api.") && e.Actor == "token:audit-office" {
			seenAPI[e.Action] = true
		}
	}
	if !seenAPI["api.class.list"] || !seenAPI["api.audit"] {
		t.Errorf("API reads not audited: %v", seenAPI)
	}

	// A revoked token stops at once.
	a.OK("token", "revoke", "audit-office")
	if r := c.do("GET", path, auditor, nil); r.status != 401 {
		t.Fatalf("revoked token: %d %s", r.status, r.body)
	}
	a.Fail(1, "token", "revoke", "audit-office")

	// The OpenAPI document is served as kept in the repository.
	var doc map[string]any
	c.want(c.do("GET", "/v1/openapi.json", "", nil), 200, &doc)
	if doc["openapi"] != "3.1.0" {
		t.Fatalf("openapi.json: %v", doc["openapi"])
	}

	// curl, a client of another make, over HTTPS.
	if _, err := exec.LookPath("curl"); err == nil {
		cmd := exec.Command("curl", "-sS", "-k", "-H", "Authorization: Bearer "+ops, c.base+path)
		raw, err := cmd.Output()
		var u userJSON
		if err != nil || json.Unmarshal(raw, &u) != nil || u.Address != alice {
			t.Fatalf("curl: %v %s", err, raw)
		}
	}

	// Plain HTTP takes credentials from this host only.
	req, _ := http.NewRequest("GET", "http://"+a.srv.Addr("http")+path, nil)
	req.Header.Set("Authorization", "Bearer "+ops)
	resp, err := (&http.Client{Timeout: netTimeout}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("plain HTTP from loopback: %d", resp.StatusCode)
	}
}

// TestAPIPlainHTTPFromAnotherHost: over plain HTTP, a client on another
// address gets 403 before any credential is looked at (the API and the
// notice API alike). It needs an address of this machine that is not
// loopback; without one it is skipped.
func TestAPIPlainHTTPFromAnotherHost(t *testing.T) {
	t.Parallel()
	ip := nonLoopbackIP()
	if ip == "" {
		t.Skip("no non-loopback address on this machine")
	}
	a := newAbox(t)
	a.ServeFlags = append(a.ServeFlags, "--listen-http", net.JoinHostPort(ip, "0"), "--listen-https", net.JoinHostPort(ip, "0"))
	a.srv = a.Start()
	// Over HTTPS from that address the API answers (401 for an unknown
	// token: it looked at the credential), not 403.
	c := newAPIClient(t, a)
	if r := c.do("GET", "/v1/accounts/alice%40example.kz", "abox_whatever", nil); r.status != 401 {
		t.Errorf("HTTPS from %s: %d %s, want 401", ip, r.status, r.body)
	}
	for _, p := range []string{"/v1/accounts/alice%40example.kz", "/v1/notices/x%40y"} {
		req, _ := http.NewRequest("GET", "http://"+a.srv.Addr("http")+p, nil)
		req.Header.Set("Authorization", "Bearer abox_whatever")
		req.SetBasicAuth("egov", "whatever")
		resp, err := (&http.Client{Timeout: netTimeout}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 403 || !strings.Contains(string(body), "HTTPS") {
			t.Errorf("%s over plain HTTP from %s: %d %s", p, ip, resp.StatusCode, body)
		}
	}
}

func nonLoopbackIP() string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return ""
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil && !n.IP.IsLinkLocalUnicast() {
			return n.IP.String()
		}
	}
	return ""
}

// TestAPIRateLimit: a token over its requests a minute gets 429 with
// Retry-After; another token is not held back.
func TestAPIRateLimit(t *testing.T) {
	t.Parallel()
	a := newAbox(t)
	writeFile(t, a.Dir, ConfigFileName, []byte("api-requests-per-minute = 20\n"))
	a.srv = a.Start()
	busy := a.makeToken("busy", roleAuditor)
	calm := a.makeToken("calm", roleAuditor)
	c := newAPIClient(t, a)
	limited := 0
	for range 10 {
		r := c.do("GET", "/v1/classes", busy, nil)
		if r.status == 429 {
			if r.header.Get("Retry-After") == "" || r.problem(t).Type != "urn:abox:problem:rate-limited" {
				t.Fatalf("429 without Retry-After or problem: %v %s", r.header, r.body)
			}
			limited++
		} else if r.status != 200 {
			t.Fatalf("classes: %d %s", r.status, r.body)
		}
	}
	// 20 a minute with a burst of 2: of 10 requests in a moment, at
	// least 7 are refused (a slow machine may let one more through).
	if limited < 7 {
		t.Fatalf("%d of 10 quick requests refused, want most", limited)
	}
	if r := c.do("GET", "/v1/classes", calm, nil); r.status != 200 {
		t.Fatalf("another token: %d %s", r.status, r.body)
	}
}

// TestOpenAPIMatchesRoutes: openapi.json documents exactly the routes
// the server has, with the same roles.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	var doc struct {
		Paths map[string]map[string]struct {
			Roles []string `json:"x-abox-roles"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(openAPISpec, &doc); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, rt := range apiRoutes() {
		key := rt.method + " " + rt.path
		seen[key] = true
		op, ok := doc.Paths[rt.path][strings.ToLower(rt.method)]
		if !ok {
			t.Errorf("%s is served but not in openapi.json", key)
			continue
		}
		if !slices.Equal(op.Roles, rt.roles) {
			t.Errorf("%s: openapi.json says roles %v, the server %v", key, op.Roles, rt.roles)
		}
	}
	for p, methods := range doc.Paths {
		for m := range methods {
			if key := strings.ToUpper(m) + " " + p; !seen[key] {
				t.Errorf("openapi.json documents %s, which the server does not serve", key)
			}
		}
	}
}
